"""Judge a build against slos.yml: measure every objective, decide, and keep the record.

The gate first proves that the artifacts belong to the database (its build record,
macros/build_runs.sql), so a killed build is never judged with an older build's
results. Nothing is inferred from whether dbt exited cleanly, so a gate run on a build
that failed half-way reports what is missing instead of passing.

A result is ``pass``, ``breach``, ``error`` (could not be measured: counts as a breach)
or ``no_baseline`` (nothing to compare with: the first publication, a new input, or a
declared new baseline). The gate fails when a blocking objective is breached or in
error; non-blocking breaches are warnings.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell import settings
from retail_xsell.publications import database_fingerprint
from retail_xsell.quality.declarations import GateSetupError, Slo, load_slos
from retail_xsell.quality.history import record_history
from retail_xsell.quality.measurements import (
    MEASUREMENTS,
    Inputs,
    Measurement,
    build_vars,
    row_counts,
)
from retail_xsell.quality.report import SloResult, write_report

#: dbt artifacts the gate keeps beside its report for publish.
ARTIFACTS_KEPT = ("manifest.json", "semantic_manifest.json")
#: What a failing measurement may raise; it becomes an ``error`` result, not a crash.
MEASUREMENT_ERRORS = (duckdb.Error, KeyError, ValueError, OSError, ImportError)


def _status(measured: Measurement, slo: Slo) -> str:
    if measured.status:
        return measured.status
    if measured.value is None:
        return "error"
    low = float("-inf") if slo.target.min is None else slo.target.min
    high = float("inf") if slo.target.max is None else slo.target.max
    return "pass" if low - 1e-12 <= measured.value <= high + 1e-12 else "breach"


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


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
    project_dir: Path | None = None,
    new_baseline: str | None = None,
) -> dict[str, Any]:
    """Evaluate every SLO and return the report as a JSON-ready dict.

    ``new_baseline`` (a reason) stops volume from being compared with the last
    publication, for a deliberate switch of data set that keeps the same input path."""
    project_dir = project_dir or settings.project_dir()
    document = load_slos(slo_file)
    if not database.is_file():
        raise GateSetupError(f"no database at {database}: run `dbt build` first")
    run_results = _read_json(target_path / "run_results.json")
    manifest = _read_json(target_path / "manifest.json")
    if run_results is None or manifest is None:
        raise GateSetupError(f"no run_results.json/manifest.json in {target_path}: run dbt build")
    vars_ = build_vars(run_results)
    overrides = document.active_overrides(vars_)
    if settings.wal_path(database).exists():
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
            project_dir=project_dir,
            database=database,
            target_path=target_path,
            published=published,
            run_results=run_results,
            manifest=manifest,
            connection=connection,
            slos=document,
            new_baseline=new_baseline,
        )
        for declared in document.slos:
            slo, notes = document.effective(declared, overrides)
            kind = MEASUREMENTS[slo.measurement]
            if kind.own_connection:
                connection.close()
            try:
                measured = kind.measure(slo, inputs)
            except MEASUREMENT_ERRORS as exc:
                measured = Measurement(None, [f"could not measure: {type(exc).__name__}: {exc}"])
            finally:
                if kind.own_connection:
                    connection = duckdb.connect(str(database), read_only=True)
                    inputs.connection = connection
            results.append(
                SloResult(
                    name=slo.name,
                    category=slo.category,
                    description=" ".join(slo.description.split()),
                    blocking=slo.blocking,
                    target=slo.target.bounds(),
                    unit=slo.unit,
                    measured=None if measured.value is None else float(measured.value),
                    status=_status(measured, slo),
                    details=measured.details,
                    where=slo.where,
                    note="; ".join(notes),
                )
            )
        counts = row_counts(connection, manifest)
    finally:
        connection.close()
    if database_fingerprint(database) != fingerprint:
        raise GateSetupError(f"{database} changed while the gate read it; run the gate again")
    blocking = [r for r in results if r.blocking and r.is_failing]
    return {
        "run_id": str(uuid.uuid4()),
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(project_dir),
        "passed": not blocking,
        "blocking_breaches": [r.name for r in blocking],
        "warnings": [r.name for r in results if not r.blocking and r.is_failing],
        "overrides": [o.name for o in overrides],
        "new_baseline": new_baseline,
        "database": {"path": str(database.resolve()), **fingerprint},
        "build": {
            "invocation_id": run_results["metadata"]["invocation_id"],
            "started_at": run_results["metadata"]["invocation_started_at"],
            "vars": vars_,
        },
        "row_counts": counts,
        "slos": [{**asdict(r), "target_text": r.target_text} for r in results],
        "access_review": _access_review(),
    }


def _access_review() -> list[dict[str, Any]]:
    """Per principal, what the API served and refused (empty before any access)."""
    from retail_xsell.delivery.audit import access_review, default_audit_path, read_records

    path = default_audit_path()
    if not path.is_file():
        return []
    return json.loads(json.dumps(access_review(read_records(path)), default=str))


def run_gate(
    database: Path,
    target_path: Path,
    published: Path | None,
    report_dir: Path,
    slo_file: Path | None = None,
    project_dir: Path | None = None,
    new_baseline: str | None = None,
) -> dict[str, Any]:
    """Evaluate, record history, write the reports; return the report."""
    project_dir = project_dir or settings.project_dir()
    slo_file = slo_file or settings.slo_file(project_dir)
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
