"""Time a daily load against a full build of the same files (issue 12's goal: a new day
of purchase files in under 10% of a full build at 10M lines, equal to a full rebuild).

``scripts/benchmark_daily_load.py --purchase-lines N --rounds R``:

1. the generated input of N lines (benchmark.ensure_generated), split by load day: the
   customer and product files as they are, the purchase rows loaded before the last
   full load day in one Parquet file, that day's rows (and the few stragglers loaded
   after it) in another;
2. as_of_date pinned a week before the last load day (a weekly refit);
3. one ``retail-xsell build`` of everything but the last day: the database a daily load
   starts from, kept as it is;
4. per round, interleaved: ``retail-xsell build --daily`` on that database (restored,
   with the build's target folder) with the last day's file added, and
   ``retail-xsell build`` of all the files. Both parse only what changed, as scheduled
   builds do: the daily loads after the first build, the full builds after a primed
   ``dbt parse``;
5. after the first round, every table of schema main and the row reconciliation of the
   two compared (daily_load.table_differences).

Medians over the rounds; the report says which path the daily load took.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_xsell import settings
from retail_xsell.benchmark import Measured, database_bytes, ensure_generated, run_measured
from retail_xsell.build import dbt_executable
from retail_xsell.daily_load import table_differences

#: A weekly refit: as_of_date this many days before the last load day.
PINNED_DAYS_BACK = 7


@dataclass(frozen=True)
class Split:
    raw: Path
    day_file: Path
    day_rows: int
    as_of_date: str


def split_by_last_load_day(generated: Path, out: Path) -> Split:
    """`generated` as a raw input folder under `out`, with the last full load day's
    purchase rows held back in out/<day>.parquet (returned, to be added later)."""
    raw = out / "raw"
    for table in ("customer_info", "product"):
        shutil.copytree(generated / table, raw / table)
    (raw / "purchase").mkdir(parents=True)
    loaded = "try_cast(loaded_at as date)"
    with duckdb.connect() as con:
        source = f"read_parquet('{generated / 'purchase'}/**', union_by_name = true)"
        # The generator's loads lag the orders by up to 2 days, so its last load days
        # hold a few stragglers: the day held back is the last with a full day's rows
        # (at least half the median of the last 30 load days), with what came after it.
        (last_day,) = con.execute(
            f"with days as (select {loaded} as day, count(*) as n from {source}"
            " where day is not null group by day order by day desc limit 30)"
            " select max(day) from days where n >= (select median(n) from days) / 2"
        ).fetchone() or (None,)
        if last_day is None:
            raise RuntimeError(f"{generated}: no purchase row with a readable loaded_at")
        con.execute(
            f"copy (select * from {source} where coalesce({loaded} < date '{last_day}', true))"
            f" to '{raw / 'purchase' / 'until.parquet'}' (format parquet)"
        )
        day_file = out / f"{last_day}.parquet"
        con.execute(
            f"copy (select * from {source} where {loaded} >= date '{last_day}')"
            f" to '{day_file}' (format parquet)"
        )
        (rows,) = con.execute(f"select count(*) from '{day_file}'").fetchone() or (0,)
    as_of = last_day - dt.timedelta(days=PINNED_DAYS_BACK)
    return Split(raw, day_file, int(rows), as_of.isoformat())


def _environment() -> dict[str, str]:
    return {**os.environ, "DBT_PROFILES_DIR": str(settings.project_dir())}


def _vars(split: Split) -> str:
    return json.dumps(
        {
            "raw_input_format": "parquet",
            "raw_input_path": str(split.raw),
            "as_of_date": split.as_of_date,
        }
    )


def _xsell_build(split: Split, database: Path, workdir: Path, *, daily: bool) -> Measured:
    command = [
        str(Path(sys.executable).with_name("retail-xsell")),
        "build",
        *(["--daily"] if daily else []),
        "--database",
        str(database),
        "--",
        "--vars",
        _vars(split),
        "--target-path",
        str(workdir / "target"),
        "--log-path",
        str(workdir / "logs"),
    ]
    measured = run_measured(command, env=_environment())
    if measured.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {workdir / 'logs' / 'dbt.log'}")
    return measured


def _prime(split: Split, database: Path, workdir: Path) -> None:
    """dbt parse as a build onto `database` would (its profile names <database>.building),
    so that the first measured build there parses only what changed, as every later
    scheduled build does."""
    env = {**_environment(), settings.DATABASE_ENV: str(settings.building_path(database))}
    command = [
        dbt_executable(),
        "parse",
        "--vars",
        _vars(split),
        "--target-path",
        str(workdir / "target"),
    ]
    if run_measured([*command, "--log-path", str(workdir / "logs")], env=env).returncode != 0:
        raise RuntimeError(f"dbt parse failed; see {workdir / 'logs' / 'dbt.log'}")


def _took_short_path(workdir: Path) -> bool:
    results = json.loads((workdir / "target" / "run_results.json").read_text())
    return "daily_load" in results


@dataclass(frozen=True)
class DailyRound:
    first: str
    daily: Measured
    full: Measured
    short_path: bool
    daily_nodes: int


def benchmark_daily_load(
    purchase_lines: int, data_dir: Path, work_dir: Path, rounds: int = 3
) -> str:
    """Run the benchmark of the module doc and return its Markdown report."""
    generated = ensure_generated(purchase_lines, data_dir)
    split = split_by_last_load_day(generated, work_dir)
    # The daily loads run where the first build ran, with its target folder, as a
    # scheduled load would: dbt then parses only what the new files' list changes. The
    # full builds have their own path and target folder, primed the same way.
    daily_dir, full_dir = work_dir / "daily", work_dir / "full"
    working, pristine = daily_dir / "work.duckdb", work_dir / "first-build.duckdb"
    base = _xsell_build(split, working, daily_dir, daily=False)
    base_bytes = database_bytes(working)
    shutil.copyfile(working, pristine)
    shutil.copytree(daily_dir / "target", work_dir / "first-build-target")
    shutil.move(str(split.day_file), split.raw / "purchase" / split.day_file.name)
    _prime(split, full_dir / "work.duckdb", full_dir)
    measured: list[DailyRound] = []
    differences: list[str] | None = None
    for number in range(1, rounds + 1):
        shutil.copyfile(pristine, working)
        shutil.rmtree(daily_dir / "target")
        shutil.copytree(work_dir / "first-build-target", daily_dir / "target")
        first = "daily" if number % 2 else "full"
        if first == "daily":
            daily = _xsell_build(split, working, daily_dir, daily=True)
            full = _xsell_build(split, full_dir / "work.duckdb", full_dir, daily=False)
        else:
            full = _xsell_build(split, full_dir / "work.duckdb", full_dir, daily=False)
            daily = _xsell_build(split, working, daily_dir, daily=True)
        results = json.loads((daily_dir / "target" / "run_results.json").read_text())
        ran = len(results["results"]) - results.get("daily_load", {}).get("carried_results", 0)
        measured.append(DailyRound(first, daily, full, _took_short_path(daily_dir), ran))
        if number == 1:
            found, compared = table_differences(working, full_dir / "work.duckdb")
            audit, _ = table_differences(
                working, full_dir / "work.duckdb", {"row_reconciliation"}, "main_audit"
            )
            differences = [*found, *audit, f"({len(compared) + 1} tables compared)"]
    assert differences is not None
    return daily_report(purchase_lines, split, base, base_bytes, measured, differences)


def daily_report(
    purchase_lines: int,
    split: Split,
    base: Measured,
    base_bytes: int,
    rounds: list[DailyRound],
    differences: list[str],
) -> str:
    """The Markdown report: one row per round, then the medians and the comparison."""
    lines = [
        f"### Daily load at {purchase_lines:,} target purchase lines",
        "",
        f"The new day's file holds {split.day_rows:,} purchase rows; as_of_date is pinned at "
        f"{split.as_of_date}. The first build (everything but that day) took "
        f"{base.wall_seconds:.1f} s, peak RSS {base.peak_rss_mib / 1024:.2f} GiB, "
        f"{base_bytes / 1e9:.2f} GB on disk.",
        "",
        "| round | first | daily load (s) | path | dbt nodes run | full build (s) | daily / full |",
        "| ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for number, r in enumerate(rounds, 1):
        path = "short" if r.short_path else "full build"
        lines.append(
            f"| {number} | {r.first} | {r.daily.wall_seconds:.1f} | {path} | {r.daily_nodes} "
            f"| {r.full.wall_seconds:.1f} | {r.daily.wall_seconds / r.full.wall_seconds:.1%} |"
        )
    daily = statistics.median(r.daily.wall_seconds for r in rounds)
    full = statistics.median(r.full.wall_seconds for r in rounds)
    peak = max(r.daily.peak_rss_mib for r in rounds) / 1024
    same = [d for d in differences if not d.startswith("(")]
    lines += [
        "",
        f"Medians: daily load {daily:.1f} s, full build {full:.1f} s, "
        f"**{daily / full:.1%}** of the full build (goal: under 10%). Daily load peak RSS "
        f"{peak:.2f} GiB.",
        "",
        "Compared with the full build of the same files (round 1): "
        + ("every table equal " if not same else "DIFFERENT: " + ", ".join(same) + " ")
        + differences[-1]
        + ".",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmark_daily_load",
        description="Time retail-xsell build --daily against a full build (Markdown report).",
    )
    parser.add_argument("--purchase-lines", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=settings.generated_data_dir(),
        help="where generated inputs are kept and reused (default data/generated)",
    )
    args = parser.parse_args(argv)
    if args.purchase_lines <= 0 or args.rounds <= 0:
        parser.error("--purchase-lines and --rounds must be positive")
    scratch = settings.project_dir() / "build"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="benchmark_daily_", dir=scratch) as tmp:
        print(benchmark_daily_load(args.purchase_lines, args.data_dir, Path(tmp), args.rounds))
    return 0
