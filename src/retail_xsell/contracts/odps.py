"""The ODPS v1.0.0 data product manifest (``dataproduct.yaml``) of a publication.

It is the product's table of contents: what the product is for, who owns it, which
input ports it reads (the raw tables, under the raw input contract), which output ports
it serves (the published DuckDB file and the Parquet files, each under its ODCS
contract, and the semantic layer, which is not tabular and so is described here rather
than by a contract), and where to manage it (docs site, SLO report). Built from the
same contracts it links to, so versions and ids always agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retail_xsell.contracts.odcs import (
    DATA_STEWARD_GROUP,
    PRODUCT,
    ContractGenerationError,
    custom_properties,
    digest,
    group,
)

ODPS_API_VERSION = "v1.0.0"
DOCS_URL = "http://localhost:8080"


def _version(contract: dict[str, Any]) -> str:
    return contract["version"]


def _access(manifest: dict[str, Any]) -> str:
    steward = group(manifest, DATA_STEWARD_GROUP)["owner"]
    return (
        f"Access: ask {steward['name']} ({steward['email']}, dbt group {DATA_STEWARD_GROUP}), "
        "who approve every grant."
    )


def _metrics(semantic_manifest: dict[str, Any]) -> list[dict[str, str]]:
    return sorted(
        (
            {
                "name": metric["name"],
                "label": metric.get("label") or metric["name"],
                "description": " ".join((metric.get("description") or "").split()),
            }
            for metric in semantic_manifest.get("metrics", [])
        ),
        key=lambda metric: metric["name"],
    )


def build_data_product(
    manifest: dict[str, Any],
    semantic_manifest: dict[str, Any],
    contracts: dict[str, dict[str, Any]],
    *,
    published_database: Path,
    parquet_dir: Path,
    publication_id: str | None,
) -> dict[str, Any]:
    """The ODPS document, from the contracts ``build_contracts`` returned."""
    for port in ("duckdb", "parquet", "raw_input"):
        if port not in contracts:
            raise ContractGenerationError(f"no {port} contract to link from the data product")
    raw = contracts["raw_input"]
    duckdb, parquet = contracts["duckdb"], contracts["parquet"]
    product_version = next(
        entry["value"]
        for entry in duckdb["customProperties"]
        if entry["property"] == "productVersion"
    )
    versions = {port: _version(contract) for port, contract in sorted(contracts.items())}
    metrics = _metrics(semantic_manifest)
    semantic_version = f"{product_version}+{digest(metrics)}"
    input_contract = [{"id": raw["id"], "version": _version(raw)}]
    access = _access(manifest)
    owners = group(manifest, duckdb["team"]["name"])
    steward = group(manifest, DATA_STEWARD_GROUP)

    document: dict[str, Any] = {
        "apiVersion": ODPS_API_VERSION,
        "kind": "DataProduct",
        "id": PRODUCT,
        "name": "Retail cross-sell",
        "version": f"{product_version}+{digest(versions | {'semantic_layer': semantic_version})}",
        "status": "active",
        "domain": "retail",
        "description": {
            "purpose": (
                "Grow next year's revenue through cross-selling: trusted, governed answers "
                "on customer lifetime value by segment, the next category to offer each "
                "customer and what it is worth, and revenue, frequency and CLV trends."
            ),
            "usage": (
                "Marketing analysts and executives query metrics through the semantic layer "
                "(`mf query`); sales and CRM tools read the cross_sell_opportunities mart; "
                "BI tools read the published DuckDB file or the Parquet files."
            ),
            "limitations": (
                "Customer-level figures are as of the build's as_of_date. Marts carry no raw "
                "personal data, only pseudonymised forms. The REST/GraphQL API is not "
                "served yet; the semantic layer is reached in process or with `mf`."
            ),
        },
        "tags": ["domain:retail", "use_case:clv", "use_case:cross_sell", "use_case:reporting"],
        "inputPorts": [
            {
                "name": obj["name"],
                "version": _version(raw),
                "contractId": raw["id"],
                "tags": ["tier:input_port"],
                "customProperties": custom_properties(
                    {
                        "dbtSource": next(
                            e["value"]
                            for e in obj["customProperties"]
                            if e["property"] == "dbtSource"
                        ),
                        "contractFile": "contracts/raw_input.odcs.yaml",
                    }
                ),
            }
            for obj in raw["schema"]
        ],
        "outputPorts": [
            {
                "name": "duckdb",
                "description": (
                    "The published DuckDB file: every public mart and the time spine, "
                    f"schema main. Open it read-only. {access}"
                ),
                "type": "duckdb",
                "version": _version(duckdb),
                "contractId": duckdb["id"],
                "inputContracts": input_contract,
                "customProperties": custom_properties(
                    {
                        "contractFile": "contracts/duckdb.odcs.yaml",
                        "path": str(published_database),
                        "tables": [obj["name"] for obj in duckdb["schema"]],
                        "access": access,
                    }
                ),
            },
            {
                "name": "parquet",
                "description": (
                    "Parquet files of every public mart, one folder per table (order_lines "
                    f"partitioned by order_month, hive style). {access}"
                ),
                "type": "files",
                "version": _version(parquet),
                "contractId": parquet["id"],
                "inputContracts": input_contract,
                "customProperties": custom_properties(
                    {
                        "contractFile": "contracts/parquet.odcs.yaml",
                        "path": str(parquet_dir),
                        "tables": [obj["name"] for obj in parquet["schema"]],
                        "access": access,
                    }
                ),
            },
            {
                "name": "semantic_layer",
                "description": (
                    "Governed metrics over the published DuckDB file through MetricFlow: "
                    "`RETAIL_XSELL_DUCKDB_PATH=<published file> mf query --metrics clv "
                    "--group-by customer__region`, or in process with "
                    "retail_xsell.semantic. A REST/GraphQL API over the same engine comes "
                    "in a later release. Not tabular, so no ODCS contract: the metric "
                    f"definitions are the semantic manifest. {access}"
                ),
                "type": "semantic-layer",
                "version": semantic_version,
                "inputContracts": [{"id": duckdb["id"], "version": _version(duckdb)}],
                "customProperties": custom_properties(
                    {
                        "semanticManifest": "target/semantic_manifest.json",
                        "query": "mf query --metrics <metric> --group-by <dimension>",
                        "metrics": metrics,
                        "savedQueries": sorted(
                            query["name"] for query in semantic_manifest.get("saved_queries", [])
                        ),
                        "access": access,
                    }
                ),
            },
        ],
        "managementPorts": [
            {
                "name": "docs",
                "content": "discoverability",
                "type": "rest",
                "url": DOCS_URL,
                "description": (
                    "The dbt docs site (`make docs`): every model, column, test, metric and "
                    "the lineage from the raw input to the marts."
                ),
            },
            {
                "name": "slo_report",
                "content": "observability",
                "type": "file",
                "description": (
                    "The SLO report of the last gate, build/slo/<database name>/report.md "
                    "(and report.json): every objective of slos.yml, measured, with trend."
                ),
            },
        ],
        "support": [
            {
                "channel": "access-requests",
                "url": f"mailto:{steward['owner']['email']}",
                "tool": "email",
                "scope": "issues",
                "description": f"Access requests, approved by {steward['owner']['name']}.",
            },
            {
                "channel": "questions",
                "url": f"mailto:{owners['owner']['email']}",
                "tool": "email",
                "scope": "interactive",
                "description": f"Questions about the data, answered by {owners['owner']['name']}.",
            },
        ],
        "team": duckdb["team"],
    }
    custom = {"productVersion": product_version}
    if publication_id:
        custom["publicationId"] = publication_id
    document["customProperties"] = custom_properties(custom)
    return document
