"""Every row-level data rule an SLO counts is a dbt data test tagged `slo:<slo name>`.

The quality gate reads those tests' results from run_results.json by tag, so slos.yml
and the tests must stay in step: each key column of completeness_key_columns has a
tagged not_null test, each public mart's unique / unique_combination_of_columns tests
are tagged for uniqueness_mart_keys, and each column validity_mart_values lists
has a tagged accepted_values / accepted_range test. A tag naming no SLO is a typo.

Reads slos.yml and the manifest.json that `dbt parse` writes to its own target folder.
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import PROJECT_DIR, run_dbt

pytestmark = pytest.mark.dbt

PACKAGE = "retail_xsell"
KEY_TESTS = {"unique", "unique_combination_of_columns"}
VALIDITY_TESTS = {"accepted_values", "accepted_range"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    result = run_dbt(["parse"], tmp_path_factory.mktemp("slo_tags"))
    assert result.returncode == 0, result.output[-4000:]
    return json.loads((result.target_path / "manifest.json").read_text())


@pytest.fixture(scope="module")
def slos() -> dict[str, dict]:
    document = yaml.safe_load((PROJECT_DIR / "slos.yml").read_text())
    return {slo["name"]: slo for slo in document["slos"]}


def _tests(manifest: dict) -> list[dict]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and node.get("package_name") == PACKAGE
        and node.get("test_metadata")
    ]


def _model_name(test: dict) -> str | None:
    attached = test.get("attached_node") or ""
    return attached.split(".")[-1] if attached.startswith("model.") else None


def _tagged(manifest: dict, slo: str) -> list[dict]:
    return [t for t in _tests(manifest) if f"slo:{slo}" in t["tags"]]


def _on(tests: list[dict], model: str, column: str, kinds: set[str]) -> list[dict]:
    return [
        t
        for t in tests
        if _model_name(t) == model
        and t.get("column_name") == column
        and t["test_metadata"]["name"] in kinds
    ]


def test_every_key_column_has_a_tagged_not_null_test(manifest, slos):
    tagged = _tagged(manifest, "completeness_key_columns")
    missing = [
        name
        for name in slos["completeness_key_columns"]["columns"]
        if not _on(tagged, *name.split("."), {"not_null"})
    ]
    assert missing == [], "no not_null test tagged slo:completeness_key_columns"
    assert {t["test_metadata"]["name"] for t in tagged} == {"not_null"}


def test_every_public_mart_key_test_is_tagged(manifest, slos):
    assert "uniqueness_mart_keys" in slos
    public = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node.get("package_name") == PACKAGE
        and node.get("access") == "public"
    }
    key_tests = [
        t
        for t in _tests(manifest)
        if _model_name(t) in public and t["test_metadata"]["name"] in KEY_TESTS
    ]
    assert {_model_name(t) for t in key_tests} == public, "a public mart has no key test"
    untagged = [t["name"] for t in key_tests if "slo:uniqueness_mart_keys" not in t["tags"]]
    assert untagged == []
    tagged = _tagged(manifest, "uniqueness_mart_keys")
    assert {t["unique_id"] for t in tagged} == {t["unique_id"] for t in key_tests}


def test_every_validity_column_has_a_tagged_test(manifest, slos):
    tagged = _tagged(manifest, "validity_mart_values")
    missing = [
        name
        for name in slos["validity_mart_values"]["columns"]
        if not _on(tagged, *name.split("."), VALIDITY_TESTS)
    ]
    assert missing == [], "no accepted_values/accepted_range test tagged slo:validity_mart_values"
    assert {t["test_metadata"]["name"] for t in tagged} <= VALIDITY_TESTS


def test_validity_tests_do_not_fail_on_nulls(manifest):
    """Completeness measures nulls; a validity test must not count them a second time."""
    for test in _tagged(manifest, "validity_mart_values"):
        assert "not_null" not in test["test_metadata"]["name"], test["name"]


def test_every_slo_tag_names_an_slo(manifest, slos):
    unknown = sorted(
        f"{t['name']}: {tag}"
        for t in _tests(manifest)
        for tag in t["tags"]
        if tag.startswith("slo:") and tag.removeprefix("slo:") not in slos
    )
    assert unknown == []
