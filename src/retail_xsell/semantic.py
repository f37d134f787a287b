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
result table would coerce, and needs no dbt adapter or profile loading (``mf`` runs a
whole ``dbt debug`` first).

The query path can only ever return a metric answer (GitHub issue 10):

- Consumers filter with structured :class:`~retail_xsell.filters.Filter` objects
  (dimension, operator, literal values), checked against the dimensions the queried
  metrics reach and compiled here with quoted literals. MetricFlow pastes a where-filter
  after ``WHERE`` as it is, so raw Jinja/SQL filters are only taken through the
  keyword ``trusted_where=``, for code in this repository, never for consumer input.
- The connection attaches the database read-only, then disables external access (no
  files, COPY, ATTACH, extension installs) and locks its configuration
  (:data:`LOCKDOWN_SETTINGS`).
- Each query runs exactly one statement: the rendered SQL must parse to a single SELECT
  whose tables are all relations of the semantic manifest, without table functions;
  only that parsed statement is executed.
- Database errors reach the caller as :class:`QueryExecutionError`, whose message never
  quotes the database's own (which can contain values from the data).

A publication carries *metric exports* (:mod:`retail_xsell.metric_exports`): the saved
queries and every metric by each contract dimension, computed at publish time. A query
that asks exactly one of them (or several metrics by one exported group-by), without
filters or a time window, is answered from the stored rows, in well under a
millisecond of SQL, instead of aggregating the marts again; the result says so
(:attr:`MetricQueryResult.export`).
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
from metricflow.engine.models import Dimension, DimensionType, Entity
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
from pydantic import ValidationError

from retail_xsell import settings
from retail_xsell.filters import (
    Filter,
    FilterTarget,
    FilterValueError,
    Operator,
    ValueKind,
    as_filters,
    compile_filter,
    value_kind,
)
from retail_xsell.metric_exports import (
    EXPORT_SCHEMA,
    Export,
    composed_sql,
    export_key,
    read_index,
    saved_query_item,
    single_sql,
)
from retail_xsell.ports import quote_identifier, single_row, sql_string

#: Time grains a group-by may end in (``metric_time__month``); MetricFlow's standard ones.
TIME_GRAINS = frozenset(
    {"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}
    | {"day", "week", "month", "quarter", "year"}
)

TimeBound = dt.date | dt.datetime | str

#: Structured filters as query() takes them: one Filter (or a mapping of its fields) or a
#: sequence of them, all of which must hold.
Filters = Filter | dict[str, Any] | Sequence[Filter | dict[str, Any]]

#: DuckDB settings of the layer's connection, in order, once the database is attached:
#: after these the connection cannot open a file, attach another database, COPY, load
#: or install an extension, or change any setting (the lock comes last).
LOCKDOWN_SETTINGS: tuple[tuple[str, str], ...] = (
    ("enable_external_access", "false"),
    ("allow_community_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("autoinstall_known_extensions", "false"),
    ("allow_persistent_secrets", "false"),
    ("lock_configuration", "true"),
)

#: Table references a metric query's SQL may contain besides the manifest's relations.
_ALLOWED_TABLE_REFS = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST"})


class SemanticLayerError(Exception):
    """A metric query that cannot be answered, with a message a consumer can act on."""


class UnknownMetricError(SemanticLayerError):
    """The query names a metric the semantic layer does not define."""


class UnknownDimensionError(SemanticLayerError):
    """The query groups or filters by a name no metric in the semantic layer has."""


class UnreachableDimensionError(SemanticLayerError):
    """The dimension exists, but not for this metric (no join path from its data)."""


class InvalidTimeRangeError(SemanticLayerError):
    """The start or end of the queried window is unreadable, reversed or off the calendar."""


class InvalidFilterError(SemanticLayerError):
    """A filter that is malformed (field, operator, number of values) or whose values do
    not fit its dimension's type."""


class RefusedQueryError(SemanticLayerError):
    """The SQL rendered for a query is not one SELECT over the semantic layer's tables
    (only a trusted where-filter can make it so); nothing was run."""


class QueryExecutionError(SemanticLayerError):
    """The database could not compute the answer.

    The message says what kind of failure it was but never repeats the database's own
    message, which can quote values from the data (a failed cast names the value).
    ``sql`` is the statement that failed, for the operator's logs.
    """

    def __init__(self, message: str, sql: str) -> None:
        super().__init__(message)
        self.sql = sql


@dataclass(frozen=True)
class MetricQueryResult:
    """The rows of a metric query, as DuckDB returned them, and the SQL that produced them.

    Column names are MetricFlow's: metrics by name, group-bys as queried in dunder form
    (``customer__region``, ``metric_time__month``); the group-bys come first, then the
    metrics in the order asked. Counts are int, money is Decimal, ratios are float, time
    is datetime.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    sql: str
    #: The export table(s) the rows came from (``e0007``, ``e0007+e0012`` when composed),
    #: or None when MetricFlow computed them from the marts.
    export: str | None = None

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
    """The SqlClient MetricFlow's engine needs, over the layer's locked-down connection.

    The engine only uses it for the dialect (renderer) and, in MetricFlow's own
    ``query()``, to run SQL; this module runs the SQL itself, so query() is here for
    completeness of the protocol, and goes through the same single-SELECT check.
    """

    def __init__(self, layer: SemanticLayer) -> None:
        self._layer = layer
        self._renderer = DuckDbSqlPlanRenderer()

    @property
    def sql_engine_type(self) -> SqlEngine:
        return SqlEngine.DUCKDB

    @property
    def sql_plan_renderer(self) -> SqlPlanRenderer:
        return self._renderer

    def query(self, stmt: str, sql_bind_parameter_set: object = None) -> MetricFlowDataTable:
        columns, rows = self._layer._execute(stmt)
        return MetricFlowDataTable.create_from_rows(list(columns), rows)

    def execute(self, stmt: str, sql_bind_parameter_set: object = None) -> None:
        raise RefusedQueryError("the semantic layer only reads; it runs no other statements")

    def dry_run(self, stmt: str, sql_bind_parameter_set: object = None) -> None:
        self._layer._checked_statement(stmt)

    def close(self) -> None:
        self._layer.close()

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


def locked_down_connection(database: Path, catalog: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with ``database`` attached read-only as ``catalog``, locked.

    The attach has to come first: with external access disabled DuckDB opens no file,
    and the configuration lock keeps it that way (and every other setting as it is).
    """
    connection = duckdb.connect(":memory:")
    try:
        connection.execute(
            f"attach {sql_string(str(database))} as {quote_identifier(catalog)} (read_only)"
        )
        for name, value in LOCKDOWN_SETTINGS:
            connection.execute(f"set {name} = {value}")
        locked = connection.execute(
            "select current_setting('enable_external_access'), "
            "current_setting('lock_configuration')"
        ).fetchone()
        if locked != (False, True):  # pragma: no cover - a DuckDB that ignored the settings
            raise SemanticLayerError("could not lock down the DuckDB connection; refusing to run")
    except BaseException:
        connection.close()
        raise
    return connection


def _table_refs(node: object) -> Iterable[dict[str, Any]]:
    """Every table reference in a json_serialize_sql tree (FROM items, joins, subqueries).

    Table references are the objects with a ``type`` and a ``sample`` that are neither
    expressions (those have ``class``) nor query nodes (those have ``modifiers``).
    """
    if isinstance(node, dict):
        if "type" in node and "sample" in node and "class" not in node and "modifiers" not in node:
            yield node
        for value in node.values():
            yield from _table_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _table_refs(value)


def _cte_names(node: object) -> set[str]:
    """The names of every common table expression defined anywhere in the tree."""
    names: set[str] = set()
    if isinstance(node, dict):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            names |= {entry["key"].lower() for entry in cte_map.get("map", [])}
        for value in node.values():
            names |= _cte_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _cte_names(value)
    return names


_EXECUTION_FAILURES = {
    "ConversionException": "a value could not be converted to the type it is compared with",
    "OutOfRangeException": "a value is out of range for its type",
    "OutOfMemoryException": "the database ran out of memory",
    "InterruptException": "the query was interrupted",
    "CatalogException": "a table or column the query needs is missing from the database",
    "BinderException": "the query does not fit the tables' columns or types",
    "PermissionException": "it needs an access the semantic layer does not grant",
    "InvalidInputException": "the database refused an input value",
}


def _execution_message(error: duckdb.Error) -> str:
    """What went wrong, in words that cannot contain a value from the data."""
    kind = _EXECUTION_FAILURES.get(type(error).__name__, "the database reported an error")
    return (
        f"The query could not be computed: {kind} ({type(error).__name__}). The "
        "database's message is withheld because it can quote values from the data."
    )


def _check_limit(limit: object) -> int | None:
    """A row limit is a whole number of rows (MetricFlow writes it into the SQL)."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise SemanticLayerError(f"limit must be a whole number of rows, 0 or more; got {limit!r}")
    return limit


def _validation_message(error: ValidationError) -> str:
    """A filter's pydantic errors as one line per bad field, e.g. ``values[0]: ...``."""
    problems: list[str] = []
    for issue in error.errors():
        location = issue["loc"]
        if location and location[0] == "values" and len(location) >= 2:
            field = f"values[{location[1]}]"
            if issue["type"] == "string_too_long":
                message = issue["msg"]
            else:
                message = "must be a string, a number, true/false, a date or a datetime"
        else:
            field = ".".join(str(part) for part in location) or "filter"
            message = issue["msg"].removeprefix("Value error, ")
            if field == "operator":
                message = "must be one of " + ", ".join(repr(op.value) for op in Operator)
        line = f"{field}: {message}"
        if line not in problems:
            problems.append(line)
    return "Invalid filter: " + "; ".join(problems)


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

    def __init__(self, manifest_path: Path, database: Path, *, use_exports: bool = True) -> None:
        """``use_exports=False`` ignores the database's metric exports: every answer is
        MetricFlow's (how the exports are computed, and checked)."""
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
        #: The name the database is attached under (the manifest's catalog).
        self.catalog = catalog
        try:
            manifest = parse_manifest_from_dbt_generated_manifest(manifest_path.read_text())
        except Exception as error:  # MetricFlow raises pydantic and its own errors here
            raise SemanticLayerError(
                f"Could not read the semantic manifest {manifest_path}: {error}"
            ) from error

        # The manifest names relations "<catalog>"."main"."orders", where <catalog> is the
        # stem of the file dbt built into. Attaching the file under that name lets the same
        # manifest query a copy of the database kept anywhere, read-only.
        try:
            self._connection = locked_down_connection(database, catalog)
        except duckdb.Error as error:
            raise SemanticLayerError(
                f"Could not open {database} read-only: {type(error).__name__}"
            ) from None
        self._lock = threading.Lock()
        self._engine = MetricFlowEngine(
            semantic_manifest_lookup=SemanticManifestLookup(manifest),
            sql_client=_ReadOnlyDuckDbClient(self),
        )
        # What the rendered SQL may read: the semantic models' tables and the time spine.
        self._relations = {
            model.name: model.node_relation.relation_name for model in manifest.semantic_models
        }
        self._allowed_tables = frozenset(
            (relation.database or "").lower()
            + "."
            + relation.schema_name.lower()
            + "."
            + relation.alias.lower()
            for relation in [model.node_relation for model in manifest.semantic_models]
            + [spine.node_relation for spine in manifest.project_configuration.time_spines]
        )
        try:
            self._exports: dict[str, Export] = (
                read_index(self._connection, catalog) if use_exports else {}
            )
        except (ValueError, duckdb.Error) as error:
            self._connection.close()
            raise SemanticLayerError(
                f"The metric exports of {database} are unreadable: {error}"
            ) from None
        self._export_schema = f"{quote_identifier(catalog)}.{quote_identifier(EXPORT_SCHEMA)}"
        self._allowed_tables |= {
            f"{catalog.lower()}.{EXPORT_SCHEMA}.{export.table}" for export in self._exports.values()
        }
        self._column_kinds: dict[tuple[str, str], ValueKind | None] = {}
        # MetricFlow turns measures that metrics use directly (the conversion metric's
        # inputs) into private helper metrics; like `mf list metrics`, leave them out.
        self._manifest = manifest
        self._metric_names = frozenset(
            metric.name for metric in manifest.metrics if not metric.type_params.is_private
        )
        self._saved_query_names = frozenset(query.name for query in manifest.saved_queries)
        self._saved_query_params = {
            query.name: query.query_params for query in manifest.saved_queries
        }
        self._items_by_metric: dict[str, dict[str, Dimension | Entity]] = {}
        (spine,) = manifest.project_configuration.time_spines
        self.calendar_start, self.calendar_end = single_row(
            self._connection,
            f"select min({spine.primary_column.name}), max({spine.primary_column.name}) "
            f"from {spine.node_relation.relation_name}",
        )

    @classmethod
    def from_project(
        cls,
        project_dir: Path | None = None,
        target_path: Path | None = None,
        database: Path | None = None,
    ) -> SemanticLayer:
        """The semantic layer of a dbt project directory, as ``mf`` would find it.

        ``project_dir`` defaults to :func:`retail_xsell.settings.project_dir`,
        ``target_path`` to ``<project_dir>/target`` (where ``mf`` also looks) and
        ``database`` to the file profiles.yml points dbt at (RETAIL_XSELL_DUCKDB_PATH, or
        the default of RETAIL_XSELL_TARGET), resolved by :mod:`retail_xsell.settings`.
        """
        project_dir = Path(project_dir) if project_dir is not None else settings.project_dir()
        target_path = (
            Path(target_path) if target_path is not None else settings.target_path(project_dir)
        )
        database = Path(database) if database is not None else settings.database_path(project_dir)
        return cls(target_path / "semantic_manifest.json", database)

    @classmethod
    def from_publication(cls, published: Path | None = None) -> SemanticLayer:
        """The semantic layer of the current publication, as a consumer reads it.

        ``published`` defaults to RETAIL_XSELL_PUBLISHED_PATH (or the documented
        default). The path is resolved once, so the database file and the semantic
        manifest come from the same publication even if a new one is switched in
        meanwhile; no dbt project or ``target/`` is needed.
        """
        published = Path(published) if published is not None else settings.published_path()
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

    @property
    def exports(self) -> int:
        """How many metric exports the database holds (0 for a working database)."""
        return len(self._exports)

    def saved_query_params(
        self, name: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], int | None]:
        """A saved query as :meth:`query` would ask it: metrics, group-by and order-by in
        dunder form (``metric_time__month``, ``-`` for descending), where-filters as
        written, and its limit."""
        if name not in self._saved_query_names:
            raise SemanticLayerError(
                f"Unknown saved query {name!r}.{_suggest(name, self._saved_query_names)} "
                f"Saved queries: {', '.join(self.saved_queries) or 'none'}."
            )
        params = self._saved_query_params[name]
        where = params.where.where_filters if params.where else []
        try:
            return (
                tuple(params.metrics),
                tuple(saved_query_item(item) for item in params.group_by),
                tuple(item.where_sql_template for item in where),
                tuple(saved_query_item(item) for item in params.order_by),
                params.limit,
            )
        except ValueError as error:
            raise SemanticLayerError(f"Saved query {name!r}: {error}") from None

    def metric_type(self, metric: str) -> str:
        """The MetricFlow type of ``metric``: simple, ratio, cumulative, derived or
        conversion."""
        self._check_metrics([metric])
        (found,) = [m for m in self._manifest.metrics if m.name == metric]
        return str(found.type.value).lower()

    def group_by_kinds(self, metric: str) -> dict[str, str]:
        """What ``metric`` can be grouped by, as in :meth:`group_bys`, each with its kind:
        ``entity``, ``time`` (takes a grain) or ``categorical``."""
        self._check_metrics([metric])
        return {
            name: "entity"
            if isinstance(item, Entity)
            else "time"
            if item.type is DimensionType.TIME
            else "categorical"
            for name, item in sorted(self._items_for(metric).items())
        }

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
        where: Filters | None = None,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        *,
        trusted_where: str | Sequence[str] | None = None,
    ) -> MetricQueryResult:
        """Compute ``metrics`` grouped by ``group_by``, like ``mf query``.

        ``where`` takes structured filters, all of which must hold:
        ``Filter(dimension="customer__region", operator="eq", value="Europe")`` (or the
        same as a dict). Each filter's dimension must be reachable from every metric, as
        a group-by must. ``start`` and ``end`` bound metric_time, both days included;
        MetricFlow widens them to whole periods of the queried grain (a month query from
        the 15th starts on the 1st). ``order_by`` names columns, ``-`` in front for
        descending.

        ``trusted_where`` takes raw MetricFlow filters (``"{{ Dimension('customer__region')
        }} = 'Europe'"``) and is for code in this repository only: MetricFlow pastes them
        into the SQL as they are. Never pass consumer input to it. Even so the SQL runs
        as a single SELECT over the semantic layer's tables on the locked connection.
        """
        if isinstance(metrics, str):
            metrics = [metrics]
        if not metrics:
            raise SemanticLayerError("Name at least one metric to query.")
        self._check_metrics(metrics)
        self._check_group_bys(metrics, group_by)
        constraints = self._where_constraints(metrics, where, trusted_where)
        start_time, end_time = self._check_time_range(start, end)
        checked_limit = _check_limit(limit)
        if start_time is None and end_time is None:
            exported = self._from_exports(
                metrics, group_by, constraints or [], order_by or [], checked_limit
            )
            if exported is not None:
                return exported
        request = MetricFlowQueryRequest.create(
            metric_names=list(metrics),
            group_by_names=list(group_by),
            where_constraints=constraints,
            time_constraint_start=start_time,
            time_constraint_end=end_time,
            order_by_names=list(order_by) if order_by else None,
            limit=checked_limit,
        )
        return self._run(request, metrics)

    def explain(
        self,
        metrics: Sequence[str],
        group_by: Sequence[str] = (),
        *,
        trusted_where: str | Sequence[str] | None = None,
    ) -> str:
        """The SQL MetricFlow plans for a query, checked as a query's SQL is, not run
        (how :mod:`retail_xsell.metric_exports` computes its tables)."""
        self._check_metrics(metrics)
        self._check_group_bys(metrics, group_by)
        request = MetricFlowQueryRequest.create(
            metric_names=list(metrics),
            group_by_names=list(group_by),
            where_constraints=self._where_constraints(metrics, None, trusted_where),
        )
        with self._lock:
            sql = self._plan(request)
            self._checked_statement(sql)
        return sql

    def query_saved(
        self,
        name: str,
        where: Filters | None = None,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        limit: int | None = None,
        *,
        trusted_where: str | Sequence[str] | None = None,
    ) -> MetricQueryResult:
        """Run a saved query (e.g. ``executive_monthly_kpis``) as ``mf query --saved-query``.

        ``where`` narrows it with structured filters on dimensions all of the saved
        query's metrics reach; ``trusted_where`` is for in-repo code only, as in
        :meth:`query`.
        """
        metrics, group_by, saved_where, order_by, saved_limit = self.saved_query_params(name)
        constraints = self._where_constraints(metrics, where, trusted_where)
        start_time, end_time = self._check_time_range(start, end)
        checked_limit = _check_limit(limit)
        if not constraints and start_time is None and end_time is None:
            exported = self._from_exports(
                metrics,
                group_by,
                saved_where,
                order_by,
                checked_limit if checked_limit is not None else saved_limit,
            )
            if exported is not None:
                return exported
        request = MetricFlowQueryRequest.create(
            saved_query_name=name,
            where_constraints=constraints,
            time_constraint_start=start_time,
            time_constraint_end=end_time,
            limit=checked_limit,
        )
        return self._run(request, metrics)

    def _from_exports(
        self,
        metrics: Sequence[str],
        group_by: Sequence[str],
        where: Sequence[str],
        order_by: Sequence[str],
        limit: int | None,
    ) -> MetricQueryResult | None:
        """The answer from the metric exports, or None when they do not hold it.

        Exactly the exported request, or (without filters) several distinct metrics each
        exported by the same group-by, composed as MetricFlow composes them. ``order_by``
        must name result columns; otherwise MetricFlow answers (and explains the error).
        """
        if not self._exports or any("(" in name for name in group_by):
            return None
        exact = self._exports.get(export_key(metrics, group_by, where))
        parts: list[tuple[Export, str]] = []
        if exact is not None:
            columns = exact.columns
            used = exact.table
        elif not where and len(metrics) > 1 and len(set(metrics)) == len(metrics):
            for metric in metrics:
                part = self._exports.get(export_key([metric], group_by, ()))
                if part is None:
                    return None
                parts.append((part, metric))
            keys = {tuple(c for c in part.columns if c != metric) for part, metric in parts}
            if len(keys) != 1:
                return None
            columns = keys.pop() + tuple(metrics)
            used = "+".join(part.table for part, _ in parts)
        else:
            return None
        terms = [name.strip().lower() for name in order_by]
        if any(term.removeprefix("-") not in columns for term in terms):
            return None
        if exact is not None:
            sql = single_sql(self._export_schema, exact, terms, limit)
        else:
            sql = composed_sql(self._export_schema, parts, terms, limit)
        with self._lock:
            result_columns, rows = self._execute(sql)
        return MetricQueryResult(columns=result_columns, rows=rows, sql=sql, export=used)

    def _where_constraints(
        self,
        metrics: Sequence[str],
        where: Filters | None,
        trusted_where: str | Sequence[str] | None,
    ) -> list[str] | None:
        """MetricFlow's where-filters: the compiled structured ones, then trusted text."""
        try:
            filters = as_filters(where)
        except TypeError as error:
            raise InvalidFilterError(
                f"{error}. Raw filters are for in-repo code only (trusted_where=)."
            ) from None
        except ValidationError as error:
            raise InvalidFilterError(_validation_message(error)) from None
        constraints = []
        for condition in filters:
            target = self._filter_target(metrics, condition.dimension)
            try:
                constraints.append(compile_filter(condition, target))
            except FilterValueError as error:
                raise InvalidFilterError(str(error)) from None
        if isinstance(trusted_where, str):
            constraints.append(trusted_where)
        elif trusted_where is not None:
            constraints.extend(trusted_where)
        return constraints or None

    def _filter_target(self, metrics: Sequence[str], dimension: str) -> FilterTarget:
        """The dimension a filter names, checked like a group-by, with its value kind."""
        self._check_group_bys(metrics, [dimension], verb="filtered")
        items = self._items_for(metrics[0])
        name = dimension.strip().lower()
        stem, _, grain = name.rpartition("__")
        if name in items:
            item, grain = items[name], ""
        else:  # a time dimension with a grain: _check_group_bys found the stem
            item = items[stem]
        if isinstance(item, Entity):
            reference = f"{{{{ Entity('{item.name}') }}}}"
            kind = self._column_kind(
                item.semantic_model_reference.semantic_model_name, item.expr or item.name
            )
        elif item.type is DimensionType.TIME:
            dunder = item.granularity_free_dunder_name
            reference = (
                f"{{{{ TimeDimension('{dunder}', '{grain}') }}}}"
                if grain
                else f"{{{{ TimeDimension('{dunder}') }}}}"
            )
            kind = ValueKind.TIME
        else:
            reference = f"{{{{ Dimension('{item.granularity_free_dunder_name}') }}}}"
            model = item.semantic_model_reference
            kind = (
                self._column_kind(model.semantic_model_name, item.expr or item.name)
                if model is not None
                else None
            )
        if grain and not (isinstance(item, Dimension) and item.type is DimensionType.TIME):
            raise InvalidFilterError(f"{dimension!r} is not a time dimension; it takes no grain")
        if kind is None:
            raise InvalidFilterError(
                f"{dimension!r} cannot be filtered: its values have no type a filter compares"
            )
        return FilterTarget(name=dimension, reference=reference, kind=kind)

    def _column_kind(self, semantic_model: str, expr: str) -> ValueKind | None:
        """What a dimension's values are, from the type DuckDB gives its expression."""
        key = (semantic_model, expr)
        if key not in self._column_kinds:
            relation = self._relations[semantic_model]
            with self._lock:
                (row,) = self._connection.execute(
                    f"describe select {expr} as value from {relation}"
                ).fetchall()
            self._column_kinds[key] = value_kind(row[1])
        return self._column_kinds[key]

    def _run(self, request: MetricFlowQueryRequest, metrics: Sequence[str]) -> MetricQueryResult:
        with self._lock:
            sql = self._plan(request)
            columns, rows = self._execute(sql)
        return _metrics_as_asked(MetricQueryResult(columns=columns, rows=rows, sql=sql), metrics)

    def _plan(self, request: MetricFlowQueryRequest) -> str:
        """MetricFlow's SQL for ``request``; the caller holds the lock."""
        try:
            explained = self._engine.explain(mf_request=request)
        except MetricFlowException as error:
            # Whatever our own checks did not anticipate (a grain finer than the
            # dimension's, a malformed trusted filter, an offset metric without
            # metric_time): MetricFlow's message names the input and the problem.
            raise SemanticLayerError(str(error).strip()) from error
        return explained.sql_statement.without_descriptions.sql

    def _checked_statement(self, sql: str) -> duckdb.Statement:
        """The one SELECT in ``sql``, if it reads nothing but the manifest's relations.

        Refuses more than one statement (DuckDB's execute would run them all), anything
        but a SELECT, table functions (read_csv, glob, query, duckdb_settings...) and any
        table outside the semantic models and the time spine.
        """
        try:
            statements = self._connection.extract_statements(sql)
        except duckdb.Error as error:
            raise RefusedQueryError(
                f"The query's SQL does not parse ({type(error).__name__}); nothing was run."
            ) from None
        if len(statements) != 1 or statements[0].type is not duckdb.StatementType.SELECT:
            kinds = ", ".join(statement.type.name for statement in statements) or "none"
            raise RefusedQueryError(
                f"A metric query runs exactly one SELECT; this SQL holds {len(statements)} "
                f"statement(s) ({kinds}). Nothing was run."
            )
        (serialized,) = single_row(self._connection, "select json_serialize_sql(?)", [sql])
        tree = json.loads(serialized)
        if tree.get("error"):
            raise RefusedQueryError("The query's SQL could not be analysed; nothing was run.")
        ctes = _cte_names(tree)
        for ref in _table_refs(tree):
            kind = ref["type"]
            if kind not in _ALLOWED_TABLE_REFS:
                raise RefusedQueryError(
                    f"A metric query reads only the semantic layer's tables; this SQL uses a "
                    f"{kind.lower().replace('_', ' ')}. Nothing was run."
                )
            if kind != "BASE_TABLE":
                continue
            parts = (ref.get("catalog_name", ""), ref.get("schema_name", ""), ref["table_name"])
            qualified = ".".join(part.lower() for part in parts)
            unqualified_cte = not parts[0] and not parts[1] and parts[2].lower() in ctes
            if qualified not in self._allowed_tables and not unqualified_cte:
                raise RefusedQueryError(
                    f"A metric query reads only the semantic layer's tables; this SQL reads "
                    f"{'.'.join(p for p in parts if p)}. Nothing was run."
                )
        return statements[0]

    def _execute(self, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Run the single checked SELECT; errors come back without the database's text."""
        statement = self._checked_statement(sql)
        try:
            cursor = self._connection.execute(statement)
            columns = tuple(description[0] for description in cursor.description)
            rows = cursor.fetchall()
        except duckdb.Error as error:
            raise QueryExecutionError(_execution_message(error), sql) from None
        return columns, rows

    def _check_metrics(self, metrics: Sequence[str]) -> None:
        for metric in metrics:
            if metric not in self._metric_names:
                raise UnknownMetricError(
                    f"Unknown metric {metric!r}.{_suggest(metric, self._metric_names)} "
                    f"Metrics: {', '.join(self.metrics)}."
                )

    def _items_for(self, metric: str) -> dict[str, Dimension | Entity]:
        """What ``metric`` can be grouped or filtered by, by grain-free dunder name."""
        if metric not in self._items_by_metric:
            with self._lock:
                items = self._engine.list_group_bys(metric_names=[metric])
            by_name: dict[str, Dimension | Entity] = {}
            for item in items:
                name = (
                    item.granularity_free_dunder_name if isinstance(item, Dimension) else item.name
                )
                by_name.setdefault(name, item)
            self._items_by_metric[metric] = by_name
        return self._items_by_metric[metric]

    def _group_bys_for(self, metric: str) -> frozenset[str]:
        return frozenset(self._items_for(metric))

    def _check_group_bys(
        self, metrics: Sequence[str], group_by: Sequence[str], verb: str = "grouped"
    ) -> None:
        """Name the group-by (or filter dimension) that no metric has, or the metric that
        cannot reach it."""
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
                    f"Unknown dimension {item!r}: no metric can be {verb} by it."
                    f"{_suggest(name, everything)}"
                )
            for metric in metrics:
                if not candidates & self._group_bys_for(metric):
                    raise UnreachableDimensionError(
                        f"Metric {metric!r} cannot be {verb} by {item!r}: its data has no "
                        f"link to that dimension. {metric!r} can be {verb} by: "
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


def _metrics_as_asked(result: MetricQueryResult, metrics: Sequence[str]) -> MetricQueryResult:
    """``result`` with its metric columns in the order they were asked for.

    MetricFlow orders a multi-metric answer by the semantic models it computed them
    from (``clv, predicted_clv, historical_clv`` when asked ``clv, historical_clv,
    predicted_clv``); an answer composed from exports has them as asked. Putting them
    in the asked order here makes both paths answer with the same columns.
    """
    wanted = [c for c in result.columns if c not in metrics] + [
        m for m in dict.fromkeys(metrics) if m in result.columns
    ]
    if tuple(wanted) == result.columns or len(wanted) != len(result.columns):
        return result
    positions = [result.columns.index(column) for column in wanted]
    rows = [tuple(row[i] for i in positions) for row in result.rows]
    return MetricQueryResult(columns=tuple(wanted), rows=rows, sql=result.sql)


def query_metrics(
    metrics: Sequence[str],
    group_by: Sequence[str] = (),
    where: Filters | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
    project_dir: Path | None = None,
    target_path: Path | None = None,
    database: Path | None = None,
    *,
    trusted_where: str | Sequence[str] | None = None,
) -> MetricQueryResult:
    """One query, start to finish: open the project's semantic layer, ask, close.

    For more than one query keep a :class:`SemanticLayer` open instead; opening costs
    more than a query. ``where`` and ``trusted_where`` as in :meth:`SemanticLayer.query`.
    """
    with SemanticLayer.from_project(project_dir, target_path, database) as layer:
        return layer.query(
            metrics, group_by, where, start, end, order_by, limit, trusted_where=trusted_where
        )


__all__ = [
    "LOCKDOWN_SETTINGS",
    "Filter",
    "Filters",
    "InvalidFilterError",
    "InvalidTimeRangeError",
    "MetricQueryResult",
    "QueryExecutionError",
    "RefusedQueryError",
    "SemanticLayer",
    "SemanticLayerError",
    "UnknownDimensionError",
    "UnknownMetricError",
    "UnreachableDimensionError",
    "query_metrics",
]
