"""Vectorised number/time -> text rendering (the raw layer is all text).

``pyarrow.compute.strftime`` costs ~1 microsecond a value, which alone would eat half of
the 60 s budget for 10M lines, so timestamps and dates are written as fixed-width ASCII
with numpy arithmetic straight into an Arrow string buffer. Variable-width numbers use
Arrow casts, which are fast.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SECONDS_PER_DAY = 86_400
_ZERO = ord("0")
_TWO_DIGITS = pa.array([f"{i:02d}" for i in range(100)], type=pa.string())


def _fixed_width(buf: np.ndarray) -> pa.StringArray:
    """Wrap an (n, width) uint8 matrix as an Arrow string array without copying rows."""
    n, width = buf.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(buf).reshape(-1)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _put(buf: np.ndarray, col: int, value: np.ndarray, digits: int) -> None:
    """Write ``value`` as zero-padded decimal digits into columns col..col+digits-1."""
    for i in range(digits - 1, -1, -1):
        buf[:, col + i] = _ZERO + value % 10
        value = value // 10


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Civil (year, month, day) from days since 1970-01-01."""
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def _time_of_day_table() -> np.ndarray:
    """(86400, 8) uint8 matrix of 'HH:MM:SS' for every second of a day."""
    tod = np.arange(SECONDS_PER_DAY, dtype=np.int64)
    buf = np.empty((SECONDS_PER_DAY, 8), dtype=np.uint8)
    _put(buf, 0, tod // 3600, 2)
    buf[:, 2] = ord(":")
    _put(buf, 3, tod // 60 % 60, 2)
    buf[:, 5] = ord(":")
    _put(buf, 6, tod % 60, 2)
    return buf


_TIME_OF_DAY = _time_of_day_table()


def _date_rows(days: np.ndarray) -> np.ndarray:
    """(n, 10) uint8 'YYYY-MM-DD' rows, rendered once per distinct day then gathered."""
    lo = int(days.min()) if days.size else 0
    hi = int(days.max()) if days.size else 0
    table_days = np.arange(lo, hi + 1, dtype=np.int64)
    year, month, day = _ymd(table_days)
    table = np.empty((table_days.size, 10), dtype=np.uint8)
    _put(table, 0, year, 4)
    table[:, 4] = ord("-")
    _put(table, 5, month, 2)
    table[:, 7] = ord("-")
    _put(table, 8, day, 2)
    return table[days - lo]


def timestamps_text(seconds: np.ndarray) -> pa.StringArray:
    """Epoch seconds -> 'YYYY-MM-DD HH:MM:SS' (years 1000..9999)."""
    seconds = np.asarray(seconds, dtype=np.int64)
    days, tod = np.divmod(seconds, SECONDS_PER_DAY)
    buf = np.empty((seconds.size, 19), dtype=np.uint8)
    buf[:, :10] = _date_rows(days)
    buf[:, 10] = ord(" ")
    buf[:, 11:] = _TIME_OF_DAY[tod]
    return _fixed_width(buf)


def dates_text(days: np.ndarray) -> pa.StringArray:
    """Days since 1970-01-01 -> 'YYYY-MM-DD'."""
    return _fixed_width(_date_rows(np.asarray(days, dtype=np.int64)))


def ints_text(values: np.ndarray) -> pa.StringArray:
    """Integers -> decimal text ('-3', '10042')."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def cents_text(cents: np.ndarray, decimal_mark: str = ".") -> pa.StringArray:
    """Integer hundredths -> fixed two-decimal text ('12.99', '-0.05', '0.00')."""
    cents = np.asarray(cents, dtype=np.int64)
    whole, frac = np.divmod(np.abs(cents), 100)
    sign = pa.array(np.where(cents < 0, "-", ""))
    return pc.binary_join_element_wise(
        sign, ints_text(whole), pa.scalar(decimal_mark), _TWO_DIGITS.take(pa.array(frac)), ""
    )


def pick_text(choices: tuple[str | None, ...], index: np.ndarray) -> pa.StringArray:
    """Strings by index into a small table (None entries become nulls)."""
    return pa.array(list(choices), type=pa.string()).take(pa.array(np.asarray(index, np.int64)))


def set_null(values: pa.Array, mask: np.ndarray) -> pa.Array:
    """Null out the masked positions."""
    if not mask.any():
        return values
    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)


def replace_where(values: pa.Array, mask: np.ndarray, replacements: pa.Array) -> pa.Array:
    """Replace masked positions, in order, with ``replacements`` (len == mask.sum())."""
    if not mask.any():
        return values
    return pc.replace_with_mask(values, pa.array(mask), replacements.cast(pa.string()))
