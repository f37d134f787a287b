"""How long a metric query takes, through the two ways consumers ask the semantic layer.

In-process (``retail_xsell.semantic.SemanticLayer``) is what the governed API will use:
the engine is built once and queries run warm, so the latency that matters is the
median and the tail (p95) over many repeats; the first call of each query is reported
apart because it also pays for MetricFlow's planning caches. ``mf query`` is what an
analyst types: every call is a new process that imports MetricFlow, loads the dbt
profile and project and connects, so its wall time (cold) is the number to know.

Nothing here asserts a time: the numbers go into docs/benchmarks.md, and the machine
they come from is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retail_xsell.semantic import MetricQueryResult, SemanticLayer

PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MetricQuery:
    """One representative query: what it asks, and why it is in the benchmark."""

    label: str
    metrics: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    saved_query: str | None = None

    def bind(self, layer: SemanticLayer) -> Callable[[], MetricQueryResult]:
        """A no-argument call that runs this query on `layer` (for timing)."""
        if self.saved_query:
            return lambda: layer.query_saved(self.saved_query)
        return lambda: layer.query(list(self.metrics), list(self.group_by))


#: Chosen to cover the shapes of query consumers run: a single customer-level average,
#: a join to the customer dimension, a time series, a join to products, a ratio metric,
#: and a saved query with four metrics of three semantic models.
QUERIES: tuple[MetricQuery, ...] = (
    MetricQuery("clv", ("clv",)),
    MetricQuery("clv by region", ("clv", "historical_clv", "predicted_clv"), ("customer__region",)),
    MetricQuery(
        "total_spend, order_count by month", ("total_spend", "order_count"), ("metric_time__month",)
    ),
    MetricQuery("total_spend by product category", ("total_spend",), ("product__category",)),
    MetricQuery(
        "purchase_frequency by RFM segment", ("purchase_frequency",), ("customer__rfm_segment",)
    ),
    MetricQuery("saved query executive_monthly_kpis", saved_query="executive_monthly_kpis"),
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default and Python's
    ``statistics.quantiles(method="inclusive")``, written out because the project does
    not depend on numpy for this and ``statistics.quantiles`` needs two values or more.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must lie in [0, 100]; got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class Timing:
    """Seconds of the first call and of the repeats that followed it.

    ``sql_repeats`` times the SQL MetricFlow generated, run alone on DuckDB: the rest
    of a query's time is MetricFlow planning, which does not grow with the data.
    """

    first: float
    repeats: tuple[float, ...] = field(default_factory=tuple)
    sql_repeats: tuple[float, ...] = field(default_factory=tuple)

    @property
    def median(self) -> float:
        return percentile(self.repeats, 50)

    @property
    def p95(self) -> float:
        return percentile(self.repeats, 95)

    @property
    def sql_median(self) -> float | None:
        return percentile(self.sql_repeats, 50) if self.sql_repeats else None

    @classmethod
    def pooled(cls, timings: Sequence[Timing]) -> Timing:
        """Every warm repeat of several timings as one: its p95 is the p95 over all of
        them (the first, cold calls are left out, as in each timing)."""
        return cls(
            first=max((t.first for t in timings), default=0.0),
            repeats=tuple(sample for t in timings for sample in t.repeats),
        )


def time_calls(call: Callable[[], object], repeats: int) -> Timing:
    """Time ``call`` once (first call), then ``repeats`` more times (warm)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    samples = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return Timing(samples[0], tuple(samples[1:]))


def manifest_catalog(target_path: Path) -> str:
    """The database (catalog) name the semantic manifest's relations use."""
    document = json.loads((target_path / "semantic_manifest.json").read_text())
    names = {model["node_relation"]["database"] for model in document["semantic_models"]}
    if len(names) != 1:
        raise ValueError(f"expected one database in the semantic manifest, found {names}")
    return names.pop()


def measure_in_process(
    project_dir: Path, target_path: Path, database: Path, repeats: int
) -> tuple[float, list[tuple[MetricQuery, Timing]]]:
    """Open the semantic layer (timed) and time every query in :data:`QUERIES`, then
    time each query's generated SQL alone on a fresh read-only DuckDB connection."""
    import duckdb

    from retail_xsell.semantic import SemanticLayer  # MetricFlow import: only when measuring

    start = time.perf_counter()
    layer = SemanticLayer.from_project(project_dir, target_path, database)
    open_seconds = time.perf_counter() - start
    measured = []
    with layer:
        for query in QUERIES:
            call = query.bind(layer)
            measured.append((query, time_calls(call, repeats), call().sql))
    # The layer is closed first: one process should not attach the file twice.
    connection = duckdb.connect(":memory:")
    escaped_path = str(database).replace("'", "''")
    catalog = manifest_catalog(target_path).replace('"', '""')
    connection.execute(f"attach '{escaped_path}' as \"{catalog}\" (read_only)")
    results = []
    try:
        for query, timing, sql in measured:
            sql_timing = time_calls(lambda sql=sql: connection.execute(sql).fetchall(), repeats)
            results.append((query, Timing(timing.first, timing.repeats, sql_timing.repeats)))
    finally:
        connection.close()
    return open_seconds, results


def measure_mf_cli(
    project_dir: Path, database: Path, metrics: Sequence[str], repeats: int
) -> list[float]:
    """Wall seconds of ``mf query --metrics <metrics>``, a new process each time.

    ``mf`` reads ``<project_dir>/target/semantic_manifest.json`` (always that path) and
    reaches the database through the dbt profile, so RETAIL_XSELL_DUCKDB_PATH is set to
    ``database``. The manifest must have been written for a database of the same file
    name (its relations are qualified by the file's stem); the caller checks that.
    """
    mf = Path(sys.executable).parent / "mf"
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(project_dir),
        "RETAIL_XSELL_DUCKDB_PATH": str(database),
    }
    command = [str(mf), "query", "--metrics", ",".join(metrics)]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        completed = subprocess.run(
            command, cwd=project_dir, env=env, capture_output=True, text=True, check=False
        )
        samples.append(time.perf_counter() - start)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}")
    return samples


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def render_report(
    database: Path,
    open_seconds: float | None,
    in_process: Sequence[tuple[MetricQuery, Timing]],
    cli_metrics: Sequence[str],
    cli_samples: Sequence[float],
) -> str:
    """The measurements as Markdown, ready for docs/benchmarks.md."""
    lines = [f"Database: `{database}` ({database.stat().st_size / 2**20:.1f} MiB).", ""]
    if in_process:
        repeats = len(in_process[0][1].repeats)
        lines += [
            f"In-process (`SemanticLayer`, warm): opening the layer took "
            f"{_ms(open_seconds or 0.0)} ms; each query was run once (first call) and then "
            f"{repeats} more times.",
            "",
            "| query | first call (ms) | median (ms) | p95 (ms) | of which SQL, median (ms) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {query.label} | {_ms(timing.first)} | {_ms(timing.median)} | {_ms(timing.p95)} "
            f"| {_ms(timing.sql_median) if timing.sql_median is not None else 'n/a'} |"
            for query, timing in in_process
        ]
        lines.append("")
    if cli_samples:
        lines += [
            f"`mf query --metrics {','.join(cli_metrics)}` (cold: a new process each time), "
            f"{len(cli_samples)} runs:",
            "",
            "| runs | min (s) | median (s) | max (s) |",
            "| ---: | ---: | ---: | ---: |",
            f"| {len(cli_samples)} | {min(cli_samples):.2f} | "
            f"{percentile(cli_samples, 50):.2f} | {max(cli_samples):.2f} |",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmark_metrics",
        description=(
            "Time metric queries through the in-process semantic layer (warm) and "
            "through `mf query` (cold) on a built database; prints a Markdown report."
        ),
    )
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    parser.add_argument(
        "--target-path",
        type=Path,
        help="folder with semantic_manifest.json for the in-process engine "
        "(default <project-dir>/target; mf always reads that one)",
    )
    parser.add_argument(
        "--database",
        type=Path,
        help="built DuckDB file (default: what profiles.yml points dbt at)",
    )
    parser.add_argument("--repeats", type=int, default=50, help="warm repeats per query")
    parser.add_argument("--cli-repeats", type=int, default=5, help="`mf query` runs (0: skip)")
    args = parser.parse_args(argv)

    from retail_xsell.warehouse import database_path

    project_dir = args.project_dir.resolve()
    target_path = (args.target_path or project_dir / "target").resolve()
    database = (args.database or database_path(project_dir)).resolve()
    if args.repeats < 1 or args.cli_repeats < 0:
        print("error: --repeats must be at least 1 and --cli-repeats at least 0", file=sys.stderr)
        return 2
    if not database.is_file():
        print(f"error: no database at {database}; run `dbt build` first", file=sys.stderr)
        return 1
    if args.cli_repeats:
        catalog = manifest_catalog(project_dir / "target")
        if catalog != database.stem:
            print(
                f"error: {project_dir / 'target' / 'semantic_manifest.json'} was written for a "
                f"database named {catalog!r}, but the database file is {database.name!r}; "
                "mf can only query a file of that name. Name the file "
                f"{catalog}.duckdb, or pass --cli-repeats 0.",
                file=sys.stderr,
            )
            return 1

    open_seconds, in_process = measure_in_process(project_dir, target_path, database, args.repeats)
    cli_metrics = ["clv"]
    cli_samples = (
        measure_mf_cli(project_dir, database, cli_metrics, args.cli_repeats)
        if args.cli_repeats
        else []
    )
    print(render_report(database, open_seconds, in_process, cli_metrics, cli_samples), end="")
    return 0
