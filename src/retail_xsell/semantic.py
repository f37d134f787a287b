"""Query the product's governed metrics in-process, through MetricFlow's engine.

The semantic layer (semantic_models/*.yml) is the single definition of every metric; this
module is how Python code (tests now, the governed API later) asks it for numbers, so
that nothing re-implements a metric in SQL of its own.

MetricFlow's Python API is not a stable interface (its engine class says so), so every
MetricFlow import lives in this one module: an upgrade should only ever touch this file.
Its errors are long and internal; they are turned into :class:`SemanticLayerError`
subclasses that name the metric, dimension or date that is wrong, so the API can pass
them on to a consumer as they are.

How it runs: MetricFlow reads the semantic manifest that ``dbt parse`` (or any dbt
command) writes to ``target/semantic_manifest.json``, plans a query and renders DuckDB
SQL; this module runs that SQL itself on a read-only DuckDB connection. That keeps the
natural Python types (int counts, Decimal money, float ratios) that MetricFlow's own
result table would coerce, needs no dbt adapter or profile loading (``mf`` runs a whole
``dbt debug`` first), and can never write to the published database.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from metricflow.data_table.mf_table import MetricFlowDataTable
from metricflow.engine.metricflow_engine import MetricFlowEngine, MetricFlowQueryRequest
from metricflow.engine.models import Dimension
from metricflow.protocols.sql_client import SqlEngine
from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer
from metricflow.sql.render.sql_plan_renderer import SqlPlanRenderer
from metricflow_semantic_interfaces.validations.semantic_manifest_validator import (
    SemanticManifestValidator,
)
from metricflow_semantics.errors.error_classes import MetricFlowException
from metricflow_semantics.model.dbt_manifest_parser import (
    parse_manifest_from_dbt_generated_manifest,
)
from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

from retail_xsell.warehouse import database_path as default_database_path

#: Time grains a group-by may end in (``metric_time__month``); MetricFlow's standard ones.
TIME_GRAINS = frozenset(
    {"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}
    | {"day", "week", "month", "quarter", "year"}
)

TimeBound = dt.date | dt.datetime | str


class SemanticLayerError(Exception):
    """A metric query that cannot be answered, with a message a consumer can act on."""


class UnknownMetricError(SemanticLayerError):
    """The query names a metric the semantic layer does not define."""


class UnknownDimensionError(SemanticLayerError):
    """The query groups by a name no metric in the semantic layer can be grouped by."""


class UnreachableDimensionError(SemanticLayerError):
    """The dimension exists, but not for this metric (no join path from its data)."""


class InvalidTimeRangeError(SemanticLayerError):
    """The start or end of the queried window is unreadable, reversed or off the calendar."""


@dataclass(frozen=True)
class MetricQueryResult:
    """The rows of a metric query, as DuckDB returned them, and the SQL that produced them.

    Column names are MetricFlow's: metrics by name, group-bys as queried in dunder form
    (``customer__region``, ``metric_time__month``). Counts are int, money is Decimal,
    ratios are float, time is datetime.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    sql: str

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per row, for JSON responses and readable tests."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        try:
            index = self.columns.index(name)
        except ValueError:
            raise KeyError(f"no column {name!r}; columns are {', '.join(self.columns)}") from None
        return [row[index] for row in self.rows]


class _ReadOnlyDuckDbClient:
    """The SqlClient MetricFlow's engine needs, over one read-only DuckDB connection.

    The engine only uses it for the dialect (renderer) and, in MetricFlow's own
    ``query()``, to run SQL; this module runs the SQL itself, so query() is here for
    completeness of the protocol.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection
        self._renderer = DuckDbSqlPlanRenderer()

    @property
    def sql_engine_type(self) -> SqlEngine:
        return SqlEngine.DUCKDB

    @property
    def sql_plan_renderer(self) -> SqlPlanRenderer:
        return self._renderer

    def query(self, stmt: str, sql_bind_parameter_set: object = None) -> MetricFlowDataTable:
        cursor = self._connection.execute(stmt)
        columns = [description[0] for description in cursor.description]
        return MetricFlowDataTable.create_from_rows(columns, cursor.fetchall())

    def execute(self, stmt: str, sql_bind_parameter_set: object = None) -> None:
        self._connection.execute(stmt)

    def dry_run(self, stmt: str, sql_bind_parameter_set: object = None) -> None:
        self._connection.execute(f"explain {stmt}")

    def close(self) -> None:
        self._connection.close()

    def render_bind_parameter_key(self, bind_parameter_key: str) -> str:
        raise NotImplementedError("bind parameters are not used with DuckDB here")


def _parse_time_bound(value: TimeBound | None, which: str) -> dt.datetime | None:
    """A start or end as MetricFlow wants it (a datetime); dates mean midnight."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidTimeRangeError(
                f"{which} {value!r} is not a date; write it as YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SS)"
            ) from None
    raise InvalidTimeRangeError(
        f"{which} must be a date, a datetime or an ISO date string; got {type(value).__name__}"
    )


def _suggest(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean ...?' for a misspelt name, or nothing when nothing is close."""
    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _manifest_databases(manifest_path: Path) -> set[str]:
    """The catalog names the manifest's relations use (the database file's stem at parse)."""
    document = json.loads(manifest_path.read_text())
    relations = [model["node_relation"] for model in document.get("semantic_models", [])]
    relations += [
        spine["node_relation"]
        for spine in document.get("project_configuration", {}).get("time_spines", [])
    ]
    return {relation["database"] for relation in relations if relation.get("database")}


class SemanticLayer:
    """The product's metrics, answered by MetricFlow over the built DuckDB database.

    Build one per process (construction parses the manifest and plans the join graph,
    about 0.1 s; a query then takes tens of milliseconds) and close it when done.
    Queries are serialised by a lock: MetricFlow resets process-wide id counters per
    query and a DuckDB connection runs one statement at a time.
    """

    def __init__(self, manifest_path: Path, database: Path) -> None:
        manifest_path = Path(manifest_path)
        database = Path(database)
        if not manifest_path.is_file():
            raise SemanticLayerError(
                f"No semantic manifest at {manifest_path}. Run `dbt parse` (or `dbt build`) "
                "in the project first; it writes target/semantic_manifest.json."
            )
        if not database.is_file():
            raise SemanticLayerError(
                f"No database at {database}. Run `dbt build` first, or point "
                "RETAIL_XSELL_DUCKDB_PATH at the built file."
            )
        catalogs = _manifest_databases(manifest_path)
        if len(catalogs) != 1:
            raise SemanticLayerError(
                f"The semantic manifest {manifest_path} refers to {len(catalogs)} databases "
                f"({', '.join(sorted(catalogs)) or 'none'}); expected exactly one DuckDB file."
            )
        (catalog,) = catalogs
        try:
            manifest = parse_manifest_from_dbt_generated_manifest(manifest_path.read_text())
        except Exception as error:  # MetricFlow raises pydantic and its own errors here
            raise SemanticLayerError(
                f"Could not read the semantic manifest {manifest_path}: {error}"
            ) from error

        # The manifest names relations "<catalog>"."main"."orders", where <catalog> is the
        # stem of the file dbt built into. Attaching the file under that name lets the same
        # manifest query a copy of the database kept anywhere, read-only.
        self._connection = duckdb.connect(":memory:")
        escaped_path = str(database).replace("'", "''")
        escaped_catalog = catalog.replace('"', '""')
        self._connection.execute(f"attach '{escaped_path}' as \"{escaped_catalog}\" (read_only)")
        self._lock = threading.Lock()
        self._engine = MetricFlowEngine(
            semantic_manifest_lookup=SemanticManifestLookup(manifest),
            sql_client=_ReadOnlyDuckDbClient(self._connection),
        )
        # MetricFlow turns measures that metrics use directly (the conversion metric's
        # inputs) into private helper metrics; like `mf list metrics`, leave them out.
        self._manifest = manifest
        self._metric_names = frozenset(
            metric.name for metric in manifest.metrics if not metric.type_params.is_private
        )
        self._saved_query_names = frozenset(query.name for query in manifest.saved_queries)
        self._group_bys_by_metric: dict[str, frozenset[str]] = {}
        (spine,) = manifest.project_configuration.time_spines
        self.calendar_start, self.calendar_end = self._connection.execute(
            f"select min({spine.primary_column.name}), max({spine.primary_column.name}) "
            f"from {spine.node_relation.relation_name}"
        ).fetchone()

    @classmethod
    def from_project(
        cls,
        project_dir: Path | None = None,
        target_path: Path | None = None,
        database: Path | None = None,
    ) -> SemanticLayer:
        """The semantic layer of a dbt project directory, as ``mf`` would find it.

        ``target_path`` defaults to ``<project_dir>/target`` (where ``mf`` also looks) and
        ``database`` to the file profiles.yml points dbt at (RETAIL_XSELL_DUCKDB_PATH, or
        the default of RETAIL_XSELL_TARGET), resolved by :mod:`retail_xsell.warehouse`.
        """
        project_dir = Path(project_dir) if project_dir is not None else Path.cwd()
        target_path = Path(target_path) if target_path is not None else project_dir / "target"
        database = Path(database) if database is not None else default_database_path(project_dir)
        return cls(target_path / "semantic_manifest.json", database)

    @classmethod
    def from_publication(cls, published: Path | None = None) -> SemanticLayer:
        """The semantic layer of the current publication, as a consumer reads it.

        ``published`` defaults to RETAIL_XSELL_PUBLISHED_PATH (or the documented
        default). The path is resolved once, so the database file and the semantic
        manifest come from the same publication even if a new one is switched in
        meanwhile; no dbt project or ``target/`` is needed.
        """
        from retail_xsell.publish import published_path

        published = Path(published) if published is not None else published_path()
        database = published.resolve()
        manifest = database.parent / "semantic_manifest.json"
        if not manifest.is_file():
            raise SemanticLayerError(
                f"{published} is not a publication (no {manifest}); run `make publish`, or "
                "use SemanticLayer.from_project() on a working database"
            )
        return cls(manifest, database)

    def __enter__(self) -> SemanticLayer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the DuckDB connection (and with it the read lock on the file)."""
        self._connection.close()

    @property
    def metrics(self) -> list[str]:
        """Every metric name consumers can query, sorted."""
        return sorted(self._metric_names)

    @property
    def saved_queries(self) -> list[str]:
        """Every saved query name, sorted."""
        return sorted(self._saved_query_names)

    def validation_errors(self) -> list[str]:
        """MetricFlow's blocking semantic issues with the manifest, as readable lines.

        The same checks `mf validate-configs` runs before its warehouse checks. dbt's own
        parse validation is weaker: MetricFlow converts legacy measures into metrics
        first, and that conversion can create clashes dbt never sees (two metrics with
        one label), which would only surface when someone runs `mf`.
        """
        result = SemanticManifestValidator().validate_semantic_manifest(self._manifest)
        return [issue.as_readable_str() for issue in result.errors]

    def group_bys(self, metric: str) -> list[str]:
        """What ``metric`` can be grouped by: dimensions and entities, without time grain.

        Time dimensions (``metric_time``, ``customer__signup_date``) take a grain suffix
        when queried: ``metric_time__month``.
        """
        self._check_metrics([metric])
        return sorted(self._group_bys_for(metric))

    def query(
        self,
        metrics: Sequence[str],
        group_by: Sequence[str] = (),
        where: str | Sequence[str] | None = None,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> MetricQueryResult:
        """Compute ``metrics`` grouped by ``group_by``, like ``mf query``.

        ``where`` takes MetricFlow filters, e.g. ``"{{ Dimension('customer__region') }} =
        'Europe'"``. ``start`` and ``end`` bound metric_time, both days included; MetricFlow
        widens them to whole periods of the queried grain (a month query from the 15th
        starts on the 1st). ``order_by`` names columns, ``-`` in front for descending.
        """
        if isinstance(metrics, str):
            metrics = [metrics]
        if not metrics:
            raise SemanticLayerError("Name at least one metric to query.")
        self._check_metrics(metrics)
        self._check_group_bys(metrics, group_by)
        start_time, end_time = self._check_time_range(start, end)
        request = MetricFlowQueryRequest.create(
            metric_names=list(metrics),
            group_by_names=list(group_by),
            where_constraints=[where] if isinstance(where, str) else where,
            time_constraint_start=start_time,
            time_constraint_end=end_time,
            order_by_names=list(order_by) if order_by else None,
            limit=limit,
        )
        return self._run(request)

    def query_saved(
        self,
        name: str,
        where: str | Sequence[str] | None = None,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        limit: int | None = None,
    ) -> MetricQueryResult:
        """Run a saved query (e.g. ``executive_monthly_kpis``) as ``mf query --saved-query``."""
        if name not in self._saved_query_names:
            raise SemanticLayerError(
                f"Unknown saved query {name!r}.{_suggest(name, self._saved_query_names)} "
                f"Saved queries: {', '.join(self.saved_queries) or 'none'}."
            )
        start_time, end_time = self._check_time_range(start, end)
        request = MetricFlowQueryRequest.create(
            saved_query_name=name,
            where_constraints=[where] if isinstance(where, str) else where,
            time_constraint_start=start_time,
            time_constraint_end=end_time,
            limit=limit,
        )
        return self._run(request)

    def _run(self, request: MetricFlowQueryRequest) -> MetricQueryResult:
        with self._lock:
            try:
                explained = self._engine.explain(mf_request=request)
            except MetricFlowException as error:
                # Whatever our own checks did not anticipate (a grain finer than the
                # dimension's, a malformed filter, an offset metric without metric_time):
                # MetricFlow's message names the input and the problem.
                raise SemanticLayerError(str(error).strip()) from error
            sql = explained.sql_statement.without_descriptions.sql
            cursor = self._connection.execute(sql)
            columns = tuple(description[0] for description in cursor.description)
            rows = cursor.fetchall()
        return MetricQueryResult(columns=columns, rows=rows, sql=sql)

    def _check_metrics(self, metrics: Sequence[str]) -> None:
        for metric in metrics:
            if metric not in self._metric_names:
                raise UnknownMetricError(
                    f"Unknown metric {metric!r}.{_suggest(metric, self._metric_names)} "
                    f"Metrics: {', '.join(self.metrics)}."
                )

    def _group_bys_for(self, metric: str) -> frozenset[str]:
        if metric not in self._group_bys_by_metric:
            with self._lock:
                items = self._engine.list_group_bys(metric_names=[metric])
            self._group_bys_by_metric[metric] = frozenset(
                item.granularity_free_dunder_name if isinstance(item, Dimension) else item.name
                for item in items
            )
        return self._group_bys_by_metric[metric]

    def _check_group_bys(self, metrics: Sequence[str], group_by: Sequence[str]) -> None:
        """Name the group-by that no metric has, or the metric that cannot reach it."""
        if isinstance(group_by, str):
            raise SemanticLayerError(
                f"group_by must be a list of names, e.g. [{group_by!r}]; got a string"
            )
        everything = frozenset().union(*(self._group_bys_for(m) for m in self._metric_names))
        for item in group_by:
            if not isinstance(item, str) or "(" in item:
                continue  # object syntax (TimeDimension(...)): leave it to MetricFlow
            name = item.strip().lower()
            stem, _, suffix = name.rpartition("__")
            candidates = {name, stem} if suffix in TIME_GRAINS and stem else {name}
            if not candidates & everything:
                raise UnknownDimensionError(
                    f"Unknown dimension {item!r}: no metric can be grouped by it."
                    f"{_suggest(name, everything)}"
                )
            for metric in metrics:
                if not candidates & self._group_bys_for(metric):
                    raise UnreachableDimensionError(
                        f"Metric {metric!r} cannot be grouped by {item!r}: its data has no "
                        f"link to that dimension. {metric!r} can be grouped by: "
                        f"{', '.join(sorted(self._group_bys_for(metric)))}."
                    )

    def _check_time_range(
        self, start: TimeBound | None, end: TimeBound | None
    ) -> tuple[dt.datetime | None, dt.datetime | None]:
        """Reject what MetricFlow would silently answer with nothing or with wrong rows.

        MetricFlow only logs a warning for a start after the end and returns no rows, and
        every order lies inside the time spine (a dbt test enforces it), so a window
        outside the spine can only be a mistake.
        """
        start_time = _parse_time_bound(start, "start")
        end_time = _parse_time_bound(end, "end")
        if start_time is not None and end_time is not None and start_time > end_time:
            raise InvalidTimeRangeError(
                f"start {start_time:%Y-%m-%d %H:%M:%S} is after end {end_time:%Y-%m-%d %H:%M:%S}"
            )
        first = dt.datetime.combine(self.calendar_start, dt.time())
        last = dt.datetime.combine(self.calendar_end, dt.time.max)
        if (start_time is not None and start_time > last) or (
            end_time is not None and end_time < first
        ):
            raise InvalidTimeRangeError(
                f"the window {start_time or '...'} to {end_time or '...'} lies outside the "
                f"calendar the metrics cover ({self.calendar_start} to {self.calendar_end})"
            )
        return start_time, end_time


def query_metrics(
    metrics: Sequence[str],
    group_by: Sequence[str] = (),
    where: str | Sequence[str] | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
    project_dir: Path | None = None,
    target_path: Path | None = None,
    database: Path | None = None,
) -> MetricQueryResult:
    """One query, start to finish: open the project's semantic layer, ask, close.

    For more than one query keep a :class:`SemanticLayer` open instead; opening costs
    more than a query.
    """
    with SemanticLayer.from_project(project_dir, target_path, database) as layer:
        return layer.query(metrics, group_by, where, start, end, order_by, limit)


__all__ = [
    "InvalidTimeRangeError",
    "MetricQueryResult",
    "SemanticLayer",
    "SemanticLayerError",
    "UnknownDimensionError",
    "UnknownMetricError",
    "UnreachableDimensionError",
    "query_metrics",
]
