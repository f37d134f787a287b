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
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell import settings
from retail_xsell.metric_queries import QUERIES, MetricQuery, Timing, percentile, time_calls
from retail_xsell.ports import quote_identifier, sql_string


def manifest_catalog(target_path: Path) -> str:
    """The database (catalog) name the semantic manifest's relations use."""
    document = json.loads((target_path / "semantic_manifest.json").read_text())
    names = {model["node_relation"]["database"] for model in document["semantic_models"]}
    if len(names) != 1:
        raise ValueError(f"expected one database in the semantic manifest, found {names}")
    return names.pop()


def measure_in_process(
    project_dir: Path, target_path: Path, database: Path, repeats: int
) -> tuple[float, list[tuple[MetricQuery, Timing, str | None]]]:
    """Open the semantic layer (timed) and time every query in :data:`QUERIES`, then
    time each query's generated SQL alone on a fresh read-only DuckDB connection.

    Each query comes back with the metric export(s) that answered it, or None when
    MetricFlow computed it (a database without exports, or a query none matches)."""
    from retail_xsell.semantic import SemanticLayer  # MetricFlow import: only when measuring

    start = time.perf_counter()
    layer = SemanticLayer.from_project(project_dir, target_path, database)
    open_seconds = time.perf_counter() - start
    measured = []
    with layer:
        for query in QUERIES:
            call = query.bind(layer)
            timing = time_calls(call, repeats)
            result = call()
            measured.append((query, timing, result.sql, result.export))
    # The layer is closed first: one process should not attach the file twice.
    connection = duckdb.connect(":memory:")
    catalog = quote_identifier(manifest_catalog(target_path))
    connection.execute(f"attach {sql_string(str(database))} as {catalog} (read_only)")
    results = []
    try:
        for query, timing, sql, export in measured:
            run_sql = functools.partial(_fetch_all, connection, sql)
            sql_timing = time_calls(run_sql, repeats)
            results.append(
                (query, Timing(timing.first, timing.repeats, sql_timing.repeats), export)
            )
    finally:
        connection.close()
    return open_seconds, results


def measure_exported(
    target_path: Path, database: Path, repeats: int
) -> list[tuple[str, Timing, str | None]]:
    """Time every exported request (:func:`retail_xsell.metric_exports.export_requests`)
    as a consumer asks it: saved queries by name, the rest through ``query``. Each comes
    back with what answered it (an export, or None for MetricFlow)."""
    from retail_xsell.metric_exports import export_requests
    from retail_xsell.semantic import SemanticLayer, SemanticLayerError

    measured = []
    with SemanticLayer(target_path / "semantic_manifest.json", database) as layer:
        for request in export_requests(layer):
            if request.saved_query:
                call = functools.partial(layer.query_saved, request.saved_query)
            else:
                call = functools.partial(layer.query, list(request.metrics), list(request.group_by))
            try:
                export = call().export
            except SemanticLayerError:  # what MetricFlow refuses to plan was not exported
                continue
            measured.append((request.label, time_calls(call, repeats), export))
    return measured


def render_exported(measured: Sequence[tuple[str, Timing, str | None]]) -> str:
    """Every exported request's warm latency, summarised, with the slowest five."""
    if not measured:
        return ""
    repeats = len(measured[0][1].repeats)
    served = [m for m in measured if m[2]]
    p95s = sorted((timing.p95, label) for label, timing, _ in measured)
    pooled = Timing.pooled([timing for _, timing, _ in measured])
    lines = [
        f"Every exported request ({len(measured)}: the saved queries and every metric by "
        f"each contract dimension), each run once and then {repeats} more times: "
        f"{len(served)} answered from an export; p95 over all warm repeats "
        f"{_ms(pooled.p95)} ms, slowest request's p95 {_ms(p95s[-1][0])} ms.",
        "",
        "| slowest requests | answered from | median (ms) | p95 (ms) |",
        "| --- | --- | ---: | ---: |",
    ]
    by_label = {label: (timing, export) for label, timing, export in measured}
    for _, label in p95s[::-1][:5]:
        timing, export = by_label[label]
        source = f"export {export}" if export else "MetricFlow"
        lines.append(f"| {label} | {source} | {_ms(timing.median)} | {_ms(timing.p95)} |")
    return "\n".join(lines) + "\n\n"


def _fetch_all(connection: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return connection.execute(sql).fetchall()


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
        settings.DATABASE_ENV: str(database),
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
    in_process: Sequence[tuple[MetricQuery, Timing, str | None]],
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
            "| query | answered from | first call (ms) | median (ms) | p95 (ms) "
            "| of which SQL, median (ms) |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {query.label} | {f'export {export}' if export else 'MetricFlow'} "
            f"| {_ms(timing.first)} | {_ms(timing.median)} | {_ms(timing.p95)} "
            f"| {_ms(timing.sql_median) if timing.sql_median is not None else 'n/a'} |"
            for query, timing, export in in_process
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
    parser.add_argument("--project-dir", type=Path, default=settings.project_dir())
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
    parser.add_argument(
        "--with-exports",
        type=Path,
        metavar="DIR",
        help="copy the database into DIR, write the metric exports into the copy as "
        "publish does (timed), and measure on the copy",
    )
    parser.add_argument("--repeats", type=int, default=50, help="warm repeats per query")
    parser.add_argument("--cli-repeats", type=int, default=5, help="`mf query` runs (0: skip)")
    args = parser.parse_args(argv)

    project_dir = args.project_dir.resolve()
    target_path = (args.target_path or settings.target_path(project_dir)).resolve()
    database = (args.database or settings.database_path(project_dir)).resolve()
    if args.repeats < 1 or args.cli_repeats < 0:
        print("error: --repeats must be at least 1 and --cli-repeats at least 0", file=sys.stderr)
        return 2
    if not database.is_file():
        print(f"error: no database at {database}; run `dbt build` first", file=sys.stderr)
        return 1
    if args.cli_repeats:
        # mf reads the project's own target/, whatever --target-path says.
        mf_target = settings.target_path(project_dir)
        catalog = manifest_catalog(mf_target)
        if catalog != database.stem:
            print(
                f"error: {mf_target / 'semantic_manifest.json'} was written for a "
                f"database named {catalog!r}, but the database file is {database.name!r}; "
                "mf can only query a file of that name. Name the file "
                f"{catalog}.duckdb, or pass --cli-repeats 0.",
                file=sys.stderr,
            )
            return 1

    preamble = ""
    if args.with_exports:
        database, preamble = _with_exports(database, target_path, args.with_exports.resolve())
    open_seconds, in_process = measure_in_process(project_dir, target_path, database, args.repeats)
    cli_metrics = ["clv"]
    cli_samples = (
        measure_mf_cli(project_dir, database, cli_metrics, args.cli_repeats)
        if args.cli_repeats
        else []
    )
    report = render_report(database, open_seconds, in_process, cli_metrics, cli_samples)
    if args.with_exports:
        report += "\n" + render_exported(measure_exported(target_path, database, args.repeats))
    print(preamble + report, end="")
    return 0


def _with_exports(database: Path, target_path: Path, folder: Path) -> tuple[Path, str]:
    """A copy of ``database`` in ``folder`` with the metric exports written into it, and
    a line saying what that took."""
    from retail_xsell.metric_exports import write_exports  # imports MetricFlow

    if folder == database.parent:
        raise SystemExit("error: --with-exports needs a folder other than the database's own")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / database.name
    shutil.copyfile(database, copy)
    report = write_exports(copy, target_path / "semantic_manifest.json")
    line = (
        f"Metric exports written into `{copy}` as publish writes them: {report.written} "
        f"exports, {report.rows:,} rows, in {report.seconds:.1f} s; {len(report.skipped)} "
        "requests MetricFlow does not plan were skipped.\n\n"
    )
    return copy, line
