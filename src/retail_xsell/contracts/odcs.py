"""ODCS v3.1.0 data contracts, generated from dbt's artifacts, never written by hand.

One contract per tabular output port (the published DuckDB file, the Parquet files) and
one for the raw input. Everything a contract says comes from the single source of truth
the build already has: model and column docs, the enforced contracts' data types,
``meta.classification`` / ``meta.pii``, the data tests in manifest.json, the dbt groups
(owners), and slos.yml. A contract can therefore never promise something the build does
not check, and it changes exactly when the project changes.

The semantic layer is not tabular and gets no ODCS contract: the ODPS manifest
(``odps.py``) describes it. docs/contracts.md has the full mapping table.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retail_xsell import settings
from retail_xsell.ports import PortColumn, PortModel, output_port_models

API_VERSION = "v3.1.0"
PRODUCT = "retail_xsell"
RAW_SOURCE = "retail_raw"
#: The group that owns personal data and the input ports, and approves every access
#: request (DESIGN.md, Governance). It must exist in the manifest's groups.
DATA_STEWARD_GROUP = "data_stewardship"
#: Ports whose contract is a promise to consumers; breaking changes are checked on them.
OUTPUT_PORTS = ("duckdb", "parquet")
#: Most restrictive last; a derived column inherits the most restrictive of its sources.
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")


class ContractGenerationError(ValueError):
    """The artifacts cannot be turned into a contract (a type or a test we cannot map)."""


# --- dbt type -> ODCS logical type ---------------------------------------------------

_LOGICAL_TYPES: tuple[tuple[str, str], ...] = (
    (r"(var)?char|text|string|uuid", "string"),
    (r"(tiny|small|big|huge|u?)int(eger)?\d*|u(tiny|small|big|huge)int|long|short", "integer"),
    (r"double|float\d*|real|decimal|numeric", "number"),
    (r"date", "date"),
    (r"timestamp( with time zone)?|timestamptz|datetime", "timestamp"),
    (r"time", "time"),
    (r"bool(ean)?", "boolean"),
)


def logical_type(data_type: str, where: str) -> str:
    """The ODCS logical type of a DuckDB type; unknown types fail loudly, naming the column."""
    base = data_type.lower().split("(")[0].strip()
    for pattern, logical in _LOGICAL_TYPES:
        if re.fullmatch(pattern, base):
            return logical
    raise ContractGenerationError(
        f"{where}: data_type {data_type!r} has no ODCS logical type mapping "
        "(add it to retail_xsell/contracts/odcs.py _LOGICAL_TYPES)"
    )


# --- the project's few facts that are not in manifest.json ---------------------------


@dataclass(frozen=True)
class Project:
    """What dbt_project.yml adds: the product version and the default vars.

    manifest.json keeps test arguments unrendered (``max_value: "{{ var('n') }}"``) and
    does not carry the project's version, so both are read from dbt_project.yml.
    """

    version: str
    variables: dict[str, Any]

    @classmethod
    def load(cls, project_dir: Path) -> Project:
        path = project_dir / "dbt_project.yml"
        document = yaml.safe_load(path.read_text())
        if not document.get("version"):
            raise ContractGenerationError(f"{path}: no `version`; contracts are versioned by it")
        return cls(version=str(document["version"]), variables=document.get("vars") or {})

    def render(self, value: Any, where: str) -> Any:
        """Resolve ``{{ var('name') }}`` in a test argument to the project's default."""
        if not isinstance(value, str) or "{{" not in value:
            return value
        match = re.fullmatch(r"\{\{\s*var\(\s*['\"](\w+)['\"]\s*(?:,[^)]*)?\)\s*\}\}", value)
        if not match or match.group(1) not in self.variables:
            raise ContractGenerationError(
                f"{where}: cannot render {value!r}; only {{{{ var('name') }}}} of a var "
                "declared in dbt_project.yml is supported"
            )
        return self.variables[match.group(1)]


# --- data tests of the manifest, per model and column --------------------------------


@dataclass
class ColumnTests:
    required: bool = False
    unique: bool = False
    accepted_values: list[Any] | None = None
    ranges: list[dict[str, Any]] | None = None
    relationships: list[str] | None = None


@dataclass
class ModelTests:
    columns: dict[str, ColumnTests]
    combinations: list[list[str]]
    expressions: list[tuple[str, str]]  # (sql expression that must hold, severity)

    def column(self, name: str) -> ColumnTests:
        return self.columns.setdefault(name, ColumnTests())


def _node_name(manifest: dict[str, Any], unique_id: str) -> str:
    node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id) or {}
    return node.get("alias") or node.get("identifier") or node.get("name") or unique_id


def collect_tests(manifest: dict[str, Any], project: Project) -> dict[str, ModelTests]:
    """The generic tests attached to each node, keyed by the node's unique_id.

    Only tests that hold on every row count: a test with a ``where`` filter or warn
    severity is not a promise (not_null with ``where`` does not make a column required).
    Severity is kept for expression tests, whose warnings are documented as warnings.
    """
    tests: dict[str, ModelTests] = {}
    for unique_id in sorted(manifest["nodes"]):
        node = manifest["nodes"][unique_id]
        metadata = node.get("test_metadata") or {}
        attached = node.get("attached_node")
        if node["resource_type"] != "test" or not attached or not metadata:
            continue
        config = node.get("config") or {}
        if not config.get("enabled", True) or config.get("where"):
            continue
        severity = str(config.get("severity") or "error").lower()
        kwargs = metadata.get("kwargs") or {}
        column_name = node.get("column_name") or kwargs.get("column_name")
        model = tests.setdefault(attached, ModelTests({}, [], []))
        where = f"{unique_id} ({node.get('original_file_path')})"
        name = metadata.get("name")
        if name == "expression_is_true":
            model.expressions.append((" ".join(str(kwargs["expression"]).split()), severity))
            continue
        if severity != "error":
            continue
        if name == "unique_combination_of_columns":
            model.combinations.append([str(c) for c in kwargs["combination_of_columns"]])
        elif column_name is None:
            continue
        elif name == "not_null":
            model.column(column_name).required = True
        elif name == "unique":
            model.column(column_name).unique = True
        elif name == "accepted_values":
            values = [project.render(v, where) for v in kwargs["values"]]
            model.column(column_name).accepted_values = values
        elif name == "accepted_range":
            bounds = {
                key: project.render(kwargs.get(key), where) for key in ("min_value", "max_value")
            }
            bounds["inclusive"] = kwargs.get("inclusive", True)
            column = model.column(column_name)
            column.ranges = [*(column.ranges or []), bounds]
        elif name == "relationships":
            target = re.fullmatch(r"ref\(\s*['\"](\w+)['\"]\s*\)", str(kwargs.get("to", "")))
            if target:
                column = model.column(column_name)
                reference = f"{target.group(1)}.{kwargs['field']}"
                column.relationships = [*(column.relationships or []), reference]
    return tests


def primary_key(port: PortModel, tests: ModelTests) -> list[str]:
    """The first column that is unique and not null, else the declared combination."""
    for column in port.columns:
        found = tests.columns.get(column.name)
        if found and found.unique and found.required:
            return [column.name]
    names = {column.name for column in port.columns}
    for combination in tests.combinations:
        if set(combination) <= names:
            return combination
    return []


# --- building blocks -----------------------------------------------------------------


def custom_properties(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"property": key, "value": value} for key, value in properties.items()]


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _quality_for_column(name: str, found: ColumnTests) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if found.accepted_values is not None:
        rules.append(
            {
                "type": "library",
                "metric": "invalidValues",
                "arguments": {"validValues": list(found.accepted_values)},
                "mustBe": 0,
                "dimension": "conformity",
                "severity": "error",
                "description": "dbt test accepted_values: only these values occur.",
            }
        )
    for bounds in found.ranges or []:
        low = ">=" if bounds["inclusive"] else ">"
        high = "<=" if bounds["inclusive"] else "<"
        legal = []
        if bounds["min_value"] is not None:
            legal.append(f"{name} {low} {_sql_literal(bounds['min_value'])}")
        if bounds["max_value"] is not None:
            legal.append(f"{name} {high} {_sql_literal(bounds['max_value'])}")
        condition = " and ".join(legal)
        rules.append(
            {
                "type": "sql",
                "description": f"dbt test accepted_range: every non-null value has {condition}.",
                "query": (
                    f"select count(*) from {{table}} where {name} is not null and not ({condition})"
                ),
                "mustBe": 0,
                "dimension": "accuracy",
                "severity": "error",
            }
        )
    return rules


def _classification(column: PortColumn, where: str) -> str:
    value = column.classification
    if value not in CLASSIFICATIONS:
        raise ContractGenerationError(
            f"{where}: meta.classification is {value!r}; expected one of {list(CLASSIFICATIONS)}"
        )
    return value


def _property(
    column: PortColumn,
    found: ColumnTests,
    key: list[str],
    where: str,
) -> dict[str, Any]:
    """One ODCS property (column) from a dbt column and the tests on it."""
    data_type = column.data_type
    if not data_type:
        raise ContractGenerationError(f"{where}: no data_type; public models need enforced types")
    prop: dict[str, Any] = {
        "name": column.name,
        "physicalName": column.name,
        "logicalType": logical_type(data_type, where),
        "physicalType": data_type,
        "description": column.description,
        "required": found.required,
        "unique": found.unique,
    }
    if column.name in key:
        prop["primaryKey"] = True
        prop["primaryKeyPosition"] = key.index(column.name) + 1
    prop["classification"] = _classification(column, where)
    tags, custom = [], {}
    if column.pii:
        # ODCS 3.1 has no pii field: a tag to find the columns, custom properties for
        # what personal data they derive from and how it was made safe.
        tags = ["pii", f"pii:{column.pii}"]
        custom = {"pii": column.pii, "piiTreatment": column.pii_treatment}
    if tags:
        prop["tags"] = tags
    if custom:
        prop["customProperties"] = custom_properties(custom)
    if found.relationships:
        prop["relationships"] = [{"type": "foreignKey", "to": to} for to in found.relationships]
    quality = _quality_for_column(column.name, found)
    if quality:
        prop["quality"] = quality
    return prop


def _object_quality(tests: ModelTests, key: list[str]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for combination in tests.combinations:
        if combination == key:
            continue  # the primary key's own uniqueness check covers it
        # As SQL, not library duplicateValues: datacontract-cli keys that check by model,
        # so a second combination on the same table would overwrite the first.
        columns = ", ".join(combination)
        rules.append(
            {
                "type": "sql",
                "description": (
                    f"dbt test unique_combination_of_columns: no two rows share {columns}."
                ),
                "query": (
                    f"select count(*) from (select {columns} from {{table}} "
                    f"group by {columns} having count(*) > 1)"
                ),
                "mustBe": 0,
                "dimension": "uniqueness",
                "severity": "error",
            }
        )
    for expression, severity in tests.expressions:
        rules.append(
            {
                "type": "sql",
                "description": f"dbt test expression_is_true: {expression}",
                "query": f"select count(*) from {{table}} where not ({expression})",
                "mustBe": 0,
                "dimension": "consistency",
                "severity": "warning" if severity == "warn" else "error",
            }
        )
    return rules


def _most_restrictive(values: list[str]) -> str:
    return max(values, key=CLASSIFICATIONS.index) if values else "internal"


def schema_object(
    port: PortModel, tests: ModelTests | None, *, parquet: bool = False
) -> dict[str, Any]:
    """One ODCS schema object (table) for a port, with the dbt model recorded on it.

    ``dbtModel`` and ``dbtModelVersion`` let the breaking-change check tell a version
    bump (allowed) from an unannounced change (blocked).
    """
    tests = tests or ModelTests({}, [], [])
    key = primary_key(port, tests)
    properties = [
        _property(
            column,
            tests.columns.get(column.name, ColumnTests()),
            key,
            f"model {port.name} column {column.name}",
        )
        for column in port.columns
    ]
    partition = port.partition if parquet else None
    if partition is not None:
        sources = [
            _classification(column, f"model {port.name} column {column.name}")
            for column in port.columns
            if re.search(rf"\b{re.escape(column.name)}\b", partition.expression)
        ]
        properties.append(
            {
                "name": partition.column,
                "physicalName": partition.column,
                "logicalType": logical_type(partition.data_type, f"partition {partition.column}"),
                "physicalType": partition.data_type,
                "description": partition.description,
                "required": False,
                "unique": False,
                "partitioned": True,
                "partitionKeyPosition": 1,
                "classification": _most_restrictive(sources),
                "transformLogic": partition.expression,
            }
        )
    obj: dict[str, Any] = {
        "name": port.identifier,
        "physicalName": port.identifier,
        "physicalType": "table",
        "description": port.description,
    }
    if port.tags:
        obj["tags"] = sorted(port.tags)
    obj["customProperties"] = custom_properties(
        {
            "dbtModel": port.name,
            "dbtModelVersion": port.version,
            "dbtLatestVersion": port.latest_version,
            "dbtUniqueId": port.unique_id,
            "dbtGroup": port.group,
            "dbtAccess": port.access,
            "portReason": port.reason,
        }
    )
    obj["properties"] = properties
    quality = _object_quality(tests, key)
    if quality:
        obj["quality"] = quality
    return obj


# --- owners, access, service levels --------------------------------------------------


def group(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in manifest.get("groups", {}).values():
        if entry["name"] == name:
            return entry
    known = sorted(entry["name"] for entry in manifest.get("groups", {}).values())
    raise ContractGenerationError(f"manifest.json has no dbt group {name!r} (groups: {known})")


def _owner_text(entry: dict[str, Any]) -> str:
    owner = entry.get("owner") or {}
    return f"{owner.get('name') or entry['name']} <{owner.get('email')}>"


def team(manifest: dict[str, Any], owner_group: str) -> dict[str, Any]:
    """The owning dbt group as the ODCS team, with the data stewards who approve access."""
    owning = group(manifest, owner_group)
    members = [
        {
            "username": owning["owner"]["email"],
            "name": owning["owner"]["name"],
            "role": "owner",
            "description": f"Owner of dbt group {owning['name']}.",
        }
    ]
    if owner_group != DATA_STEWARD_GROUP:
        steward = group(manifest, DATA_STEWARD_GROUP)
        members.append(
            {
                "username": steward["owner"]["email"],
                "name": steward["owner"]["name"],
                "role": "data steward",
                "description": f"dbt group {steward['name']}: approves access requests.",
            }
        )
    return {
        "name": owning["name"],
        "description": " ".join((owning.get("description") or "").split()),
        "members": members,
    }


def support(manifest: dict[str, Any], owner_group: str) -> list[dict[str, Any]]:
    steward = group(manifest, DATA_STEWARD_GROUP)
    channels = [
        {
            "channel": "access-requests",
            "url": f"mailto:{steward['owner']['email']}",
            "tool": "email",
            "scope": "issues",
            "description": (
                f"Request access here: {_owner_text(steward)} (dbt group "
                f"{DATA_STEWARD_GROUP}) approves every grant."
            ),
        }
    ]
    if owner_group != DATA_STEWARD_GROUP:
        owning = group(manifest, owner_group)
        channels.append(
            {
                "channel": "questions",
                "url": f"mailto:{owning['owner']['email']}",
                "tool": "email",
                "scope": "interactive",
                "description": f"Questions about the data: {_owner_text(owning)}.",
            }
        )
    return channels


def roles(manifest: dict[str, Any], owner_group: str, role: str, what: str) -> list[dict]:
    steward = group(manifest, DATA_STEWARD_GROUP)
    entry: dict[str, Any] = {
        "role": role,
        "access": "read",
        "description": f"Read {what}.",
        "firstLevelApprovers": _owner_text(steward),
    }
    if owner_group != DATA_STEWARD_GROUP:
        entry["secondLevelApprovers"] = _owner_text(group(manifest, owner_group))
    return [entry]


#: SLO measurement kind -> ODCS SLA property, where ODCS names one; others keep the
#: SLO's own name (ODCS allows any property name).
_SLA_PROPERTIES = {"source_freshness": "freshness", "build_duration": "latency"}
#: SLO measurements about the raw input; the input contract carries only these.
_RAW_MEASUREMENTS = {"source_freshness", "raw_rows_passing_staging", "unreconciled_rows"}
_UNITS = {"hours": "h", "seconds": "s", "ms": "ms"}


def sla_properties(slo_document: dict[str, Any], *, raw: bool) -> list[dict[str, Any]]:
    """slos.yml as ODCS slaProperties, one per objective.

    Freshness names its element only on the raw contract (purchase.loaded_at): the
    output ports inherit it, and datacontract-cli would otherwise re-judge the fixed
    sample's purchases as stale on every test.
    """
    entries = []
    for slo in slo_document.get("slos", []):
        measurement = slo["measurement"]
        if raw and measurement not in _RAW_MEASUREMENTS:
            continue
        target = slo["target"]
        if set(target) == {"min", "max"}:
            value: Any = f"between {target['min']} and {target['max']}"
            bound = ""
        elif "max" in target:
            value, bound = target["max"], "at most"
        else:
            value, bound = target["min"], "at least"
        entry: dict[str, Any] = {
            "property": _SLA_PROPERTIES.get(measurement, slo["name"]),
            "value": value,
            "unit": _UNITS.get(slo["unit"], slo["unit"]),
        }
        if raw and measurement == "source_freshness" and slo.get("source"):
            table = str(slo["source"]).split(".")[-1]
            entry["element"] = f"{table}.loaded_at"
        entry["driver"] = "operational" if slo["blocking"] else "analytics"
        description = " ".join(str(slo.get("description", "")).split())
        verdict = "blocks publication" if slo["blocking"] else "warns"
        target_text = f"{bound} {value}".strip()
        entry["description"] = (
            f"SLO {slo['name']} ({slo['category']}): {description} Target {target_text} "
            f"{slo['unit']}; a breach {verdict}. Evaluated by `retail-xsell gate` after "
            "every build."
        )
        entries.append(entry)
    return entries


# --- whole contracts -----------------------------------------------------------------


def digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _finish(
    contract: dict[str, Any], project: Project, publication_id: str | None
) -> dict[str, Any]:
    """Add the version: the product version plus a digest of what the contract promises.

    The digest covers the schema and service levels, not the server paths, so the same
    project gives the same version wherever it is published.
    """
    promised = {key: contract.get(key) for key in ("schema", "slaProperties")}
    contract["version"] = f"{project.version}+{digest(promised)}"
    custom = {"productVersion": project.version}
    if publication_id:
        custom["publicationId"] = publication_id
    contract["customProperties"] = custom_properties(custom)
    return contract


def _head(port: str, name: str, status: str = "active") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": f"{PRODUCT}.{port}",
        "name": name,
        "version": "",
        "status": status,
        "domain": "retail",
        "dataProduct": PRODUCT,
    }


def _owner_of(ports: list[PortModel]) -> str:
    groups = sorted({port.group for port in ports if port.group})
    if len(groups) != 1:
        raise ContractGenerationError(
            f"the output ports belong to groups {groups}; a contract needs exactly one owner"
        )
    return groups[0]


def _output_contract(
    port_name: str,
    ports: list[PortModel],
    tests: dict[str, ModelTests],
    manifest: dict[str, Any],
    slo_document: dict[str, Any],
    server: dict[str, Any],
    description: dict[str, str],
    *,
    parquet: bool,
) -> dict[str, Any]:
    owner = _owner_of(ports)
    contract = _head(port_name, description.pop("name"))
    contract["tags"] = ["domain:retail", "tier:output_port", f"port:{port_name}"]
    contract["description"] = description
    contract["servers"] = [server]
    contract["schema"] = [
        schema_object(port, tests.get(port.unique_id), parquet=parquet) for port in ports
    ]
    contract["team"] = team(manifest, owner)
    contract["support"] = support(manifest, owner)
    contract["roles"] = roles(
        manifest, owner, f"{PRODUCT}_{port_name}_reader", f"every table of the {port_name} port"
    )
    contract["slaProperties"] = sla_properties(slo_document, raw=False)
    return contract


_ACCESS = (
    "Consumers read only the publication, never the working database. To get read "
    "access, write to the access-requests support channel; the data stewards approve, "
    "the owner is consulted. No table holds raw personal data: columns tagged `pii` "
    "carry a pseudonymised form (see their piiTreatment)."
)


def duckdb_contract(
    manifest: dict[str, Any],
    ports: list[PortModel],
    tests: dict[str, ModelTests],
    slo_document: dict[str, Any],
    project: Project,
    published_database: Path,
    publication_id: str | None,
) -> dict[str, Any]:
    server = {
        "server": "published_duckdb",
        "type": "duckdb",
        "environment": "prod",
        "description": "The published DuckDB file of one publication (open it read-only).",
        "database": str(published_database),
        "schema": "main",
    }
    description = {
        "name": "Retail cross-sell: published DuckDB",
        "purpose": (
            "Consumer-aligned marts of the retail cross-sell product (customers, products, "
            "orders, order lines, customer value and CLV, category affinities, cross-sell "
            "opportunities) and the daily time spine the semantic layer reads, as one "
            "DuckDB file per publication."
        ),
        "usage": (
            "Open the file read-only (duckdb.connect(path, read_only=True)) or attach it; "
            f"tables are in schema main. {_ACCESS}"
        ),
        "limitations": (
            "Customer-level figures are as of the build's as_of_date. A publication only "
            "changes after a passing quality gate."
        ),
    }
    contract = _output_contract(
        "duckdb", ports, tests, manifest, slo_document, server, description, parquet=False
    )
    return _finish(contract, project, publication_id)


def parquet_contract(
    manifest: dict[str, Any],
    ports: list[PortModel],
    tests: dict[str, ModelTests],
    slo_document: dict[str, Any],
    project: Project,
    parquet_dir: Path,
    publication_id: str | None,
) -> dict[str, Any]:
    public = [port for port in ports if port.reason == "public"]
    partitioned = ", ".join(
        f"{port.identifier} by {port.partition.column}" for port in public if port.partition
    )
    server = {
        "server": "published_parquet",
        "type": "local",
        "environment": "prod",
        "description": (
            "One folder per table under the publication's parquet/ folder; partitioned "
            f"tables ({partitioned or 'none'}) have hive folders key=value."
        ),
        "format": "parquet",
        # datacontract-cli fills {model} with each schema object's name (= folder name).
        "path": f"{parquet_dir}/{{model}}/**/*.parquet",
    }
    description = {
        "name": "Retail cross-sell: published Parquet files",
        "purpose": (
            "Every public mart of the retail cross-sell product as Parquet files, one set "
            "per publication, for tools that do not read DuckDB."
        ),
        "usage": (
            "Read a table's folder (duckdb: read_parquet('<folder>/**/*.parquet', "
            "hive_partitioning = true); pandas.read_parquet('<folder>'); "
            "pyarrow.dataset.dataset('<folder>') without a partitioning, since the "
            f"partition column is in every file). {_ACCESS}"
        ),
        "limitations": (
            "The time spine is not exported (it is a DuckDB-only port for the semantic "
            "layer). Partition columns are also stored in the files."
        ),
    }
    contract = _output_contract(
        "parquet", public, tests, manifest, slo_document, server, description, parquet=True
    )
    return _finish(contract, project, publication_id)


def raw_input_contract(
    manifest: dict[str, Any],
    slo_document: dict[str, Any],
    project: Project,
    publication_id: str | None,
) -> dict[str, Any]:
    """The input contract: the raw tables of source ``retail_raw``, every column text."""
    sources = sorted(
        (s for s in manifest["sources"].values() if s["source_name"] == RAW_SOURCE),
        key=lambda source: source["name"],
    )
    if not sources:
        raise ContractGenerationError(f"manifest.json has no source {RAW_SOURCE!r}")
    objects = []
    for source in sources:
        properties = []
        for column in source["columns"].values():
            where = f"source {RAW_SOURCE}.{source['name']} column {column['name']}"
            meta = {
                **(column.get("meta") or {}),
                **((column.get("config") or {}).get("meta") or {}),
            }
            port_column = PortColumn(
                name=column["name"],
                data_type="varchar",
                description=" ".join((column.get("description") or "").split()),
                meta=meta,
            )
            properties.append(_property(port_column, ColumnTests(), [], where))
        objects.append(
            {
                "name": source["name"],
                "physicalName": source.get("identifier") or source["name"],
                "physicalType": "table",
                "description": " ".join((source.get("description") or "").split()),
                "tags": sorted(source.get("tags") or []),
                "customProperties": custom_properties(
                    {
                        "dbtSource": f"{RAW_SOURCE}.{source['name']}",
                        "dbtUniqueId": source["unique_id"],
                    }
                ),
                "properties": properties,
            }
        )
    contract = _head("raw_input", "Retail cross-sell: raw input")
    contract["tags"] = ["domain:retail", "tier:input_port"]
    contract["description"] = {
        "purpose": " ".join((sources[0].get("source_description") or "").split()),
        "usage": (
            "What a provider of raw data must deliver: these tables with at least these "
            "columns, every value as text (extra columns are ignored). Values are parsed, "
            "validated and quarantined in staging, not rejected on load."
        ),
        "limitations": (
            "Holds raw personal data (columns tagged pii): only the data stewards read it."
        ),
    }
    contract["schema"] = objects
    contract["team"] = team(manifest, DATA_STEWARD_GROUP)
    contract["support"] = support(manifest, DATA_STEWARD_GROUP)
    contract["roles"] = roles(
        manifest, DATA_STEWARD_GROUP, f"{PRODUCT}_raw_reader", "the raw input tables"
    )
    contract["slaProperties"] = sla_properties(slo_document, raw=True)
    return _finish(contract, project, publication_id)


def build_contracts(
    manifest: dict[str, Any],
    semantic_manifest: dict[str, Any],
    slo_document: dict[str, Any],
    *,
    published_database: Path,
    parquet_dir: Path,
    publication_id: str | None = None,
    project_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Every ODCS contract of the product, keyed by port: duckdb, parquet, raw_input.

    ``project_dir`` (default: :func:`retail_xsell.settings.project_dir`) holds the
    dbt_project.yml whose version and vars the contracts state."""
    project = Project.load(project_dir or settings.project_dir())
    ports = output_port_models(manifest, semantic_manifest)
    tests = collect_tests(manifest, project)
    return {
        "duckdb": duckdb_contract(
            manifest, ports, tests, slo_document, project, published_database, publication_id
        ),
        "parquet": parquet_contract(
            manifest, ports, tests, slo_document, project, parquet_dir, publication_id
        ),
        "raw_input": raw_input_contract(manifest, slo_document, project, publication_id),
    }
