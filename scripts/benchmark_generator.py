#!/usr/bin/env python
"""Time scale mode and print Markdown table rows (wall time, peak RSS of the generator).

Each run is a separate child process measured by `retail_xsell.benchmark.run_measured`,
so the peak RSS is the generator's alone (not the maximum over earlier runs).

    python scripts/benchmark_generator.py --purchase-lines 1000000 --purchase-lines 10000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from retail_xsell.benchmark import run_measured
from retail_xsell.generator.config import SCENARIOS

SCRIPT = Path(__file__).resolve().parent / "generate_raw_data.py"
HEADER = (
    "| target lines | actual purchase rows | customers | format | wall time (s) | "
    "peak RSS (MiB) |\n| ---: | ---: | ---: | --- | ---: | ---: |"
)


def measure(lines: int, fmt: str, out: Path, scenario: str = "default") -> str:
    """Run the generator once and return one Markdown table row."""
    cmd = [sys.executable, str(SCRIPT), "scale", "--purchase-lines", str(lines)]
    cmd += ["--format", fmt, "--out", str(out), "--scenario", scenario, "--quiet"]
    run = run_measured(cmd)
    if run.returncode != 0:
        raise SystemExit(f"error: generator failed for {lines} lines")
    truth = json.loads((out / "truth.json").read_text())
    return (
        f"| {lines:,} | {truth['row_counts']['purchase']:,} | "
        f"{truth['simulation']['customers']:,} | {fmt} | {run.wall_seconds:.1f} | "
        f"{run.peak_rss_mib:,.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--purchase-lines", type=int, action="append", help="target N (repeatable; default 1M)"
    )
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--scenario", choices=SCENARIOS, default="default")
    parser.add_argument("--no-header", action="store_true", help="print rows only")
    args = parser.parse_args()
    if not args.no_header:
        print(HEADER)
    for lines in args.purchase_lines or [1_000_000]:
        out = Path(tempfile.mkdtemp(prefix="xsell-bench-"))
        try:
            print(measure(lines, args.format, out, args.scenario), flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
