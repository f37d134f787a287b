"""slos.yml is checked before anything is measured, and its JSON schema is the model's.

No build is needed: these read the committed slos.yml and variants of it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import PROJECT_DIR
from retail_xsell.quality import MEASUREMENTS, GateSetupError, json_schema, load_slos
from retail_xsell.quality.declarations import SCHEMA_FILE

SLO_FILE = PROJECT_DIR / "slos.yml"


def _document() -> dict[str, Any]:
    return yaml.safe_load(SLO_FILE.read_text())


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "slos.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_committed_schema_is_the_models_schema():
    committed = json.loads((PROJECT_DIR / SCHEMA_FILE).read_text())
    assert committed == json_schema(), (
        f"{SCHEMA_FILE} is out of date with retail_xsell/quality/declarations.py: "
        "run `make slo-schema` and commit the result"
    )


def test_committed_slo_file_meets_its_schema_and_the_model():
    document = _document()
    jsonschema.validate(document, json_schema())
    declared = load_slos(SLO_FILE)
    # What the data contracts carry is the file as written, defaults not added.
    assert declared.as_document() == document
    assert {slo.measurement for slo in declared.slos} <= set(MEASUREMENTS)
    assert json_schema()["$defs"]["Slo"]["properties"]["measurement"]["enum"] == sorted(
        MEASUREMENTS
    )


def _broken(change) -> dict[str, Any]:
    document = copy.deepcopy(_document())
    change(document)
    return document


BROKEN = {
    "unknown measurement 'source_freshnes'": lambda d: d["slos"][0].update(
        measurement="source_freshnes"
    ),
    "SLO 'purchase_freshness' blockng: Extra inputs are not permitted": lambda d: d["slos"][
        0
    ].update(blockng=True),
    "target needs min and/or max": lambda d: d["slos"][1].update(target={}),
    "SLO 'completeness_raw_rows' category": lambda d: d["slos"][1].update(category="speed"),
    "columns must be written model.column": lambda d: d["slos"][2]["columns"].append("orders"),
    "SLO reconciliation is declared twice": lambda d: d["slos"].append(
        next(s for s in d["slos"] if s["name"] == "reconciliation")
    ),
    "override committed_sample names ['purchase_freshnes']": lambda d: d["overrides"][0][
        "slos"
    ].update(purchase_freshnes={"blocking": False}),
    "blocking: Input should be a valid boolean": lambda d: d["overrides"][0]["slos"].update(
        purchase_freshness={"blocking": "sometimes"}
    ),
}


@pytest.mark.parametrize("message", sorted(BROKEN))
def test_a_mistake_in_the_slo_file_stops_the_gate_naming_it(tmp_path, message):
    path = _write(tmp_path, _broken(BROKEN[message]))
    with pytest.raises(GateSetupError) as error:
        load_slos(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_the_schema_rejects_what_the_model_rejects_for_editors(tmp_path):
    for message in ("unknown measurement 'source_freshnes'", "target needs min and/or max"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(_broken(BROKEN[message]), json_schema())


def test_a_missing_slo_file_is_a_setup_error(tmp_path):
    with pytest.raises(GateSetupError, match="no SLO file at"):
        load_slos(tmp_path / "none.yml")


def test_an_override_applies_only_when_the_builds_vars_match():
    declared = load_slos(SLO_FILE)
    freshness = declared.slo("purchase_freshness")
    assert declared.active_overrides({}) == declared.overrides  # no vars: the seeds
    (override,) = declared.active_overrides({"raw_input_format": "seed"})
    changed, notes = declared.effective(freshness, [override])
    assert (freshness.blocking, changed.blocking) == (True, False)
    assert notes == [f"override committed_sample: {' '.join(override.reason.split())}"]
    assert declared.active_overrides({"raw_input_format": "parquet"}) == []
