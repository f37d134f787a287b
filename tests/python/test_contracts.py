"""The ODCS contracts and the ODPS manifest: generated from a fresh sample build, they say
what the build checks, they are byte-for-byte reproducible, the official tools accept
them and the published Parquet passes them, and the breaking-change check blocks what
it must and lets through what it may.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest
import yaml

from retail_xsell.contracts import (
    ContractChangesError,
    breaking_change_measurement,
    build_contracts,
    load_accepted_changes,
    main_contracts,
    write_publication_documents,
)
from retail_xsell.contracts.breaking import CHANGE_KINDS, is_lossless_widening

PROJECT_DIR = Path(__file__).resolve().parents[2]
CONTRACTS_BIN = PROJECT_DIR / ".venv-contracts" / "bin"
TOOL_TIMEOUT = 180
CHANGES_HEADER = "accepted_changes:\n"


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts(sample_db: Path) -> dict[str, Any]:
    target = sample_db.parent / "target"
    return {
        "manifest": json.loads((target / "manifest.json").read_text()),
        "semantic_manifest": json.loads((target / "semantic_manifest.json").read_text()),
        "slos": yaml.safe_load((PROJECT_DIR / "slos.yml").read_text()),
    }


@pytest.fixture(scope="module")
def publication(tmp_path_factory, artifacts, sample_db: Path) -> Path:
    """A publication folder as publish lays it out: Parquet exported, documents written."""
    folder = tmp_path_factory.mktemp("publication")
    code = main_contracts(
        [
            "--out",
            str(folder),
            "--target-path",
            str(sample_db.parent / "target"),
            "--database",
            str(sample_db),
            "--export-parquet",
            "--publication-id",
            "20260102T000000Z-test",
        ]
    )
    assert code == 0
    return folder


@pytest.fixture(scope="module")
def contracts(publication: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name.removesuffix(".odcs.yaml"): yaml.safe_load(path.read_text())
        for path in sorted((publication / "contracts").glob("*.odcs.yaml"))
    }


@pytest.fixture(scope="module")
def contract_tools() -> Path:
    """The pinned datacontract-cli / dataproduct-cli; missing is a failure, not a skip."""
    for tool in ("datacontract", "dataproduct"):
        if not (CONTRACTS_BIN / tool).is_file():
            pytest.fail(
                f"{CONTRACTS_BIN / tool} is missing: run `make contracts-venv` "
                "(requirements-contracts.txt) before the tests"
            )
    return CONTRACTS_BIN


def _public_models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        node.get("alias") or node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node.get("access") == "public"
    }


def _object(contract: dict[str, Any], name: str) -> dict[str, Any]:
    return next(obj for obj in contract["schema"] if obj["name"] == name)


def _prop(contract: dict[str, Any], table: str, column: str) -> dict[str, Any]:
    return next(p for p in _object(contract, table)["properties"] if p["name"] == column)


def _custom(element: dict[str, Any]) -> dict[str, Any]:
    return {entry["property"]: entry["value"] for entry in element.get("customProperties", [])}


def _tests_on(manifest: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """(model unique_id, column) of every error-severity test of kind ``name``."""
    return [
        (node["attached_node"], node["column_name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and (node.get("test_metadata") or {}).get("name") == name
        and node["config"]["severity"].lower() == "error"
        and not node["config"].get("where")
    ]


# --- generation from the real manifest -----------------------------------------------


def test_every_public_mart_and_column_is_in_both_ports_with_type_and_classification(
    artifacts, contracts
):
    marts = _public_models(artifacts["manifest"])
    assert len(marts) >= 9
    for port in ("duckdb", "parquet"):
        objects = {obj["name"]: obj for obj in contracts[port]["schema"]}
        assert set(marts) <= set(objects), port
        for name, node in marts.items():
            properties = {p["name"]: p for p in objects[name]["properties"]}
            for column in node["columns"].values():
                prop = properties[column["name"]]
                assert prop["physicalType"] == column["data_type"], (port, name, column["name"])
                assert prop["classification"] == column["config"]["meta"]["classification"]
                assert prop["description"] == " ".join(column["description"].split())
            assert _custom(objects[name])["dbtModel"] == node["name"]


def test_time_spine_is_a_duckdb_port_but_not_exported_as_parquet(contracts):
    assert "time_spine_daily" in {obj["name"] for obj in contracts["duckdb"]["schema"]}
    assert "time_spine_daily" not in {obj["name"] for obj in contracts["parquet"]["schema"]}
    assert _custom(_object(contracts["duckdb"], "time_spine_daily"))["portReason"] == (
        "semantic layer"
    )


def test_customers_pii_columns_are_flagged_with_their_treatment(contracts):
    for port in ("duckdb", "parquet"):
        expected = {
            "email_sha256": ("email", "hmac_sha256"),
            "phone_masked": ("phone", "masked_last_four"),
            "birth_year": ("birth_date", "generalised_to_year"),
        }
        for column, (kind, treatment) in expected.items():
            prop = _prop(contracts[port], "customers", column)
            assert {"pii", f"pii:{kind}"} <= set(prop["tags"])
            assert _custom(prop) == {"pii": kind, "piiTreatment": treatment}
        assert "tags" not in _prop(contracts[port], "customers", "region")


def test_not_null_makes_required_unique_makes_unique_and_keys_are_primary(artifacts, contracts):
    manifest = artifacts["manifest"]
    marts = {node["unique_id"]: name for name, node in _public_models(manifest).items()}
    not_null = {(marts[m], c) for m, c in _tests_on(manifest, "not_null") if m in marts}
    unique = {(marts[m], c) for m, c in _tests_on(manifest, "unique") if m in marts}
    assert not_null and unique
    duckdb_contract = contracts["duckdb"]
    for obj in duckdb_contract["schema"]:
        for prop in obj["properties"]:
            key = (obj["name"], prop["name"])
            if obj["name"] in marts.values():
                assert prop["required"] is (key in not_null), key
                assert prop["unique"] is (key in unique), key
    assert _prop(duckdb_contract, "customers", "customer_id")["primaryKey"] is True
    # a key declared only by unique_combination_of_columns: positions in test order
    keys = {
        p["name"]: p["primaryKeyPosition"]
        for p in _object(duckdb_contract, "category_affinities")["properties"]
        if p.get("primaryKey")
    }
    assert keys == {"basket_level": 1, "antecedent_category": 2, "consequent_category": 3}


def test_accepted_values_and_ranges_become_quality_rules_with_vars_rendered(artifacts, contracts):
    status = _prop(contracts["parquet"], "orders", "order_status")
    (rule,) = [q for q in status["quality"] if q.get("metric") == "invalidValues"]
    assert rule["arguments"]["validValues"] == ["completed", "cancelled", "return_only"]
    rank = _prop(contracts["parquet"], "cross_sell_opportunities", "opportunity_rank")
    (range_rule,) = [q for q in rank["quality"] if q["type"] == "sql"]
    top_n = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert f"opportunity_rank <= {top_n['cross_sell_top_n']}" in range_rule["query"]
    assert "{{" not in json.dumps(contracts)


def test_order_month_is_a_partition_property_of_parquet_order_lines_only(contracts):
    month = _prop(contracts["parquet"], "order_lines", "order_month")
    assert (month["partitioned"], month["partitionKeyPosition"]) == (True, 1)
    assert month["physicalType"] == "date"
    assert "order_month" not in {
        p["name"] for p in _object(contracts["duckdb"], "order_lines")["properties"]
    }
    partitioned = [
        (obj["name"], p["name"])
        for obj in contracts["parquet"]["schema"]
        for p in obj["properties"]
        if p.get("partitioned")
    ]
    assert partitioned == [("order_lines", "order_month")]


def test_owners_and_access_approvers_come_from_dbt_groups(artifacts, contracts):
    groups = {g["name"]: g["owner"] for g in artifacts["manifest"]["groups"].values()}
    for port, owner in (("duckdb", "retail_analytics"), ("raw_input", "data_stewardship")):
        team = contracts[port]["team"]
        assert team["name"] == owner
        assert team["members"][0] == {
            "username": groups[owner]["email"],
            "name": groups[owner]["name"],
            "role": "owner",
            "description": f"Owner of dbt group {owner}.",
        }
        (role,) = contracts[port]["roles"]
        assert groups["data_stewardship"]["email"] in role["firstLevelApprovers"]
        assert contracts[port]["support"][0]["url"] == (
            f"mailto:{groups['data_stewardship']['email']}"
        )


def test_every_slo_becomes_an_sla_property_and_freshness_targets_loaded_at(artifacts, contracts):
    slos = artifacts["slos"]["slos"]
    assert len(contracts["duckdb"]["slaProperties"]) == len(slos)
    by_property = {entry["property"]: entry for entry in contracts["duckdb"]["slaProperties"]}
    freshness = next(s for s in slos if s["measurement"] == "source_freshness")
    assert by_property["freshness"]["value"] == freshness["target"]["max"]
    assert by_property["freshness"]["unit"] == "h"
    assert "element" not in by_property["freshness"]
    raw = {entry["property"]: entry for entry in contracts["raw_input"]["slaProperties"]}
    assert raw["freshness"]["element"] == "purchase.loaded_at"


def test_raw_input_contract_is_the_three_text_tables_of_the_sources_yaml(artifacts, contracts):
    raw = contracts["raw_input"]
    sources = {
        s["name"]: s
        for s in artifacts["manifest"]["sources"].values()
        if s["source_name"] == "retail_raw"
    }
    assert [obj["name"] for obj in raw["schema"]] == ["customer_info", "product", "purchase"]
    for obj in raw["schema"]:
        columns = sources[obj["name"]]["columns"]
        assert [p["name"] for p in obj["properties"]] == list(columns)
        for prop in obj["properties"]:
            assert (prop["logicalType"], prop["physicalType"]) == ("string", "varchar")
            meta = columns[prop["name"]]["config"]["meta"]
            assert prop["classification"] == meta["classification"]
            assert ("pii" in prop.get("tags", [])) is ("pii" in meta)


def test_same_manifest_gives_byte_identical_documents(tmp_path, artifacts, sample_db):
    def write(folder: Path) -> dict[str, bytes]:
        paths = write_publication_documents(
            folder,
            artifacts["manifest"],
            artifacts["semantic_manifest"],
            artifacts["slos"],
            published_database=Path("/pub/retail_xsell.duckdb"),
            parquet_dir=Path("/pub/parquet"),
            publication_id="p1",
        )
        return {str(path.relative_to(folder)): path.read_bytes() for path in paths}

    first, second = write(tmp_path / "a"), write(tmp_path / "b")
    assert sorted(first) == [
        "contracts/duckdb.odcs.yaml",
        "contracts/parquet.odcs.yaml",
        "contracts/raw_input.odcs.yaml",
        "dataproduct.yaml",
    ]
    assert first == second


def test_contract_version_is_product_version_plus_a_digest_of_the_promise(artifacts):
    def versions(manifest: dict[str, Any], database: str) -> dict[str, str]:
        contracts = build_contracts(
            manifest,
            artifacts["semantic_manifest"],
            artifacts["slos"],
            published_database=Path(database),
            parquet_dir=Path("/p"),
        )
        return {port: contract["version"] for port, contract in contracts.items()}

    base = versions(artifacts["manifest"], "/a.duckdb")
    assert all(v.startswith("0.1.0+") for v in base.values())
    assert versions(artifacts["manifest"], "/elsewhere.duckdb") == base  # paths are not promises
    changed = copy.deepcopy(artifacts["manifest"])
    changed["nodes"]["model.retail_xsell.orders"]["columns"]["channel"]["data_type"] = "text"
    after = versions(changed, "/a.duckdb")
    assert after["duckdb"] != base["duckdb"] and after["raw_input"] == base["raw_input"]


def test_data_product_manifest_is_valid_odps_1_0_0_and_links_the_contracts(
    contract_tools, publication, contracts
):
    (schema_file,) = contract_tools.parent.glob(
        "lib/python*/site-packages/dataproduct/schemas/odps-1.0.0.schema.json"
    )
    product = yaml.safe_load((publication / "dataproduct.yaml").read_text())
    jsonschema.validate(product, json.loads(schema_file.read_text()))
    assert product["apiVersion"] == "v1.0.0"
    assert [p["name"] for p in product["inputPorts"]] == ["customer_info", "product", "purchase"]
    assert {p["contractId"] for p in product["inputPorts"]} == {contracts["raw_input"]["id"]}
    ports = {p["name"]: p for p in product["outputPorts"]}
    assert set(ports) == {"duckdb", "parquet", "semantic_layer"}
    for name in ("duckdb", "parquet"):
        assert (ports[name]["contractId"], ports[name]["version"]) == (
            contracts[name]["id"],
            contracts[name]["version"],
        )
        assert "data-stewardship@example.com" in ports[name]["description"]
    metrics = {m["name"]: m["label"] for m in _custom(ports["semantic_layer"])["metrics"]}
    assert metrics["clv"] and "total_spend" in metrics
    assert "contractId" not in ports["semantic_layer"]
    management = {p["name"]: p for p in product["managementPorts"]}
    assert management["docs"]["url"] == "http://localhost:8080"
    assert "build/slo/" in management["slo_report"]["description"]


# --- the official tools --------------------------------------------------------------


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # datacontract on PATH: dataproduct lint then also lints the contracts it links
    env = {**os.environ, "PATH": f"{CONTRACTS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


def test_datacontract_lint_accepts_every_generated_contract(contract_tools, publication):
    for path in sorted((publication / "contracts").glob("*.odcs.yaml")):
        result = _run([str(contract_tools / "datacontract"), "lint", str(path)], publication)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "valid against ODCS v3.1.0" in result.stdout, result.stdout
    result = _run([str(contract_tools / "dataproduct"), "lint", "dataproduct.yaml"], publication)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Data product is valid" in result.stdout
    assert result.stdout.count("passes datacontract lint") == 3, result.stdout
    assert "not\nresolvable" not in result.stdout and "is not resolvable" not in result.stdout


def _datacontract_test(tools: Path, contract: Path, cwd: Path) -> tuple[int, dict[str, Any]]:
    report = cwd / f"{contract.stem}.results.json"
    result = _run(
        [
            str(tools / "datacontract"),
            "test",
            str(contract),
            "--output-format",
            "json",
            "--output",
            str(report),
        ],
        cwd,
    )
    assert report.is_file(), result.stdout + result.stderr
    return result.returncode, json.loads(report.read_text())


def test_published_parquet_of_the_sample_passes_datacontract_test(contract_tools, publication):
    code, report = _datacontract_test(
        contract_tools, publication / "contracts" / "parquet.odcs.yaml", publication
    )
    results: dict[str, list[str]] = {}
    for check in report["checks"]:
        results.setdefault(check["result"], []).append(f"{check['name']}: {check.get('reason')}")
    assert code == 0, results
    assert set(results) <= {"passed", "warning"}, results
    # the only warnings: the tool cannot read types out of Parquet files
    assert all("not supported yet" in line for line in results.get("warning", [])), results
    kinds = {check["type"] for check in report["checks"] if check["result"] == "passed"}
    assert {"field_required", "field_invalid_values", "field_quality_sql"} <= kinds
    assert len(results["passed"]) > 200


def test_datacontract_test_fails_on_parquet_that_breaks_an_accepted_value(
    contract_tools, publication, tmp_path
):
    parquet = tmp_path / "parquet"
    shutil.copytree(publication / "parquet", parquet)
    orders = parquet / "orders" / "data_0.parquet"
    duckdb.sql(
        f"copy (select * replace (case when order_id = (select min(order_id) from "
        f"'{orders}') then 'lost' else order_status end as order_status) from '{orders}') "
        f"to '{tmp_path / 'orders.parquet'}' (format parquet)"
    )
    shutil.move(tmp_path / "orders.parquet", orders)
    contract = yaml.safe_load((publication / "contracts" / "parquet.odcs.yaml").read_text())
    contract["servers"][0]["path"] = f"{parquet}/{{model}}/**/*.parquet"
    path = tmp_path / "parquet.odcs.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    code, report = _datacontract_test(contract_tools, path, tmp_path)
    failed = [c for c in report["checks"] if c["result"] == "failed"]
    assert code != 0
    assert [(c["model"], c["field"]) for c in failed] == [("orders", "order_status")], failed


# --- breaking changes ----------------------------------------------------------------


@pytest.fixture()
def previous(tmp_path, contracts) -> Path:
    folder = tmp_path / "previous"
    folder.mkdir()
    for port, contract in contracts.items():
        (folder / f"{port}.odcs.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    return folder


@pytest.fixture()
def no_accepted(tmp_path) -> Path:
    path = tmp_path / "contract_changes.yml"
    path.write_text("accepted_changes: []\n")
    return path


def _edit(contracts: dict, port: str, table: str) -> tuple[dict, dict[str, Any]]:
    current = copy.deepcopy(contracts)
    return current, _object(current[port], table)


def test_unchanged_contracts_have_no_breaking_change(contracts, previous, no_accepted):
    assert breaking_change_measurement(contracts, previous, no_accepted) == (0, [], None)


def test_a_removed_column_is_breaking_and_names_port_model_and_column(
    contracts, previous, no_accepted
):
    current, customers = _edit(contracts, "duckdb", "customers")
    customers["properties"] = [p for p in customers["properties"] if p["name"] != "email_sha256"]
    assert breaking_change_measurement(current, previous, no_accepted) == (
        1,
        [
            "port duckdb: customers.email_sha256 was removed (model customers, version "
            "unchanged). Bump the model's version or declare it in contract_changes.yml"
        ],
        None,
    )


def test_a_changed_type_is_breaking(contracts, previous, no_accepted):
    current, orders = _edit(contracts, "parquet", "orders")
    next(p for p in orders["properties"] if p["name"] == "order_id")["physicalType"] = "varchar"
    count, details, _ = breaking_change_measurement(current, previous, no_accepted)
    assert count == 1
    assert details[0].startswith(
        "port parquet: orders.order_id changed type from bigint to varchar (model orders"
    )


def test_a_lossless_decimal_widening_is_not_breaking_but_a_narrowing_is(
    contracts, previous, no_accepted
):
    # order_lines.unit_price went from decimal(18, 2) to decimal(20, 4): same 16 digits
    # before the point, two more after it, so every value promised before is unchanged
    assert is_lossless_widening("decimal(18, 2)", "decimal(20, 4)")
    assert not is_lossless_widening("decimal(18, 2)", "decimal(18, 4)")  # 14 digits before
    assert not is_lossless_widening("decimal(18, 4)", "decimal(18, 2)")  # rounds
    assert not is_lossless_widening("bigint", "decimal(20, 4)")
    current, lines = _edit(contracts, "duckdb", "order_lines")
    price = next(p for p in lines["properties"] if p["name"] == "unit_price")
    previous_type = price["physicalType"]
    price["physicalType"] = "decimal(38, 12)"
    assert breaking_change_measurement(current, previous, no_accepted) == (0, [], None)
    price["physicalType"] = "decimal(12, 2)"
    count, details, _ = breaking_change_measurement(current, previous, no_accepted)
    assert count == 1
    assert (
        f"order_lines.unit_price changed type from {previous_type} to decimal(12, 2)"
        in (details[0])
    )


def test_tightened_nullability_is_breaking_but_loosened_is_not(contracts, previous, no_accepted):
    current, customers = _edit(contracts, "duckdb", "customers")
    birth_year = next(p for p in customers["properties"] if p["name"] == "birth_year")
    assert birth_year["required"] is False
    birth_year["required"] = True
    count, details, _ = breaking_change_measurement(current, previous, no_accepted)
    assert (count, details[0][:64]) == (
        1,
        "port duckdb: customers.birth_year became required (was nullable)",
    )
    loosened, customers = _edit(contracts, "duckdb", "customers")
    next(p for p in customers["properties"] if p["name"] == "customer_id")["required"] = False
    assert breaking_change_measurement(loosened, previous, no_accepted) == (0, [], None)


def test_a_removed_table_and_a_removed_allowed_value_are_breaking(contracts, previous, no_accepted):
    current = copy.deepcopy(contracts)
    current["parquet"]["schema"] = [
        obj for obj in current["parquet"]["schema"] if obj["name"] != "products"
    ]
    status = _prop(current["duckdb"], "orders", "order_status")
    status["quality"][0]["arguments"]["validValues"].remove("return_only")
    count, details, _ = breaking_change_measurement(current, previous, no_accepted)
    assert count == 2
    assert details == [
        "port duckdb: orders.order_status no longer allows 'return_only' (model orders, version "
        "unchanged). Bump the model's version or declare it in contract_changes.yml",
        "port parquet: products was removed (model products, version unchanged). Bump the "
        "model's version or declare it in contract_changes.yml",
    ]


def test_added_tables_and_columns_are_not_breaking(contracts, previous, no_accepted):
    current, customers = _edit(contracts, "duckdb", "customers")
    customers["properties"].append({"name": "loyalty_tier", "physicalType": "varchar"})
    current["parquet"]["schema"].append({"name": "returns", "properties": []})
    assert breaking_change_measurement(current, previous, no_accepted) == (0, [], None)


def test_a_bumped_model_version_allows_the_breaking_change(contracts, previous, no_accepted):
    current, customers = _edit(contracts, "duckdb", "customers")
    customers["properties"] = [p for p in customers["properties"] if p["name"] != "phone_masked"]
    for entry in customers["customProperties"]:
        if entry["property"] == "dbtModelVersion":
            entry["value"] = "2"
    count, details, status = breaking_change_measurement(current, previous, no_accepted)
    assert (count, status) == (0, None)
    assert details == [
        "allowed: port duckdb: customers.phone_masked was removed (model customers, version "
        "unversioned -> 2): allowed, the model's version was bumped"
    ]


def test_a_change_declared_in_contract_changes_yml_is_allowed(contracts, previous, tmp_path):
    current, customers = _edit(contracts, "duckdb", "customers")
    customers["properties"] = [p for p in customers["properties"] if p["name"] != "phone_masked"]
    accepted = tmp_path / "accepted.yml"
    accepted.write_text(
        CHANGES_HEADER
        + "  - {port: duckdb, object: customers, column: phone_masked, change: removed_column,"
        " reason: no longer collected, approved_by: data-stewardship@example.com}\n"
    )
    count, details, _ = breaking_change_measurement(current, previous, accepted)
    assert count == 0
    assert details == [
        "allowed: port duckdb: customers.phone_masked was removed (model customers): accepted "
        "in contract_changes.yml by data-stewardship@example.com: no longer collected"
    ]
    # the declaration covers that change only: the same column on the other port blocks
    parquet_customers = _object(current["parquet"], "customers")
    parquet_customers["properties"] = [
        p for p in parquet_customers["properties"] if p["name"] != "phone_masked"
    ]
    count, details, _ = breaking_change_measurement(current, previous, accepted)
    assert count == 1 and details[0].startswith("port parquet: customers.phone_masked was removed")


def test_no_previous_publication_reports_no_baseline(contracts, tmp_path, no_accepted):
    assert breaking_change_measurement(contracts, None, no_accepted)[::2] == (None, "no_baseline")
    assert breaking_change_measurement(contracts, tmp_path, no_accepted)[::2] == (
        None,
        "no_baseline",
    )


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("{port: duckdb, object: customers, column: x, chnage: removed_column}", "'chnage'"),
        ("{port: api, object: customers, column: x, change: removed_column, reason: r, "
         "approved_by: a}", "key 'port' is 'api'"),
        ("{port: duckdb, object: customers, column: x, change: renamed, reason: r, "
         "approved_by: a}", "key 'change' is 'renamed'"),
        ("{port: duckdb, object: customers, change: removed_column, reason: r, approved_by: a}",
         "key 'column' must name the column"),
        ("{port: duckdb, object: customers, column: x, change: removed_column, reason: r}",
         "key 'approved_by' must be a non-empty string"),
    ],
)  # fmt: skip
def test_malformed_contract_changes_yml_names_the_key(tmp_path, entry, named, contracts, previous):
    path = tmp_path / "contract_changes.yml"
    path.write_text(CHANGES_HEADER + f"  - {entry}\n")
    with pytest.raises(ContractChangesError, match="entry 1") as raised:
        load_accepted_changes(path)
    assert named in str(raised.value) and str(path) in str(raised.value)
    count, details, status = breaking_change_measurement(contracts, previous, path)
    assert (count, status) == (None, "error") and named in details[0]


def test_the_committed_contract_changes_yml_is_valid_and_documents_every_change_kind():
    path = PROJECT_DIR / "contract_changes.yml"
    assert load_accepted_changes(path) == []
    text = path.read_text()
    assert all(kind in text for kind in CHANGE_KINDS)
