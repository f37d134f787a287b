"""slos.yml: the product's objectives as a typed model, checked before anything is measured.

A typo must fail loudly instead of skipping an objective, so the model forbids unknown
keys, knows every measurement kind (the registry of :mod:`.measurements`) and the
parameters each kind needs, and checks that overrides name declared objectives and
still give valid ones. The same model gives the JSON schema editors use to complete and
check slos.yml (``docs/slos.schema.json``; ``make slo-schema`` regenerates it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from retail_xsell import settings
from retail_xsell.quality.measurements import DEFAULT_BUILD_VARS, MEASUREMENTS

CATEGORIES = ("architecture", "quality", "governance")
SCHEMA_FILE = Path("docs") / "slos.schema.json"

#: A number as written in YAML: 72 stays an integer (reports and contracts show it so).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
#: The measurement kinds, for the schema's enum.
_KINDS: list[JsonValue] = [kind for kind in sorted(MEASUREMENTS)]


class GateSetupError(RuntimeError):
    """The gate cannot start: no slos.yml, no build artifacts, no database."""


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Declaration):
    """The band the measured value must lie in, in the objective's unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"minProperties": 1})

    min: Number | None = Field(None, description="lowest passing value (inclusive)")
    max: Number | None = Field(None, description="highest passing value (inclusive)")

    @model_validator(mode="after")
    def _has_a_bound(self) -> Target:
        if self.min is None and self.max is None:
            raise ValueError("target needs min and/or max")
        return self

    def bounds(self) -> dict[str, int | float]:
        """The declared bounds only, as written: ``{"max": 72}``."""
        return self.model_dump(exclude_none=True)


class Slo(_Declaration):
    """One service level objective."""

    name: str = Field(min_length=1, description="unique name, used in reports and overrides")
    category: Literal["architecture", "quality", "governance"]
    description: str = Field("", description="what is measured, for the report's reader")
    measurement: str = Field(
        description="how the value is measured: one function each in "
        "retail_xsell/quality/measurements.py",
        json_schema_extra={"enum": _KINDS},
    )
    target: Target
    unit: str = Field(description="unit of the measured value and the target (share: 0-1)")
    blocking: bool = Field(
        description="true: a breach fails the gate and stops publication; false: a warning"
    )
    where: str = Field("", description="where to look when it is breached")
    # Parameters of particular measurement kinds.
    source: str | None = Field(
        None, description="source_freshness: the dbt source it describes (source.table)"
    )
    clock_tolerance_hours: Number = Field(
        1.0,
        ge=0,
        description="source_freshness: a load this many hours after the build started is "
        "clock skew (age 0); later is an error",
    )
    columns: list[str] = Field(
        default_factory=list,
        description="tagged_dbt_tests: the mart columns, as model.column, that must carry "
        "a dbt test tagged slo:<name>",
        json_schema_extra={"items": {"type": "string", "pattern": r"^[^.]+\.[^.]+$"}},
    )
    aggregate: Literal["passing_share", "failures"] = Field(
        "passing_share",
        description="tagged_dbt_tests: the worst test's share of rows passing, or the "
        "failing rows summed",
    )
    every_public_model: bool = Field(
        False,
        description="tagged_dbt_tests: every public model must carry a test tagged "
        "slo:<name> (its key test)",
    )
    repeats: int = Field(3, ge=1, description="query_latency: warm repeats of each query")
    accepted_changes: str = Field(
        "contract_changes.yml",
        description="contract_breaking_changes: the file of accepted breaking changes, "
        "relative to the project",
    )
    pseudonym: str = Field(
        "customers.email_sha256",
        description="development_pseudonym_key: the pseudonymised column (model.column)",
    )
    raw: str = Field(
        "stg_retail__customer_pii.email_normalised",
        description="development_pseudonym_key: the raw values it was made from (model.column)",
    )
    join_on: str = Field(
        "customer_id", description="development_pseudonym_key: the key joining the two models"
    )
    sample_rows: int = Field(
        200,
        ge=1,
        description="development_pseudonym_key: how many pseudonyms to recompute (one made "
        "with a public key proves it was used)",
    )

    @field_validator("measurement")
    @classmethod
    def _known_measurement(cls, value: str) -> str:
        if value not in MEASUREMENTS:
            raise ValueError(f"unknown measurement {value!r}")
        return value

    @field_validator("columns")
    @classmethod
    def _model_dot_column(cls, value: list[str]) -> list[str]:
        bad = [column for column in value if column.count(".") != 1]
        if bad:
            raise ValueError(f"columns must be written model.column: {bad}")
        return value

    @model_validator(mode="after")
    def _has_its_parameters(self) -> Slo:
        missing = [
            name for name in MEASUREMENTS[self.measurement].requires if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"measurement {self.measurement} needs {', '.join(missing)}")
        return self


class Override(_Declaration):
    """Changes to some objectives when the build's own vars match `when`."""

    name: str = Field(min_length=1)
    when: dict[str, str | int | float | bool] = Field(
        description="dbt vars of the build (run_results.json); unset vars take their "
        "defaults (raw_input_format: seed)"
    )
    reason: str = Field(description="why: shown beside each changed result in the report")
    slos: dict[str, dict[str, Any]] = Field(
        description="per objective name, the fields to change (for example blocking: false)"
    )

    def applies(self, build_vars: dict[str, Any]) -> bool:
        values = {**DEFAULT_BUILD_VARS, **build_vars}
        return all(values.get(key) == value for key, value in self.when.items())

    @property
    def note(self) -> str:
        return f"override {self.name}: {' '.join(self.reason.split())}"


class SloFile(_Declaration):
    """The whole of slos.yml."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Service level objectives of the retail cross-sell data product",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1]
    slos: list[Slo] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SloFile:
        names: set[str] = set()
        for slo in self.slos:
            if slo.name in names:
                raise ValueError(f"SLO {slo.name} is declared twice")
            names.add(slo.name)
        for override in self.overrides:
            unknown = set(override.slos) - names
            if unknown:
                raise ValueError(f"override {override.name} names {sorted(unknown)}")
        for slo in self.slos:
            # Every override must leave a valid objective, whether it applies today or not.
            self.effective(slo, self.overrides)
        return self

    def slo(self, name: str) -> Slo:
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(f"no SLO named {name!r}")

    def active_overrides(self, build_vars: dict[str, Any]) -> list[Override]:
        """Overrides whose `when` matches the build's vars (missing vars take dbt's
        defaults from dbt_project.yml, so the sample build with no --vars counts as seed
        input)."""
        return [override for override in self.overrides if override.applies(build_vars)]

    @staticmethod
    def effective(slo: Slo, overrides: list[Override]) -> tuple[Slo, list[str]]:
        """``slo`` with the changes of ``overrides`` applied, and a note per override."""
        changes: dict[str, Any] = {}
        notes = []
        for override in overrides:
            if slo.name in override.slos:
                changes.update(override.slos[slo.name])
                notes.append(override.note)
        if not changes:
            return slo, notes
        return Slo.model_validate({**slo.model_dump(exclude_unset=True), **changes}), notes

    def as_document(self) -> dict[str, Any]:
        """The declarations as written in the file (what the data contracts carry)."""
        return self.model_dump(exclude_unset=True)


def _entry_name(document: object, section: object, index: object) -> str | None:
    """The name of ``document[section][index]``, if the document gets that far."""
    if not (isinstance(document, dict) and isinstance(section, str) and isinstance(index, int)):
        return None
    entries = document.get(section)
    if isinstance(entries, list) and 0 <= index < len(entries):
        entry = entries[index]
        return str(entry.get("name")) if isinstance(entry, dict) else None
    return None


def _readable(error: ValidationError, document: object) -> str:
    """pydantic's errors as lines that name the objective, not just its list index."""
    lines = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        where = ".".join(location) or "the file"
        if len(item["loc"]) >= 2 and item["loc"][0] in ("slos", "overrides"):
            name = _entry_name(document, item["loc"][0], item["loc"][1])
            kind = "SLO" if item["loc"][0] == "slos" else "override"
            where = " ".join([f"{kind} {name!r}", *location[2:]])
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def load_slos(path: Path) -> SloFile:
    """Read and check slos.yml; GateSetupError names what is wrong and where."""
    if not path.is_file():
        raise GateSetupError(f"no SLO file at {path}")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GateSetupError(f"{path} is not valid YAML: {exc}") from None
    try:
        return SloFile.model_validate(document)
    except ValidationError as exc:
        raise GateSetupError(f"{path}: {_readable(exc, document)}") from None


def json_schema() -> dict[str, Any]:
    """The JSON schema of slos.yml, for editors (yaml-language-server) and CI."""
    return SloFile.model_json_schema()


def write_json_schema(path: Path | None = None) -> Path:
    """Write :func:`json_schema` to ``path`` (default: docs/slos.schema.json)."""
    path = path or settings.project_dir() / SCHEMA_FILE
    path.write_text(json.dumps(json_schema(), indent=2) + "\n")
    return path
