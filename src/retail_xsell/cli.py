"""`retail-xsell`: the package's command line, one subcommand per job.

Every subcommand is defined by the module that owns it, as ``register(subcommands)``
(:mod:`retail_xsell.commandline`); :func:`build_parser` calls one per subcommand, so a
new one (the API's ``serve``, ``token``, ``audit``) is one more line there. This module
owns the three commands of the publication's life cycle that have no package of their
own: ``summary``, ``publish`` and ``publications``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from retail_xsell import build, contracts, settings
from retail_xsell.commandline import (
    PUBLISHED_HELP,
    CommandParser,
    Subcommands,
    UsageError,
    add_build_options,
    add_command,
    build_locations,
    shown,
)
from retail_xsell.crosssell import backtest
from retail_xsell.delivery import cli as delivery_cli
from retail_xsell.generator import cli as generator_cli
from retail_xsell.publications import (
    describe_last_publication,
    list_publications,
    publications_dir,
)
from retail_xsell.publish import PublishRefusedError, publish, rollback
from retail_xsell.quality import cli as quality_cli
from retail_xsell.summary import NotBuiltError, render_summary


def build_parser() -> CommandParser:
    """The whole command tree."""
    parser = CommandParser(
        prog="retail-xsell",
        description="Retail cross-sell data product tools.",
        epilog="`retail-xsell generate --help` describes the raw data generator, "
        "`retail-xsell contracts --help` the contract generator.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # One line per subcommand, in the order `retail-xsell --help` lists them.
    generator_cli.register(subcommands)
    contracts.register(subcommands)
    build.register(subcommands)
    register_summary(subcommands)
    quality_cli.register(subcommands)
    register_publish(subcommands)
    register_publications(subcommands)
    backtest.register(subcommands)
    delivery_cli.register(subcommands)  # serve, token, query, audit (the governed API)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
    except UsageError as exc:  # a bad argument of generate, or a bad setting
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


# --- summary -------------------------------------------------------------------------


def register_summary(subcommands: Subcommands) -> None:
    parser = add_command(subcommands, "summary", _summary, help="summarise the last dbt build")
    parser.add_argument("--database", help="DuckDB file (default: the one profiles.yml uses)")
    parser.add_argument(
        "--working",
        help="working DuckDB file, for the data stewards' part (reconciliation, quarantine)",
    )
    parser.add_argument(
        "--target-path",
        help="dbt artifacts folder whose semantic manifest answers the metrics of a working "
        "database (default: target; a publication carries its own)",
    )


def _summary(args: argparse.Namespace) -> int:
    try:
        database = settings.database_path() if args.database is None else Path(args.database)
        working = Path(args.working) if args.working else None
        target_path = Path(args.target_path) if args.target_path else None
        print(render_summary(database, working, target_path))
    except (NotBuiltError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# --- publish and publications --------------------------------------------------------


def register_publish(subcommands: Subcommands) -> None:
    parser = add_command(
        subcommands,
        "publish",
        _publish,
        help="publish the working database after a passing gate (write-audit-publish)",
    )
    add_build_options(parser)


def _publish(args: argparse.Namespace) -> int:
    """Publish after a passing gate; on failure, name the last good publication."""
    where = build_locations(args)
    report_file = where.report_dir / "report.json"
    if not report_file.is_file():
        print(
            f"publish refused: no gate report at {report_file}; run the gate first", file=sys.stderr
        )
        print(describe_last_publication(where.published), file=sys.stderr)
        return 1
    target_path = Path(args.target_path) if args.target_path else None
    try:
        publication = publish(
            where.database, where.published, json.loads(report_file.read_text()), target_path
        )
    except PublishRefusedError as exc:
        print(f"publish refused: {exc}", file=sys.stderr)
        print(describe_last_publication(where.published), file=sys.stderr)
        return 1
    except (OSError, duckdb.Error) as exc:
        # A read-only folder, a full disk, a file someone holds: nothing was switched.
        print(f"publish failed: {exc}", file=sys.stderr)
        print(describe_last_publication(where.published), file=sys.stderr)
        return 1
    current = shown(publication.path.parent / "current")
    print(
        f"Published publication {publication.publication_id[:8]} "
        f"({publication.published_at:%Y-%m-%d %H:%M:%S} UTC): the output ports of "
        f"{shown(where.database)}.\n"
        f"  DuckDB     {shown(publication.path)}\n"
        f"  Parquet    {current}/parquet/\n"
        f"  contracts  {current}/contracts/, {current}/dataproduct.yaml\n"
        f"  snapshot   {shown(publication.folder)}/"
    )
    return 0


def register_publications(subcommands: Subcommands) -> None:
    parser = add_command(
        subcommands,
        "publications",
        _publications,
        help="list the kept publications, or roll consumers back to one",
    )
    parser.add_argument("--published", help=PUBLISHED_HELP)
    parser.add_argument(
        "--rollback", metavar="PUBLICATION_ID", help="make this kept publication current"
    )


def _publications(args: argparse.Namespace) -> int:
    published = Path(args.published) if args.published else settings.published_path()
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
        print(f"No publications under {shown(publications_dir(published))} yet.")
        return 0
    print(f"Publications kept under {shown(publications_dir(published))} (newest first):")
    for record in kept:
        mark = "*" if record["is_current"] else " "
        print(
            f" {mark} {record['publication_id'][:8]}  {record['published_at']}  "
            f"commit {record['git_commit']}  {Path(record['folder']).name}"
        )
    print("* = current. Roll back with: retail-xsell publications --rollback ID")
    return 0


if __name__ == "__main__":
    sys.exit(main())
