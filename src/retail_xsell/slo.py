"""The quality gate: evaluate the objectives declared in slos.yml after a build.

Every value is measured from something real: dbt's artifacts (run_results.json for
node statuses and build time, manifest.json for keys and governance metadata), SQL on
the built (working) database, and what the last publication recorded. The gate first
proves that the artifacts belong to the database (its build record,
macros/build_runs.sql), so a killed build is never judged with an older build's
results. Nothing is inferred from whether dbt exited cleanly, so a gate run on a build
that failed half-way reports what is missing instead of passing.

A result is ``pass``, ``breach``, ``error`` (could not be measured: counts as a breach)
or ``no_baseline`` (nothing to compare with: the first publication, a new input, or a
declared new baseline). The gate fails when a blocking
objective is breached or in error; non-blocking breaches are warnings.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
CATEGORIES = ("architecture", "quality", "governance")
HISTORY_RUNS = 5
#: dbt artifacts the gate keeps beside its report for publish.
ARTIFACTS_KEPT = ("manifest.json", "semantic_manifest.json")
FAILED_NODE_STATUSES = {"error", "fail", "runtime error", "skipped"}


class GateSetupError(RuntimeError):
    """The gate cannot start: no slos.yml, no build artifacts, no database."""


@dataclass
class Measurement:
    """What a measurement function returns: a value, or why there is none."""

    value: float | None
    details: list[str] = field(default_factory=list)
    status: str | None = None  # set only to force no_baseline or error


@dataclass
class SloResult:
    name: str
    category: str
    description: str
    blocking: bool
    target: dict[str, float]
    unit: str
    measured: float | None
    status: str
    details: list[str]
    where: str
    note: str = ""
    trend: list[dict[str, Any]] = field(default_factory=list)

    @property
    def target_text(self) -> str:
        parts = []
        if "min" in self.target:
            parts.append(f">= {_fmt(self.target['min'], self.unit)}")
        if "max" in self.target:
            parts.append(f"<= {_fmt(self.target['max'], self.unit)}")
        return " and ".join(parts)

    @property
    def measured_text(self) -> str:
        return "n/a" if self.measured is None else _fmt(self.measured, self.unit)


@dataclass
class Inputs:
    """Everything a measurement may read."""

    project_dir: Path
    database: Path
    target_path: Path
    published: Path | None
    run_results: dict[str, Any]
    manifest: dict[str, Any]
    connection: duckdb.DuckDBPyConnection
    slo_document: dict[str, Any] = field(default_factory=dict)
    build_vars: dict[str, Any] = field(default_factory=dict)
    new_baseline: str | None = None  # why volume is not compared this time


def _fmt(value: float, unit: str) -> str:
    if unit == "share":
        return f"{value:.2%}"
    if unit == "relative change":
        return f"{value:+.1%}"
    if float(value).is_integer():
        return f"{int(value):,} {unit}"
    return f"{value:,.1f} {unit}"


def load_slos(path: Path) -> dict[str, Any]:
    """Read and check slos.yml, so a typo fails loudly instead of skipping an objective."""
    if not path.is_file():
        raise GateSetupError(f"no SLO file at {path}")
    document = yaml.safe_load(path.read_text())
    names = set()
    for slo in document["slos"]:
        missing = {"name", "category", "measurement", "target", "blocking", "unit"} - set(slo)
        if missing:
            raise GateSetupError(f"{path}: SLO {slo.get('name')!r} lacks {sorted(missing)}")
        if slo["category"] not in CATEGORIES:
            raise GateSetupError(f"{path}: SLO {slo['name']} has category {slo['category']!r}")
        if slo["measurement"] not in MEASUREMENTS:
            raise GateSetupError(
                f"{path}: SLO {slo['name']} has unknown measurement {slo['measurement']!r}"
            )
        if not set(slo["target"]) <= {"min", "max"} or not slo["target"]:
            raise GateSetupError(f"{path}: SLO {slo['name']} target needs min and/or max")
        if slo["name"] in names:
            raise GateSetupError(f"{path}: SLO {slo['name']} is declared twice")
        names.add(slo["name"])
    for override in document.get("overrides", []):
        unknown = set(override.get("slos", {})) - names
        if unknown:
            raise GateSetupError(f"{path}: override {override['name']} names {sorted(unknown)}")
    return document


# --- measurements: one function per `measurement` kind -------------------------------


def _public_models(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (
            node
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node.get("access") == "public"
        ),
        key=lambda node: node["name"],
    )


def _relation(node: dict[str, Any]) -> str:
    return f'"{node["schema"]}"."{node.get("alias") or node["name"]}"'


def _measure_freshness(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    """Hours from the newest purchase load that passed staging to the build's start.

    Measured on the built data itself, not on a separate `dbt source freshness` run, so
    it always describes the input this database was built from, whatever --vars the
    build had. A load up to `clock_tolerance_hours` after the build started is clock
    skew and counts as age 0; a later one is an error (staging quarantines such rows, so
    it can only mean the clocks or the data are wrong).
    """
    tolerance = float(slo.get("clock_tolerance_hours", 1.0))
    (loaded_at,) = inputs.connection.execute(
        "select max(loaded_at) from main.stg_retail__purchase_lines"
    ).fetchone()
    if loaded_at is None:
        return Measurement(None, ["no purchase line passed staging: nothing to date"], "error")
    if loaded_at.tzinfo is None:
        loaded_at = loaded_at.replace(tzinfo=dt.UTC)
    started = dt.datetime.fromisoformat(
        inputs.run_results["metadata"]["invocation_started_at"].replace("Z", "+00:00")
    )
    age_hours = (started - loaded_at).total_seconds() / 3600
    details = [
        f"newest loaded_at {loaded_at:%Y-%m-%d %H:%M} UTC, build started "
        f"{started:%Y-%m-%d %H:%M} UTC"
    ]
    if age_hours < -tolerance:
        details.insert(
            0,
            f"the newest load is {-age_hours:,.1f} hours after the build started (more than "
            f"the {tolerance:g} h clock tolerance): the clocks or the data are wrong",
        )
        return Measurement(age_hours, details, "error")
    if age_hours < 0:
        details.append(f"{-age_hours:.2f} h ahead of the build, within the clock tolerance")
        age_hours = 0.0
    return Measurement(age_hours, details)


def _measure_passing_rows(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    rows = inputs.connection.execute(
        "select source_table, raw_row_count, rejected_row_count"
        " from main.stg_retail__row_reconciliation order by source_table"
    ).fetchall()
    shares = sorted(
        (1 - rejected / raw if raw else 1.0, table, raw, rejected) for table, raw, rejected in rows
    )
    # Worst table first: the gate's message quotes the first detail.
    details = [
        f"{table}: {share:.2%} pass ({rejected:,} of {raw:,} rejected)"
        for share, table, raw, rejected in shares
    ]
    return Measurement(shares[0][0], details)


def _measure_non_null(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    worst, details = 1.0, []
    for column in slo["columns"]:
        model, name = column.split(".")
        total, non_null = inputs.connection.execute(
            f'select count(*), count("{name}") from main."{model}"'
        ).fetchone()
        rate = non_null / total if total else 1.0
        worst = min(worst, rate)
        if rate < 1 or total == 0:
            details.append(f"{column}: {rate:.2%} non-null of {total:,} rows")
    return Measurement(worst, details or ["every listed column is fully populated"])


def _mart_keys(manifest: dict[str, Any]) -> dict[str, list[list[str]]]:
    keys: dict[str, list[list[str]]] = {}
    for node in manifest["nodes"].values():
        metadata = node.get("test_metadata") or {}
        attached = node.get("attached_node")
        if node["resource_type"] != "test" or not attached:
            continue
        if metadata.get("name") == "unique":
            columns = [metadata["kwargs"]["column_name"]]
        elif metadata.get("name") == "unique_combination_of_columns":
            columns = list(metadata["kwargs"]["combination_of_columns"])
        else:
            continue
        keys.setdefault(attached, []).append(columns)
    return keys


def _measure_key_duplicates(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    keys = _mart_keys(inputs.manifest)
    duplicates, details = 0, []
    for model in _public_models(inputs.manifest):
        model_keys = keys.get(model["unique_id"])
        if not model_keys:
            duplicates += 1
            details.append(f"{model['name']}: no unique key declared (counted as 1)")
            continue
        for columns in model_keys:
            column_list = ", ".join(f'"{c}"' for c in columns)
            (extra,) = inputs.connection.execute(
                f"select count(*) - count(distinct ({column_list})) from {_relation(model)}"
            ).fetchone()
            duplicates += extra
            if extra:
                details.append(f"{model['name']} ({', '.join(columns)}): {extra:,} duplicate rows")
    return Measurement(duplicates, details or ["every public mart key is unique"])


def _measure_validity(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    worst, details = 1.0, []
    for check in slo["checks"]:
        total, valid = inputs.connection.execute(
            f"select count(*), count(*) filter (where ({check['condition']}) is not false)"
            f' from main."{check["model"]}"'
        ).fetchone()
        share = valid / total if total else 1.0
        worst = min(worst, share)
        if share < 1:
            details.append(
                f"{check['model']}: {total - valid:,} of {total:,} rows fail `{check['condition']}`"
            )
    return Measurement(worst, details or [f"all {len(slo['checks'])} checks hold on every row"])


def row_counts(connection: duckdb.DuckDBPyConnection, manifest: dict[str, Any]) -> dict[str, int]:
    """Rows per raw table and per public mart: what volume compares between builds and
    what a publication records."""
    counts = {
        f"raw.{table}": raw
        for table, raw in connection.execute(
            "select source_table, raw_row_count from main.stg_retail__row_reconciliation"
        ).fetchall()
    }
    for model in _public_models(manifest):
        (counts[model["name"]],) = connection.execute(
            f"select count(*) from {_relation(model)}"
        ).fetchone()
    return dict(sorted(counts.items()))


def _measure_volume(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    from retail_xsell.publish import last_publication  # publish imports this module

    previous = last_publication(inputs.published) if inputs.published else None
    if previous is None:
        return Measurement(None, ["no previous publication to compare with"], "no_baseline")
    if inputs.new_baseline:
        return Measurement(
            None,
            [
                f"new baseline declared ({inputs.new_baseline}): not compared with "
                f"publication {previous['publication_id'][:8]}; the next build is"
            ],
            "no_baseline",
        )
    before_input, now_input = _input_of(previous.get("build_vars")), _input_of(inputs.build_vars)
    if previous.get("build_vars") is not None and before_input != now_input:
        return Measurement(
            None,
            [
                f"the input changed ({before_input} -> {now_input}) since publication "
                f"{previous['publication_id'][:8]}: a new data set is its own baseline"
            ],
            "no_baseline",
        )
    current = row_counts(inputs.connection, inputs.manifest)
    low, high = slo["target"].get("min", -1.0), slo["target"].get("max", float("inf"))
    worst_table, worst_change, worst_excess = None, 0.0, float("-inf")
    details = []
    for table, before in previous["row_counts"].items():
        now = current.get(table)
        if now is None:
            details.append(f"{table}: in the last publication, missing now")
            return Measurement(-1.0, details)
        change = (now - before) / before if before else 0.0
        excess = max(low - change, change - high)
        if excess > worst_excess:
            worst_table, worst_change, worst_excess = table, change, excess
        if excess > 0:
            details.append(f"{table}: {before:,} -> {now:,} rows ({change:+.1%})")
    details.append(
        f"compared with publication {previous['publication_id'][:8]} of "
        f"{previous['published_at']:%Y-%m-%d %H:%M} UTC; furthest: {worst_table}"
    )
    return Measurement(worst_change, details)


def _input_of(build_vars: dict[str, Any] | None) -> str:
    """Which kind of input a build read: the committed sample or the user's own files.

    Only a switch between the two resets the volume baseline by itself. A new folder of
    the same kind (tomorrow's export) is compared as usual, so that a daily export
    missing half its rows is still caught; a deliberate new data set says so with
    --new-baseline."""
    values = {"raw_input_format": "seed", **(build_vars or {})}
    return "the committed sample" if values["raw_input_format"] == "seed" else "own files"


def _measure_unreconciled(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    rows = inputs.connection.execute(
        "select source_table, raw_row_count - clean_row_count - rejected_row_count"
        " - duplicate_row_count from main.stg_retail__row_reconciliation"
    ).fetchall()
    missing = sum(abs(gap) for _, gap in rows)
    details = [f"{table}: {gap:+,} rows unaccounted for" for table, gap in rows if gap]
    return Measurement(missing, details or ["raw = clean + rejected + duplicates on every table"])


def _measure_dbt_failures(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    failed, warned = [], []
    for result in inputs.run_results["results"]:
        name = result["unique_id"].split(".", 2)[-1]
        stored = result.get("relation_name")
        where = f" (failing rows: {stored})" if stored and result.get("failures") else ""
        if result["status"] in FAILED_NODE_STATUSES:
            failed.append(f"{result['status']}: {name}{where}")
        elif result["status"] == "warn":
            warned.append(f"warn: {name}{where}")
    ran = inputs.run_results["args"].get("which")
    details = [*failed, *warned] or [f"all {len(inputs.run_results['results'])} nodes passed"]
    if ran != "build":
        details.insert(0, f"run_results.json is from `dbt {ran}`, not `dbt build`")
        return Measurement(None, details, "error")
    return Measurement(len(failed), details)


def _measure_build_duration(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    slowest = sorted(
        inputs.run_results["results"], key=lambda r: r.get("execution_time", 0), reverse=True
    )[:3]
    return Measurement(
        inputs.run_results["elapsed_time"],
        [
            "slowest: "
            + ", ".join(
                f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f} s" for r in slowest
            )
        ],
    )


def _measure_query_latency(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    from retail_xsell.benchmark_metrics import QUERIES, time_calls
    from retail_xsell.semantic import SemanticLayer

    # The gate's own read-only connection is closed while MetricFlow attaches the file.
    with SemanticLayer.from_project(inputs.project_dir, inputs.target_path, inputs.database) as lay:
        timings = [time_calls(query.bind(lay), int(slo.get("repeats", 3))) for query in QUERIES]
    p95, count = latency_p95_ms(timings)
    return Measurement(p95, [f"{count} warm queries over {len(QUERIES)} query shapes"])


def latency_p95_ms(timings: list[Any]) -> tuple[float, int]:
    """The 95th percentile in milliseconds over every warm repeat of ``timings``, and
    how many repeats it rests on. The Timing computes its own percentile, so the gate
    cannot pass the wrong scale again (it once asked for the 0.95th percentile of a
    0-100 scale and reported about the fastest query)."""
    from retail_xsell.benchmark_metrics import Timing

    pooled = Timing.pooled(timings)
    return pooled.p95 * 1000, len(pooled.repeats)


def _measure_unmasked_pii(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    gaps = []
    for node in inputs.manifest["nodes"].values():
        if node["resource_type"] != "model" or node.get("access") == "private":
            continue
        for column in node["columns"].values():
            meta = {**column.get("meta", {}), **(column.get("config") or {}).get("meta", {})}
            if meta.get("pii") and not meta.get("pii_treatment"):
                gaps.append(
                    f"{node['name']}.{column['name']} ({node.get('access')}): "
                    f"pii {meta['pii']} without pii_treatment"
                )
    return Measurement(len(gaps), sorted(gaps) or ["no unmasked PII outside private models"])


def _measure_public_gaps(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    groups = {g["name"]: g for g in inputs.manifest.get("groups", {}).values()}
    gaps = []
    for node in _public_models(inputs.manifest):
        name, config = node["name"], node["config"]
        if not config.get("contract", {}).get("enforced"):
            gaps.append(f"{name}: contract not enforced")
        group = groups.get(node.get("group") or "")
        has_owner = bool(group and (group["owner"].get("email") or group["owner"].get("name")))
        if not has_owner and not config.get("meta", {}).get("owner"):
            gaps.append(f"{name}: no owner (group or meta.owner)")
        if not node.get("description", "").strip():
            gaps.append(f"{name}: no description")
        gaps += [
            f"{name}.{column['name']}: no description"
            for column in node["columns"].values()
            if not column.get("description", "").strip()
        ]
    return Measurement(
        len(gaps), gaps or [f"{len(_public_models(inputs.manifest))} public models governed"]
    )


def _measure_port_pii(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    from retail_xsell.pii_scan import value_findings
    from retail_xsell.ports import output_port_models

    semantic_manifest = _read_json(inputs.target_path / "semantic_manifest.json")
    if semantic_manifest is None:
        return Measurement(None, [f"no semantic_manifest.json in {inputs.target_path}"], "error")
    ports = output_port_models(inputs.manifest, semantic_manifest)
    # Its own connection: the scan keeps the raw values in temporary tables.
    with duckdb.connect(":memory:") as con:
        escaped = str(inputs.database).replace("'", "''")
        con.execute(f"attach '{escaped}' as working (read_only)")
        # Columns classified as personal data are pii_masked_outside_private's rule.
        findings = value_findings(con, ports, "working", "working")
    names = ", ".join(port.identifier for port in ports)
    return Measurement(
        len(findings),
        [finding.message for finding in findings]
        or [f"no raw personal value in the {len(ports)} output ports ({names})"],
    )


def _measure_contract_changes(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    from retail_xsell.contracts import breaking_change_measurement, build_contracts
    from retail_xsell.publish import current_folder

    semantic_manifest = _read_json(inputs.target_path / "semantic_manifest.json")
    if semantic_manifest is None:
        return Measurement(None, [f"no semantic_manifest.json in {inputs.target_path}"], "error")
    if inputs.published is None:
        return Measurement(None, ["no published path to compare with"], "no_baseline")
    current = build_contracts(
        inputs.manifest,
        semantic_manifest,
        inputs.slo_document,
        published_database=inputs.published.absolute(),
        parquet_dir=inputs.published.parent.absolute() / "current" / "parquet",
        project_dir=inputs.project_dir,
    )
    folder = current_folder(inputs.published)
    value, details, status = breaking_change_measurement(
        current,
        folder / "contracts" if folder else None,
        inputs.project_dir / slo.get("accepted_changes", "contract_changes.yml"),
    )
    return Measurement(value, details or ["no breaking change to a public output port"], status)


def _measure_pseudonym_key(slo: dict[str, Any], inputs: Inputs) -> Measurement:
    from retail_xsell.pseudonyms import measure_development_key

    return measure_development_key(slo, inputs)


MEASUREMENTS: dict[str, Callable[[dict[str, Any], Inputs], Measurement]] = {
    "source_freshness": _measure_freshness,
    "raw_rows_passing_staging": _measure_passing_rows,
    "non_null_rate": _measure_non_null,
    "mart_key_duplicates": _measure_key_duplicates,
    "validity": _measure_validity,
    "volume_change": _measure_volume,
    "unreconciled_rows": _measure_unreconciled,
    "dbt_failures": _measure_dbt_failures,
    "build_duration": _measure_build_duration,
    "query_latency": _measure_query_latency,
    "unmasked_pii_columns": _measure_unmasked_pii,
    "public_model_gaps": _measure_public_gaps,
    "output_port_pii": _measure_port_pii,
    "contract_breaking_changes": _measure_contract_changes,
    "development_pseudonym_key": _measure_pseudonym_key,
}

#: Measurements that run without the gate's own database connection open.
_OWN_CONNECTION = {"query_latency"}


# --- evaluation ---------------------------------------------------------------------


def _status(measured: Measurement, target: dict[str, float]) -> str:
    if measured.status:
        return measured.status
    if measured.value is None:
        return "error"
    low, high = target.get("min", float("-inf")), target.get("max", float("inf"))
    return "pass" if low - 1e-12 <= measured.value <= high + 1e-12 else "breach"


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _build_vars(run_results: dict[str, Any]) -> dict[str, Any]:
    raw = run_results.get("args", {}).get("vars") or {}
    return yaml.safe_load(raw) if isinstance(raw, str) else dict(raw)


def active_overrides(document: dict[str, Any], build_vars: dict[str, Any]) -> list[dict]:
    """Overrides whose `when` matches the build's vars (missing vars take dbt's defaults
    from dbt_project.yml, so the sample build with no --vars counts as seed input)."""
    defaults = {"raw_input_format": "seed"}
    values = {**defaults, **build_vars}
    return [
        override
        for override in document.get("overrides", [])
        if all(values.get(key) == value for key, value in override["when"].items())
    ]


def git_commit(project_dir: Path) -> str:
    """The commit the build came from, marked -dirty when the tree has changes."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def database_fingerprint(database: Path) -> dict[str, int]:
    """Size and modification time: publish refuses a database changed since the gate."""
    stat = database.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def check_build_record(
    connection: duckdb.DuckDBPyConnection,
    run_results: dict[str, Any],
    database: Path,
    target_path: Path,
) -> None:
    """Refuse to judge a database with artifacts that are not its own.

    Every dbt command that writes the working database records its invocation in
    main_audit.build_runs before any model runs, and marks it finished at the end
    (macros/build_runs.sql). The newest record must be the invocation that wrote
    run_results.json, and finished: otherwise the data are from a build that was
    killed, or from a later command than the artifacts.
    """
    judged = run_results["metadata"]["invocation_id"]
    try:
        row = connection.execute(
            "select invocation_id, command, started_at, status from main_audit.build_runs"
            " order by started_at desc limit 1"
        ).fetchone()
    except duckdb.CatalogException:
        row = None
    if row is None:
        raise GateSetupError(
            f"{database} has no build record (main_audit.build_runs): it was not written by "
            "a dbt build of this project version. Run `dbt build`."
        )
    invocation, command, started, status = row
    if status == "running":
        raise GateSetupError(
            f"the build that wrote {database} (dbt invocation {invocation[:8]}, started "
            f"{started:%Y-%m-%d %H:%M:%S} UTC) did not finish: it was killed or crashed. "
            "Rebuild with `dbt build`."
        )
    if invocation != judged:
        raise GateSetupError(
            f"{database} was last written by dbt invocation {invocation[:8]} (`dbt {command}`, "
            f"started {started:%Y-%m-%d %H:%M:%S} UTC, {status}), but "
            f"{target_path / 'run_results.json'} is from invocation {judged[:8]}: the "
            "artifacts do not belong to this database. Rebuild with `dbt build`."
        )


def evaluate(
    slo_file: Path,
    database: Path,
    target_path: Path,
    published: Path | None,
    project_dir: Path = PROJECT_DIR,
    new_baseline: str | None = None,
) -> dict[str, Any]:
    """Evaluate every SLO and return the report as a JSON-ready dict.

    ``new_baseline`` (a reason) stops volume from being compared with the last
    publication, for a deliberate switch of data set that keeps the same input path."""
    document = load_slos(slo_file)
    if not database.is_file():
        raise GateSetupError(f"no database at {database}: run `dbt build` first")
    run_results = _read_json(target_path / "run_results.json")
    manifest = _read_json(target_path / "manifest.json")
    if run_results is None or manifest is None:
        raise GateSetupError(f"no run_results.json/manifest.json in {target_path}: run dbt build")
    overrides = active_overrides(document, _build_vars(run_results))
    if database.with_name(database.name + ".wal").exists():
        raise GateSetupError(
            f"{database} has a write-ahead log: a dbt command is still writing it, or one "
            "was killed. Wait for it, or rebuild; the gate judges finished builds only."
        )
    fingerprint = database_fingerprint(database)
    results = []
    connection = duckdb.connect(str(database), read_only=True)
    try:
        check_build_record(connection, run_results, database, target_path)
        inputs = Inputs(
            project_dir,
            database,
            target_path,
            published,
            run_results,
            manifest,
            connection,
            document,
            _build_vars(run_results),
            new_baseline,
        )
        for slo in document["slos"]:
            changes, notes = {}, []
            for override in overrides:
                if slo["name"] in override.get("slos", {}):
                    changes.update(override["slos"][slo["name"]])
                    notes.append(
                        f"override {override['name']}: {' '.join(override['reason'].split())}"
                    )
            slo = {**slo, **changes}
            if slo["measurement"] in _OWN_CONNECTION:
                connection.close()
            try:
                measured = MEASUREMENTS[slo["measurement"]](slo, inputs)
            except (duckdb.Error, KeyError, ValueError, OSError, ImportError) as exc:
                measured = Measurement(None, [f"could not measure: {type(exc).__name__}: {exc}"])
            finally:
                if slo["measurement"] in _OWN_CONNECTION:
                    connection = duckdb.connect(str(database), read_only=True)
                    inputs.connection = connection
            results.append(
                SloResult(
                    name=slo["name"],
                    category=slo["category"],
                    description=" ".join(slo.get("description", "").split()),
                    blocking=bool(slo["blocking"]),
                    target=slo["target"],
                    unit=slo["unit"],
                    measured=None if measured.value is None else float(measured.value),
                    status=_status(measured, slo["target"]),
                    details=measured.details,
                    where=slo.get("where", ""),
                    note="; ".join(notes),
                )
            )
        counts = row_counts(connection, manifest)
    finally:
        connection.close()
    if database_fingerprint(database) != fingerprint:
        raise GateSetupError(f"{database} changed while the gate read it; run the gate again")
    blocking = [r for r in results if r.blocking and r.status in ("breach", "error")]
    return {
        "run_id": str(uuid.uuid4()),
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(project_dir),
        "passed": not blocking,
        "blocking_breaches": [r.name for r in blocking],
        "warnings": [r.name for r in results if not r.blocking and r.status in ("breach", "error")],
        "overrides": [o["name"] for o in overrides],
        "new_baseline": new_baseline,
        "database": {"path": str(database.resolve()), **fingerprint},
        "build": {
            "invocation_id": run_results["metadata"]["invocation_id"],
            "started_at": run_results["metadata"]["invocation_started_at"],
            "vars": _build_vars(run_results),
        },
        "row_counts": counts,
        "slos": [{**asdict(r), "target_text": r.target_text} for r in results],
    }


# --- history ------------------------------------------------------------------------


def record_history(history: Path, report: dict[str, Any]) -> None:
    """Append this run's results and attach each SLO's previous results as its trend."""
    history.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(history)) as con:
        con.execute(
            "create table if not exists slo_results (run_id varchar, evaluated_at timestamptz,"
            " git_commit varchar, slo varchar, status varchar, measured double,"
            " blocking boolean, gate_passed boolean)"
        )
        for slo in report["slos"]:
            slo["trend"] = [
                {"evaluated_at": at.isoformat(timespec="seconds"), "status": s, "measured": m}
                for at, s, m in con.execute(
                    "select evaluated_at, status, measured from slo_results where slo = ?"
                    " order by evaluated_at desc limit ?",
                    [slo["name"], HISTORY_RUNS],
                ).fetchall()
            ]
        con.executemany(
            "insert into slo_results values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    report["run_id"],
                    report["evaluated_at"],
                    report["git_commit"],
                    slo["name"],
                    slo["status"],
                    slo["measured"],
                    slo["blocking"],
                    report["passed"],
                ]
                for slo in report["slos"]
            ],
        )


# --- rendering ----------------------------------------------------------------------


def result_from_dict(slo: dict[str, Any]) -> SloResult:
    fields = {k: v for k, v in slo.items() if k != "target_text"}
    return SloResult(**fields)


def _status_label(slo: SloResult) -> str:
    if slo.status in ("breach", "error"):
        return f"{slo.status.upper()} (blocking)" if slo.blocking else f"{slo.status} (warning)"
    return slo.status


def _trend_text(slo: SloResult) -> str:
    if not slo.trend:
        return "first run"
    marks = {"pass": "ok", "breach": "BREACH", "error": "ERROR", "no_baseline": "-"}
    previous = [
        marks.get(t["status"], t["status"])
        + ("" if t["measured"] is None else f" {_fmt(t['measured'], slo.unit)}")
        for t in reversed(slo.trend)
    ]
    return " -> ".join(previous)


def failure_messages(report: dict[str, Any]) -> list[str]:
    """One line per blocking breach: the SLO, the measured value, and where to look."""
    lines = []
    for slo in map(result_from_dict, report["slos"]):
        if slo.blocking and slo.status in ("breach", "error"):
            lines.append(
                f"SLO {slo.name} {slo.status}: measured {slo.measured_text}, target "
                f"{slo.target_text}. {slo.details[0] if slo.details else ''} "
                f"Look at: {slo.where}"
            )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        "# SLO report: retail cross-sell data product",
        "",
        f"Gate **{verdict}** at {report['evaluated_at']} on commit `{report['git_commit']}`,"
        f" build {report['build']['invocation_id'][:8]} started {report['build']['started_at']}"
        f", database `{report['database']['path']}`.",
        "",
    ]
    if report["overrides"]:
        lines += [f"Overrides applied: {', '.join(report['overrides'])} (see the notes).", ""]
    lines += [
        "| SLO | category | blocking | target | measured | status "
        "| previous runs (oldest -> newest) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for slo in map(result_from_dict, report["slos"]):
        lines.append(
            f"| {slo.name} | {slo.category} | {'yes' if slo.blocking else 'no'} "
            f"| {slo.target_text} | {slo.measured_text} | {_status_label(slo)} "
            f"| {_trend_text(slo)} |"
        )
    lines += ["", "## Details", ""]
    for slo in map(result_from_dict, report["slos"]):
        lines.append(f"- **{slo.name}** ({_status_label(slo)}): {slo.description}")
        lines += [f"  - {detail}" for detail in slo.details]
        if slo.note:
            lines.append(f"  - note: {slo.note}")
        lines.append(f"  - where to look: {slo.where}")
    return "\n".join(lines) + "\n"


def render_html(markdown: str) -> str:
    """A plain HTML page of the Markdown report, for the dbt docs site to link to."""
    body = html.escape(markdown)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>SLO report</title></head>"
        f"<body><pre style='white-space: pre-wrap'>{body}</pre></body></html>\n"
    )


def write_report(report: dict[str, Any], report_dir: Path, target_path: Path) -> Path:
    """Write report.json and report.md, and slo_report.html into target/ (the folder the
    docs site is served from, linked from its overview page)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (report_dir / "report.md").write_text(markdown)
    if target_path.is_dir():
        (target_path / "slo_report.html").write_text(render_html(markdown))
    return report_dir / "report.md"


def default_report_dir(database: Path) -> Path:
    """Reports sit beside the working database, one folder per database file."""
    return database.parent / "slo" / database.stem


def run_gate(
    database: Path,
    target_path: Path,
    published: Path | None,
    report_dir: Path,
    slo_file: Path | None = None,
    project_dir: Path = PROJECT_DIR,
    new_baseline: str | None = None,
) -> dict[str, Any]:
    """Evaluate, record history, write the reports; return the report."""
    slo_file = slo_file or Path(os.environ.get("RETAIL_XSELL_SLO_FILE", project_dir / "slos.yml"))
    # Keep the manifests the gate judged beside its report: publish projects exactly
    # these, even if a later dbt command (source freshness, docs) rewrites target/.
    artifacts = report_dir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS_KEPT:
        if (target_path / name).is_file():
            shutil.copyfile(target_path / name, artifacts / name)
    if slo_file.is_file():
        shutil.copyfile(slo_file, artifacts / "slos.yml")
    report = evaluate(slo_file, database, target_path, published, project_dir, new_baseline)
    report["build"]["artifacts"] = str(artifacts.resolve())
    record_history(report_dir / "history.duckdb", report)
    write_report(report, report_dir, target_path)
    return report
