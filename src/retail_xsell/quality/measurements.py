"""How each objective is measured: one function per ``measurement:`` kind of slos.yml,
registered in :data:`MEASUREMENTS`.

Every value is measured from something real: dbt's artifacts (run_results.json for node
statuses and build time, manifest.json for keys and governance metadata), SQL on the
built (working) database, and what the last publication recorded. A function returns a
:class:`Measurement`: the value, the details a reader needs (worst first: the gate's
message quotes the first), and a forced status where the value cannot be judged.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import yaml

from retail_xsell import governance, pseudonyms
from retail_xsell.contracts import breaking_change_measurement, build_contracts
from retail_xsell.metric_queries import QUERIES, latency_p95_ms, time_calls
from retail_xsell.pii_scan import value_findings
from retail_xsell.ports import (
    model_relation,
    output_port_models,
    quote_identifier,
    single_row,
    sql_string,
)
from retail_xsell.publications import current_folder, current_link, last_publication

if TYPE_CHECKING:
    from retail_xsell.quality.declarations import Slo, SloFile

#: dbt's defaults (dbt_project.yml) of the vars the gate looks at, for a build that did
#: not pass them: the committed sample.
DEFAULT_BUILD_VARS: dict[str, Any] = {"raw_input_format": "seed"}
FAILED_NODE_STATUSES = {"error", "fail", "runtime error", "skipped"}


@dataclass
class Measurement:
    """What a measurement function returns: a value, or why there is none."""

    value: float | None
    details: list[str] = field(default_factory=list)
    status: str | None = None  # set only to force no_baseline or error


def build_vars(run_results: dict[str, Any]) -> dict[str, Any]:
    """The --vars of the build that wrote run_results.json, as given (no defaults)."""
    raw = run_results.get("args", {}).get("vars") or {}
    return yaml.safe_load(raw) if isinstance(raw, str) else dict(raw)


def input_format(vars_: dict[str, Any] | None) -> str:
    """raw_input_format of a build: seed (the committed sample), parquet or csv."""
    return str({**DEFAULT_BUILD_VARS, **(vars_ or {})}["raw_input_format"])


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
    slos: SloFile | None = None
    new_baseline: str | None = None  # why volume is not compared this time

    @property
    def build_vars(self) -> dict[str, Any]:
        return build_vars(self.run_results)

    def semantic_manifest(self) -> dict[str, Any] | None:
        path = self.target_path / "semantic_manifest.json"
        return json.loads(path.read_text()) if path.is_file() else None


# --- quality -------------------------------------------------------------------------


def measure_freshness(slo: Slo, inputs: Inputs) -> Measurement:
    """Hours from the newest purchase load that passed staging to the build's start.

    Measured on the built data itself, not on a separate `dbt source freshness` run, so
    it always describes the input this database was built from, whatever --vars the
    build had. A load up to `clock_tolerance_hours` after the build started is clock
    skew and counts as age 0; a later one is an error (staging quarantines such rows, so
    it can only mean the clocks or the data are wrong).
    """
    tolerance = float(slo.clock_tolerance_hours)
    (loaded_at,) = single_row(
        inputs.connection, "select max(loaded_at) from main.stg_retail__purchase_lines"
    )
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


def measure_passing_rows(slo: Slo, inputs: Inputs) -> Measurement:
    rows = inputs.connection.execute(
        "select source_table, raw_row_count, rejected_row_count"
        " from main_audit.row_reconciliation order by source_table"
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


def _failing_rows(connection: duckdb.DuckDBPyConnection, result: dict[str, Any]) -> int:
    """Rows a failing test found: its stored failures (accepted_values stores one row per
    bad value with n_records), or dbt's failure count when nothing was stored."""
    failures = int(result.get("failures") or 0)
    relation = result.get("relation_name")
    if not failures or not relation:
        return failures
    # The stored relation is "<catalog>"."main_audit"."<test>"; read it in this file.
    local = ".".join(relation.split(".")[-2:])
    columns = {row[0] for row in connection.execute(f"describe {local}").fetchall()}
    aggregate = "sum(n_records)" if "n_records" in columns else "count(*)"
    (rows,) = single_row(connection, f"select coalesce({aggregate}, 0) from {local}")
    return int(rows)


def measure_tagged_tests(slo: Slo, inputs: Inputs) -> Measurement:
    """The dbt data tests tagged ``slo:<name>``, read from run_results.json.

    The rules live in the tests (on the marts); slos.yml only says which columns (or
    every public model) must be covered. ``aggregate: passing_share`` reports the worst
    test's share of rows passing; ``failures`` the failing rows summed, a public model
    without a tagged test counting as one.
    """
    tag = f"slo:{slo.name}"
    nodes = inputs.manifest["nodes"]
    tests = [
        node
        for node in nodes.values()
        if node["resource_type"] == "test" and tag in (node.get("tags") or [])
    ]
    results = {result["unique_id"]: result for result in inputs.run_results.get("results", [])}
    problems: list[str] = []
    for column in slo.columns:
        model, name = column.split(".")
        if not any(
            (t.get("attached_node") or "").split(".")[-1] == model and t.get("column_name") == name
            for t in tests
        ):
            problems.append(f"{column}: no dbt test tagged {tag}")
    uncovered = []
    if slo.every_public_model:
        covered = {t.get("attached_node") for t in tests}
        uncovered = [
            m["name"]
            for m in governance.public_models(inputs.manifest)
            if m["unique_id"] not in covered
        ]
    if not tests:
        problems.append(f"no dbt test carries the tag {tag}")
    worst, failing_total, details = 1.0, len(uncovered), []
    details += [f"{name}: no key test tagged {tag} (counted as 1)" for name in uncovered]
    for test in sorted(tests, key=lambda t: t["name"]):
        result = results.get(test["unique_id"])
        if result is None or result["status"] in ("error", "skipped", "runtime error"):
            status = "not run" if result is None else result["status"]
            problems.append(f"{test['name']}: the test did not run in the last build ({status})")
            continue
        model = nodes.get(test.get("attached_node") or "")
        failing = _failing_rows(inputs.connection, result)
        failing_total += failing
        if model is None:
            continue
        (rows,) = single_row(inputs.connection, f"select count(*) from {model_relation(model)}")
        share = 1 - failing / rows if rows else 1.0
        worst = min(worst, share)
        if failing:
            where = f"{model['name']}.{test.get('column_name') or ''}".rstrip(".")
            details.append(
                f"{where}: {failing:,} of {rows:,} rows fail {test['test_metadata']['name']}"
                f" ({test['name']}; failing rows in {result.get('relation_name')})"
            )
    if problems:
        return Measurement(None, problems + details, status="error")
    value = worst if slo.aggregate == "passing_share" else float(failing_total)
    return Measurement(value, details or [f"all {len(tests)} tests tagged {tag} pass"])


def row_counts(connection: duckdb.DuckDBPyConnection, manifest: dict[str, Any]) -> dict[str, int]:
    """Rows per raw table and per public mart: what volume compares between builds and
    what a publication records."""
    counts = {
        f"raw.{table}": raw
        for table, raw in connection.execute(
            "select source_table, raw_row_count from main_audit.row_reconciliation"
        ).fetchall()
    }
    for model in governance.public_models(manifest):
        (counts[model["name"]],) = single_row(
            connection, f"select count(*) from {model_relation(model)}"
        )
    return dict(sorted(counts.items()))


def _input_of(vars_: dict[str, Any] | None) -> str:
    """Which kind of input a build read: the committed sample or the user's own files.

    Only a switch between the two resets the volume baseline by itself. A new folder of
    the same kind (tomorrow's export) is compared as usual, so that a daily export
    missing half its rows is still caught; a deliberate new data set says so with
    --new-baseline."""
    return "the committed sample" if input_format(vars_) == "seed" else "own files"


def measure_volume(slo: Slo, inputs: Inputs) -> Measurement:
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
    low = -1.0 if slo.target.min is None else slo.target.min
    high = float("inf") if slo.target.max is None else slo.target.max
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


def measure_unreconciled(slo: Slo, inputs: Inputs) -> Measurement:
    rows = inputs.connection.execute(
        "select source_table, raw_row_count - clean_row_count - rejected_row_count"
        " - duplicate_row_count from main_audit.row_reconciliation"
    ).fetchall()
    missing = sum(abs(gap) for _, gap in rows)
    details = [f"{table}: {gap:+,} rows unaccounted for" for table, gap in rows if gap]
    return Measurement(missing, details or ["raw = clean + rejected + duplicates on every table"])


def measure_dbt_failures(slo: Slo, inputs: Inputs) -> Measurement:
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


# --- architecture --------------------------------------------------------------------


def measure_build_duration(slo: Slo, inputs: Inputs) -> Measurement:
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


def measure_query_latency(slo: Slo, inputs: Inputs) -> Measurement:
    """p95 of warm in-process metric queries over the benchmark's representative ones."""
    # MetricFlow is imported only when this objective is measured.
    from retail_xsell.semantic import SemanticLayer

    # The gate's own read-only connection is closed while MetricFlow attaches the file.
    with SemanticLayer.from_project(inputs.project_dir, inputs.target_path, inputs.database) as lay:
        timings = [time_calls(query.bind(lay), slo.repeats) for query in QUERIES]
    p95, count = latency_p95_ms(timings)
    return Measurement(p95, [f"{count} warm queries over {len(QUERIES)} query shapes"])


# --- governance ----------------------------------------------------------------------


def measure_unmasked_pii(slo: Slo, inputs: Inputs) -> Measurement:
    gaps = governance.pii_in_clear_outside_private(inputs.manifest)
    return Measurement(len(gaps), gaps or ["no unmasked PII outside private models"])


def measure_public_gaps(slo: Slo, inputs: Inputs) -> Measurement:
    gaps = governance.governance_gaps(inputs.manifest)
    governed = len(governance.public_models(inputs.manifest))
    return Measurement(len(gaps), gaps or [f"{governed} public models governed"])


def measure_port_pii(slo: Slo, inputs: Inputs) -> Measurement:
    semantic_manifest = inputs.semantic_manifest()
    if semantic_manifest is None:
        return Measurement(None, [f"no semantic_manifest.json in {inputs.target_path}"], "error")
    ports = output_port_models(inputs.manifest, semantic_manifest)
    # Its own connection: the scan keeps the raw values in temporary tables.
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach {sql_string(str(inputs.database))} as working (read_only)")
        # Columns classified as personal data are pii_masked_outside_private's rule.
        findings = value_findings(con, ports, "working", "working")
    names = ", ".join(port.identifier for port in ports)
    return Measurement(
        len(findings),
        [finding.message for finding in findings]
        or [f"no raw personal value in the {len(ports)} output ports ({names})"],
    )


def measure_contract_changes(slo: Slo, inputs: Inputs) -> Measurement:
    semantic_manifest = inputs.semantic_manifest()
    if semantic_manifest is None:
        return Measurement(None, [f"no semantic_manifest.json in {inputs.target_path}"], "error")
    if inputs.published is None:
        return Measurement(None, ["no published path to compare with"], "no_baseline")
    current = build_contracts(
        inputs.manifest,
        semantic_manifest,
        inputs.slos.as_document() if inputs.slos else {},
        published_database=inputs.published.absolute(),
        parquet_dir=current_link(inputs.published).absolute() / "parquet",
        project_dir=inputs.project_dir,
    )
    folder = current_folder(inputs.published)
    value, details, status = breaking_change_measurement(
        current,
        folder / "contracts" if folder else None,
        inputs.project_dir / slo.accepted_changes,
    )
    return Measurement(value, details or ["no breaking change to a public output port"], status)


def measure_development_key(slo: Slo, inputs: Inputs) -> Measurement:
    """1 when non-sample data was pseudonymised with a public key, else 0.

    It recomputes a sample of the published pseudonyms from the raw values in the
    private staging model with every public key (:func:`pseudonyms.public_schemes`): if
    any matches, the build used it, whatever anyone claims. The committed sample
    (raw_input_format seed) may use the development key; real input may not.
    """
    pseudonym_model, pseudonym_column = slo.pseudonym.split(".")
    raw_model, raw_column = slo.raw.split(".")
    join_on = quote_identifier(slo.join_on)
    pseudonym, raw = quote_identifier(pseudonym_column), quote_identifier(raw_column)
    rows = inputs.connection.execute(
        f"select r.{raw}, p.{pseudonym}"
        f" from {_model_relation(inputs.manifest, pseudonym_model)} as p"
        f" join {_model_relation(inputs.manifest, raw_model)} as r on r.{join_on} = p.{join_on}"
        f" where p.{pseudonym} is not null and r.{raw} is not null"
        f" order by p.{join_on} limit {int(slo.sample_rows)}"
    ).fetchall()
    raw_input_format = input_format(inputs.build_vars)
    where = slo.pseudonym
    if not rows:
        return Measurement(0, [f"no pseudonymised value in {where} to check"])
    used = [
        name
        for name, make in pseudonyms.public_schemes().items()
        if any(hmac.compare_digest(make(value), made) for value, made in rows)
    ]
    if not used:
        return Measurement(
            0, [f"{where}: none of {len(rows)} sampled pseudonyms made with a public key"]
        )
    found = f"{where} is pseudonymised with {' and '.join(used)}"
    if raw_input_format == "seed":
        return Measurement(0, [f"{found}: allowed for the committed sample (seed input)"])
    return Measurement(
        1,
        [
            f"{found} on {raw_input_format} input: anyone can reverse it. Set "
            f"{pseudonyms.KEY_ENV} to a secret (docs/security.md) and build again"
        ],
    )


def _model_relation(manifest: dict[str, Any], model: str) -> str:
    """The relation of the model named ``model`` (main.<model> when the manifest lacks it)."""
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") == "model" and node.get("name") == model:
            return model_relation(node)
    return f"main.{quote_identifier(model)}"


def measure_audit_trail(slo: Slo, inputs: Inputs) -> Measurement:
    """Problems in the API's audit trail: edited, removed, reordered or cut-off records
    (retail_xsell.delivery.audit.verify). No trail yet means no access yet: 0."""
    from retail_xsell.delivery.audit import default_audit_path, verify

    path = default_audit_path()
    result = verify(path)
    if not result.log_exists:
        return Measurement(0, [f"no API access recorded yet ({path})"])
    if result.ok:
        return Measurement(0, [f"{result.records:,} records in {path}, chain intact"])
    return Measurement(float(len(result.problems)), result.problems[:20])


# --- the registry --------------------------------------------------------------------


@dataclass(frozen=True)
class MeasurementKind:
    """A ``measurement:`` kind: its function, the SLO fields it needs, and whether it
    runs with the gate's database connection closed (it opens the file itself)."""

    measure: Callable[[Slo, Inputs], Measurement]
    requires: tuple[str, ...] = ()
    own_connection: bool = False


MEASUREMENTS: dict[str, MeasurementKind] = {
    "source_freshness": MeasurementKind(measure_freshness),
    "raw_rows_passing_staging": MeasurementKind(measure_passing_rows),
    "tagged_dbt_tests": MeasurementKind(measure_tagged_tests),
    "volume_change": MeasurementKind(measure_volume),
    "unreconciled_rows": MeasurementKind(measure_unreconciled),
    "dbt_failures": MeasurementKind(measure_dbt_failures),
    "build_duration": MeasurementKind(measure_build_duration),
    "query_latency": MeasurementKind(measure_query_latency, own_connection=True),
    "unmasked_pii_columns": MeasurementKind(measure_unmasked_pii),
    "public_model_gaps": MeasurementKind(measure_public_gaps),
    "output_port_pii": MeasurementKind(measure_port_pii),
    "contract_breaking_changes": MeasurementKind(measure_contract_changes),
    "development_pseudonym_key": MeasurementKind(measure_development_key),
    "audit_trail": MeasurementKind(measure_audit_trail),
}
