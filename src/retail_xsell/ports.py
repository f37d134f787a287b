"""The output ports: which relations of the working database a publication carries.

A publication is a consumer projection, not a copy of the working database. What it
holds is derived from dbt's artifacts, never from a hand list: every model with
``access: public`` (the consumer-aligned marts, contracts enforced), plus every relation
the semantic manifest reads (the time spine MetricFlow needs to answer cumulative and
offset metrics). Raw seeds, base, staging, intermediate, quarantine and audit relations
are never ports, whatever their access, unless the semantic layer reads them; a model
the semantic layer reads must therefore be safe to ship (the gate's PII scan checks it).

The same list drives the published DuckDB file, the Parquet ports and the data
contracts generated for them, so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell.governance import entry_meta, is_pii_in_clear


@dataclass(frozen=True)
class Partition:
    """How a large mart's Parquet port is split into folders (hive style, key=value).

    ``expression`` is SQL over the mart's own columns; its value becomes the extra
    column ``column``, written into the files too, so every file is self-describing.
    """

    column: str
    expression: str
    data_type: str
    description: str


#: Marts large enough to split their Parquet port. Order lines grow with every day of
#: trade; a month per folder lets a reader prune by time and a rollback stay cheap.
PARQUET_PARTITIONS: dict[str, Partition] = {
    "order_lines": Partition(
        column="order_month",
        expression="cast(date_trunc('month', order_date) as date)",
        data_type="date",
        description=(
            "First day of the month of `order_date`: the Parquet partition key "
            "(folder order_month=YYYY-MM-DD). Not a column of the mart itself."
        ),
    ),
}


@dataclass(frozen=True)
class PortColumn:
    name: str
    data_type: str
    description: str
    meta: dict[str, Any]

    @property
    def classification(self) -> str | None:
        return self.meta.get("classification")

    @property
    def pii(self) -> str | None:
        """The kind of personal data the column derives from (email, phone, ...), if any."""
        return self.meta.get("pii")

    @property
    def pii_treatment(self) -> str | None:
        """How that personal data was made safe (hashed, masked, generalised), if it was."""
        return self.meta.get("pii_treatment")

    @property
    def is_pii_in_clear(self) -> bool:
        """Personal data without a treatment (:func:`retail_xsell.governance.is_pii_in_clear`)."""
        return is_pii_in_clear(self.meta)


@dataclass(frozen=True)
class PortModel:
    """One relation of the working database that consumers may read."""

    name: str  # dbt model name
    unique_id: str
    schema: str
    identifier: str  # relation name in the database (a versioned model's alias: name_v2)
    description: str
    access: str
    group: str | None
    version: str | None
    latest_version: str | None
    tags: tuple[str, ...]
    columns: tuple[PortColumn, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str = "public"  # "public" or "semantic layer" (why it is a port)

    @property
    def partition(self) -> Partition | None:
        return PARQUET_PARTITIONS.get(self.identifier)

    def column(self, name: str) -> PortColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.identifier} has no column {name!r}")


def semantic_relations(semantic_manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """(schema, identifier) of every relation the semantic layer reads."""
    relations = [model["node_relation"] for model in semantic_manifest.get("semantic_models", [])]
    relations += [
        spine["node_relation"]
        for spine in semantic_manifest.get("project_configuration", {}).get("time_spines", [])
    ]
    return {(relation["schema_name"], relation["alias"]) for relation in relations}


def output_port_models(
    manifest: dict[str, Any], semantic_manifest: dict[str, Any]
) -> list[PortModel]:
    """The models a publication carries, sorted by relation name.

    Raises ValueError when the semantic manifest reads a relation that no model of the
    manifest builds (the artifacts are from different builds).
    """
    wanted = semantic_relations(semantic_manifest)
    ports, found = [], set()
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        identifier = node.get("alias") or node["name"]
        key = (node["schema"], identifier)
        if node.get("access") == "public":
            reason = "public"
        elif key in wanted:
            reason = "semantic layer"
        else:
            continue
        found.add(key)
        version = node.get("version")
        latest = node.get("latest_version")
        ports.append(
            PortModel(
                name=node["name"],
                unique_id=node["unique_id"],
                schema=node["schema"],
                identifier=identifier,
                description=" ".join((node.get("description") or "").split()),
                access=node.get("access") or "protected",
                group=node.get("group"),
                version=None if version is None else str(version),
                latest_version=None if latest is None else str(latest),
                tags=tuple(node.get("tags") or ()),
                columns=tuple(
                    PortColumn(
                        name=column["name"],
                        data_type=column.get("data_type") or "",
                        description=" ".join((column.get("description") or "").split()),
                        meta=entry_meta(column),
                    )
                    for column in node["columns"].values()
                ),
                meta=entry_meta(node),
                reason=reason,
            )
        )
    missing = wanted - found
    if missing:
        names = ", ".join(f"{schema}.{name}" for schema, name in sorted(missing))
        raise ValueError(
            f"the semantic manifest reads {names}, which no model of manifest.json builds; "
            "are target/manifest.json and target/semantic_manifest.json from the same build?"
        )
    return sorted(ports, key=lambda port: (port.schema, port.identifier))


def quote_identifier(identifier: str) -> str:
    """A DuckDB identifier in double quotes, inner quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A DuckDB string literal in single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def model_relation(node: dict[str, Any]) -> str:
    """``"schema"."table"`` of a manifest model node, in the database it was built into."""
    identifier = node.get("alias") or node["name"]
    return f"{quote_identifier(node['schema'])}.{quote_identifier(identifier)}"


def single_row(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: object = None
) -> tuple[Any, ...]:
    """The one row of a query that always returns exactly one (an aggregate, a count,
    COPY's row count), fetched to the end so the connection is free for the next query."""
    rows = connection.execute(sql, parameters).fetchall()
    if len(rows) != 1:
        raise ValueError(f"expected one row, got {len(rows)} from: {' '.join(sql.split())[:120]}")
    return rows[0]


def qualified_name(catalog: str, port: PortModel) -> str:
    """``"catalog"."schema"."table"`` of a port in an attached database."""
    return ".".join(quote_identifier(part) for part in (catalog, port.schema, port.identifier))


def parquet_folder(directory: Path, port: PortModel) -> Path:
    """Where a port's Parquet files live: ``<directory>/<relation name>/``."""
    return directory / port.identifier


def export_parquet(
    connection: duckdb.DuckDBPyConnection,
    ports: list[PortModel],
    directory: Path,
    catalog: str = "main",
) -> dict[str, int]:
    """Write every port as Parquet under ``directory`` and return the rows written per port.

    ``catalog`` is the attached database the ports are read from (the working or the
    published file). A partitioned port gets one hive folder per partition value
    (``order_lines/order_month=2024-03-01/data_0.parquet``); the others one file
    (``products/data_0.parquet``). Rows are written in the order of the first column, so
    the same data always gives the same files.
    """
    written: dict[str, int] = {}
    for port in ports:
        folder = parquet_folder(directory, port)
        source = qualified_name(catalog, port)
        order = ", ".join(quote_identifier(column.name) for column in port.columns[:1]) or "all"
        if port.partition is None:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / "data_0.parquet"
            select = f"select * from {source} order by {order}"
            options = "format parquet, compression zstd"
        else:
            folder.parent.mkdir(parents=True, exist_ok=True)
            target = folder
            partition = port.partition
            select = (
                f"select *, {partition.expression} as {quote_identifier(partition.column)}"
                f" from {source} order by {order}"
            )
            key = quote_identifier(partition.column)
            options = (
                f"format parquet, compression zstd, partition_by ({key}),"
                " write_partition_columns true"
            )
        # COPY answers with the rows it wrote: no second scan to count them.
        (written[port.identifier],) = single_row(
            connection, f"copy ({select}) to {sql_string(str(target))} ({options})"
        )
    return written
