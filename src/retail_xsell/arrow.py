"""Arrow tables with declared column types, for dbt Python models.

dbt-duckdb stores whatever a Python model returns; an Arrow table built from Python
values would type an all-null column as NULL and a whole-number float column as integer,
so the intermediate tables would change type with the data. Declaring the types once
(next to the code that produces the values) keeps every build's schema the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

_ARROW_TYPES = {
    "varchar": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def schema(types: Mapping[str, str]) -> pa.Schema:
    """An Arrow schema from {column: SQL type name}; unknown type names fail loudly."""
    unknown = sorted({t for t in types.values() if t not in _ARROW_TYPES})
    if unknown:
        raise ValueError(f"no Arrow type for {unknown}; known: {', '.join(_ARROW_TYPES)}")
    return pa.schema([(name, _ARROW_TYPES[t]) for name, t in types.items()])


def table_from_rows(rows: Iterable[Mapping[str, Any]], types: Mapping[str, str]) -> pa.Table:
    """Rows (dicts with exactly the declared columns) as a typed Arrow table."""
    rows = list(rows)
    expected = set(types)
    for row in rows:
        if set(row) != expected:
            raise ValueError(
                f"row columns {sorted(row)} differ from the declared columns {sorted(types)}"
            )
    return pa.Table.from_pylist(rows, schema=schema(types))


def table_from_columns(columns: Mapping[str, Any], types: Mapping[str, str]) -> pa.Table:
    """Columns (arrays or lists of equal length) as a typed Arrow table; NaN becomes null."""
    if set(columns) != set(types):
        raise ValueError(
            f"columns {sorted(columns)} differ from the declared columns {sorted(types)}"
        )
    table_schema = schema(types)
    arrays = [
        # from_pandas=True is what turns NaN into null; it needs no pandas.
        pa.array(columns[f.name], type=f.type, from_pandas=pa.types.is_floating(f.type))
        for f in table_schema
    ]
    return pa.Table.from_arrays(arrays, schema=table_schema)
