"""Write, audit, publish: replace the published database only after a passing gate.

dbt builds into the working database. Consumers (BI, the semantic layer's query path,
the API) read the published copy, opened read-only per query. Publishing copies the
working file to a temporary file in the published folder, adds the publication record
there, and renames it onto the published path with ``os.replace``: on POSIX the rename
is atomic, so a reader opens either the whole old file or the whole new one, and a
reader that already has the old file open keeps reading it. A failed build or gate
never gets here, and any error before the rename leaves the published file untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell.slo import database_fingerprint

#: Where consumers read the product; relative paths are relative to the project.
DEFAULT_PUBLISHED_PATH = "build/published/retail_xsell.duckdb"
PUBLICATIONS_TABLE = "main.publications"

CREATE_PUBLICATIONS = f"""
    create table if not exists {PUBLICATIONS_TABLE} (
        publication_id varchar primary key,
        published_at timestamptz not null,
        git_commit varchar not null,
        working_database varchar not null,
        build_invocation_id varchar not null,
        gate_run_id varchar not null,
        row_counts json not null,
        slo_results json not null
    )
"""


class PublishRefusedError(RuntimeError):
    """The gate did not pass, or its report does not belong to this working database."""


@dataclass(frozen=True)
class Publication:
    publication_id: str
    published_at: dt.datetime
    path: Path


def published_path(project_dir: Path | None = None) -> Path:
    """RETAIL_XSELL_PUBLISHED_PATH, or the documented default under build/."""
    project_dir = project_dir or Path.cwd()
    path = Path(os.environ.get("RETAIL_XSELL_PUBLISHED_PATH", DEFAULT_PUBLISHED_PATH))
    return path if path.is_absolute() else project_dir / path


def last_publication(published: Path) -> dict[str, Any] | None:
    """The newest publication record of the published database, or None if there is
    none yet. Opens the file read-only, like every consumer."""
    if not published.is_file():
        return None
    with duckdb.connect(str(published), read_only=True) as con:
        row = con.execute(
            "select publication_id, published_at, git_commit, row_counts, slo_results"
            f" from {PUBLICATIONS_TABLE} order by published_at desc limit 1"
        ).fetchone()
    if row is None:
        return None
    publication_id, published_at, commit, counts, slos = row
    return {
        "publication_id": publication_id,
        "published_at": published_at.astimezone(dt.UTC),
        "git_commit": commit,
        "row_counts": json.loads(counts),
        "slo_results": json.loads(slos),
    }


def describe_last_publication(published: Path) -> str:
    """One sentence for messages: what consumers are reading now."""
    try:
        previous = last_publication(published)
    except duckdb.Error as exc:
        return f"The published database {published} could not be read: {exc}"
    if previous is None:
        return f"Nothing has been published yet ({published} does not exist)."
    return (
        f"The last good publication is untouched and readable: {published} "
        f"(publication {previous['publication_id'][:8]}, published "
        f"{previous['published_at']:%Y-%m-%d %H:%M:%S} UTC from commit {previous['git_commit']})."
    )


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
    if working.with_name(working.name + ".wal").exists():
        raise PublishRefusedError(f"{working} has an open write-ahead log; is dbt still running?")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(working: Path, published: Path, report: dict[str, Any]) -> Publication:
    """Publish `working` at `published` if `report` is its passing gate report."""
    _check_report(report, working)
    published.parent.mkdir(parents=True, exist_ok=True)
    temporary = published.with_name(f".{published.name}.{uuid.uuid4().hex[:8]}.tmp")
    publication = Publication(str(uuid.uuid4()), dt.datetime.now(dt.UTC), published)
    try:
        shutil.copyfile(working, temporary)
        with duckdb.connect(str(temporary)) as con:
            con.execute(CREATE_PUBLICATIONS)
            if published.is_file():
                # Keep the record of every earlier publication in the new file.
                escaped = str(published).replace("'", "''")
                con.execute(f"attach '{escaped}' as previous (read_only)")
                con.execute(
                    f"insert into {PUBLICATIONS_TABLE} select * from previous.main.publications"
                )
                con.execute("detach previous")
            con.execute(
                f"insert into {PUBLICATIONS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    publication.publication_id,
                    publication.published_at,
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
                ],
            )
            con.execute("checkpoint")
        _fsync(temporary)
        os.replace(temporary, published)
        _fsync(published.parent)
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".wal").unlink(missing_ok=True)
    return publication
