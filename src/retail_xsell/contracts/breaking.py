"""Breaking changes between the last publication's contracts and the current build's.

A consumer of a public output port (duckdb, parquet) relies on what its contract
promised. The gate blocks a publication that takes a promise back without saying so:

- a removed table (schema object) or a removed or renamed column,
- a changed physical type (but a decimal widened losslessly, decimal(18, 2) ->
  decimal(20, 4), keeps every promised value exactly and is not breaking),
- tightened nullability (required false -> true),
- a removed allowed value (accepted_values).

Added tables and columns and loosened nullability are not breaking. A breaking change
is allowed when the dbt model's version differs from the one recorded on the previous
contract's schema object (the consumer was told with a new version), or when it is
declared in contract_changes.yml with a reason and an approver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retail_xsell.contracts.odcs import OUTPUT_PORTS

CONTRACT_SUFFIX = ".odcs.yaml"
CHANGE_KINDS = (
    "removed_object",
    "removed_column",
    "type_changed",
    "nullability_tightened",
    "allowed_value_removed",
)
_ENTRY_KEYS = {"port", "object", "column", "change", "reason", "approved_by"}
_REQUIRED_KEYS = ("port", "object", "change", "reason", "approved_by")


class ContractChangesError(ValueError):
    """contract_changes.yml (or a previous contract) cannot be read as documented."""


@dataclass(frozen=True)
class AcceptedChange:
    port: str
    object: str
    column: str | None
    change: str
    reason: str
    approved_by: str


@dataclass(frozen=True)
class BreakingChange:
    port: str
    object: str
    column: str | None
    change: str
    what: str  # "was removed", "changed type from bigint to varchar", ...
    model: str
    previous_version: str | None
    current_version: str | None
    accepted_by: AcceptedChange | None = None

    @property
    def version_bumped(self) -> bool:
        return self.previous_version != self.current_version and self.current_version is not None

    @property
    def allowed(self) -> bool:
        return self.version_bumped or self.accepted_by is not None

    @property
    def message(self) -> str:
        element = self.object if self.column is None else f"{self.object}.{self.column}"
        head = f"port {self.port}: {element} {self.what}"
        if self.version_bumped:
            return (
                f"{head} (model {self.model}, version {self.previous_version or 'unversioned'}"
                f" -> {self.current_version}): allowed, the model's version was bumped"
            )
        if self.accepted_by is not None:
            return (
                f"{head} (model {self.model}): accepted in contract_changes.yml by "
                f"{self.accepted_by.approved_by}: {self.accepted_by.reason}"
            )
        return (
            f"{head} (model {self.model}, version unchanged). Bump the model's version "
            "or declare it in contract_changes.yml"
        )


def load_accepted_changes(path: Path) -> list[AcceptedChange]:
    """Read and check contract_changes.yml; a missing file declares nothing."""
    if not path.is_file():
        return []
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ContractChangesError(f"{path}: not valid YAML: {error}") from error
    if document is None:
        return []
    if not isinstance(document, dict) or set(document) != {"accepted_changes"}:
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise ContractChangesError(
            f"{path}: expected one top-level key `accepted_changes` (a list), found {found}"
        )
    entries = document["accepted_changes"] or []
    if not isinstance(entries, list):
        raise ContractChangesError(f"{path}: `accepted_changes` must be a list")
    accepted = []
    for index, entry in enumerate(entries, start=1):
        where = f"{path}: accepted_changes entry {index}"
        if not isinstance(entry, dict):
            raise ContractChangesError(f"{where} must be a mapping, found {entry!r}")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise ContractChangesError(
                f"{where}: unknown key {unknown[0]!r} (allowed: {sorted(_ENTRY_KEYS)})"
            )
        for key in _REQUIRED_KEYS:
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ContractChangesError(
                    f"{where}: key {key!r} must be a non-empty string, found {entry.get(key)!r}"
                )
        if entry["port"] not in OUTPUT_PORTS:
            raise ContractChangesError(
                f"{where}: key 'port' is {entry['port']!r}; expected one of {list(OUTPUT_PORTS)}"
            )
        if entry["change"] not in CHANGE_KINDS:
            raise ContractChangesError(
                f"{where}: key 'change' is {entry['change']!r}; expected one of "
                f"{list(CHANGE_KINDS)}"
            )
        column = entry.get("column")
        if entry["change"] == "removed_object":
            if column is not None:
                raise ContractChangesError(
                    f"{where}: key 'column' must be omitted for change removed_object"
                )
        elif not isinstance(column, str) or not column.strip():
            raise ContractChangesError(
                f"{where}: key 'column' must name the column for change {entry['change']}, "
                f"found {column!r}"
            )
        accepted.append(
            AcceptedChange(
                entry["port"], entry["object"], column, entry["change"],
                entry["reason"], entry["approved_by"],
            )
        )  # fmt: skip
    return accepted


def load_contracts(directory: Path) -> dict[str, dict[str, Any]]:
    """The ``<port>.odcs.yaml`` files of a folder, keyed by port."""
    contracts = {}
    for path in sorted(directory.glob(f"*{CONTRACT_SUFFIX}")):
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ContractChangesError(f"{path}: not valid YAML: {error}") from error
        if not isinstance(document, dict) or document.get("kind") != "DataContract":
            raise ContractChangesError(f"{path}: not an ODCS data contract (kind DataContract)")
        contracts[path.name.removesuffix(CONTRACT_SUFFIX)] = document
    return contracts


def _custom_value(element: dict[str, Any], name: str) -> Any:
    for entry in element.get("customProperties") or []:
        if entry.get("property") == name:
            return entry.get("value")
    return None


def _valid_values(prop: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for rule in prop.get("quality") or []:
        if rule.get("metric") == "invalidValues":
            values += (rule.get("arguments") or {}).get("validValues") or []
    return values


_DECIMAL = re.compile(r"\s*(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*", re.IGNORECASE)


def is_lossless_widening(old_type: object, new_type: object) -> bool:
    """True when every value of old_type is a value of new_type, unchanged.

    Only decimals widen this way: decimal(p, s) -> decimal(p2, s2) with no fewer digits
    after the point (s2 >= s) and none fewer before it (p2 - s2 >= p - s). A consumer
    reading the column gets the same numbers; one that stores it needs the wider type,
    which the contract now states.
    """
    old, new = _DECIMAL.fullmatch(str(old_type)), _DECIMAL.fullmatch(str(new_type))
    if old is None or new is None:
        return False
    (p, s), (p2, s2) = (int(old[1]), int(old[2])), (int(new[1]), int(new[2]))
    return s2 >= s and p2 - s2 >= p - s


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


def _port_changes(port: str, previous: dict[str, Any], current: dict[str, Any]) -> list:
    changes: list[BreakingChange] = []
    current_objects = {obj["name"]: obj for obj in current.get("schema") or []}
    current_versions = {
        _custom_value(obj, "dbtModel"): _version(_custom_value(obj, "dbtModelVersion"))
        for obj in current.get("schema") or []
    }
    for old in previous.get("schema") or []:
        model = _custom_value(old, "dbtModel") or old["name"]
        old_version = _version(_custom_value(old, "dbtModelVersion"))
        new = current_objects.get(old["name"])
        # A versioned model's relation is renamed with its version (customers_v2), so a
        # removed object whose model still exists is judged by that model's version.
        new_version = (
            _version(_custom_value(new, "dbtModelVersion"))
            if new is not None
            else current_versions.get(model)
        )

        found = {
            "port": port,
            "object": old["name"],
            "model": model,
            "previous_version": old_version,
            "current_version": new_version,
        }

        def change(column: str | None, kind: str, what: str, found: dict = found) -> None:
            changes.append(BreakingChange(column=column, change=kind, what=what, **found))

        if new is None:
            change(None, "removed_object", "was removed")
            continue
        new_properties = {prop["name"]: prop for prop in new.get("properties") or []}
        for prop in old.get("properties") or []:
            name = prop["name"]
            now = new_properties.get(name)
            if now is None:
                change(name, "removed_column", "was removed")
                continue
            old_type, new_type = prop.get("physicalType"), now.get("physicalType")
            if str(old_type).lower() != str(new_type).lower() and not is_lossless_widening(
                old_type, new_type
            ):
                change(
                    name,
                    "type_changed",
                    f"changed type from {prop.get('physicalType')} to {now.get('physicalType')}",
                )
            if not prop.get("required", False) and now.get("required", False):
                change(name, "nullability_tightened", "became required (was nullable)")
            old_values, new_values = _valid_values(prop), _valid_values(now)
            if old_values and new_values:
                removed = [value for value in old_values if value not in new_values]
                if removed:
                    listed = ", ".join(repr(value) for value in removed)
                    change(name, "allowed_value_removed", f"no longer allows {listed}")
    return changes


def breaking_changes(
    previous: dict[str, dict[str, Any]],
    current: dict[str, dict[str, Any]],
    accepted: list[AcceptedChange],
) -> list[BreakingChange]:
    """Every breaking change on the public output ports, allowed ones included."""
    found = []
    for port in OUTPUT_PORTS:
        if port not in previous:
            continue
        for item in _port_changes(port, previous[port], current.get(port) or {}):
            match = next(
                (
                    entry
                    for entry in accepted
                    if (entry.port, entry.object, entry.column, entry.change)
                    == (item.port, item.object, item.column, item.change)
                ),
                None,
            )
            found.append(item if match is None else _accept(item, match))
    return found


def _accept(item: BreakingChange, entry: AcceptedChange) -> BreakingChange:
    return BreakingChange(
        item.port, item.object, item.column, item.change, item.what, item.model,
        item.previous_version, item.current_version, entry,
    )  # fmt: skip


def breaking_change_measurement(
    current_contracts: dict[str, dict[str, Any]],
    previous_dir: Path | None,
    accepted_file: Path,
) -> tuple[int | None, list[str], str | None]:
    """For the gate: (unallowed breaking changes, detail lines, forced status).

    The status is ``"no_baseline"`` when there is no previous publication to compare
    with, and ``"error"`` when contract_changes.yml or a previous contract is malformed
    (the detail line names the file and key); otherwise None and the count is judged
    against the SLO's target. Allowed changes are listed after the blocking ones.
    """
    if previous_dir is None or not any(previous_dir.glob(f"*{CONTRACT_SUFFIX}")):
        where = "none" if previous_dir is None else str(previous_dir)
        return (
            None,
            [f"no contracts of a previous publication to compare with ({where})"],
            ("no_baseline"),
        )
    try:
        accepted = load_accepted_changes(accepted_file)
        previous = load_contracts(previous_dir)
    except ContractChangesError as error:
        return None, [str(error)], "error"
    found = breaking_changes(previous, current_contracts, accepted)
    blocking = [item.message for item in found if not item.allowed]
    allowed = [f"allowed: {item.message}" for item in found if item.allowed]
    return len(blocking), blocking + allowed, None
