"""What has been published, read without writing anything: the published folder's
layout, the current publication and its record, and the working database fingerprint
that a gate report hands to publish.

The gate (volume and contract checks), publish, the semantic layer and the command line
all read these; keeping them here, apart from :mod:`retail_xsell.publish` (which writes
publications), means none of them has to import another to learn what consumers read.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb

PUBLICATIONS_TABLE = "main.publications"
RECORD_FILE = "publication.json"


def database_fingerprint(database: Path) -> dict[str, int]:
    """Size and modification time: publish refuses a database changed since the gate."""
    stat = database.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def publications_dir(published: Path) -> Path:
    """The folder holding one sub-folder per kept publication."""
    return published.parent / "publications"


def current_link(published: Path) -> Path:
    """The pointer to the publication consumers read."""
    return published.parent / "current"


def current_folder(published: Path) -> Path | None:
    """The folder of the current publication, or None before the first one."""
    link = current_link(published)
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def last_publication(published: Path) -> dict[str, Any] | None:
    """The newest publication record of the published database, or None if there is
    none yet. Opens the file read-only, like every consumer."""
    if not published.is_file():
        return None
    with duckdb.connect(str(published), read_only=True) as con:
        columns = {
            name
            for (name,) in con.execute(
                "select column_name from duckdb_columns() where database_name = current_database()"
                " and schema_name = 'main' and table_name = 'publications'"
            ).fetchall()
        }
        build_vars = "build_vars" if "build_vars" in columns else "null"
        row = con.execute(
            "select publication_id, published_at, git_commit, row_counts, slo_results,"
            f" {build_vars} from {PUBLICATIONS_TABLE} order by published_at desc limit 1"
        ).fetchone()
    if row is None:
        return None
    publication_id, published_at, commit, counts, slos, build_vars = row
    return {
        "publication_id": publication_id,
        "published_at": published_at.astimezone(dt.UTC),
        "git_commit": commit,
        "row_counts": json.loads(counts),
        "slo_results": json.loads(slos),
        "build_vars": None if build_vars is None else json.loads(build_vars),
    }


def list_publications(published: Path) -> list[dict[str, Any]]:
    """The kept publications, newest first, with which one is current."""
    current = current_folder(published)
    listed = []
    for record_file in sorted(publications_dir(published).glob(f"*/{RECORD_FILE}"), reverse=True):
        record = json.loads(record_file.read_text())
        record["folder"] = str(record_file.parent)
        record["is_current"] = current is not None and record_file.parent.resolve() == current
        listed.append(record)
    return listed


def describe_last_publication(published: Path) -> str:
    """One sentence for messages: what consumers are reading now.

    Read from the current publication's publication.json when there is one, so that
    it works while someone holds a lock on the DuckDB file."""
    folder = current_folder(published)
    record_file = folder / RECORD_FILE if folder else None
    previous: dict[str, Any] | None
    try:
        if record_file is not None and record_file.is_file():
            record = json.loads(record_file.read_text())
            previous = {
                **record,
                "published_at": dt.datetime.fromisoformat(record["published_at"]),
            }
        else:
            previous = last_publication(published)
    except (duckdb.Error, OSError, ValueError, KeyError) as exc:
        return f"The published database {published} could not be read: {exc}"
    if previous is None:
        return f"Nothing has been published yet ({published} does not exist)."
    return (
        f"The last good publication is untouched and readable: {published} "
        f"(publication {previous['publication_id'][:8]}, published "
        f"{previous['published_at']:%Y-%m-%d %H:%M:%S} UTC from commit {previous['git_commit']})."
    )
