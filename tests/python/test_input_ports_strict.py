"""Strict parsing of the input contract, through the CSV and Parquet input ports.

Each reproduction of GitHub issue 10 (item 4, and the load-time part of item 3) is a
row or a file added to the hand-made fixture (fixtures/raw_small): the row must land in
the quarantine with the named reason, or the build must stop naming the file, line and
what is wrong. One build is shared by the row-level tests; the file-level tests stop in
on-run-start, before any model runs, so each costs only a parse.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from conftest import run_dbt

pytestmark = pytest.mark.dbt

PURCHASE_HEADER = (
    "order_id,line_number,customer_id,product_id,quantity,unit_price,discount,"
    "order_at,channel,status,loaded_at"
)
CUSTOMER_HEADER = (
    "customer_id,first_name,last_name,email,phone,birth_date,gender,city,country,"
    "signup_at,marketing_consent,updated_at"
)
TS = "%Y-%m-%d %H:%M:%S"


def _line(order_id: str, **values: str) -> str:
    row = {
        "order_id": order_id,
        "line_number": "1",
        "customer_id": "3",
        "product_id": "10",
        "quantity": "1",
        "unit_price": "199.00",
        "discount": "0",
        "order_at": "2024-02-01 10:00:00",
        "channel": "web",
        "status": "completed",
        "loaded_at": "2024-02-01 11:00:00",
        **values,
    }
    return ",".join(row[name] for name in PURCHASE_HEADER.split(","))


def _copy_fixture(small_raw_dir: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(small_raw_dir, raw, ignore=shutil.ignore_patterns("*.md"))
    return raw


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.lower().endswith(".gz") else data)
    return path


@pytest.fixture(scope="module")
def strict_build(tmp_path_factory, small_raw_dir):
    """raw_small plus one purchase row per reproduction, spread over files the old
    glob (`*.csv`, top level only) did not read: `.CSV`, `.csv.gz`, a sub-folder."""
    tmp = tmp_path_factory.mktemp("strict")
    raw = _copy_fixture(small_raw_dir, tmp)
    now = datetime.now(UTC).replace(tzinfo=None)
    # customer 11932 is what 0x2e9c would have been cast to
    _write(
        raw / "customer_info" / "extra.CSV",
        [
            CUSTOMER_HEADER,
            "11932,Hex,Hex,hex@example.com,+44 20 7946 0958,1980-01-01,f,York,GB,"
            "2023-01-05 10:00:00,yes,2023-01-05 10:00:00",
        ],
    )
    _write(
        raw / "product" / "2024" / "part-1.csv",
        [
            "product_id,product_name,category,subcategory,brand,list_price,unit_cost",
            "14,Gizmo,Gadgets,Gizmos,Acme,20.00,10.00",
        ],
    )
    _write(
        raw / "purchase" / "part-1.CSV",
        [
            PURCHASE_HEADER,
            _line("200", quantity="1.7"),
            _line("201", quantity="1_0"),
            _line("202", customer_id="0x2e9c"),
            _line("1e6", line_number="7"),
        ],
    )
    _write(
        raw / "purchase" / "part-2.csv.gz",
        [
            PURCHASE_HEADER,
            _line("204", order_at="epoch"),
            _line("205", loaded_at="infinity"),
            _line("206", order_at="-infinity"),
            _line("207", unit_price="26.49999"),
        ],
    )
    _write(
        raw / "purchase" / "2024" / "02" / "part-3.csv",
        [
            PURCHASE_HEADER,
            # 10:00 at +05:00 is 05:00 UTC, an hour before the load
            _line("208", order_at="2024-02-01 10:00:00+05:00", loaded_at="2024-02-01 06:00:00"),
            _line("209", quantity="9223372036854775807"),
            _line(
                "210",
                order_at=(now - timedelta(hours=1)).strftime(TS),
                loaded_at=(now + timedelta(hours=3)).strftime(TS),
            ),
            # within the one-hour tolerance (clock skew between loader and build host)
            _line(
                "211",
                order_at=(now - timedelta(hours=1)).strftime(TS),
                loaded_at=(now + timedelta(minutes=10)).strftime(TS),
            ),
        ],
    )
    result = run_dbt(
        [
            *("build", "--select", "+order_lines", "+row_reconciliation"),
            *("--indirect-selection", "cautious"),
        ],
        tmp / "work",
        {"raw_input_format": "csv", "raw_input_path": str(raw)},
    )
    assert result.returncode == 0, result.output[-4000:]
    return result


def _query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.sql(sql).fetchall()


def _reason(build, order_id: str) -> str | None:
    rows = _query(
        build.database,
        "select rejection_reason from stg_retail__rejected_rows"
        " where source_table = 'purchase'"
        f" and json_extract_string(raw_values, '$.order_id') = '{order_id}'",
    )
    return rows[0][0] if rows else None


@pytest.mark.parametrize(
    ("order_id", "reason"),
    [
        ("200", "invalid_quantity"),  # 1.7 was rounded to 2
        ("201", "invalid_quantity"),  # 1_0 was 10
        ("202", "invalid_customer_id"),  # 0x2e9c was existing customer 11932
        ("1e6", "invalid_order_id"),  # was order 1000000
        ("204", "invalid_order_at"),  # epoch was 1970-01-01
        ("205", "invalid_loaded_at"),  # infinity was 9999-12-31
        ("206", "invalid_order_at"),  # -infinity was 0001-01-01
        ("207", "unit_price_too_precise"),  # 26.49999 was rounded to 26.50
        ("209", "absurd_quantity"),  # passed staging, then failed order_lines
        ("210", "loaded_at_in_future"),  # loaded three hours from now
    ],
)
def test_values_outside_the_contract_are_quarantined_with_a_reason(strict_build, order_id, reason):
    assert _reason(strict_build, order_id) == reason


def test_utc_offset_is_converted_not_dropped(strict_build):
    rows = _query(
        strict_build.database,
        "select cast(ordered_at as varchar) from stg_retail__purchase_lines where order_id = 208",
    )
    assert rows == [("2024-02-01 05:00:00",)]


def test_load_within_the_tolerance_is_clean(strict_build):
    assert _reason(strict_build, "211") is None
    assert _query(
        strict_build.database, "select count(*) from order_lines where order_id = 211"
    ) == [(1,)]


def test_every_file_under_a_table_folder_is_read_and_reconciled(strict_build):
    # .CSV, .csv.gz and nested files are read: 13 + 12 purchase rows, 9 + 1 customers,
    # 6 + 1 products; and every one of them is accounted for
    rows = _query(
        strict_build.database,
        "select source_table, raw_row_count, clean_row_count, rejected_row_count,"
        " duplicate_row_count, is_reconciled from main_audit.row_reconciliation order by 1",
    )
    assert rows == [
        ("customer_info", 10, 6, 2, 2, True),
        ("product", 7, 4, 3, 0, True),
        # clean: raw_small's 6, 208 (offset) and 211 (within tolerance)
        ("purchase", 25, 8, 15, 2, True),
    ]


def test_unknown_category_is_flagged_not_hidden(strict_build):
    rows = _query(
        strict_build.database,
        "select product_id, category, has_known_category from stg_retail__products order by 1",
    )
    assert rows == [
        (10, "electronics", True),
        (11, "books", True),
        (12, "home & kitchen", True),
        (14, "gadgets", False),
    ]


def test_zoned_parquet_timestamps_do_not_move_with_the_host_time_zone(tmp_path, small_raw_dir):
    raw = tmp_path / "raw"
    for table in ("customer_info", "product"):
        shutil.copytree(small_raw_dir / table, raw / table)
    at = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
    zoned = pa.timestamp("us", tz="UTC")
    purchase = pa.table(
        {
            "order_id": pa.array([300], pa.int64()),
            "line_number": pa.array([1], pa.int64()),
            "customer_id": pa.array([3], pa.int64()),
            "product_id": pa.array([10], pa.int64()),
            "quantity": pa.array([1], pa.int64()),
            "unit_price": pa.array(["199.00"]),
            "discount": pa.array(["0"]),
            "order_at": pa.array([at], zoned),
            "channel": pa.array(["web"]),
            "status": pa.array(["completed"]),
            "loaded_at": pa.array([at + timedelta(hours=1)], zoned),
        }
    )
    (raw / "purchase").mkdir(parents=True)
    pq.write_table(purchase, raw / "purchase" / "part-0.parquet")
    for table in ("customer_info", "product"):
        for csv_file in (raw / table).glob("*.csv"):
            pq.write_table(pacsv.read_csv(csv_file), csv_file.with_suffix(".parquet"))
            csv_file.unlink()
    result = run_dbt(
        ["build", "--select", "+base_retail__purchase", "--exclude", "test_type:unit"],
        tmp_path / "work",
        {"raw_input_format": "parquet", "raw_input_path": str(raw)},
        env={"TZ": "Asia/Kolkata"},
    )
    assert result.returncode == 0, result.output[-4000:]
    rows = _query(
        result.database,
        "select cast(ordered_at as varchar), cast(loaded_at as varchar), row_disposition"
        " from base_retail__purchase",
    )
    assert rows == [("2024-02-01 10:00:00", "2024-02-01 11:00:00", "clean")]


# ------------------------------------------------------------- files the build refuses


def _stops(workdir: Path, raw_path: str) -> str:
    result = run_dbt(
        ["run", "--select", "stg_retail__products"],
        workdir,
        {"raw_input_format": "csv", "raw_input_path": raw_path},
    )
    assert result.returncode != 0, "the build should have stopped"
    assert "START sql" not in result.output
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, small_raw_dir):
    """One raw folder and one dbt work folder for every refused-file test: the vars do
    not change between them, so dbt parses the project once (partial parsing)."""
    root = tmp_path_factory.mktemp("refusals")

    def reset() -> Path:
        raw = root / "raw"
        shutil.rmtree(raw, ignore_errors=True)
        return _copy_fixture(small_raw_dir, root)

    def stops() -> str:
        return _stops(root / "work", str(root / "raw"))

    reset.stops = stops
    return reset


def test_undecodable_byte_rejects_the_file_naming_it_and_the_line(refusals):
    raw = refusals()
    bad = raw / "purchase" / "part-1.csv"
    bad.write_bytes(
        (PURCHASE_HEADER + "\n" + _line("300") + "\n").encode()
        + _line("301", channel="w\xffb").encode("latin-1")
        + b"\n"
    )
    output = refusals.stops()
    assert f"file '{bad}'" in output
    assert "line 3: the row holds bytes that are not UTF-8 (column channel)" in output


def test_unterminated_quote_is_named_not_reported_as_missing_columns(refusals):
    raw = refusals()
    bad = _write(
        raw / "purchase" / "part-1.csv",
        [PURCHASE_HEADER, _line("300"), _line("301", channel='"web'), _line("302")],
    )
    output = refusals.stops()
    assert f"file '{bad}'" in output
    assert "line 3: a quoted value is never closed" in output
    assert "missing column" not in output


def test_ragged_row_is_named_not_reported_as_missing_columns(refusals):
    raw = refusals()
    bad = _write(
        raw / "purchase" / "part-1.csv",
        [PURCHASE_HEADER, _line("300"), _line("301") + ",extra", _line("302")],
    )
    output = refusals.stops()
    assert f"file '{bad}'" in output
    assert "line 3: the row has more values than the header has columns" in output
    assert "missing column" not in output


def test_file_that_would_not_be_read_stops_the_build(refusals):
    raw = refusals()
    stray = _write(raw / "purchase" / "old" / "part-9.csv.bak", [PURCHASE_HEADER, _line("300")])
    output = refusals.stops()
    assert f"file '{stray}' (raw table 'purchase') is not a csv file" in output


@pytest.mark.parametrize("folder", ["raw[1]", "raw{name}"])
def test_path_with_pattern_characters_is_refused_clearly(tmp_path, small_raw_dir, folder):
    raw = tmp_path / folder
    shutil.copytree(small_raw_dir, raw, ignore=shutil.ignore_patterns("*.md"))
    if folder == "raw[1]":
        # the folder a glob `raw[1]` would read instead
        shutil.copytree(small_raw_dir, tmp_path / "raw1", ignore=shutil.ignore_patterns("*.md"))
    output = _stops(tmp_path / "work", str(raw))
    assert f"raw_input_path '{raw}' contains" in output
    assert "would be read as a file pattern" in output
