"""The staging layer on the committed sample accounts for every planted flaw.

The generator records exactly how many rows it spoiled with each flaw
(seeds/sample_truth.json); staging must quarantine, flag or deduplicate exactly those
rows, and the raw row counts must equal the lines in the CSV files.
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import duckdb
import pytest

from conftest import PROJECT_DIR

pytestmark = pytest.mark.dbt

SEEDS = PROJECT_DIR / "seeds"

# generator flaw -> staging rejection reason (several flaws may share a reason)
REJECTION_OF_FLAW = {
    "customer_id_missing": ("customer_info", "missing_customer_id"),
    "customer_id_unparseable": ("customer_info", "invalid_customer_id"),
    "product_id_missing": ("product", "missing_product_id"),
    "product_id_unparseable": ("product", "invalid_product_id"),
    "purchase_order_id_missing": ("purchase", "missing_order_id"),
    "purchase_customer_id_missing": ("purchase", "missing_customer_id"),
    "purchase_product_id_missing": ("purchase", "missing_product_id"),
    "quantity_unparseable": ("purchase", "invalid_quantity"),
    "unit_price_unparseable": ("purchase", "invalid_unit_price"),
    # unit_price_zero is planted but is a free item, a valid sale: not rejected
    "unit_price_negative": ("purchase", "negative_unit_price"),
    "unit_price_absurd": ("purchase", "absurd_unit_price"),
    "discount_unparseable": ("purchase", "invalid_discount"),
    "order_at_unparseable": ("purchase", "invalid_order_at"),
    "order_at_after_loaded_at": ("purchase", "order_at_after_loaded_at"),
    "purchase_unknown_customer": ("purchase", "unknown_customer"),
    "purchase_unknown_product": ("purchase", "unknown_product"),
}


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SEEDS / "sample_truth.json").read_text())


def _query(database, sql):
    with duckdb.connect(str(database), read_only=True) as con:
        return con.sql(sql).fetchall()


def _flaw(truth, name) -> int:
    return truth["flaws"][name]["count"]


def test_raw_counts_equal_csv_lines_and_truth(sample_db, truth):
    rows = dict(
        _query(sample_db, "select source_table, raw_row_count from main_audit.row_reconciliation")
    )
    for table in ("customer_info", "product", "purchase"):
        with (SEEDS / f"{table}.csv").open(newline="") as handle:
            csv_rows = sum(1 for _ in csv.reader(handle)) - 1
        assert rows[table] == csv_rows == truth["row_counts"][table], table


def test_every_raw_row_is_accounted_for(sample_db):
    rows = _query(
        sample_db,
        "select source_table, is_reconciled from main_audit.row_reconciliation order by 1",
    )
    assert rows == [("customer_info", True), ("product", True), ("purchase", True)]


def test_rejections_match_planted_flaws(sample_db, truth):
    expected = Counter()
    for flaw, key in REJECTION_OF_FLAW.items():
        expected[key] += _flaw(truth, flaw)
    actual = Counter(
        {
            (table, reason): count
            for table, reason, count in _query(
                sample_db,
                "select source_table, rejection_reason, count(*)"
                " from stg_retail__rejected_rows group by all",
            )
        }
    )
    assert actual == +expected  # unary + drops zero counts


def test_duplicates_match_planted_flaws(sample_db, truth):
    rows = {
        table: (exact, superseded)
        for table, exact, superseded in _query(
            sample_db,
            "select source_table, exact_duplicate_row_count, superseded_row_count"
            " from main_audit.row_reconciliation",
        )
    }
    assert rows["customer_info"] == (
        _flaw(truth, "customer_duplicate_row"),
        _flaw(truth, "customer_resent"),
    )
    assert rows["purchase"] == (_flaw(truth, "purchase_duplicate_row"), 0)
    assert rows["product"] == (0, 0)


def test_field_flags_match_planted_flaws(sample_db, truth):
    (customers,) = _query(
        sample_db,
        "select count(*),"
        " count(*) filter (not has_valid_email),"
        " count(*) filter (not has_valid_phone),"
        " count(*) filter (not has_valid_birth_date),"
        " count(*) filter (not has_known_country)"
        " from stg_retail__customers",
    )
    assert customers == (
        truth["simulation"]["customers"],
        _flaw(truth, "invalid_email"),
        _flaw(truth, "invalid_phone"),
        _flaw(truth, "birth_date_missing") + _flaw(truth, "birth_date_unparseable"),
        _flaw(truth, "country_unknown"),
    )
    ((products, bad_prices),) = _query(
        sample_db,
        "select count(*), count(*) filter (not has_valid_list_price) from stg_retail__products",
    )
    assert products == truth["simulation"]["products"]
    assert bad_prices == sum(
        _flaw(truth, f)
        for f in ("list_price_unparseable", "list_price_zero", "list_price_negative")
    )


def test_summary_reports_the_build(sample_db, truth):
    from retail_xsell.summary import render_summary

    text = render_summary(sample_db, target_path=sample_db.parent / "target")
    purchase_row = next(r for r in text.splitlines() if r.strip().startswith("purchase "))
    assert f"{truth['row_counts']['purchase']:,}" in purchase_row
    assert purchase_row.rstrip().endswith("yes")
    assert "Orders: " in text and "Customers by RFM segment: champions" in text
    value = next(r for r in text.splitlines() if r.startswith("Customer value as of"))
    historical, predicted, clv = (
        float(value.split(label)[1].split()[0].rstrip(".").replace(",", ""))
        for label in ("historical CLV ", "predicted CLV ", "= CLV ")
    )
    assert clv == pytest.approx(historical + predicted, abs=0.011)
    assert "BG/NBD r " in text and "Holdout check (last 26 weeks)" in text


def test_summary_explains_a_missing_database(tmp_path):
    from retail_xsell.summary import NotBuiltError, render_summary

    with pytest.raises(NotBuiltError, match="run `make run`"):
        render_summary(tmp_path / "nothing.duckdb")


def test_time_spine_spans_the_data_with_a_whole_year_either_side(sample_db):
    """The sample's orders run 2023-01-02 to 2025-12-31 (as_of_date): the spine is every
    day from 1 January of the year before to 31 December of the year after."""
    ((first, last, days, first_order, last_order),) = _query(
        sample_db,
        "select min(date_day)::varchar, max(date_day)::varchar, count(*),"
        " (select min(order_date)::varchar from order_lines),"
        " (select max(order_date)::varchar from order_lines)"
        " from time_spine_daily",
    )
    assert (first_order[:4], last_order[:4]) == ("2023", "2025")
    assert (first, last, days) == ("2022-01-01", "2026-12-31", 365 * 4 + 366)
