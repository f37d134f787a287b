"""The YAML sits beside the model it documents, so a column change touches the model's
SQL file and one YAML file; and the semantic layer only names columns those YAML files
declare, with a type that fits how it uses them.

Reads the YAML files directly (no dbt run): the layout is a property of the files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_DIR

MODELS = PROJECT_DIR / "models"
MARTS = MODELS / "marts"
SEMANTIC_MODELS = PROJECT_DIR / "semantic_models"

PLAIN_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REF = re.compile(r"""^ref\(\s*['"]([A-Za-z0-9_]+)['"]\s*\)$""")
NUMERIC = re.compile(
    r"^(tinyint|smallint|integer|int|bigint|hugeint|ubigint|uinteger|double|float|real"
    r"|decimal|numeric)(\s*\(.*\))?$"
)
TEMPORAL = re.compile(r"^(date|timestamp|timestamptz|timestamp with time zone|datetime)$")
NUMERIC_AGGS = {"sum", "average", "min", "max", "median", "percentile"}


def _rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_DIR))


def _model_files() -> list[Path]:
    return sorted(p for p in MODELS.rglob("*") if p.suffix in (".sql", ".py"))


def _yaml_files() -> list[Path]:
    return sorted(MODELS.rglob("*.yml"))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def test_every_model_has_its_own_yaml_beside_it():
    problems = []
    for code in _model_files():
        beside = code.with_suffix(".yml")
        if not beside.exists():
            problems.append(f"{_rel(code)}: no {beside.name} beside it")
            continue
        names = [m["name"] for m in _load(beside).get("models") or []]
        if names != [code.stem]:
            problems.append(f"{_rel(beside)} documents {names}, expected exactly [{code.stem!r}]")
    assert not problems, "\n".join(problems)


def test_no_yaml_documents_a_model_elsewhere():
    """Model docs and unit tests are only in `<model>.yml` next to `<model>.sql`/`.py`."""
    problems = []
    for path in _yaml_files():
        doc = _load(path)
        here = {p.stem for p in path.parent.iterdir() if p.suffix in (".sql", ".py")}
        documented = [m["name"] for m in doc.get("models") or []]
        tested = [u["model"] for u in doc.get("unit_tests") or []]
        for name in documented + tested:
            if name not in here:
                problems.append(f"{_rel(path)}: {name} is not a model in {_rel(path.parent)}/")
            elif name != path.stem:
                problems.append(f"{_rel(path)}: {name} belongs in {name}.yml")
    assert not problems, "\n".join(problems)


def _mart_columns() -> dict[str, tuple[Path, dict[str, str | None]]]:
    marts = {}
    for path in sorted(MARTS.glob("*.yml")):
        for model in _load(path).get("models") or []:
            columns = {c["name"]: c.get("data_type") for c in model.get("columns") or []}
            marts[model["name"]] = (path, columns)
    return marts


def _semantic_models() -> list[tuple[Path, dict]]:
    return [
        (path, sm)
        for path in sorted(SEMANTIC_MODELS.glob("*.yml"))
        for sm in _load(path).get("semantic_models") or []
    ]


def _column_uses(sm: dict):
    """(kind, element name, column, required type) for every plain-column use."""
    for entity in sm.get("entities") or []:
        yield "entity", entity["name"], entity.get("expr", entity["name"]), None
    for dim in sm.get("dimensions") or []:
        wanted = "temporal" if dim["type"] == "time" else None
        yield "dimension", dim["name"], dim.get("expr", dim["name"]), wanted
    for measure in sm.get("measures") or []:
        wanted = "numeric" if measure["agg"] in NUMERIC_AGGS else None
        yield "measure", measure["name"], measure.get("expr", measure["name"]), wanted


def _type_problem(data_type: str | None, wanted: str | None) -> str | None:
    if wanted is None:
        return None
    if data_type is None:
        return f"has no data_type (needs a {wanted} type)"
    pattern = TEMPORAL if wanted == "temporal" else NUMERIC
    if not pattern.match(data_type.strip().lower()):
        return f"has data_type {data_type}, not a {wanted} type"
    return None


def semantic_layer_problems() -> list[str]:
    marts = _mart_columns()
    problems = []
    for sm_path, sm in _semantic_models():
        where = f"{_rel(sm_path)} (semantic model {sm['name']})"
        ref = REF.match(str(sm.get("model", "")).strip())
        if not ref or ref.group(1) not in marts:
            problems.append(f"{where}: model {sm.get('model')!r} is not a mart in models/marts/")
            continue
        mart_path, columns = marts[ref.group(1)]
        for kind, name, column, wanted in _column_uses(sm):
            if not PLAIN_COLUMN.match(str(column)):
                continue  # an SQL expression: dbt build and the semantic layer tests cover it
            if column not in columns:
                problems.append(
                    f"{where}: {kind} {name} uses column {column}, "
                    f"which {_rel(mart_path)} does not declare"
                )
                continue
            issue = _type_problem(columns[column], wanted)
            if issue:
                problems.append(
                    f"{where}: {kind} {name} uses column {column}, which in "
                    f"{_rel(mart_path)} {issue}"
                )
    return problems


def test_semantic_models_use_declared_mart_columns_of_a_fitting_type():
    problems = semantic_layer_problems()
    assert not problems, "\n".join(problems)


def test_the_check_sees_semantic_models_and_columns():
    """Guard against a vacuous pass: every semantic model is checked, with columns."""
    uses = [u for _, sm in _semantic_models() for u in _column_uses(sm) if PLAIN_COLUMN.match(u[2])]
    assert len(_semantic_models()) >= 6
    assert any(w == "temporal" for *_, w in uses)
    assert any(w == "numeric" for *_, w in uses)


@pytest.mark.parametrize(
    ("data_type", "wanted", "ok"),
    [
        ("timestamp", "temporal", True),
        ("date", "temporal", True),
        ("varchar", "temporal", False),
        ("decimal(18, 2)", "numeric", True),
        ("double", "numeric", True),
        ("bigint", "numeric", True),
        ("varchar", "numeric", False),
        (None, "numeric", False),
        ("varchar", None, True),
    ],
)
def test_type_compatibility(data_type, wanted, ok):
    assert (_type_problem(data_type, wanted) is None) is ok
