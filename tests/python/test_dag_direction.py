"""The DAG reads left to right: raw -> staging -> intermediate -> marts -> semantic layer.

A model may read its own layer or a lower one, never a higher one: an intermediate
model never reads a mart, staging never reads intermediate work, and nothing reads the
audit material. Within staging, a stg_ model reads only base models (and raw inputs),
never another stg_ model. A model's layer is the folder it lives in under models/.

The checks read the manifest.json that `dbt parse` writes (its own target folder, so a
developer's target/ is never touched), and name both models and their files. The last
tests feed them a doctored manifest to prove each kind of violation is reported.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import run_dbt

pytestmark = pytest.mark.dbt

PACKAGE = "retail_xsell"

#: Rank of each layer; a node may depend only on nodes of the same or a lower rank.
#: utilities (the time spine) depend on nothing and may be read by any layer; audit
#: material (the row reconciliation) checks every layer below it and feeds none.
RAW, SEMANTIC = "raw", "semantic layer"
LAYER_RANK = {
    RAW: 0,
    "staging": 1,
    "utilities": 1,
    "intermediate": 2,
    "marts": 3,
    "audit": 4,
    SEMANTIC: 5,
}
#: manifest sections whose nodes belong to the semantic layer
SEMANTIC_SECTIONS = ("semantic_models", "metrics", "saved_queries")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    result = run_dbt(["parse"], tmp_path_factory.mktemp("dag"))
    assert result.returncode == 0, result.output[-4000:]
    return json.loads((result.target_path / "manifest.json").read_text())


def _resource(manifest: dict, unique_id: str) -> dict | None:
    for section in ("nodes", "sources", *SEMANTIC_SECTIONS):
        if unique_id in manifest.get(section, {}):
            return manifest[section][unique_id]
    return None


def layer_of(resource: dict) -> str | None:
    """The layer of a model, seed, source or semantic-layer resource; None if unknown."""
    kind = resource["resource_type"]
    if kind in {"seed", "source"}:
        return RAW
    if kind in {"semantic_model", "metric", "saved_query"}:
        return SEMANTIC
    parts = Path(resource["original_file_path"]).parts
    if kind == "model" and len(parts) > 2 and parts[0] == "models":
        return parts[1] if parts[1] in LAYER_RANK else None
    return None


def _describe(resource: dict, layer: str | None) -> str:
    return f"{resource['name']} ({resource['original_file_path']}, {layer or 'no layer'})"


def _own_dependents(manifest: dict):
    """(unique id, resource) of every model and semantic-layer resource of the project."""
    for section in ("nodes", *SEMANTIC_SECTIONS):
        for unique_id, resource in manifest.get(section, {}).items():
            if resource.get("package_name") != PACKAGE:
                continue
            if section == "nodes" and resource["resource_type"] != "model":
                continue
            yield unique_id, resource


def layer_violations(manifest: dict) -> list[str]:
    """Every dependency on a higher layer, and every model outside a known layer."""
    problems = []
    for _uid, resource in _own_dependents(manifest):
        layer = layer_of(resource)
        if layer is None:
            problems.append(
                f"{_describe(resource, layer)} is in no known layer; put it under "
                f"models/{{{', '.join(sorted(set(LAYER_RANK) - {RAW, SEMANTIC}))}}}/"
            )
            continue
        for parent_id in resource["depends_on"]["nodes"]:
            parent = _resource(manifest, parent_id)
            if parent is None:
                continue
            parent_layer = layer_of(parent)
            if parent_layer is None:
                continue  # reported as a model of no known layer
            if LAYER_RANK[parent_layer] > LAYER_RANK[layer]:
                problems.append(
                    f"{_describe(resource, layer)} reads {_describe(parent, parent_layer)}, "
                    "a higher layer"
                )
    return problems


def _is_base(resource: dict) -> bool:
    return "base" in Path(resource["original_file_path"]).parts


def staging_reads_staging(manifest: dict) -> list[str]:
    """stg_ models that read another stg_ model (base models are what they build on)."""
    problems = []
    for _uid, resource in _own_dependents(manifest):
        if layer_of(resource) != "staging" or _is_base(resource):
            continue
        for parent_id in resource["depends_on"]["nodes"]:
            parent = _resource(manifest, parent_id)
            if (
                parent is not None
                and parent["resource_type"] == "model"
                and layer_of(parent) == "staging"
                and not _is_base(parent)
            ):
                problems.append(
                    f"{_describe(resource, 'staging')} reads another staging model, "
                    f"{_describe(parent, 'staging')}; build on base models instead"
                )
    return problems


def test_no_model_reads_a_higher_layer(manifest):
    problems = layer_violations(manifest)
    assert not problems, "\n".join(problems)


def test_staging_models_read_only_base_models_and_raw_inputs(manifest):
    problems = staging_reads_staging(manifest)
    assert not problems, "\n".join(problems)


def test_the_check_sees_every_layer(manifest):
    """Guard against a vacuous pass: models of every layer, with dependencies, are seen."""
    layers = {layer_of(r) for _uid, r in _own_dependents(manifest)}
    assert layers >= {"staging", "intermediate", "marts", "audit", SEMANTIC}, layers
    edges = sum(len(r["depends_on"]["nodes"]) for _uid, r in _own_dependents(manifest))
    assert edges > 40


# --- the checks can fail ----------------------------------------------------------------


def _model(manifest: dict, name: str) -> dict:
    return manifest["nodes"][f"model.{PACKAGE}.{name}"]


def test_an_intermediate_model_reading_a_mart_is_reported(manifest):
    doctored = copy.deepcopy(manifest)
    intermediate = _model(doctored, "int_sale_lines_categorised")
    intermediate["depends_on"]["nodes"].append(f"model.{PACKAGE}.order_lines")
    assert layer_violations(doctored) == [
        "int_sale_lines_categorised (models/intermediate/int_sale_lines_categorised.sql, "
        "intermediate) reads order_lines (models/marts/order_lines.sql, marts), "
        "a higher layer"
    ]


def test_reading_the_audit_layer_or_an_unknown_folder_is_reported(manifest):
    doctored = copy.deepcopy(manifest)
    _model(doctored, "customers")["depends_on"]["nodes"].append(
        f"model.{PACKAGE}.row_reconciliation"
    )
    _model(doctored, "products")["original_file_path"] = "models/reports/products.sql"
    problems = " | ".join(layer_violations(doctored))
    assert "customers (models/marts/customers.sql, marts) reads row_reconciliation" in problems
    assert "products (models/reports/products.sql, no layer) is in no known layer" in problems


def test_a_staging_model_reading_another_is_reported(manifest):
    doctored = copy.deepcopy(manifest)
    _model(doctored, "stg_retail__rejected_rows")["depends_on"]["nodes"].append(
        f"model.{PACKAGE}.stg_retail__customers"
    )
    (problem,) = staging_reads_staging(doctored)
    assert problem.startswith(
        "stg_retail__rejected_rows (models/staging/retail/stg_retail__rejected_rows.sql, "
        "staging) reads another staging model, stg_retail__customers"
    )
