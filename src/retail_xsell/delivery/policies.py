"""Access policies as code: who may read which metrics and dimensions, and how.

``policies.yml`` (top level, documented in docs/governance.md) declares principals,
groups and what each group grants. Loading it checks the shape (pydantic, unknown keys
refused) and then every name against the publication's catalog, so a typo fails start-up
with the key and the value instead of silently granting nothing (or everything).

Deny by default: a principal without a group, a scope, metric or dimension no group
grants, is refused. A principal in several groups gets:

* the **union** of grants: scopes, metrics, dimensions;
* the **intersection** of restrictions: every row filter of every group applies (they
  are ANDed, so a second group can never lift a region restriction); a dimension masked
  by any group is masked, with the strictest mask (``redact`` over ``hash``); the
  largest ``min_group_size`` and the smallest ``max_rows`` apply.

:func:`effective_policy` computes that combination once per principal; the enforcement
path (:mod:`retail_xsell.delivery.governed`) only ever reads the result.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from retail_xsell.delivery.catalog import Catalog
from retail_xsell.filters import Filter, Operator

#: No response carries more rows than this, whatever a group or a request asks.
HARD_MAX_ROWS = 10_000

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]


class Scope(enum.StrEnum):
    """What a group may do through the API."""

    METADATA = "metadata"  # GET /v1/meta, GraphQL metrics / dimensions
    METRICS = "metrics"  # POST /v1/query, GraphQL query
    SAVED_QUERIES = "saved_queries"  # /v1/saved-queries/{name}, GraphQL savedQuery
    CUSTOMER_LOOKUP = "customer_lookup"  # /v1/customers/{id}/cross-sell
    EXPORT = "export"  # the full result of a query as CSV (?format=csv)


class Mask(enum.StrEnum):
    """How a masked dimension's values reach the consumer.

    ``hash``: a stable keyed token per value (``h:3f2a...``), so rows stay apart and can
    be compared between queries of one publication, but the value is not shown.
    ``redact``: every value becomes null. Masked dimensions may be grouped by, never
    filtered on (a filter with chosen values would reveal them).
    """

    HASH = "hash"
    REDACT = "redact"


_MASK_STRENGTH = {Mask.HASH: 1, Mask.REDACT: 2}


class PolicyError(ValueError):
    """policies.yml is malformed or names something the publication does not have."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowFilterSpec(_Strict):
    """Rows a group's members may see, e.g. their own region's customers.

    Exactly one of ``attribute`` (the principal's attribute value, or values) and
    ``values`` (fixed literals). ``in`` with one value is ``eq``.
    """

    dimension: Name
    operator: Literal["eq", "in", "ne", "not_in"] = "in"
    attribute: Name | None = None
    values: Annotated[tuple[str, ...], Field(min_length=1)] | None = None


class AttributeSpec(_Strict):
    description: str


class GroupSpec(_Strict):
    description: str
    scopes: tuple[Scope, ...] = ()
    #: metric names, or ``tag:<tag>`` for every metric carrying the tag
    metrics: tuple[str, ...] = ()
    dimensions: tuple[Name, ...] = ()
    masked_dimensions: dict[Name, Mask] = Field(default_factory=dict)
    row_filters: tuple[RowFilterSpec, ...] = ()
    min_group_size: int = Field(default=1, ge=1, le=1000)
    max_rows: int = Field(default=1000, ge=1, le=HARD_MAX_ROWS)


class PrincipalSpec(_Strict):
    kind: Literal["person", "service"]
    description: str = ""
    groups: tuple[Name, ...] = ()
    attributes: dict[
        Name,
        Annotated[str, StringConstraints(min_length=1)]
        | Annotated[
            tuple[Annotated[str, StringConstraints(min_length=1)], ...], Field(min_length=1)
        ],
    ] = Field(default_factory=dict)


class PolicyFile(_Strict):
    version: Literal[1]
    attributes: dict[Name, AttributeSpec] = Field(default_factory=dict)
    groups: dict[Name, GroupSpec]
    principals: dict[Name, PrincipalSpec]


@dataclass(frozen=True)
class Principal:
    name: str
    kind: str
    groups: tuple[str, ...]
    attributes: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class EffectivePolicy:
    """What one principal may do: the combination of its groups (module docstring)."""

    principal: Principal
    scopes: frozenset[Scope]
    metrics: frozenset[str]
    dimensions: frozenset[str]
    masks: Mapping[str, Mask]
    row_filters: tuple[Filter, ...]
    min_group_size: int
    max_rows: int

    def may_group_by(self, dimension: str) -> bool:
        return dimension in self.dimensions or dimension in self.masks

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary, for /v1/meta and the audit trail."""
        return {
            "principal": self.principal.name,
            "groups": list(self.principal.groups),
            "scopes": sorted(self.scopes),
            "row_filters": [f.model_dump(mode="json") for f in self.row_filters],
            "masked_dimensions": {name: mask.value for name, mask in sorted(self.masks.items())},
            "min_group_size": self.min_group_size,
            "max_rows": self.max_rows,
        }


@dataclass(frozen=True)
class Policies:
    """The loaded, checked policy file."""

    document: PolicyFile
    source: str

    @property
    def principals(self) -> list[str]:
        return sorted(self.document.principals)

    def principal(self, name: str) -> Principal | None:
        spec = self.document.principals.get(name)
        if spec is None:
            return None
        attributes = {
            key: (value,) if isinstance(value, str) else tuple(value)
            for key, value in spec.attributes.items()
        }
        return Principal(name=name, kind=spec.kind, groups=spec.groups, attributes=attributes)

    def effective(self, principal: Principal, catalog: Catalog) -> EffectivePolicy:
        return effective_policy(self.document, principal, catalog)


def _location(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))


def _shape_message(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = _location(item)
        value = item.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {where!r}; check its spelling")
        else:
            lines.append(f"{source}: {where}: {item['msg']}{shown}")
    return "\n".join(lines)


def _suggestion(value: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def expand_metrics(entries: tuple[str, ...], catalog: Catalog) -> set[str]:
    granted: set[str] = set()
    for entry in entries:
        if entry.startswith("tag:"):
            granted |= catalog.metrics_tagged(entry[4:])
        else:
            granted.add(entry)
    return granted


def _check_names(document: PolicyFile, catalog: Catalog, source: str) -> list[str]:
    """Every name the file uses must exist: in the catalog, or declared in the file."""
    problems: list[str] = []
    known_metrics = set(catalog.metrics)
    known_dimensions = set(catalog.dimensions)
    for group_name, group in document.groups.items():
        where = f"{source}: groups.{group_name}"
        for entry in group.metrics:
            if entry.startswith("tag:"):
                if entry[4:] not in catalog.tags:
                    problems.append(
                        f"{where}.metrics: no metric carries the tag {entry[4:]!r}."
                        f"{_suggestion(entry[4:], set(catalog.tags))}"
                    )
            elif entry not in known_metrics:
                problems.append(
                    f"{where}.metrics: unknown metric {entry!r}.{_suggestion(entry, known_metrics)}"
                )
        for key, names in (
            ("dimensions", group.dimensions),
            ("masked_dimensions", tuple(group.masked_dimensions)),
            ("row_filters", tuple(f.dimension for f in group.row_filters)),
        ):
            for name in names:
                if name not in known_dimensions:
                    problems.append(
                        f"{where}.{key}: unknown dimension {name!r}."
                        f"{_suggestion(name, known_dimensions)}"
                    )
        for index, row_filter in enumerate(group.row_filters):
            at = f"{where}.row_filters[{index}]"
            if (row_filter.attribute is None) == (row_filter.values is None):
                problems.append(f"{at}: give exactly one of attribute and values")
            elif row_filter.attribute is not None and row_filter.attribute not in (
                document.attributes
            ):
                hint = _suggestion(row_filter.attribute, set(document.attributes))
                problems.append(
                    f"{at}.attribute: unknown attribute {row_filter.attribute!r}; declare it "
                    f"under attributes.{hint}"
                )
            if not re.fullmatch(r"customer__[a-z0-9_]+", row_filter.dimension):
                problems.append(
                    f"{at}.dimension: row filters bind customer dimensions "
                    f"(customer__...), got {row_filter.dimension!r}"
                )
        overlap = set(group.dimensions) & set(group.masked_dimensions)
        for name in sorted(overlap):
            problems.append(
                f"{where}: {name!r} is both granted in clear (dimensions) and masked; "
                "list it in one of them"
            )
    for principal_name, principal in document.principals.items():
        where = f"{source}: principals.{principal_name}"
        for group_name in principal.groups:
            if group_name not in document.groups:
                problems.append(
                    f"{where}.groups: unknown group {group_name!r}."
                    f"{_suggestion(group_name, set(document.groups))}"
                )
        for attribute in principal.attributes:
            if attribute not in document.attributes:
                problems.append(
                    f"{where}.attributes: unknown attribute {attribute!r}."
                    f"{_suggestion(attribute, set(document.attributes))}"
                )
        for group_name in principal.groups:
            member_of = document.groups.get(group_name)
            for row_filter in member_of.row_filters if member_of else ():
                if row_filter.attribute and row_filter.attribute not in principal.attributes:
                    problems.append(
                        f"{where}: group {group_name!r} filters rows by the attribute "
                        f"{row_filter.attribute!r}, which this principal does not have"
                    )
    return problems


def parse_policies(text: str, catalog: Catalog, source: str = "policies.yml") -> Policies:
    """Check ``text`` (the YAML) and return the policies, or raise :class:`PolicyError`
    listing every problem with its key and value."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"{source} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{source} must be a mapping with version, groups and principals")
    try:
        document = PolicyFile.model_validate(raw)
    except ValidationError as error:
        raise PolicyError(_shape_message(source, error)) from None
    problems = _check_names(document, catalog, source)
    if problems:
        raise PolicyError("\n".join(problems))
    return Policies(document=document, source=source)


def load_policies(path: Path, catalog: Catalog) -> Policies:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise PolicyError(f"cannot read the policy file {path}: {error.strerror}") from None
    return parse_policies(text, catalog, source=str(path))


def effective_policy(
    document: PolicyFile, principal: Principal, catalog: Catalog
) -> EffectivePolicy:
    """Grants united, restrictions intersected, over the principal's groups."""
    groups = [document.groups[name] for name in principal.groups if name in document.groups]
    scopes: set[Scope] = set()
    metrics: set[str] = set()
    dimensions: set[str] = set()
    masks: dict[str, Mask] = {}
    row_filters: list[Filter] = []
    for group in groups:
        scopes |= set(group.scopes)
        metrics |= expand_metrics(group.metrics, catalog)
        dimensions |= set(group.dimensions)
        for name, mask in group.masked_dimensions.items():
            if name not in masks or _MASK_STRENGTH[mask] > _MASK_STRENGTH[masks[name]]:
                masks[name] = mask
        for spec in group.row_filters:
            values = principal.attributes[spec.attribute] if spec.attribute else spec.values or ()
            operator = Operator(spec.operator)
            # One value or several: eq/in and ne/not_in mean the same set.
            if len(values) != 1:
                operator = {Operator.EQ: Operator.IN, Operator.NE: Operator.NOT_IN}.get(
                    operator, operator
                )
            row_filters.append(
                Filter(dimension=spec.dimension, operator=operator, values=tuple(values))
            )
    # A dimension masked by any group is masked, even where another grants it in clear.
    dimensions -= set(masks)
    return EffectivePolicy(
        principal=principal,
        scopes=frozenset(scopes),
        metrics=frozenset(metrics & set(catalog.metrics)),
        dimensions=frozenset(dimensions),
        masks=masks,
        row_filters=tuple(dict.fromkeys(row_filters)),
        min_group_size=max((group.min_group_size for group in groups), default=1),
        max_rows=min((group.max_rows for group in groups), default=0),
    )
