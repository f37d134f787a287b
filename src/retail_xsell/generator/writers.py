"""Output sinks: CSV (minimal quoting, '\\n', UTF-8) and Parquet (all columns string).

CSV is serialised with Arrow compute instead of the csv module (10x faster at scale) and
instead of ``pyarrow.csv`` (which quotes every string): a value is quoted only when it
contains a comma, a double quote or a line break; a missing value is an empty field.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import RAW_SCHEMA

_CSV_BATCH = 500_000


def _escape(col: pa.Array) -> pa.Array:
    needs = pc.match_substring_regex(col, r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return col
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, col)


def csv_rows(table: pa.Table) -> bytes:
    """Table rows as CSV text without header."""
    out: list[bytes] = []
    for start in range(0, table.num_rows, _CSV_BATCH):
        part = table.slice(start, _CSV_BATCH).combine_chunks()
        cols = [_escape(c.combine_chunks()) for c in part.columns]
        line = pc.binary_join_element_wise(*cols, ",", null_handling="replace", null_replacement="")
        line = pc.binary_join_element_wise(line, "\n", "")
        offsets = np.frombuffer(line.buffers()[1], dtype=np.int32)
        lo, hi = int(offsets[line.offset]), int(offsets[line.offset + len(line)])
        out.append(line.buffers()[2].to_pybytes()[lo:hi])
    return b"".join(out)


def csv_header(table_name: str) -> bytes:
    return (",".join(RAW_SCHEMA[table_name]) + "\n").encode()


def string_schema(table_name: str) -> pa.Schema:
    return pa.schema([(c, pa.string()) for c in RAW_SCHEMA[table_name]])


class TableSink(Protocol):
    """Where generated tables go; ``write`` may be called several times per table."""

    def write(self, table_name: str, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class SampleCsvSink:
    """One CSV file per table directly in a folder (dbt seeds layout)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, BinaryIO] = {}

    def write(self, table_name: str, table: pa.Table) -> None:
        fh = self._files.get(table_name)
        if fh is None:
            fh = open(self.folder / f"{table_name}.csv", "wb")  # noqa: SIM115
            fh.write(csv_header(table_name))
            self._files[table_name] = fh
        fh.write(csv_rows(table))

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()


class FolderSink:
    """``<out>/<table>/part-NNNNN.<ext>``: customers and products in one part each,
    purchases in one part per chunk (~1-2M lines)."""

    SPLIT_TABLES = frozenset({"purchase"})

    def __init__(self, folder: Path, fmt: str) -> None:
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"unknown format {fmt!r}")
        self.folder = folder
        self.fmt = fmt
        self._parts: dict[str, int] = {}
        self._open: dict[str, pq.ParquetWriter | BinaryIO] = {}
        self.files: list[Path] = []

    def _path(self, table_name: str, part: int) -> Path:
        directory = self.folder / table_name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"part-{part:05d}.{self.fmt}"
        self.files.append(path)
        return path

    def write(self, table_name: str, table: pa.Table) -> None:
        table = table.cast(string_schema(table_name))
        if table_name in self.SPLIT_TABLES:
            part = self._parts.get(table_name, 0)
            self._parts[table_name] = part + 1
            path = self._path(table_name, part)
            if self.fmt == "parquet":
                pq.write_table(table, path, compression="snappy")
            else:
                path.write_bytes(csv_header(table_name) + csv_rows(table))
            return
        writer = self._open.get(table_name)
        if writer is None:
            path = self._path(table_name, 0)
            if self.fmt == "parquet":
                writer = pq.ParquetWriter(path, string_schema(table_name), compression="snappy")
            else:
                writer = open(path, "wb")  # noqa: SIM115
                writer.write(csv_header(table_name))
            self._open[table_name] = writer
        if isinstance(writer, pq.ParquetWriter):
            writer.write_table(table)
        else:
            writer.write(csv_rows(table))

    def close(self) -> None:
        for writer in self._open.values():
            writer.close()
        self._open.clear()
