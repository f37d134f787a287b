"""The docs site is the product's catalogue entry: it must build, and nothing on it may
be left undescribed.

`dbt docs generate` runs once on the sample build; the checks read what it wrote
(manifest.json for everything declared, catalog.json for what the database actually
holds), so a column that a model produces but nobody documented is caught as well as
an empty description in the YAML. The checks are plain functions over those two
documents, and the last tests feed them a copy with one description removed, to prove
each kind of gap is reported.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_dbt
from retail_xsell.governance import governance_gaps

PACKAGE = "retail_xsell"
GENERIC_TESTS = {
    "test_accepted_range",
    "test_expression_is_true",
    "test_regex_full_match",
    "test_unique_combination_of_columns",
}
#: The consumers of DESIGN.md and the exposure that stands for each on the docs site.
CONSUMER_EXPOSURES = {
    "marketing": "marketing_clv_cross_sell_dashboard",
    "sales": "sales_cross_sell_list",
    "executives": "executive_kpi_view",
}


@dataclass(frozen=True)
class DocsSite:
    returncode: int
    output: str
    target_path: Path
    manifest: dict
    catalog: dict


@pytest.fixture(scope="module")
def docs_site(sample_db: Path, tmp_path_factory) -> DocsSite:
    """`dbt docs generate` on the sample build, into a target folder of its own.

    Macro argument docs that disagree with the Jinja definition are only a warning in
    dbt (flag validate_macro_args); here they fail the generation.
    """
    result = run_dbt(
        [
            "docs",
            "generate",
            "--warn-error-options",
            json.dumps({"error": ["InvalidMacroAnnotation"]}),
        ],
        tmp_path_factory.mktemp("docs"),
        env={"RETAIL_XSELL_DUCKDB_PATH": str(sample_db)},
    )
    target = result.target_path

    def load(name: str) -> dict:
        path = target / name
        return json.loads(path.read_text()) if path.is_file() else {}

    return DocsSite(
        result.returncode, result.output, target, load("manifest.json"), load("catalog.json")
    )


def _blank(value: object) -> bool:
    return not (isinstance(value, str) and value.strip())


def _own(resources: dict) -> Iterator[tuple[str, dict]]:
    for unique_id, resource in resources.items():
        if resource.get("package_name") == PACKAGE:
            yield unique_id, resource


def undescribed_nodes(manifest: dict) -> list[str]:
    """Models, seeds and sources of this project, and their columns, without a description."""
    problems = []
    nodes = [
        (uid, node)
        for uid, node in _own(manifest["nodes"])
        if node["resource_type"] in {"model", "seed", "snapshot"}
    ]
    for uid, node in [*nodes, *_own(manifest["sources"])]:
        if _blank(node.get("description")):
            problems.append(f"{uid} has no description")
        for column_name, column in node["columns"].items():
            if _blank(column.get("description")):
                problems.append(f"{uid}.{column_name} has no description")
    for uid, source in _own(manifest["sources"]):
        if _blank(source.get("source_description")):
            problems.append(f"{uid}: source {source['source_name']} has no description")
    return problems


def undocumented_built_columns(manifest: dict, catalog: dict) -> list[str]:
    """Columns the database holds (catalog) that the YAML does not document."""
    problems = []
    for section in ("nodes", "sources"):
        for uid, table in catalog.get(section, {}).items():
            declared = manifest[section].get(uid)
            if declared is None or declared.get("package_name") != PACKAGE:
                continue
            # Failing data tests store their rows (store_failures, schema main_audit):
            # audit output shaped like the tested model, not a documented product table.
            if declared["resource_type"] == "test":
                continue
            documented = {name.lower() for name in declared["columns"]}
            problems += [
                f"{uid}.{column} is built but not documented"
                for column in table["columns"]
                if column.lower() not in documented
            ]
    return problems


def undescribed_macros(manifest: dict) -> list[str]:
    """Project macros (generic tests included) and their arguments without a description."""
    problems = []
    for uid, macro in _own(manifest["macros"]):
        if _blank(macro.get("description")):
            problems.append(f"{uid} has no description")
        problems += [
            f"{uid}({argument['name']}) has no description"
            for argument in macro.get("arguments", [])
            if _blank(argument.get("description"))
        ]
    return problems


def undescribed_semantic_layer(manifest: dict) -> list[str]:
    """Metrics, semantic models (with their entities, dimensions, measures), saved queries
    and exposures without a description, and metrics or saved queries without a label."""
    problems = []
    for section in ("metrics", "semantic_models", "saved_queries", "exposures"):
        for uid, resource in _own(manifest[section]):
            if _blank(resource.get("description")):
                problems.append(f"{uid} has no description")
            if section in {"metrics", "saved_queries"} and _blank(resource.get("label")):
                problems.append(f"{uid} has no label")
    for uid, model in _own(manifest["semantic_models"]):
        for kind in ("entities", "dimensions", "measures"):
            problems += [
                f"{uid} {kind} {item['name']} has no description"
                for item in model[kind]
                if _blank(item.get("description"))
            ]
    return problems


def test_docs_generate_writes_the_site(docs_site: DocsSite):
    assert docs_site.returncode == 0, docs_site.output[-4000:]
    assert (docs_site.target_path / "index.html").is_file()
    assert docs_site.manifest and docs_site.catalog
    overview = docs_site.manifest["docs"][f"doc.{PACKAGE}.__overview__"]["block_contents"]
    for exposure in CONSUMER_EXPOSURES.values():
        assert exposure in overview, f"the overview page does not point to {exposure}"


def test_every_model_seed_source_and_column_is_described(docs_site: DocsSite):
    assert undescribed_nodes(docs_site.manifest) == []


def test_every_built_column_is_documented(docs_site: DocsSite):
    assert undocumented_built_columns(docs_site.manifest, docs_site.catalog) == []


def test_every_macro_and_generic_test_is_described(docs_site: DocsSite):
    macros = {macro["name"] for _uid, macro in _own(docs_site.manifest["macros"])}
    assert macros >= GENERIC_TESTS, "the generic tests are not registered as macros"
    assert undescribed_macros(docs_site.manifest) == []


def test_every_metric_semantic_model_saved_query_and_exposure_is_described(
    docs_site: DocsSite,
):
    assert undescribed_semantic_layer(docs_site.manifest) == []


def test_public_models_are_governed(docs_site: DocsSite):
    """Other teams build on public models, so each must say whom to ask and what holds:
    the rule of the gate's public_models_governed objective (retail_xsell.governance)."""
    public = [
        uid
        for uid, node in _own(docs_site.manifest["nodes"])
        if node["resource_type"] == "model" and node.get("access") == "public"
    ]
    assert len(public) >= 5, public
    assert governance_gaps(docs_site.manifest) == []


@pytest.mark.parametrize("consumer", sorted(CONSUMER_EXPOSURES))
def test_each_consumer_has_an_exposure_with_an_owner(docs_site: DocsSite, consumer: str):
    exposure = docs_site.manifest["exposures"].get(
        f"exposure.{PACKAGE}.{CONSUMER_EXPOSURES[consumer]}"
    )
    assert exposure is not None, f"no exposure for {consumer}"
    assert exposure["owner"].get("name") and exposure["owner"].get("email")
    assert exposure["maturity"] in {"high", "medium", "low"}
    parents = exposure["depends_on"]["nodes"]
    assert any(parent.startswith("model.") for parent in parents), parents
    assert any(tag.startswith("use_case:") for tag in exposure["tags"]), exposure["tags"]


# --- the checks can fail ----------------------------------------------------------------


def _first_own(resources: dict, resource_type: str | None = None) -> dict:
    return next(
        resource
        for _uid, resource in _own(resources)
        if resource_type is None or resource["resource_type"] == resource_type
    )


def test_checks_report_each_kind_of_missing_description(docs_site: DocsSite):
    """Remove one description of each kind from a copy of the manifest: each is reported."""
    manifest = copy.deepcopy(docs_site.manifest)
    model = _first_own(manifest["nodes"], "model")
    model["description"] = ""
    seed = _first_own(manifest["nodes"], "seed")
    next(iter(seed["columns"].values()))["description"] = " "
    source = _first_own(manifest["sources"])
    next(iter(source["columns"].values()))["description"] = ""
    generic_test = manifest["macros"][f"macro.{PACKAGE}.test_accepted_range"]
    generic_test["arguments"][-1]["description"] = ""
    metric = _first_own(manifest["metrics"])
    metric["description"] = ""
    dimension = _first_own(manifest["semantic_models"])["dimensions"][0]
    dimension["description"] = None
    exposure = _first_own(manifest["exposures"])
    exposure["description"] = ""

    node_problems = " ".join(undescribed_nodes(manifest))
    assert model["unique_id"] in node_problems
    assert seed["unique_id"] in node_problems
    assert source["unique_id"] in node_problems
    assert "test_accepted_range(inclusive)" in " ".join(undescribed_macros(manifest))
    semantic_problems = " ".join(undescribed_semantic_layer(manifest))
    assert metric["unique_id"] in semantic_problems
    assert dimension["name"] in semantic_problems
    assert exposure["unique_id"] in semantic_problems


def test_checks_report_built_columns_missing_from_the_docs(docs_site: DocsSite):
    manifest = copy.deepcopy(docs_site.manifest)
    uid = f"model.{PACKAGE}.customer_value"
    del manifest["nodes"][uid]["columns"]["clv"]
    assert undocumented_built_columns(manifest, docs_site.catalog) == [
        f"{uid}.clv is built but not documented"
    ]


def test_checks_report_a_public_model_without_contract_owner_or_description(
    docs_site: DocsSite,
):
    manifest = copy.deepcopy(docs_site.manifest)
    manifest["nodes"][f"model.{PACKAGE}.customers"]["config"]["contract"]["enforced"] = False
    orders = manifest["nodes"][f"model.{PACKAGE}.orders"]
    orders["group"] = None
    for meta in (orders["meta"], orders["config"]["meta"]):
        meta.pop("owner", None)
    products = manifest["nodes"][f"model.{PACKAGE}.products"]
    products["description"] = " "
    products["columns"]["brand"]["description"] = ""
    assert sorted(governance_gaps(manifest)) == [
        "customers: contract not enforced",
        "orders: no owner (group or meta.owner)",
        "products.brand: no description",
        "products: no description",
    ]
