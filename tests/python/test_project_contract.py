"""Static checks of the dbt project's YAML: the input contract and governance metadata
are written down once and agree everywhere they are repeated."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import PROJECT_DIR
from retail_xsell.generator.schema import RAW_SCHEMA

SOURCES_YML = PROJECT_DIR / "models" / "staging" / "retail" / "_retail__sources.yml"
SEEDS_YML = PROJECT_DIR / "seeds" / "_seeds.yml"
CLASSIFICATIONS = {"public", "internal", "confidential", "restricted"}
PII_KINDS = {"email", "phone", "name", "address", "birth_date"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _property_files() -> list[Path]:
    return sorted(
        p
        for folder in ("models", "seeds", "semantic_models")
        for p in (PROJECT_DIR / folder).rglob("*.yml")
    )


def test_sources_declare_exactly_the_generator_schema():
    (source,) = _load(SOURCES_YML)["sources"]
    declared = {t["name"]: tuple(c["name"] for c in t["columns"]) for t in source["tables"]}
    assert declared == RAW_SCHEMA


def test_dbt_var_declares_exactly_the_generator_schema():
    contract = _load(PROJECT_DIR / "dbt_project.yml")["vars"]["raw_contract"]
    assert {table: tuple(columns) for table, columns in contract.items()} == RAW_SCHEMA


def test_raw_seeds_load_every_contract_column_as_text():
    seeds = {s["name"]: s for s in _load(SEEDS_YML)["seeds"]}
    for table, columns in RAW_SCHEMA.items():
        column_types = seeds[table]["config"]["column_types"]
        assert column_types == dict.fromkeys(columns, "varchar"), table
        assert [c["name"] for c in seeds[table]["columns"]] == list(columns)


def test_every_column_is_described_and_classified():
    problems = []
    for path in _property_files():
        document = _load(path) or {}
        nodes = [*document.get("models", []), *document.get("seeds", [])]
        for source in document.get("sources", []):
            nodes += source.get("tables", [])
        for node in nodes:
            if not (node.get("description") or "").strip():
                problems.append(f"{path.name}: {node['name']} has no description")
            for column in node.get("columns", []):
                where = f"{path.name}: {node['name']}.{column['name']}"
                meta = (column.get("config") or {}).get("meta") or {}
                if not (column.get("description") or "").strip():
                    problems.append(f"{where} has no description")
                if meta.get("classification") not in CLASSIFICATIONS:
                    problems.append(f"{where} has no valid meta.classification")
                if "pii" in meta and meta["pii"] not in PII_KINDS:
                    problems.append(f"{where} has an unknown meta.pii {meta['pii']!r}")
    assert problems == []


def test_raw_pii_only_in_private_models():
    """A model that exposes a column tagged as PII without a pseudonymising treatment
    must be private, so nothing outside its group can select from it."""
    problems = []
    for path in _property_files():
        for model in (_load(path) or {}).get("models", []):
            access = (model.get("config") or {}).get("access", "protected")
            for column in model.get("columns", []):
                meta = (column.get("config") or {}).get("meta") or {}
                if "pii" in meta and "pii_treatment" not in meta and access != "private":
                    problems.append(f"{model['name']}.{column['name']} ({access})")
    assert problems == []
