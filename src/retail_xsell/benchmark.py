"""Benchmarks of the generator and of the full dbt build, measured, not asserted.

Each measured command runs as a child process and `os.wait4` returns that child's own
resource usage, so the peak RSS is the child's (and its threads'), not the maximum of
earlier runs. dbt's run_results.json gives the time of every model; DuckDB runs in the
dbt process, so the peak RSS covers the whole build (per-model memory is not
observable from outside without sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from retail_xsell import settings
from retail_xsell.build import dbt_executable


@dataclass(frozen=True)
class Measured:
    """Wall time, peak resident memory and exit code of one child process."""

    wall_seconds: float
    peak_rss_mib: float
    returncode: int


#: Run by a small intermediate Python process: it starts the measured command as *its*
#: child and reports that child's resource usage. Started straight from a big parent
#: (pytest with MetricFlow loaded, say), the child's peak RSS would include the parent's
#: memory image, which the child shares between fork and exec; from this small process
#: that shared image is only a few MiB.
_MEASURE = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_pid, status, usage = os.wait4(child.pid, 0)
print(json.dumps([usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


def run_measured(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `command` to completion with its output discarded and measure it."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        stdout=subprocess.PIPE,
        env=env,
        cwd=settings.project_dir(),
        check=True,
        text=True,
    )
    wall = time.perf_counter() - start
    max_rss_kib, returncode = json.loads(result.stdout)
    return Measured(wall, max_rss_kib / 1024, returncode)


def model_timings(run_results: Path) -> list[tuple[str, float]]:
    """(model name, execution seconds) of every model in a dbt run, slowest first."""
    results = json.loads(run_results.read_text())["results"]
    timings = [
        (r["unique_id"].split(".")[-1], float(r["execution_time"]))
        for r in results
        if r["unique_id"].startswith("model.")
    ]
    return sorted(timings, key=lambda item: item[1], reverse=True)


def phase_totals(run_results: Path) -> dict[str, tuple[int, float]]:
    """(count, summed execution seconds) per kind of node in a dbt run: model, test (the
    data tests), unit_test, seed, ... The sums are thread-seconds: with two dbt threads
    they add up to about twice the wall time the nodes took."""
    totals: dict[str, tuple[int, float]] = {}
    for result in json.loads(run_results.read_text())["results"]:
        kind = result["unique_id"].split(".", 1)[0]
        count, seconds = totals.get(kind, (0, 0.0))
        totals[kind] = (count + 1, seconds + float(result["execution_time"]))
    return totals


def database_bytes(database: Path) -> int:
    """Size of a DuckDB database on disk: the file and its write-ahead log, if any."""
    wal = settings.wal_path(database)
    return sum(path.stat().st_size for path in (database, wal) if path.exists())


def benchmark_build(purchase_lines: int, data_dir: Path, work_dir: Path) -> str:
    """Generate `purchase_lines` lines (unless present), build the product on them with
    `dbt build`, and return a Markdown report."""
    raw = data_dir / str(purchase_lines)
    python = sys.executable
    if not (raw / "truth.json").exists():
        generated = run_measured(
            [
                python,
                "scripts/generate_raw_data.py",
                "scale",
                "--purchase-lines",
                str(purchase_lines),
                "--out",
                str(raw),
                "--quiet",
            ]
        )
        if generated.returncode != 0:
            raise RuntimeError(f"the generator failed for {purchase_lines:,} lines")
    actual_lines = json.loads((raw / "truth.json").read_text())["row_counts"]["purchase"]
    target = work_dir / "target"
    database = work_dir / "bench.duckdb"
    env = {**os.environ, settings.DATABASE_ENV: str(database)}
    vars_json = json.dumps({"raw_input_format": "parquet", "raw_input_path": str(raw)})
    dbt = dbt_executable()
    build = run_measured(
        [
            dbt,
            "build",
            "--target-path",
            str(target),
            "--log-path",
            str(work_dir / "logs"),
            "--vars",
            vars_json,
        ],
        env=env,
    )
    if build.returncode != 0:
        raise RuntimeError(f"dbt build failed; see {work_dir / 'logs' / 'dbt.log'}")
    lines = [
        f"### {actual_lines:,} purchase lines",
        "",
        f"Full `dbt build`: {build.wall_seconds:.1f} s wall, "
        f"peak RSS {build.peak_rss_mib / 1024:.2f} GiB, "
        f"database {database_bytes(database) / 2**30:.2f} GiB on disk.",
        "",
        "Thread-seconds by kind of node: "
        + ", ".join(
            f"{kind} {seconds:.1f} s ({count})"
            for kind, (count, seconds) in sorted(phase_totals(target / "run_results.json").items())
        )
        + ".",
        "",
        "| model | seconds |",
        "| --- | ---: |",
    ]
    lines += [
        f"| {name} | {seconds:.1f} |"
        for name, seconds in model_timings(target / "run_results.json")
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmark_build",
        description="Generate raw data and time the full dbt build on it (Markdown report).",
    )
    parser.add_argument(
        "--purchase-lines",
        type=int,
        action="append",
        help="target purchase lines (repeatable; default 1,000,000 and 10,000,000)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=settings.generated_data_dir(),
        help="where generated inputs are kept and reused (default data/generated)",
    )
    args = parser.parse_args(argv)
    sizes = args.purchase_lines or [1_000_000, 10_000_000]
    if any(size <= 0 for size in sizes):
        print("error: --purchase-lines must be positive", file=sys.stderr)
        return 2
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="xsell-build-bench-") as work:
            try:
                print(benchmark_build(size, args.data_dir, Path(work)), flush=True)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        print()
    return 0
