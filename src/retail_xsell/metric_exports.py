"""Metric exports: the answers consumers ask for most, computed once per publication.

A metric query through MetricFlow plans (a few milliseconds) and then aggregates the
marts: at 10M purchase lines a grouped order metric reads millions of rows and takes
a second or more, the executive saved query two. dbt Cloud calls precomputed answers
of saved queries *exports*; open-source dbt has none, so the product writes its own.

What is exported (:func:`export_requests`):

- every saved query, as the API asks it (its metrics, group-by and where-filters);
- every metric the semantic layer offers, ungrouped, and by each dimension of the
  metric contract it reaches (:data:`CONTRACT_DIMENSIONS`, DESIGN.md's list), time
  dimensions bare and at each grain of :data:`TIME_GRAINS` MetricFlow accepts;
- except cumulative metrics (``running_total_spend``, ``trailing_90_day_total_spend``;
  not in the metric contract) by time: MetricFlow computes them by joining every order
  line to a window of the calendar, 20 to 97 s an answer at 10M lines: exported, they
  made publishing at 10M take 745 s instead of 45 s. MetricFlow answers them.

Requests whose SQL is the same (``metric_time`` and ``metric_time__day``) share a table.
Publishing the same build again (same build, same working file, same semantic
manifest: :func:`export_source`) copies the previous publication's exports
(:func:`copy_exports`) instead of computing them again.

When: at publish time, on the projection consumers will read (:func:`write_exports`),
after the quality gate passed and before the switch. Each export is the SQL MetricFlow
plans for that request, run once into a table of schema ``metric_exports``; the index
table ``metric_exports.export_index`` maps each request to its table. A publication is
never changed after the switch, so an export can never be staler than the tables it
was computed from.

How they are used: :class:`~retail_xsell.semantic.SemanticLayer` answers a query from
an export when it asks exactly what was exported, with no ``where`` and no
``start``/``end``: ``order_by`` and ``limit`` are applied to the stored rows. A query of
several metrics by one group-by is composed from the metrics' exports the way
MetricFlow composes it (full outer join on the group-by columns, grouped by their
coalesced values). Anything else (filters, time windows, entity group-bys such as
``customer``, several dimensions outside a saved query) goes to MetricFlow as before.
The test suite checks every export, and the composition for every exported group-by,
against MetricFlow's own answer on the built sample.

Nothing here imports MetricFlow at import time (planning asks the layer, which does):
this module decides *what* is exported and writes the tables.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from retail_xsell.ports import quote_identifier, single_row, sql_string

if TYPE_CHECKING:
    from retail_xsell.semantic import SemanticLayer

EXPORT_SCHEMA = "metric_exports"
INDEX_TABLE = "export_index"

#: The dimensions of the metric contract (DESIGN.md): what every metric is exported by.
CONTRACT_DIMENSIONS = (
    "customer__region",
    "customer__country",
    "customer__age_group",
    "customer__gender",
    "customer__rfm_segment",
    "customer__signup_cohort",
    "product__category",
    "product__subcategory",
    "product__brand",
    "product__price_band",
    "order__channel",
    "metric_time",
)

#: The grains a time dimension takes as a suffix (``metric_time__month``) in the catalog,
#: and is exported at (where MetricFlow accepts the grain).
TIME_GRAINS = ("day", "week", "month", "quarter", "year")

#: Names of export tables: e0001, e0002, ... (checked when the index is read).
TABLE_NAME = re.compile(r"^e[0-9]{4,}$")

_SAVED_ITEM = re.compile(
    r"^\s*(?P<desc>-)?\s*(?P<kind>Dimension|TimeDimension|Entity|Metric)"
    r"\(\s*'(?P<name>[a-z0-9_]+)'(?:\s*,\s*'(?P<grain>[a-z]+)')?\s*\)\s*$"
)


def saved_query_item(text: str) -> str:
    """MetricFlow's object syntax in a saved query (``TimeDimension('metric_time',
    'month')``, ``Metric('clv')`` in an order-by) as the name a consumer uses
    (``metric_time__month``, ``clv``); a ``-`` in front (descending, in ``order_by``) is
    kept. Raises ValueError for anything else."""
    match = _SAVED_ITEM.match(text)
    if not match:
        raise ValueError(f"cannot read the saved query item {text!r}")
    grain = match["grain"]
    name = f"{match['name']}__{grain}" if grain else match["name"]
    return f"-{name}" if match["desc"] else name


def export_key(metrics: Sequence[str], group_by: Sequence[str], where: Sequence[str]) -> str:
    """The index key of a request: metrics in their order, group-by names lower case,
    the where-filters as MetricFlow receives them."""
    return json.dumps(
        {
            "metrics": list(metrics),
            "group_by": [name.strip().lower() for name in group_by],
            "where": list(where),
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class ExportRequest:
    """One exported query, as :meth:`SemanticLayer.query` takes it."""

    metrics: tuple[str, ...]
    group_by: tuple[str, ...] = ()
    where: tuple[str, ...] = ()
    saved_query: str | None = None

    @property
    def key(self) -> str:
        return export_key(self.metrics, self.group_by, self.where)

    @property
    def label(self) -> str:
        if self.saved_query:
            return f"saved query {self.saved_query}"
        by = f" by {', '.join(self.group_by)}" if self.group_by else ""
        return f"{', '.join(self.metrics)}{by}"


@dataclass(frozen=True)
class Export:
    """An export as the index records it."""

    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`write_exports` wrote, and what MetricFlow would not plan."""

    written: int
    tables: int
    rows: int
    skipped: tuple[tuple[str, str], ...]
    seconds: float


def export_requests(layer: SemanticLayer) -> list[ExportRequest]:
    """Every saved query, then every metric ungrouped and by each contract dimension it
    reaches (time dimensions bare and at each grain)."""
    requests = []
    for name in layer.saved_queries:
        metrics, group_by, where, _, _ = layer.saved_query_params(name)
        requests.append(ExportRequest(metrics, group_by, where, saved_query=name))
    for metric in layer.metrics:
        reachable = layer.group_by_kinds(metric)
        cumulative = layer.metric_type(metric) == "cumulative"
        requests.append(ExportRequest((metric,)))
        for dimension in CONTRACT_DIMENSIONS:
            kind = reachable.get(dimension)
            if kind is None or (cumulative and kind == "time"):
                continue
            requests.append(ExportRequest((metric,), (dimension,)))
            if kind == "time":
                requests += [
                    ExportRequest((metric,), (f"{dimension}__{grain}",)) for grain in TIME_GRAINS
                ]
    unique = {request.key: request for request in requests}
    return list(unique.values())


INDEX_COLUMNS = """
    key varchar primary key,
    table_name varchar not null,
    label varchar not null,
    metrics json not null,
    group_by json not null,
    where_filters json not null,
    columns json not null,
    row_count bigint not null,
    seconds double not null
"""


@dataclass(frozen=True)
class ExportPlan:
    """What :func:`plan_exports` found: the manifest's catalog, each request with its
    SQL, and each refused request with MetricFlow's reason."""

    catalog: str
    planned: tuple[tuple[ExportRequest, str], ...]
    skipped: tuple[tuple[str, str], ...]


#: Plans by semantic manifest hash, for the life of the process: MetricFlow's SQL depends
#: on the manifest alone, and planning is most of the cost of a small publication.
_PLANS: dict[str, ExportPlan] = {}
_PLANS_KEPT = 4


def plan_exports(database: Path, manifest_path: Path) -> ExportPlan:
    """MetricFlow's SQL for every request of :func:`export_requests`, and the requests
    it refuses to plan with its reason. Planned once per manifest and process."""
    from retail_xsell.semantic import SemanticLayer, SemanticLayerError

    digest = hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()
    if digest in _PLANS:
        return _PLANS[digest]
    planned: list[tuple[ExportRequest, str]] = []
    skipped: list[tuple[str, str]] = []
    with SemanticLayer(manifest_path, database, use_exports=False) as layer:
        for request in export_requests(layer):
            try:
                sql = layer.explain(
                    list(request.metrics),
                    list(request.group_by),
                    trusted_where=list(request.where) or None,
                )
            except SemanticLayerError as error:
                skipped.append((request.label, " ".join(str(error).split())[:400]))
                continue
            planned.append((request, sql))
        plan = ExportPlan(layer.catalog, tuple(planned), tuple(skipped))
    while len(_PLANS) >= _PLANS_KEPT:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[digest] = plan
    return plan


def write_exports(database: Path, manifest_path: Path) -> ExportReport:
    """Compute every export of :func:`export_requests` into ``database`` (a projection
    not yet published, opened for writing here) and index them.

    Planning happens on the semantic layer's locked, read-only connection, which also
    checks each SQL statement reads only the semantic layer's tables; the layer is closed
    before the file is opened for writing. A request MetricFlow refuses to plan (a grain
    finer than the dimension's) is skipped and reported: a consumer asking it gets the
    same refusal from MetricFlow.
    """
    started = time.perf_counter()
    plan = plan_exports(database, manifest_path)
    catalog, planned, skipped = plan.catalog, plan.planned, plan.skipped
    schema = f"{quote_identifier(catalog)}.{quote_identifier(EXPORT_SCHEMA)}"
    total_rows = 0
    tables_by_sql: dict[str, tuple[str, list[str], int]] = {}
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach {sql_string(str(database))} as {quote_identifier(catalog)}")
        con.execute(f"create schema {schema}")
        con.execute(f"create table {schema}.{INDEX_TABLE} ({INDEX_COLUMNS})")
        for request, sql in planned:
            begun = time.perf_counter()
            if sql in tables_by_sql:
                table, columns, rows = tables_by_sql[sql]
                _index(con, schema, request, table, columns, rows, 0.0)
                continue
            table = f"e{len(tables_by_sql) + 1:04d}"
            # CREATE TABLE AS keeps MetricFlow's column names and types exactly; the
            # metrics go last in the order asked, as SemanticLayer answers them.
            planned_columns = [
                description[0]
                for description in con.execute(f"select * from ({sql}) limit 0").description
            ]
            columns = [c for c in planned_columns if c not in request.metrics] + [
                m for m in request.metrics if m in planned_columns
            ]
            selected = ", ".join(quote_identifier(column) for column in columns)
            con.execute(f"create table {schema}.{table} as select {selected} from ({sql})")
            (rows,) = single_row(con, f"select count(*) from {schema}.{table}")
            total_rows += rows
            tables_by_sql[sql] = (table, columns, rows)
            _index(con, schema, request, table, columns, rows, time.perf_counter() - begun)
        con.execute("checkpoint")
    return ExportReport(
        written=len(planned),
        tables=len(tables_by_sql),
        rows=total_rows,
        skipped=tuple(skipped),
        seconds=time.perf_counter() - started,
    )


def _index(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    request: ExportRequest,
    table: str,
    columns: list[str],
    rows: int,
    seconds: float,
) -> None:
    con.execute(
        f"insert into {schema}.{INDEX_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            request.key,
            table,
            request.label,
            json.dumps(list(request.metrics)),
            json.dumps(list(request.group_by)),
            json.dumps(list(request.where)),
            json.dumps(columns),
            rows,
            seconds,
        ],
    )


def read_index(connection: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, Export]:
    """The exports of the database attached as ``catalog``, by request key; none when
    it has no export index (a working database, or a publication from before exports).

    A malformed index is an error, not an empty one: it would mean the publication was
    not written by :func:`write_exports`.
    """
    (present,) = single_row(
        connection,
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = ? "
        "and table_name = ?",
        [catalog, EXPORT_SCHEMA, INDEX_TABLE],
    )
    if not present:
        return {}
    rows = connection.execute(
        f"select key, table_name, columns from "
        f"{quote_identifier(catalog)}.{EXPORT_SCHEMA}.{INDEX_TABLE}"
    ).fetchall()
    exports = {}
    for key, table, columns in rows:
        parsed = json.loads(columns)
        if not TABLE_NAME.match(table) or not all(isinstance(c, str) for c in parsed):
            raise ValueError(f"the metric export index names a table {table!r} it cannot hold")
        exports[key] = Export(table=table, columns=tuple(parsed))
    return exports


def composed_sql(
    schema: str, parts: Sequence[tuple[Export, str]], order_by: Iterable[str], limit: int | None
) -> str:
    """One SELECT answering several metrics by the same group-by from their exports,
    shaped as MetricFlow shapes a multi-metric query: a full outer join on each group-by
    column (against the values coalesced so far), grouped by the coalesced values, each
    metric the MAX of its one value per group. ``parts`` pairs each export with its
    metric's column; ``schema`` is the qualified schema of the export tables."""
    keys = [column for column in parts[0][0].columns if column != parts[0][1]]
    aliases = [f"p{index}" for index in range(len(parts))]

    def coalesced(column: str, upto: int) -> str:
        quoted = quote_identifier(column)
        values = ", ".join(f"{alias}.{quoted}" for alias in aliases[:upto])
        return f"coalesce({values})" if upto > 1 else f"{aliases[0]}.{quoted}"

    key_columns = [f"{coalesced(key, len(parts))} as {quote_identifier(key)}" for key in keys]
    metric_columns = [
        f"max({alias}.{quote_identifier(metric)}) as {quote_identifier(metric)}"
        for alias, (_, metric) in zip(aliases, parts, strict=True)
    ]
    from_clause = f"{schema}.{quote_identifier(parts[0][0].table)} {aliases[0]}"
    for index in range(1, len(parts)):
        table = f"{schema}.{quote_identifier(parts[index][0].table)}"
        if keys:
            condition = " and ".join(
                f"{coalesced(key, index)} = {aliases[index]}.{quote_identifier(key)}"
                for key in keys
            )
            from_clause += f" full outer join {table} {aliases[index]} on {condition}"
        else:
            from_clause += f" cross join {table} {aliases[index]}"
    sql = f"select {', '.join(key_columns + metric_columns)} from {from_clause}"
    if keys:
        sql += " group by " + ", ".join(coalesced(key, len(parts)) for key in keys)
    return _ordered(sql, order_by, limit)


def single_sql(schema: str, export: Export, order_by: Iterable[str], limit: int | None) -> str:
    """The SELECT answering a request from its own export."""
    columns = ", ".join(quote_identifier(column) for column in export.columns)
    table = f"{schema}.{quote_identifier(export.table)}"
    return _ordered(f"select {columns} from {table}", order_by, limit)


def _ordered(sql: str, order_by: Iterable[str], limit: int | None) -> str:
    terms = [
        f"{quote_identifier(name.removeprefix('-'))}{' desc' if name.startswith('-') else ''}"
        for name in order_by
    ]
    if terms:
        sql = f"select * from ({sql}) order by {', '.join(terms)}"
    if limit is not None:
        sql += f" limit {int(limit)}"
    return sql


def export_source(build_invocation_id: str, working: Path, manifest_path: Path) -> dict[str, Any]:
    """What a publication's exports were computed from: the build, the working file's
    size and modification time (as the gate checks them) and the semantic manifest's
    hash. Two publications with the same source have the same exports."""
    stat = working.stat()
    return {
        "build_invocation_id": build_invocation_id,
        "working_size": stat.st_size,
        "working_mtime_ns": stat.st_mtime_ns,
        "semantic_manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
    }


def copy_exports(source: Path, database: Path) -> ExportReport:
    """Copy every export and the index of ``source`` (an earlier publication of the same
    build, :func:`export_source`) into ``database``, table by table, in one transaction:
    on any error ``database`` is left without exports."""
    started = time.perf_counter()
    schema = f"target.{quote_identifier(EXPORT_SCHEMA)}"
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach {sql_string(str(source))} as source (read_only)")
        exports = read_index(con, "source")
        if not exports:
            raise ValueError(f"{source} holds no metric exports to copy")
        con.execute(f"attach {sql_string(str(database))} as target")
        con.execute("begin transaction")
        con.execute(f"create schema {schema}")
        con.execute(f"create table {schema}.{INDEX_TABLE} ({INDEX_COLUMNS})")
        con.execute(
            f"insert into {schema}.{INDEX_TABLE} select * from source.{EXPORT_SCHEMA}.{INDEX_TABLE}"
        )
        tables = sorted({export.table for export in exports.values()})
        for table in tables:
            con.execute(
                f"create table {schema}.{table} as select * from source.{EXPORT_SCHEMA}.{table}"
            )
        (rows,) = single_row(
            con,
            f"select coalesce(sum(row_count), 0) from (select distinct table_name, row_count "
            f"from {schema}.{INDEX_TABLE})",
        )
        con.execute("commit")
        con.execute("checkpoint")
    return ExportReport(
        written=len(exports),
        tables=len(tables),
        rows=int(rows),
        skipped=(),
        seconds=time.perf_counter() - started,
    )


def export_summary(
    report: ExportReport, source: dict[str, Any], copied_from: str | None = None
) -> dict[str, Any]:
    """The report as the publication record keeps it: with what the exports were
    computed from, and the publication they were copied from, if they were."""
    return {
        "source": source,
        "copied_from": copied_from,
        "exports": report.written,
        "tables": report.tables,
        "rows": report.rows,
        "seconds": round(report.seconds, 3),
        "skipped": [{"request": label, "reason": reason} for label, reason in report.skipped],
    }
