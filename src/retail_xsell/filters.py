"""Structured filters: how a consumer narrows a metric query without ever writing SQL.

A :class:`Filter` names one dimension (as a group-by would: ``customer__region``,
``metric_time__day``), one operator from a closed set and literal values. The semantic
layer checks the dimension against what the queried metrics can reach and compiles the
filter into a MetricFlow where-filter with the values rendered as SQL literals here, so a
value can only ever be a value: ``' or 1=1 --`` is a string that matches no region.

Why not pass SQL through: MetricFlow pastes a where-filter after ``WHERE`` as it is, so
free text there can read other tables, call file functions or stack statements. The
governed API (issue 11) takes exactly these filters from its requests; this module has
no MetricFlow or DuckDB import so that request models can use it on their own.

Construction (pydantic) checks the shape: a known operator, the number of values the
operator takes, values of a JSON-able scalar type. Compilation
(:func:`compile_filter`) checks the values against the dimension's type and raises
:class:`FilterValueError`; the semantic layer turns both into ``InvalidFilterError``.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

#: At most this many values in one ``in``/``not_in`` filter, and characters in a value.
MAX_VALUES = 1000
MAX_VALUE_LENGTH = 1000


class Operator(enum.StrEnum):
    """The closed set of comparisons a filter can make."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"


class ValueKind(enum.StrEnum):
    """What values a dimension holds, as far as a filter is concerned."""

    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIME = "time"


#: How many values each operator takes: (at least, at most).
ARITY: dict[Operator, tuple[int, int]] = {
    Operator.EQ: (1, 1),
    Operator.NE: (1, 1),
    Operator.GT: (1, 1),
    Operator.GTE: (1, 1),
    Operator.LT: (1, 1),
    Operator.LTE: (1, 1),
    Operator.IN: (1, MAX_VALUES),
    Operator.NOT_IN: (1, MAX_VALUES),
    Operator.BETWEEN: (2, 2),
    Operator.IS_NULL: (0, 0),
    Operator.IS_NOT_NULL: (0, 0),
}

#: Operators that order values; booleans have no order.
ORDERING = frozenset({Operator.GT, Operator.GTE, Operator.LT, Operator.LTE, Operator.BETWEEN})

_SQL_OPERATORS = {
    Operator.EQ: "=",
    Operator.NE: "<>",
    Operator.GT: ">",
    Operator.GTE: ">=",
    Operator.LT: "<",
    Operator.LTE: "<=",
}

FilterValue = (
    StrictBool
    | StrictInt
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | Annotated[str, StringConstraints(strict=True, max_length=MAX_VALUE_LENGTH)]
    | dt.datetime
    | dt.date
)
"""A literal: text, a whole number, a finite number, a boolean, a date or a datetime."""

DimensionName = Annotated[
    str,
    StringConstraints(strict=True, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=200),
]


class Filter(BaseModel):
    """One condition on one dimension: ``dimension operator values``.

    ``Filter(dimension="customer__region", operator="eq", value="Europe")`` keeps
    European customers; ``value=`` is shorthand for ``values=[...]`` with one value.
    Time dimensions take a grain like a group-by (``metric_time__month``); without one
    they compare at the dimension's own grain. Values: strings for text, numbers for
    numbers, ``True``/``False`` for booleans, dates or ISO strings (``2024-03-01``,
    ``2024-03-01T12:00:00``) for time. ``ne`` and ``not_in`` follow SQL: rows where the
    dimension is null match neither them nor ``eq``; ask ``is_null`` for those.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dimension: DimensionName
    operator: Operator
    values: tuple[FilterValue, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _one_value_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            if "values" in data:
                raise ValueError("give either value (one) or values (a list), not both")
            data = dict(data)
            data["values"] = [data.pop("value")]
        return data

    @model_validator(mode="after")
    def _arity(self) -> Filter:
        low, high = ARITY[self.operator]
        count = len(self.values)
        if not low <= count <= high:
            if low == high == 0:
                wanted = "no values"
            elif low == high:
                wanted = f"exactly {low} value{'s' if low > 1 else ''}"
            else:
                wanted = f"between {low} and {high} values"
            raise ValueError(f"operator {self.operator.value!r} takes {wanted}; got {count}")
        return self


class FilterValueError(ValueError):
    """The filter's values do not fit its dimension (wrong type, unreadable date...)."""


@dataclass(frozen=True)
class FilterTarget:
    """A dimension as a filter compiles against it.

    ``reference`` is the MetricFlow Jinja object (``{{ Dimension('customer__region') }}``),
    ``kind`` what its values are.
    """

    name: str
    reference: str
    kind: ValueKind


def value_kind(duckdb_type: str) -> ValueKind | None:
    """The kind of values a DuckDB column type holds; None when filters cannot use it."""
    name = duckdb_type.strip().upper()
    if name in {"VARCHAR", "TEXT", "STRING", "UUID"} or name.startswith("ENUM"):
        return ValueKind.TEXT
    if name in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }:
        return ValueKind.INTEGER
    if name in {"FLOAT", "DOUBLE", "REAL"} or name.startswith("DECIMAL"):
        return ValueKind.NUMBER
    if name == "BOOLEAN":
        return ValueKind.BOOLEAN
    if name == "DATE" or name.startswith("TIMESTAMP"):
        return ValueKind.TIME
    return None


def _describe(value: object) -> str:
    """A value's type in the words of the error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dt.date):
        return "a date"
    return type(value).__name__


def _text_literal(value: str) -> str:
    """A SQL string literal that MetricFlow's Jinja pass leaves alone.

    Quotes are doubled (standard SQL; DuckDB strings have no backslash escapes). A ``{``
    could open a Jinja block when MetricFlow renders the filter, so it is written as
    ``chr(123)`` instead: the literal stays exactly the value.
    """
    if "\x00" in value:
        raise FilterValueError("a value cannot contain a NUL character")
    quoted = value.replace("'", "''")
    return "'" + "' || chr(123) || '".join(quoted.split("{")) + "'"


def _time_value(value: object, target: FilterTarget) -> dt.date:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
            )
        except ValueError:
            raise FilterValueError(
                f"{target.name} is a time dimension; {value!r} is not a date "
                "(write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"
            ) from None
    if not isinstance(value, dt.date):
        raise FilterValueError(
            f"{target.name} is a time dimension; give dates or ISO date strings, "
            f"not {_describe(value)}"
        )
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        raise FilterValueError(
            f"{target.name} has no time zone; give a datetime without one (store time)"
        )
    return value


def _typed(value: object, target: FilterTarget) -> object:
    """The value checked against the dimension's kind (dates parsed)."""
    kind = target.kind
    if kind is ValueKind.TIME:
        return _time_value(value, target)
    ok = {
        ValueKind.TEXT: isinstance(value, str),
        ValueKind.INTEGER: isinstance(value, int) and not isinstance(value, bool),
        ValueKind.NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
        ValueKind.BOOLEAN: isinstance(value, bool),
    }[kind]
    if not ok:
        wanted = {
            ValueKind.TEXT: "strings",
            ValueKind.INTEGER: "whole numbers",
            ValueKind.NUMBER: "numbers",
            ValueKind.BOOLEAN: "true or false",
        }[kind]
        raise FilterValueError(
            f"{target.name} holds {kind.value} values; give {wanted}, not {_describe(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterValueError(f"{target.name}: a value must be a finite number")
    return value


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _text_literal(value)
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    raise FilterValueError(f"cannot use {_describe(value)} as a value")  # pragma: no cover


def compile_filter(condition: Filter, target: FilterTarget) -> str:
    """The MetricFlow where-filter for ``condition`` on ``target``, values as literals."""
    operator = condition.operator
    if target.kind is ValueKind.BOOLEAN and operator in ORDERING:
        raise FilterValueError(
            f"{target.name} is true or false; {operator.value!r} needs ordered values "
            "(use eq, ne, in, not_in, is_null or is_not_null)"
        )
    values = [_typed(value, target) for value in condition.values]
    reference = target.reference
    if operator is Operator.IS_NULL:
        return f"{reference} is null"
    if operator is Operator.IS_NOT_NULL:
        return f"{reference} is not null"
    if operator is Operator.BETWEEN:
        low, high = values
        if high < low:  # type: ignore[operator]
            raise FilterValueError(
                f"between on {target.name}: the first value must not be above the second"
            )
        return f"{reference} between {_literal(low)} and {_literal(high)}"
    if operator in (Operator.IN, Operator.NOT_IN):
        listed = ", ".join(_literal(value) for value in values)
        return f"{reference} {'in' if operator is Operator.IN else 'not in'} ({listed})"
    (value,) = values
    return f"{reference} {_SQL_OPERATORS[operator]} {_literal(value)}"


def as_filters(where: object) -> list[Filter]:
    """One Filter or mapping, or a sequence of them, as a list of Filters (ANDed).

    Strings are refused: free text is exactly what structured filters replace.
    """
    if where is None:
        return []
    if isinstance(where, str):
        raise TypeError(
            "where takes structured filters, e.g. Filter(dimension='customer__region', "
            "operator='eq', value='Europe'), not SQL text"
        )
    items: Sequence[object] = [where] if isinstance(where, Filter | dict) else where  # type: ignore[assignment]
    if not isinstance(items, Sequence):
        raise TypeError(f"where must be a Filter or a list of Filters; got {type(where).__name__}")
    filters = []
    for item in items:
        if isinstance(item, Filter):
            filters.append(item)
        elif isinstance(item, dict):
            filters.append(Filter.model_validate(item))
        else:
            raise TypeError(
                f"each filter must be a Filter or a mapping of its fields; got {_describe(item)}"
            )
    return filters


__all__ = [
    "Filter",
    "FilterTarget",
    "FilterValue",
    "FilterValueError",
    "Operator",
    "ValueKind",
    "as_filters",
    "compile_filter",
    "value_kind",
]
