"""Benchmarks of the generator and of the full dbt build, measured, not asserted.

Each measured command runs as a child process and `os.wait4` returns that child's own
resource usage, so the peak RSS is the child's (and its threads'), not the maximum of
earlier runs. dbt's run_results.json gives the time of every model; DuckDB runs in the
dbt process, so the peak RSS covers the whole build (per-model memory is not
observable from outside without sampling).

Issue 12 measures the full build against the lean essential work of the same run:
:mod:`retail_xsell.lean_reference`, a child process measured the same way, on the same
input, interleaved with the builds round by round (lean first in odd rounds, the build
first in even ones, so neither always gets the warmer page cache). Its results are
compared with the build's marts afterwards, so the ratio is between two pipelines
that give the same answers.

For the incremental daily loads of issue 12 the report also splits the build's
thread-seconds by what a new day of purchases forces to be redone (everything
downstream of as_of_date), and measures the floor of any dbt run on the built
database: one invocation that builds a single one-row model and its tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from retail_xsell import settings
from retail_xsell.build import dbt_executable
from retail_xsell.daily_load import AS_OF_DATE_NODE, PURCHASE_SOURCE, downstream
from retail_xsell.lean_reference import Agreement, compare_with_build


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


@dataclass(frozen=True)
class DailyLoadShares:
    """Thread-seconds of one build's nodes, split by what a new day of purchase files
    forces a build to redo (issue 12's incremental daily loads):

    - ``as_of_date``: the nodes downstream of int_as_of_date (models, their data and
      unit tests). A new day moves as_of_date, which every customer's age, recency, CLV,
      RFM score, snapshot and offer depends on, so these are recomputed whatever else
      is made incremental;
    - ``purchase_only``: downstream of the purchase source but not of as_of_date (the
      purchase base, order lines, orders): what incremental models could limit to the
      new files;
    - ``other``: the rest (customer and product inputs, seeds, hooks).
    """

    as_of_date: float
    purchase_only: float
    other: float

    @property
    def total(self) -> float:
        return self.as_of_date + self.purchase_only + self.other


def daily_load_shares(manifest: Path, run_results: Path) -> DailyLoadShares:
    """Split a build's node thread-seconds by what a new day of purchases forces to be
    redone (:class:`DailyLoadShares`), from the build's manifest.json (its child map)
    and run_results.json."""
    child_map = json.loads(manifest.read_text())["child_map"]
    for node in (AS_OF_DATE_NODE, PURCHASE_SOURCE):
        if node not in child_map:
            raise ValueError(f"{manifest}: no node {node} in the child map")
    as_of_date = downstream(child_map, AS_OF_DATE_NODE)
    purchase = downstream(child_map, PURCHASE_SOURCE)
    sums = {"as_of_date": 0.0, "purchase_only": 0.0, "other": 0.0}
    for result in json.loads(run_results.read_text())["results"]:
        node = result["unique_id"]
        part = (
            "as_of_date" if node in as_of_date else "purchase_only" if node in purchase else "other"
        )
        sums[part] += float(result["execution_time"])
    return DailyLoadShares(**sums)


def database_bytes(database: Path) -> int:
    """Size of a DuckDB database on disk: the file and its write-ahead log, if any."""
    wal = settings.wal_path(database)
    return sum(path.stat().st_size for path in (database, wal) if path.exists())


@dataclass(frozen=True)
class Round:
    """One round of the build benchmark: the lean pipeline and the full build, in the
    order ``first`` says ("lean" or "full"), on the same input."""

    first: str
    lean: Measured
    full: Measured
    lean_steps: dict[str, float]
    model_seconds: list[tuple[str, float]]
    phases: dict[str, tuple[int, float]]
    database_bytes: int
    #: None where not measured (the report then leaves the daily-load lines out)
    shares: DailyLoadShares | None = None
    floor: Measured | None = None

    @property
    def ratio(self) -> float:
        """Full build wall time over lean wall time."""
        return self.full.wall_seconds / self.lean.wall_seconds


def ensure_generated(purchase_lines: int, data_dir: Path) -> Path:
    """The generated raw input of `purchase_lines` lines, generated unless present."""
    raw = data_dir / str(purchase_lines)
    if not (raw / "truth.json").exists():
        generated = run_measured(
            [
                sys.executable,
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
    return raw


def run_lean(raw: Path, round_dir: Path) -> tuple[Measured, dict[str, float]]:
    """The lean reference pipeline on `raw` into round_dir/lean.duckdb, measured."""
    result_file = round_dir / "lean.json"
    command = [
        sys.executable,
        "-m",
        "retail_xsell.lean_reference",
        "--input",
        str(raw),
        "--database",
        str(round_dir / "lean.duckdb"),
        "--json",
        str(result_file),
    ]
    lean = run_measured(command)
    if lean.returncode != 0:
        raise RuntimeError(f"the lean reference pipeline failed; run it alone: {' '.join(command)}")
    return lean, json.loads(result_file.read_text())["step_seconds"]


def _dbt_build(raw: Path, round_dir: Path, *select: str) -> Measured:
    """`dbt build [--select ...]` on `raw` into round_dir/bench.duckdb, with artifacts in
    round_dir/target and logs in round_dir/logs, measured."""
    env = {**os.environ, settings.DATABASE_ENV: str(round_dir / "bench.duckdb")}
    vars_json = json.dumps({"raw_input_format": "parquet", "raw_input_path": str(raw)})
    selection = ["--select", *select] if select else []
    build = run_measured(
        [
            dbt_executable(),
            "build",
            *selection,
            "--target-path",
            str(round_dir / "target"),
            "--log-path",
            str(round_dir / "logs"),
            "--vars",
            vars_json,
        ],
        env=env,
    )
    if build.returncode != 0:
        command = " ".join(["dbt build", *selection])
        raise RuntimeError(f"{command} failed; see {round_dir / 'logs' / 'dbt.log'}")
    return build


def run_full(raw: Path, round_dir: Path) -> Measured:
    """`dbt build` on `raw` into round_dir/bench.duckdb (artifacts in round_dir/target)."""
    return _dbt_build(raw, round_dir)


#: The smallest useful dbt invocation on a built database: one one-row model and its
#: tests. A daily load run through dbt pays at least this (start-up, partial parse,
#: the on-run-start checks of every input file, the run record) before any work.
FLOOR_SELECTOR = "int_as_of_date"


def run_floor(raw: Path, round_dir: Path) -> Measured:
    """`dbt build --select int_as_of_date` on the database run_full built, with its
    target folder (so dbt parses partially, as a scheduled run would), measured."""
    return _dbt_build(raw, round_dir, FLOOR_SELECTOR)


def _daily_load_text(rounds: list[Round]) -> list[str]:
    """The report's paragraph on incremental daily loads (medians), or nothing when the
    rounds did not measure it."""
    measured = [
        (r.full.wall_seconds, r.floor.wall_seconds, r.shares)
        for r in rounds
        if r.shares is not None and r.floor is not None
    ]
    if not measured:
        return []
    full = statistics.median(full for full, _, _ in measured)
    floor = statistics.median(floor for _, floor, _ in measured)
    shares = [shares for _, _, shares in measured]
    total = statistics.median(s.total for s in shares)

    def share(name: str) -> str:
        seconds = statistics.median(getattr(s, name) for s in shares)
        return f"{seconds:.1f} thread-s ({seconds / total:.0%})"

    return [
        "",
        "What a new day of purchase files forces (issue 12, incremental daily loads; "
        "thread-seconds of the build's nodes"
        + (", medians" if len(measured) > 1 else "")
        + f"): downstream of `int_as_of_date` {share('as_of_date')}, recomputed every "
        f"day because as_of_date moves; downstream of the purchase input only "
        f"{share('purchase_only')}, what incremental models could limit to the new "
        f"files; the rest {share('other')}. A dbt invocation that builds only "
        f"`{FLOOR_SELECTOR}` and its tests on the built database: {floor:.1f} s wall, "
        f"{floor / full:.1%} of the full build (issue 12: a daily load under 10%).",
    ]


def _median_models(rounds: list[Round]) -> list[tuple[str, float]]:
    seconds: dict[str, list[float]] = {}
    for measured in rounds:
        for name, value in measured.model_seconds:
            seconds.setdefault(name, []).append(value)
    medians = [(name, statistics.median(values)) for name, values in seconds.items()]
    return sorted(medians, key=lambda item: item[1], reverse=True)


def _median_phases(rounds: list[Round]) -> dict[str, tuple[int, float]]:
    kinds = sorted({kind for measured in rounds for kind in measured.phases})
    return {
        kind: (
            max(measured.phases.get(kind, (0, 0.0))[0] for measured in rounds),
            statistics.median(measured.phases.get(kind, (0, 0.0))[1] for measured in rounds),
        )
        for kind in kinds
    }


def _agreement_text(agreement: Agreement) -> str:
    fit = (
        "no BG/NBD fit to compare"
        if agreement.bgnbd_max_relative_difference is None
        else "BG/NBD parameters' largest relative difference "
        f"{agreement.bgnbd_max_relative_difference:.1g}"
    )
    return (
        "Lean results against the build's marts (last round): "
        f"{agreement.customers:,} customers with a completed order "
        f"({agreement.buyers_in_build:,} in customer_value), "
        f"{agreement.customers_differing:,} with a different order count, frequency, "
        "recency, age, mean repeat spend or total spend; "
        f"{agreement.category_pairs:,} category pairs, "
        f"{agreement.category_pairs_differing:,} different; {fit}."
    )


def build_report(purchase_lines: int, rounds: list[Round], agreement: Agreement) -> str:
    """The Markdown report of one input size: medians over `rounds`."""
    lean_seconds = statistics.median(r.lean.wall_seconds for r in rounds)
    full_seconds = statistics.median(r.full.wall_seconds for r in rounds)
    lean_rss = max(r.lean.peak_rss_mib for r in rounds) / 1024
    full_rss = max(r.full.peak_rss_mib for r in rounds) / 1024
    of_rounds = (
        f" (medians of {len(rounds)} interleaved rounds; peak RSS the largest)"
        if len(rounds) > 1
        else ""
    )
    steps = {
        name: statistics.median(r.lean_steps.get(name, 0.0) for r in rounds)
        for name in rounds[0].lean_steps
    }
    lines = [
        f"### {purchase_lines:,} purchase lines",
        "",
        f"Full `dbt build`: {full_seconds:.1f} s wall, "
        f"peak RSS {full_rss:.2f} GiB, "
        f"database {rounds[-1].database_bytes / 2**30:.2f} GiB on disk{of_rounds}.",
        "",
        "Lean reference pipeline (`python -m retail_xsell.lean_reference`: one DuckDB "
        "connection and one BG/NBD + Gamma-Gamma fit, no dbt): "
        f"{lean_seconds:.1f} s wall, peak RSS {lean_rss:.2f} GiB. "
        "Its steps (s, inside the process): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in steps.items())
        + ".",
        "",
        f"**Full / lean: {full_seconds / lean_seconds:.2f}x** "
        "(issue 12: at most 1.5x at 10M lines).",
        "",
        "| round | first | lean s | lean peak RSS | full s | full peak RSS | full / lean |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {number} | {r.first} | {r.lean.wall_seconds:.1f} | "
        f"{r.lean.peak_rss_mib / 1024:.2f} GiB | {r.full.wall_seconds:.1f} | "
        f"{r.full.peak_rss_mib / 1024:.2f} GiB | {r.ratio:.2f}x |"
        for number, r in enumerate(rounds, start=1)
    ]
    lines += [
        "",
        _agreement_text(agreement),
        "",
        "Thread-seconds by kind of node"
        + (" (medians)" if len(rounds) > 1 else "")
        + ": "
        + ", ".join(
            f"{kind} {seconds:.1f} s ({count})"
            for kind, (count, seconds) in _median_phases(rounds).items()
        )
        + ".",
        "",
        "| model | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in _median_models(rounds)]
    lines += _daily_load_text(rounds)
    return "\n".join(lines)


def benchmark_build(purchase_lines: int, data_dir: Path, work_dir: Path, rounds: int = 1) -> str:
    """Generate `purchase_lines` lines (unless present), then for each of `rounds` rounds
    run the lean reference pipeline and the full `dbt build` on them, interleaved, and
    return a Markdown report (medians over the rounds)."""
    raw = ensure_generated(purchase_lines, data_dir)
    actual_lines = json.loads((raw / "truth.json").read_text())["row_counts"]["purchase"]
    measured: list[Round] = []
    agreement = None
    for number in range(1, rounds + 1):
        round_dir = work_dir / f"round-{number}"
        round_dir.mkdir(parents=True)
        first = "lean" if number % 2 else "full"
        if first == "lean":
            lean, steps = run_lean(raw, round_dir)
            full = run_full(raw, round_dir)
        else:
            full = run_full(raw, round_dir)
            lean, steps = run_lean(raw, round_dir)
        run_results = round_dir / "target" / "run_results.json"
        built = Round(
            first=first,
            lean=lean,
            full=full,
            lean_steps=steps,
            model_seconds=model_timings(run_results),
            phases=phase_totals(run_results),
            database_bytes=database_bytes(round_dir / "bench.duckdb"),
            shares=daily_load_shares(round_dir / "target" / "manifest.json", run_results),
        )
        # after reading the build's artifacts: the floor run writes its own there
        measured.append(replace(built, floor=run_floor(raw, round_dir)))
        if number == rounds:
            agreement = compare_with_build(round_dir / "lean.duckdb", round_dir / "bench.duckdb")
        else:
            # a 10M-line build is about 3 GB: keep one round's databases on disk at a time
            shutil.rmtree(round_dir)
    assert agreement is not None
    return build_report(actual_lines, measured, agreement)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmark_build",
        description=(
            "Generate raw data, then time the full dbt build and the lean reference "
            "pipeline on it (Markdown report)."
        ),
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of lean pipeline + full build per size, interleaved (default 1; "
        "the report gives medians)",
    )
    args = parser.parse_args(argv)
    sizes = args.purchase_lines or [1_000_000, 10_000_000]
    if any(size <= 0 for size in sizes):
        print("error: --purchase-lines must be positive", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("error: --rounds must be at least 1", file=sys.stderr)
        return 2
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="xsell-build-bench-") as work:
            try:
                print(benchmark_build(size, args.data_dir, Path(work), args.rounds), flush=True)
            except (RuntimeError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        print()
    return 0
