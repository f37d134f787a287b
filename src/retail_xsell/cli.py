"""`retail-xsell`: the package's command line, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

from retail_xsell.summary import NotBuiltError, render_summary
from retail_xsell.warehouse import database_path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["contracts"]:
        # The contract generator owns its argument parsing too (docs/contracts.md).
        from retail_xsell.contracts import main_contracts

        return main_contracts(argv[1:])
    if argv[:1] == ["generate"]:
        # The generator owns its own argument parsing (and its error messages).
        from retail_xsell.generator.cli import main as generate_main

        return generate_main(argv[1:])

    parser = argparse.ArgumentParser(
        prog="retail-xsell",
        description="Retail cross-sell data product tools.",
        epilog="`retail-xsell generate --help` describes the raw data generator, "
        "`retail-xsell contracts --help` the contract generator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("generate", help="generate raw retail data (sample or scale mode)")
    commands.add_parser(
        "contracts", help="write the ODCS contracts and the ODPS manifest from target/"
    )
    summary = commands.add_parser("summary", help="summarise the last dbt build")
    summary.add_argument("--database", help="DuckDB file (default: the one profiles.yml uses)")
    for name, text in (
        ("gate", "evaluate the SLOs in slos.yml on the last build; exit 1 on a blocking breach"),
        ("publish", "publish the working database after a passing gate (write-audit-publish)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--database", help="working DuckDB file (default: the one profiles.yml uses)"
        )
        command.add_argument(
            "--published",
            help="published DuckDB file (default: RETAIL_XSELL_PUBLISHED_PATH or "
            "build/published/retail_xsell.duckdb)",
        )
        command.add_argument(
            "--report-dir", help="where report.json/.md live (default: build/slo/<database>)"
        )
        command.add_argument(
            "--target-path",
            help="dbt artifacts folder (default: target; publish: the copy the gate kept)",
        )
        if name == "gate":
            command.add_argument("--slo-file", help="SLO declarations (default: slos.yml)")
            command.add_argument(
                "--new-baseline",
                metavar="REASON",
                help="do not compare volume with the last publication this time (a new "
                "data set at the same input path); the reason is recorded in the report",
            )
    publications = commands.add_parser(
        "publications", help="list the kept publications, or roll consumers back to one"
    )
    publications.add_argument(
        "--published",
        help="published DuckDB file (default: RETAIL_XSELL_PUBLISHED_PATH or "
        "build/published/retail_xsell.duckdb)",
    )
    publications.add_argument(
        "--rollback", metavar="PUBLICATION_ID", help="make this kept publication current"
    )
    summary.add_argument(
        "--working",
        help="working DuckDB file, for the data stewards' part (reconciliation, quarantine)",
    )
    args = parser.parse_args(argv)
    if args.command in ("gate", "publish"):
        return _gate_or_publish(args)
    if args.command == "publications":
        return _publications(args)

    if args.command == "summary":
        try:
            database = database_path() if args.database is None else Path(args.database)
            working = Path(args.working) if args.working else None
            print(render_summary(database, working))
        except (NotBuiltError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _publications(args: argparse.Namespace) -> int:
    from retail_xsell.publish import (
        PublishRefusedError,
        list_publications,
        publications_dir,
        published_path,
        rollback,
    )

    published = Path(args.published) if args.published else published_path()
    if args.rollback:
        try:
            folder = rollback(published, args.rollback)
        except PublishRefusedError as exc:
            print(f"rollback refused: {exc}", file=sys.stderr)
            return 1
        print(f"Consumers now read {folder} ({published} -> current -> {folder.name}).")
        return 0
    kept = list_publications(published)
    if not kept:
        print(f"No publications under {_shown(publications_dir(published))} yet.")
        return 0
    print(f"Publications kept under {_shown(publications_dir(published))} (newest first):")
    for record in kept:
        mark = "*" if record["is_current"] else " "
        print(
            f" {mark} {record['publication_id'][:8]}  {record['published_at']}  "
            f"commit {record['git_commit']}  {Path(record['folder']).name}"
        )
    print("* = current. Roll back with: retail-xsell publications --rollback ID")
    return 0


def _gate_or_publish(args: argparse.Namespace) -> int:
    """Run the gate or the publish step; both name the last good publication on failure."""
    from retail_xsell.publish import (
        PublishRefusedError,
        describe_last_publication,
        publish,
        published_path,
    )
    from retail_xsell.slo import (
        GateSetupError,
        default_report_dir,
        failure_messages,
        result_from_dict,
        run_gate,
    )

    try:
        database = database_path() if args.database is None else Path(args.database)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    published = Path(args.published) if args.published else published_path()
    report_dir = Path(args.report_dir) if args.report_dir else default_report_dir(database)

    if args.command == "gate":
        target_path = Path(args.target_path) if args.target_path else Path.cwd() / "target"
        try:
            report = run_gate(
                database,
                target_path,
                published,
                report_dir,
                Path(args.slo_file) if args.slo_file else None,
                new_baseline=(args.new_baseline or "").strip() or None,
            )
        except GateSetupError as exc:
            print(f"gate error: {exc}", file=sys.stderr)
            print(describe_last_publication(published), file=sys.stderr)
            return 2
        for slo in map(result_from_dict, report["slos"]):
            flag = ""
            if slo.status in ("breach", "error"):
                flag = "  <- BLOCKING" if slo.blocking else "  <- warning"
            print(
                f"  {slo.status:<12}{slo.name:<28}{slo.measured_text:>16}  "
                f"(target {slo.target_text}){flag}"
            )
        print(f"Report: {report_dir / 'report.md'} (JSON: {report_dir / 'report.json'})")
        if report["warnings"]:
            print(f"Warnings (not blocking): {', '.join(report['warnings'])}")
        if not report["passed"]:
            print("Gate FAILED:", file=sys.stderr)
            for line in failure_messages(report):
                print(f"  {line}", file=sys.stderr)
            print(describe_last_publication(published), file=sys.stderr)
            return 1
        print("Gate passed: the working database may be published (retail-xsell publish).")
        return 0

    report_file = report_dir / "report.json"
    if not report_file.is_file():
        print(
            f"publish refused: no gate report at {report_file}; run the gate first", file=sys.stderr
        )
        print(describe_last_publication(published), file=sys.stderr)
        return 1
    target_path = Path(args.target_path) if args.target_path else None
    try:
        publication = publish(database, published, json.loads(report_file.read_text()), target_path)
    except PublishRefusedError as exc:
        print(f"publish refused: {exc}", file=sys.stderr)
        print(describe_last_publication(published), file=sys.stderr)
        return 1
    except (OSError, duckdb.Error) as exc:
        # A read-only folder, a full disk, a file someone holds: nothing was switched.
        print(f"publish failed: {exc}", file=sys.stderr)
        print(describe_last_publication(published), file=sys.stderr)
        return 1
    current = _shown(publication.path.parent / "current")
    print(
        f"Published publication {publication.publication_id[:8]} "
        f"({publication.published_at:%Y-%m-%d %H:%M:%S} UTC): the output ports of "
        f"{_shown(database)}.\n"
        f"  DuckDB     {_shown(publication.path)}\n"
        f"  Parquet    {current}/parquet/\n"
        f"  contracts  {current}/contracts/, {current}/dataproduct.yaml\n"
        f"  snapshot   {_shown(publication.folder)}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
