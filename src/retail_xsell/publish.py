"""Write, audit, publish: give consumers a projection of a build only after its gate passed.

dbt builds into the working database, which holds everything: raw seeds, staging with
the personal data the data stewards need, the quarantine, stored test failures. DuckDB
has no per-table access control, so consumers never get that file. Publishing writes a
new, self-contained **publication** holding only the output ports
(:mod:`retail_xsell.ports`: the public marts and what the semantic layer reads) and its
own record, checks it for personal data, and switches consumers to it in one step:

```
<published folder>/                    (default build/published/)
    retail_xsell.duckdb  -> current/retail_xsell.duckdb   what BI tools and mf open
    current              -> publications/<version>        switched atomically
    publications/<version>/                               one folder per publication
        retail_xsell.duckdb        the output ports, tables in schema main, and the
                                   metric exports (schema metric_exports, metric_exports.py)
        parquet/<mart>/...         every public mart as Parquet (order lines by month)
        contracts/<port>.odcs.yaml ODCS data contracts of the ports (docs/contracts.md)
        dataproduct.yaml           the ODPS data product manifest
        semantic_manifest.json     what the semantic layer needs to answer metrics
        catalog.json               metrics with their tags, dimensions, saved queries (the API)
        publication.json           the publication record
    .publish.lock                  held while publishing
```

``current`` is a symbolic link replaced with ``os.replace``, atomic on POSIX: a reader
resolves either the whole old publication or the whole new one, and a reader that has
the old file open keeps reading it, even after the old folder is pruned. Everything is
written, fsynced and scanned before the switch; any error before it leaves the current
publication untouched and removes what was half-written. The last
``RETAIL_XSELL_KEEP_PUBLICATIONS`` (default 5) publications are kept, so a consumer can
read a stable snapshot by its folder and the producer can roll back. Reading what is
published (the layout, the current publication and its record) is
:mod:`retail_xsell.publications`, which the gate and the semantic layer use too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell import settings
from retail_xsell.contracts import write_publication_documents
from retail_xsell.delivery.catalog import CATALOG_FILE, catalog_document
from retail_xsell.metric_exports import (
    EXPORT_SCHEMA,
    ExportReport,
    copy_exports,
    export_source,
    export_summary,
    write_exports,
)
from retail_xsell.pii_scan import scan
from retail_xsell.ports import (
    PortModel,
    export_parquet,
    output_port_models,
    quote_identifier,
    single_row,
    sql_string,
)
from retail_xsell.publications import (
    PUBLICATIONS_TABLE,
    RECORD_FILE,
    current_folder,
    current_link,
    database_fingerprint,
    list_publications,
    publications_dir,
)
from retail_xsell.quality import GateSetupError, load_slos

LOCK_TIMEOUT_SECONDS = 60.0

#: Columns of the publication record. output_ports and build_vars were added with the
#: projection; older publications lack them and they are null in their copied rows.
RECORD_COLUMNS = (
    "publication_id",
    "published_at",
    "git_commit",
    "working_database",
    "build_invocation_id",
    "gate_run_id",
    "row_counts",
    "slo_results",
    "output_ports",
    "build_vars",
)

CREATE_PUBLICATIONS = f"""
    create table if not exists {PUBLICATIONS_TABLE} (
        publication_id varchar primary key,
        published_at timestamptz not null,
        git_commit varchar not null,
        working_database varchar not null,
        build_invocation_id varchar not null,
        gate_run_id varchar not null,
        row_counts json not null,
        slo_results json not null,
        output_ports json,
        build_vars json
    )
"""


class PublishRefusedError(RuntimeError):
    """The gate did not pass, its report does not belong to this build, or the
    projection failed its own checks; nothing was published."""


@dataclass(frozen=True)
class Publication:
    publication_id: str
    published_at: dt.datetime
    path: Path
    folder: Path


def _check_report(report: dict[str, Any], working: Path) -> None:
    if not report.get("passed"):
        breached = ", ".join(report.get("blocking_breaches", [])) or "unknown"
        raise PublishRefusedError(f"the quality gate failed (blocking SLOs breached: {breached})")
    if Path(report["database"]["path"]) != working.resolve():
        raise PublishRefusedError(
            f"the gate report is for {report['database']['path']}, not {working}"
        )
    fingerprint = {k: report["database"][k] for k in ("size", "mtime_ns")}
    if database_fingerprint(working) != fingerprint:
        raise PublishRefusedError(
            f"{working} changed after the gate ran (a new build?); run the gate again"
        )
    if settings.wal_path(working).exists():
        raise PublishRefusedError(f"{working} has an open write-ahead log; is dbt still running?")


def _read_artifacts(artifacts: Path) -> tuple[dict, dict]:
    """The manifests of the build the gate judged, or a refusal saying why not."""
    try:
        manifest = json.loads((artifacts / "manifest.json").read_text())
        semantic_manifest = json.loads((artifacts / "semantic_manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise PublishRefusedError(
            f"cannot read the manifests the gate judged in {artifacts} ({exc}); run the gate again"
        ) from exc
    return manifest, semantic_manifest


def _slo_document(artifacts: Path) -> dict[str, Any]:
    """The SLO declarations the gate judged with (their SLAs go into the contracts)."""
    path = artifacts / "slos.yml"
    if not path.is_file():
        raise PublishRefusedError(f"no slos.yml among the gate's artifacts in {artifacts}")
    try:
        return load_slos(path).as_document()
    except GateSetupError as exc:
        raise PublishRefusedError(str(exc)) from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


@contextlib.contextmanager
def publish_lock(folder: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold ``<folder>/.publish.lock``: one publish (or rollback) at a time.

    Without it two publishes copy the same history and the later rename loses the
    other's record. flock is released by the kernel when the process dies, so a killed
    publish never leaves a stale lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".publish.lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise PublishRefusedError(
                        f"another publish holds {path} (process {holder}) for over "
                        f"{timeout:.0f} s; nothing was published"
                    ) from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(published: Path) -> None:
    """Delete what a killed publish left behind. Only called under the lock, so no
    other publish is writing them."""
    root = publications_dir(published)
    for leftover in [*root.glob(".*.tmp"), *published.parent.glob(".*.tmp")]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _column_definitions(con: duckdb.DuckDBPyConnection, port: PortModel) -> list[tuple]:
    return con.execute(
        "select column_name, data_type, is_nullable, comment from duckdb_columns()"
        " where database_name = 'working' and schema_name = ? and table_name = ?"
        " order by column_index",
        [port.schema, port.identifier],
    ).fetchall()


def _write_projection(
    database: Path,
    working: Path,
    previous: Path,
    ports: list[PortModel],
    record: list[Any],
    build_vars: dict[str, Any],
) -> dict[str, int]:
    """Create ``database`` holding only ``ports`` (types, not-null constraints and
    comments as in the working database) and the publication history plus ``record``."""
    rows: dict[str, int] = {}
    with duckdb.connect(str(database)) as con:
        con.execute(f"attach {sql_string(str(working))} as working (read_only)")
        for port in ports:
            columns = _column_definitions(con, port)
            if not columns:
                raise PublishRefusedError(
                    f"output port {port.schema}.{port.identifier} is not in {working}; "
                    "was the build complete?"
                )
            table = f"{quote_identifier(port.schema)}.{quote_identifier(port.identifier)}"
            con.execute(f"create schema if not exists {quote_identifier(port.schema)}")
            definitions = ", ".join(
                f"{quote_identifier(name)} {data_type}{'' if nullable else ' not null'}"
                for name, data_type, nullable, _ in columns
            )
            con.execute(f"create table {table} ({definitions})")
            con.execute(f"insert into {table} select * from working.{table}")
            # A port may be a view in the working database; it is a table here.
            (table_comment,) = single_row(
                con,
                "select max(comment) from (select comment, schema_name, table_name"
                " from duckdb_tables() where database_name = 'working' union all"
                " select comment, schema_name, view_name from duckdb_views()"
                " where database_name = 'working') where schema_name = ? and table_name = ?",
                [port.schema, port.identifier],
            )
            if table_comment:
                con.execute(f"comment on table {table} is {sql_string(table_comment)}")
            for name, _, _, comment in columns:
                if comment:
                    con.execute(
                        f"comment on column {table}.{quote_identifier(name)}"
                        f" is {sql_string(comment)}"
                    )
            (rows[port.identifier],) = single_row(con, f"select count(*) from {table}")
        con.execute("detach working")
        con.execute(CREATE_PUBLICATIONS)
        if previous.is_file():
            # Keep the record of every earlier publication in the new file.
            con.execute(f"attach {sql_string(str(previous))} as previous (read_only)")
            old_columns = {
                name
                for (name,) in con.execute(
                    "select column_name from duckdb_columns() where database_name = 'previous'"
                    " and schema_name = 'main' and table_name = 'publications'"
                ).fetchall()
            }
            shared = [c for c in RECORD_COLUMNS if c in old_columns]
            if shared:
                listed = ", ".join(shared)
                con.execute(
                    f"insert into {PUBLICATIONS_TABLE} ({listed})"
                    f" select {listed} from previous.main.publications"
                )
            con.execute("detach previous")
        con.execute(
            f"insert into {PUBLICATIONS_TABLE} ({', '.join(RECORD_COLUMNS)})"
            f" values ({', '.join('?' for _ in RECORD_COLUMNS)})",
            [*record, json.dumps(rows), json.dumps(build_vars)],
        )
        con.execute("checkpoint")
    return rows


def _audit_projection(database: Path, working: Path, ports: list[PortModel]) -> None:
    """Scan the file consumers will read, not the working database it came from."""
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach {sql_string(str(database))} as projection (read_only)")
        con.execute(f"attach {sql_string(str(working))} as working (read_only)")
        tables = {
            (schema, name)
            for schema, name in con.execute(
                "select schema_name, table_name from duckdb_tables()"
                " where database_name = 'projection'"
            ).fetchall()
        }
        expected = {(port.schema, port.identifier) for port in ports}
        record_schema, record_table = PUBLICATIONS_TABLE.split(".")
        expected.add((record_schema, record_table))
        # Metric exports are aggregates the semantic layer computed from these ports.
        tables = {(schema, name) for schema, name in tables if schema != EXPORT_SCHEMA}
        if tables != expected:
            extra = sorted(".".join(t) for t in tables - expected)
            raise PublishRefusedError(f"the projection holds tables that are not ports: {extra}")
        findings = scan(con, ports, "projection", "working")
    if findings:
        raise PublishRefusedError(
            "the projection carries personal data: "
            + "; ".join(finding.message for finding in findings)
        )


def _metric_exports(
    database: Path, published: Path, source: dict[str, Any], manifest: Path
) -> dict[str, Any]:
    """Write the metric exports into ``database``, or copy them from the current
    publication when it was published from the same source (the same build again)."""
    folder = current_folder(published)
    previous: dict[str, Any] = {}
    if folder is not None:
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads((folder / RECORD_FILE).read_text())
    previous_exports = previous.get("metric_exports") or {}
    if (
        folder is not None
        and previous.get("publication_id")
        and (previous_exports.get("source") == source)
    ):
        try:
            report: ExportReport = copy_exports(folder / published.name, database)
        except (OSError, ValueError, duckdb.Error):
            pass  # the old file is unreadable or holds none: compute them instead
        else:
            summary = export_summary(report, source, copied_from=previous["publication_id"])
            summary["skipped"] = previous_exports.get("skipped", [])
            return summary
    return export_summary(write_exports(database, manifest), source)


def _export_parquet(database: Path, ports: list[PortModel], folder: Path) -> dict[str, int]:
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach {sql_string(str(database))} as projection (read_only)")
        return export_parquet(
            con, [port for port in ports if port.reason == "public"], folder, "projection"
        )


def _switch_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` (relative) in one atomic rename."""
    temporary = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _prune(published: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` publications; never the current one."""
    current = current_folder(published)
    folders = sorted(
        (
            p
            for p in publications_dir(published).iterdir()
            if p.is_dir() and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
        reverse=True,
    )
    removed = []
    for folder in folders[keep:]:
        if current is not None and folder.resolve() == current:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def rollback(published: Path, publication_id: str) -> Path:
    """Point consumers back at a kept publication (by id or id prefix)."""
    with publish_lock(published.parent):
        matches = [
            Path(record["folder"])
            for record in list_publications(published)
            if record["publication_id"].startswith(publication_id)
        ]
        if len(matches) != 1:
            kept = ", ".join(r["publication_id"][:8] for r in list_publications(published))
            raise PublishRefusedError(
                f"{'no' if not matches else 'more than one'} kept publication matches "
                f"{publication_id!r}; kept: {kept or 'none'}"
            )
        (folder,) = matches
        _switch_link(current_link(published), os.path.relpath(folder, published.parent))
        _fsync(published.parent)
        return folder


def publish(
    working: Path,
    published: Path,
    report: dict[str, Any],
    artifacts: Path | None = None,
    keep: int | None = None,
) -> Publication:
    """Publish the output ports of ``working`` at ``published`` if ``report`` is its
    passing gate report. ``artifacts`` holds the build's manifest.json and
    semantic_manifest.json (default: the copies the gate kept beside its report)."""
    _check_report(report, working)
    artifacts = Path(artifacts or report["build"].get("artifacts") or settings.target_path())
    manifest, semantic_manifest = _read_artifacts(artifacts)
    try:
        ports = output_port_models(manifest, semantic_manifest)
    except ValueError as exc:
        raise PublishRefusedError(str(exc)) from exc
    keep = settings.keep_publications() if keep is None else keep
    publication_id = str(uuid.uuid4())
    published_at = dt.datetime.now(dt.UTC)
    root = publications_dir(published)
    # Sortable by time to the microsecond, so the newest is always last by name.
    version = f"{published_at:%Y%m%dT%H%M%S.%f}Z-{publication_id[:8]}"
    folder = root / version
    staging = root / f".{version}.tmp"
    with publish_lock(published.parent):
        _remove_leftovers(published)
        root.mkdir(parents=True, exist_ok=True)
        try:
            staging.mkdir()
            database = staging / published.name
            record = [
                publication_id,
                published_at,
                report["git_commit"],
                report["database"]["path"],
                report["build"]["invocation_id"],
                report["run_id"],
                json.dumps(report["row_counts"]),
                json.dumps(
                    {
                        slo["name"]: {"status": slo["status"], "measured": slo["measured"]}
                        for slo in report["slos"]
                    }
                ),
            ]
            build_vars = report["build"].get("vars") or {}
            rows = _write_projection(database, working, published, ports, record, build_vars)
            exports = _metric_exports(
                database,
                published,
                export_source(
                    report["build"]["invocation_id"], working, artifacts / "semantic_manifest.json"
                ),
                artifacts / "semantic_manifest.json",
            )
            # Audited as consumers will read it: the ports, and nothing else but exports.
            _audit_projection(database, working, ports)
            parquet_rows = _export_parquet(database, ports, staging / "parquet")
            shutil.copyfile(
                artifacts / "semantic_manifest.json", staging / "semantic_manifest.json"
            )
            (staging / CATALOG_FILE).write_text(
                json.dumps(catalog_document(manifest, semantic_manifest), indent=2) + "\n"
            )
            # Contracts name the stable paths consumers open, not this version's folder.
            write_publication_documents(
                staging,
                manifest,
                semantic_manifest,
                _slo_document(artifacts),
                published_database=published.absolute(),
                parquet_dir=current_link(published).absolute() / "parquet",
                publication_id=publication_id,
            )
            (staging / RECORD_FILE).write_text(
                json.dumps(
                    {
                        "publication_id": publication_id,
                        "published_at": published_at.isoformat(timespec="seconds"),
                        "git_commit": report["git_commit"],
                        "build_invocation_id": report["build"]["invocation_id"],
                        "gate_run_id": report["run_id"],
                        "slo_status": "passed" if report["passed"] else "failed",
                        "slo_warnings": list(report.get("warnings") or []),
                        "slos": {slo["name"]: slo["status"] for slo in report["slos"]},
                        "database": published.name,
                        "build_vars": build_vars,
                        "output_ports": rows,
                        "parquet_ports": parquet_rows,
                        "metric_exports": exports,
                    },
                    indent=2,
                )
                + "\n"
            )
            _fsync_tree(staging)
            os.rename(staging, folder)
            _fsync(root)
            _switch_link(current_link(published), os.path.relpath(folder, published.parent))
            entry = os.path.join("current", published.name)
            if not (published.is_symlink() and os.readlink(published) == entry):
                # The first publication in this layout (or a plain file from before it).
                _switch_link(published, entry)
            _fsync(published.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _prune(published, keep)
    return Publication(publication_id, published_at, published, folder)
