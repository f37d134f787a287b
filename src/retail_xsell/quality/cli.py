"""``retail-xsell gate``: evaluate slos.yml on the last build; exit 1 on a blocking breach,
2 when the gate cannot start. Either way it says what consumers are still reading."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retail_xsell import settings
from retail_xsell.commandline import Subcommands, add_build_options, add_command, build_locations
from retail_xsell.publications import describe_last_publication
from retail_xsell.quality.declarations import GateSetupError
from retail_xsell.quality.evaluation import run_gate
from retail_xsell.quality.report import failure_messages, result_from_dict


def register(subcommands: Subcommands) -> None:
    parser = add_command(
        subcommands,
        "gate",
        run,
        help="evaluate the SLOs in slos.yml on the last build; exit 1 on a blocking breach",
    )
    add_build_options(parser)
    parser.add_argument("--slo-file", help="SLO declarations (default: slos.yml)")
    parser.add_argument(
        "--new-baseline",
        metavar="REASON",
        help="do not compare volume with the last publication this time (a new "
        "data set at the same input path); the reason is recorded in the report",
    )


def run(args: argparse.Namespace) -> int:
    where = build_locations(args)
    target_path = Path(args.target_path) if args.target_path else settings.target_path()
    try:
        report = run_gate(
            where.database,
            target_path,
            where.published,
            where.report_dir,
            Path(args.slo_file) if args.slo_file else None,
            new_baseline=(args.new_baseline or "").strip() or None,
        )
    except GateSetupError as exc:
        print(f"gate error: {exc}", file=sys.stderr)
        print(describe_last_publication(where.published), file=sys.stderr)
        return 2
    for slo in map(result_from_dict, report["slos"]):
        flag = ""
        if slo.is_failing:
            flag = "  <- BLOCKING" if slo.blocking else "  <- warning"
        print(
            f"  {slo.status:<12}{slo.name:<28}{slo.measured_text:>16}  "
            f"(target {slo.target_text}){flag}"
        )
    print(f"Report: {where.report_dir / 'report.md'} (JSON: {where.report_dir / 'report.json'})")
    if report["warnings"]:
        print(f"Warnings (not blocking): {', '.join(report['warnings'])}")
    if not report["passed"]:
        print("Gate FAILED:", file=sys.stderr)
        for line in failure_messages(report):
            print(f"  {line}", file=sys.stderr)
        print(describe_last_publication(where.published), file=sys.stderr)
        return 1
    print("Gate passed: the working database may be published (retail-xsell publish).")
    return 0
