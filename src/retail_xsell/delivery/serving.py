"""The publication the API serves, switched without a restart when a new one lands.

A publication folder never changes once written (retail_xsell.publish writes a new
folder and switches the ``current`` link), so serving one is: open its DuckDB file
read-only once, and keep it open for as long as a request uses it. Each request takes a
*lease* on whatever ``current`` points at when it starts; a publish in the meantime
makes the next request open the new folder, while requests in flight finish on the old
one (on Linux an open file outlives its unlink, so even a pruned folder stays readable
until its last lease ends). The old publication is closed when its last lease ends.

The policy file is checked against every publication before it is served: if a new
publication drops a metric the policies grant, the service keeps serving the previous
one and reports why on /health, instead of failing open or failing every request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell.delivery.catalog import CATALOG_FILE, Catalog, CatalogError, load_catalog
from retail_xsell.delivery.policies import Policies, PolicyError, load_policies
from retail_xsell.semantic import SemanticLayer, SemanticLayerError, locked_down_connection

log = logging.getLogger(__name__)

#: The catalog name the customer look-up connection attaches the publication under.
LOOKUP_CATALOG = "publication"


class ServingError(RuntimeError):
    """No publication can be served (missing, unreadable, or refused by the policies)."""


@dataclass
class ServedPublication:
    """One open publication: its semantic layer, catalog, policies and record."""

    id: str
    folder: Path
    database: Path
    layer: SemanticLayer
    catalog: Catalog
    policies: Policies
    record: dict[str, Any]
    semantic_manifest: dict[str, Any]
    leases: int = 0
    retired: bool = False
    lookup_lock: threading.Lock = field(default_factory=threading.Lock)
    _lookup: duckdb.DuckDBPyConnection | None = None

    def lookup_connection(self) -> duckdb.DuckDBPyConnection:
        """A second read-only connection for the fixed, parameterised customer look-up:
        in memory with the file attached as :data:`LOOKUP_CATALOG`, locked down like the
        semantic layer's (and, unlike a direct open, never in conflict with another
        connection to the same file in this process)."""
        if self._lookup is None:
            self._lookup = locked_down_connection(self.database, LOOKUP_CATALOG)
        return self._lookup

    def close(self) -> None:
        self.layer.close()
        if self._lookup is not None:
            self._lookup.close()


def _publication_folder(published: Path) -> tuple[Path, Path]:
    """The real folder and database file behind the consumer path (links resolved)."""
    database = Path(published).resolve()
    if not database.is_file():
        raise ServingError(
            f"no publication at {published}: run `make run` (or `retail-xsell publish`) first"
        )
    return database.parent, database


def open_publication(published: Path, policy_path: Path) -> ServedPublication:
    folder, database = _publication_folder(published)
    record_path = folder / "publication.json"
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        semantic_manifest = json.loads((folder / "semantic_manifest.json").read_text())
        document = json.loads((folder / CATALOG_FILE).read_text())
    except FileNotFoundError as error:
        raise ServingError(
            f"{folder} is not a complete publication ({Path(error.filename).name} is "
            "missing); publish again with this version of retail-xsell"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ServingError(f"cannot read the publication in {folder}: {error}") from None
    try:
        layer = SemanticLayer(folder / "semantic_manifest.json", database)
    except SemanticLayerError as error:
        raise ServingError(str(error)) from None
    try:
        group_bys = {metric: layer.group_bys(metric) for metric in layer.metrics}
        catalog = load_catalog(document, group_bys)
        policies = load_policies(policy_path, catalog)
    except (CatalogError, PolicyError) as error:
        layer.close()
        raise ServingError(f"publication {folder.name} cannot be served:\n{error}") from None
    return ServedPublication(
        id=str(record.get("publication_id") or folder.name),
        folder=folder,
        database=database,
        layer=layer,
        catalog=catalog,
        policies=policies,
        record=record,
        semantic_manifest=semantic_manifest,
    )


class Publications:
    """The current publication, re-resolved on every request (one readlink)."""

    def __init__(self, published: Path, policy_path: Path) -> None:
        self.published = Path(published)
        self.policy_path = Path(policy_path)
        self._lock = threading.Lock()
        self._current = open_publication(self.published, self.policy_path)
        self.problem: str | None = None
        self._closed = False

    @property
    def current(self) -> ServedPublication:
        return self._current

    def _refresh(self) -> None:
        """Switch to the publication ``current`` points at, if it is a new one."""
        try:
            folder, _ = _publication_folder(self.published)
        except ServingError as error:
            self.problem = str(error)
            return
        if folder == self._current.folder:
            self.problem = None  # whatever was wrong (a refused folder, no link) is over
            return
        if self.problem and self.problem.startswith(f"[{folder.name}]"):
            return  # this folder was refused already; keep serving the previous one
        try:
            new = open_publication(self.published, self.policy_path)
        except ServingError as error:
            self.problem = f"[{folder.name}] {error}"
            log.error("not serving the new publication: %s", error)
            return
        old, self._current, self.problem = self._current, new, None
        old.retired = True
        if old.leases == 0:
            old.close()

    @contextmanager
    def lease(self) -> Iterator[ServedPublication]:
        with self._lock:
            if self._closed:  # closed at a server's shutdown, used again (tests, reloads)
                self._current, self._closed = (
                    open_publication(self.published, self.policy_path),
                    False,
                )
            else:
                self._refresh()
            served = self._current
            served.leases += 1
        try:
            yield served
        finally:
            with self._lock:
                served.leases -= 1
                if served.retired and served.leases == 0:
                    served.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._current.close()
                self._closed = True
