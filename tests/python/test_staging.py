"""The source-aligned layer on a tiny hand-made input (fixtures/raw_small/README.md).

Every expected value below was worked out by hand from the fixture rows, not read back
from the models.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from conftest import run_dbt

pytestmark = pytest.mark.dbt

TEST_KEY = "pytest-staging-pseudonym-key-0123456789abcdef"


@pytest.fixture(scope="module")
def csv_build(tmp_path_factory, small_raw_dir):
    result = run_dbt(
        ["build"],
        tmp_path_factory.mktemp("csv_build"),
        {"raw_input_format": "csv", "raw_input_path": str(small_raw_dir)},
        env={"RETAIL_XSELL_PII_KEY": TEST_KEY},
    )
    assert result.returncode == 0, result.output[-4000:]
    return result


def query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_reconciliation_matches_hand_count(csv_build):
    rows = query(
        csv_build.database,
        "select source_table, raw_row_count, clean_row_count, rejected_row_count,"
        " exact_duplicate_row_count, superseded_row_count, is_reconciled"
        " from main_audit.row_reconciliation order by 1",
    )
    assert rows == [
        ("customer_info", 9, 5, 2, 1, 1, True),
        ("product", 6, 3, 3, 0, 0, True),
        ("purchase", 13, 6, 5, 1, 1, True),
    ]


def test_every_rejected_row_has_its_reason(csv_build):
    rows = query(
        csv_build.database,
        "select source_table, rejection_reason,"
        " coalesce(json_extract_string(raw_values, '$.order_id'),"
        "          json_extract_string(raw_values, '$.customer_id'),"
        "          json_extract_string(raw_values, '$.product_name'))"
        " from stg_retail__rejected_rows order by 1, 2, 3",
    )
    assert rows == [
        ("customer_info", "invalid_customer_id", "C-9"),
        ("customer_info", "missing_customer_id", None),
        ("product", "conflicting_product_versions", "Mug"),
        ("product", "conflicting_product_versions", "Mug XL"),
        ("product", "missing_product_id", "Junk"),
        ("purchase", "absurd_unit_price", "104"),
        ("purchase", "invalid_discount", "105"),
        ("purchase", "invalid_quantity", "102"),
        ("purchase", "order_at_after_loaded_at", "106"),
        ("purchase", "unknown_customer", "103"),
    ]


def test_customers_are_cleaned_and_pseudonymised(csv_build):
    rows = query(
        csv_build.database,
        "select customer_id, email_sha256, phone_masked, birth_year, age_group, gender,"
        " country_code, region, has_marketing_consent"
        # the age group depends on as_of_date, so it is computed after staging
        " from stg_retail__customers join int_customers_age_grouped using (customer_id)"
        " order by customer_id",
    )

    def sha(email: str) -> str:
        return hmac.new(TEST_KEY.encode(), email.encode(), hashlib.sha256).hexdigest()

    assert rows == [
        # the 2024-02-01 version wins; as of 2024-02-01 (last sale) Anna is 38
        (
            1,
            sha("anna.smith@example.org"),
            "***0958",
            1985,
            "35-44",
            "female",
            "GB",
            "Europe",
            True,
        ),
        (2, None, None, None, "unknown", "male", "DE", "Europe", False),
        (
            3,
            sha("eve@example.com"),
            "***0958",
            None,
            "unknown",
            "non_binary",
            "ZZ",
            "Unknown",
            False,
        ),
        # 18th birthday on the as-of date counts; one day later is still 17
        (4, sha("fay@example.com"), "***0958", 2006, "18-24", "female", "IE", "Europe", True),
        (
            5,
            sha("gus@example.com"),
            "***9999",
            2006,
            "under 18",
            "male",
            "US",
            "North America",
            False,
        ),
    ]


def test_raw_pii_stays_in_the_private_model(csv_build):
    (row,) = query(
        csv_build.database,
        "select email_as_entered, email_normalised, city from stg_retail__customer_pii"
        " where customer_id = 1",
    )
    assert row == ("anna.smith@example.org", "anna.smith@example.org", "Leeds")
    columns = {
        name
        for (name,) in query(
            csv_build.database,
            "select column_name from information_schema.columns"
            " where table_name = 'stg_retail__customers'",
        )
    }
    assert not columns & {"first_name", "last_name", "email", "phone", "birth_date", "city"}
    # the one reader of the birth date outside staging keeps only the band
    age_columns = query(
        csv_build.database,
        "select column_name from information_schema.columns"
        " where table_name = 'int_customers_age_grouped' order by ordinal_position",
    )
    assert age_columns == [("customer_id",), ("age_group",)]


def test_purchase_lines_classified_and_deduplicated(csv_build):
    rows = query(
        csv_build.database,
        "select order_id, line_number, line_type, line_status, quantity,"
        " cast(unit_price as varchar), cast(discount as varchar), channel"
        " from stg_retail__purchase_lines order by 1, 2",
    )
    assert rows == [
        (100, 1, "sale", "completed", 1, "199.0000", "0.1000", "web"),
        (100, 2, "sale", "completed", 2, "12.9900", "0.0000", "web"),
        (100, 3, "return", "returned", 2, "12.9900", "0.0000", "web"),
        (101, 1, "cancellation", "cancelled", 1, "30.0000", "0.0000", "mobile_app"),
        # a unit price of 0 is a free item: a sale, not a rejected line
        (107, 1, "sale", "completed", 1, "0.0000", "0.0000", "marketplace"),
        (108, 1, "sale", "completed", 1, "189.0000", "0.0000", "call_centre"),
    ]


def test_products_keep_bad_prices_flagged(csv_build):
    rows = query(
        csv_build.database,
        "select product_id, category, cast(list_price as varchar), has_valid_list_price"
        " from stg_retail__products order by 1",
    )
    assert rows == [
        (10, "electronics", "199.00", True),
        (11, "books", "12.99", True),
        (12, "home & kitchen", None, False),
    ]


def test_parquet_input_port_gives_the_same_result(tmp_path, small_raw_dir, csv_build):
    parquet_dir = tmp_path / "raw"
    for table_dir in small_raw_dir.iterdir():
        if not table_dir.is_dir():
            continue
        (parquet_dir / table_dir.name).mkdir(parents=True)
        for csv_file in table_dir.glob("*.csv"):
            table = pacsv.read_csv(
                csv_file,
                convert_options=pacsv.ConvertOptions(
                    column_types={}, strings_can_be_null=True, auto_dict_encode=False
                ),
                read_options=pacsv.ReadOptions(autogenerate_column_names=False),
            )
            # Typed Parquet columns (int, double) must work too: staging reads text.
            pq.write_table(table, parquet_dir / table_dir.name / f"{csv_file.stem}.parquet")
    result = run_dbt(
        ["build"],
        tmp_path / "work",
        {"raw_input_format": "parquet", "raw_input_path": str(parquet_dir)},
    )
    assert result.returncode == 0, result.output[-4000:]
    sql = "select * from main_audit.row_reconciliation order by source_table"
    assert query(result.database, sql) == query(csv_build.database, sql)


# ------------------------------------------------------------------ input contract


def _copy_fixture(small_raw_dir: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(small_raw_dir, raw, ignore=shutil.ignore_patterns("*.md"))
    return raw


def _build_fails(tmp_path: Path, raw: Path, fmt: str = "csv") -> str:
    result = run_dbt(
        ["build", "--select", "stg_retail__products"],
        tmp_path / "work",
        {"raw_input_format": fmt, "raw_input_path": str(raw)},
    )
    assert result.returncode != 0, "the build should have stopped"
    # it stops before any model runs (table or view)
    assert "START sql" not in result.output
    return result.output


def test_missing_column_names_file_and_column(tmp_path, small_raw_dir):
    raw = _copy_fixture(small_raw_dir, tmp_path)
    purchase_file = raw / "purchase" / "part-0.csv"
    lines = purchase_file.read_text().splitlines()
    # drop the `quantity` column (the 5th) from every line
    purchase_file.write_text(
        "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != 4) for line in lines)
        + "\n"
    )
    output = _build_fails(tmp_path, raw)
    assert f"file '{purchase_file}'" in output
    assert "missing column(s): quantity" in output


def test_empty_file_is_named(tmp_path, small_raw_dir):
    raw = _copy_fixture(small_raw_dir, tmp_path)
    empty = raw / "product" / "part-1.csv"
    empty.write_text("")
    output = _build_fails(tmp_path, raw)
    assert f"file '{empty}'" in output and "is empty" in output


def test_missing_table_folder_is_named(tmp_path, small_raw_dir):
    raw = _copy_fixture(small_raw_dir, tmp_path)
    shutil.rmtree(raw / "customer_info")
    output = _build_fails(tmp_path, raw)
    assert "no csv files for raw table 'customer_info'" in output
    assert str(raw / "customer_info") in output


def test_header_only_table_has_no_rows(tmp_path, small_raw_dir):
    raw = _copy_fixture(small_raw_dir, tmp_path)
    purchase_file = raw / "purchase" / "part-0.csv"
    purchase_file.write_text(purchase_file.read_text().splitlines()[0] + "\n")
    output = _build_fails(tmp_path, raw)
    assert "raw table 'purchase' has no rows" in output


def test_unreadable_parquet_file_is_named(tmp_path):
    raw = tmp_path / "raw"
    for table in ("customer_info", "product", "purchase"):
        (raw / table).mkdir(parents=True)
        (raw / table / "part-0.parquet").write_bytes(b"this is not a parquet file")
    output = _build_fails(tmp_path, raw, fmt="parquet")
    # DuckDB's own message names the file (e.g. "No magic bytes found at end of file")
    assert f"'{raw / 'customer_info' / 'part-0.parquet'}'" in output


def test_external_format_without_path_is_explained(tmp_path):
    result = run_dbt(
        ["build", "--select", "stg_retail__products"],
        tmp_path,
        {"raw_input_format": "parquet"},
    )
    assert result.returncode != 0
    assert "raw_input_path is empty" in result.output


def test_unknown_input_format_is_explained(tmp_path):
    result = run_dbt(["compile"], tmp_path, {"raw_input_format": "excel"})
    assert result.returncode != 0
    assert "raw_input_format must be one of seed, parquet, csv" in result.output


def test_files_of_one_table_may_order_columns_differently(tmp_path, small_raw_dir, csv_build):
    raw = _copy_fixture(small_raw_dir, tmp_path)
    purchase_file = raw / "purchase" / "part-0.csv"
    header, *rows = purchase_file.read_text().splitlines()
    purchase_file.write_text("\n".join([header, *rows[:6]]) + "\n")
    # the rest of the rows in a second file whose columns come in reverse order
    reversed_rows = [",".join(reversed(line.split(","))) for line in [header, *rows[6:]]]
    (raw / "purchase" / "part-1.csv").write_text("\n".join(reversed_rows) + "\n")
    result = run_dbt(
        ["build"], tmp_path / "work", {"raw_input_format": "csv", "raw_input_path": str(raw)}
    )
    assert result.returncode == 0, result.output[-4000:]
    sql = "select * from main_audit.row_reconciliation order by source_table"
    assert query(result.database, sql) == query(csv_build.database, sql)
