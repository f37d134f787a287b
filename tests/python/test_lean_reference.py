"""The lean reference pipeline of the build benchmark does the product's essential work.

A tiny hand-written Parquet input (three customers, an exact copy, a line re-sent with a
later load and one with an unusable later load, a return after the as-of date, and one
row of each kind the base model drops) gives figures worked out by hand below; a small
generated input checks the CLV fit; the benchmark's comparison and report are checked
on tables and timings made up for them. That the lean results equal the product's marts
on real generated data is checked by every benchmark run (compare_with_build).
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import PROJECT_DIR
from retail_xsell.benchmark import Measured, Round, build_report
from retail_xsell.generator.schema import CUSTOMER_INFO_COLUMNS as CUSTOMER_COLUMNS
from retail_xsell.lean_reference import (
    PRODUCT_COLUMNS,
    PURCHASE_COLUMNS,
    RESULT_TABLES,
    Agreement,
    compare_with_build,
    main,
)

PRODUCTS = [
    ("10", "Novel", " Books ", "Fiction", "Acme", "10.00", "4.00"),
    ("10", "Novel", " Books ", "Fiction", "Acme", "10.00", "4.00"),  # exact copy
    ("11", "Kite", "TOYS &  Games", "Outdoor", "Acme", "20.00", "9.00"),
    ("12", "Tea", "grocery", "Drinks", "Acme", "5.00", "2.00"),
    # two versions of one key and no version time: neither is trusted
    ("13", "Mug", "Home & Kitchen", "Cups", "Acme", "8.00", "3.00"),
    ("13", "Mug", "Home & Kitchen", "Cups", "Acme", "9.00", "3.00"),
]
CUSTOMERS = [
    ("1", "Ann", "A", "a@example.com", "1", "1990-01-01", "f", "X", "UK", "2023-01-01 00:00:00",
     "yes", "2023-01-01 00:00:00"),
    ("1", "Ann", "A", "a@example.com", "1", "1990-01-01", "f", "Y", "UK", "2023-01-01 00:00:00",
     "yes", "2023-06-01 00:00:00"),
    ("2", "Bob", "B", "b@example.com", "2", "1980-01-01", "m", "X", "UK", "2023-01-01 00:00:00",
     "no", "2023-01-01 00:00:00"),
    ("3", "Cy", "C", "c@example.com", "3", "1970-01-01", "m", "X", "UK", "2023-01-01 00:00:00",
     "no", "2023-01-01 00:00:00"),
    ("C-9", "Di", "D", "d@example.com", "4", "1970-01-01", "f", "X", "UK", "2023-01-01 00:00:00",
     "no", "2023-01-01 00:00:00"),
]  # fmt: skip


def _line(order, line, customer, product, quantity, price, discount, at, status, loaded):
    return (order, line, customer, product, quantity, price, discount, at, "web", status, loaded)


PURCHASES = [
    # customer 1, 2024-01-01: order 100 = 2 x 10.00 + 20.00 less 10% = 38.00
    _line("100", "1", "1", "10", "2", "10.00", "0.00", "2024-01-01 10:00:00", "completed",
          "2024-01-01 11:00:00"),
    _line("100", "1", "1", "10", "2", "10.00", "0.00", "2024-01-01 10:00:00", "completed",
          "2024-01-01 11:00:00"),  # exact copy
    _line("100", "2", "1", "11", "1", "20.00", "0.10", "2024-01-01 10:00:00", "completed",
          "2024-01-01 11:00:00"),
    # customer 1, 2024-01-08: order 101 re-sent at 6.00 (the later load wins), then sent
    # again later still with an unusable price (which supersedes nothing); order 102 the
    # same day: one purchase occasion of 6.00 + 10.00
    _line("101", "1", "1", "12", "1", "5.00", "", "2024-01-08 09:00:00", "completed",
          "2024-01-08 10:00:00"),
    _line("101", "1", "1", "12", "1", "6.00", "0", "2024-01-08 09:00:00", "completed",
          "2024-01-09 10:00:00"),
    _line("101", "1", "1", "12", "1", "#N/A", "0", "2024-01-08 09:00:00", "completed",
          "2024-01-10 10:00:00"),
    _line("102", "1", "1", "10", "1", "10.00", "0", "2024-01-08 15:00:00", "Completed",
          "2024-01-08 16:00:00"),
    # customer 1, 2024-01-22: order 103 of 20.00, returned on 2024-01-25
    _line("103", "1", "1", "11", "1", "20.00", "0", "2024-01-22 12:00:00", "completed",
          "2024-01-22 13:00:00"),
    _line("103", "2", "1", "11", "1", "20.00", "0", "2024-01-25 12:00:00", "returned",
          "2024-01-25 13:00:00"),
    # customer 2: one order of 30.00; a cancelled one is not an order and buys nothing
    _line("200", "1", "2", "10", "3", "10.00", "0", "2024-01-15 12:00:00", " COMPLETED ",
          "2024-01-15 13:00:00"),
    _line("201", "1", "2", "11", "1", "20.00", "0", "2024-01-20 12:00:00", "cancelled",
          "2024-01-20 13:00:00"),
    # customer 3: the last sale (as_of_date 2024-02-01); a return after it is ignored
    _line("300", "1", "3", "12", "1", "5.00", "0", "2024-02-01 12:00:00", "completed",
          "2024-02-01 13:00:00"),
    _line("300", "2", "3", "12", "-1", "5.00", "0", "2024-02-05 12:00:00", "completed",
          "2024-02-05 13:00:00"),
    # unusable: quantity text, unknown customer, untrusted product, absurd price,
    # ordered after it was loaded, a percentage discount
    _line("301", "1", "3", "10", "two", "10.00", "0", "2024-01-05 12:00:00", "completed",
          "2024-01-05 13:00:00"),
    _line("302", "1", "99", "10", "1", "10.00", "0", "2024-01-05 12:00:00", "completed",
          "2024-01-05 13:00:00"),
    _line("303", "1", "3", "13", "1", "8.00", "0", "2024-01-05 12:00:00", "completed",
          "2024-01-05 13:00:00"),
    _line("304", "1", "3", "10", "1", "10000.00", "0", "2024-01-05 12:00:00", "completed",
          "2024-01-05 13:00:00"),
    _line("305", "1", "2", "10", "1", "10.00", "0", "2030-01-05 12:00:00", "completed",
          "2024-01-05 13:00:00"),
    _line("306", "1", "3", "10", "1", "10.00", "10%", "2024-01-05 12:00:00", "completed",
          "2024-01-05 13:00:00"),
]  # fmt: skip


def _write(folder: Path, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    folder.mkdir(parents=True)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in zip(
        columns, zip(*rows, strict=True), strict=True
    )})  # fmt: skip
    pq.write_table(table, folder / "part-0.parquet")


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory) -> tuple[Path, dict]:
    """The lean pipeline on the hand-written input, through its command line."""
    work = tmp_path_factory.mktemp("lean-hand")
    raw = work / "raw"
    _write(raw / "product", PRODUCT_COLUMNS, PRODUCTS)
    _write(raw / "customer_info", CUSTOMER_COLUMNS, CUSTOMERS)
    _write(raw / "purchase", PURCHASE_COLUMNS, PURCHASES)
    database, result = work / "lean.duckdb", work / "lean.json"
    argv = ["--input", str(raw), "--database", str(database), "--json", str(result)]
    assert main(argv) == 0
    return database, json.loads(result.read_text())


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> Path:
    """The lean pipeline on 20,000 generated lines (the benchmark's input, smaller)."""
    work = tmp_path_factory.mktemp("lean-generated")
    subprocess.run(
        [sys.executable, "scripts/generate_raw_data.py", "scale", "--purchase-lines", "20000",
         "--out", str(work / "raw"), "--quiet"],
        cwd=PROJECT_DIR, check=True, capture_output=True,
    )  # fmt: skip
    assert main(["--input", str(work / "raw"), "--database", str(work / "lean.duckdb")]) == 0
    return work / "lean.duckdb"


def _rows(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.sql(sql).fetchall()


def test_lean_summary_counts_occasions_orders_and_net_spend_as_worked_by_hand(hand_run):
    database, result = hand_run
    # clean lines: 100/1, 100/2, 101/1 (6.00), 102/1, 103/1, 103/2, 200/1, 201/1, 300/1, 300/2
    assert result["purchase_lines"] == 10
    rows = _rows(
        database,
        "select customer_id, order_count, purchase_count, repeat_purchase_count,"
        " recency_weeks, age_weeks, mean_repeat_purchase_sales_revenue, total_spend,"
        " as_of_date::varchar from customer_summary order by customer_id",
    )
    assert rows == [
        # occasions 01-01 (38), 01-08 (16), 01-22 (20); the return costs 20
        (1, 4, 3, 2, 21 / 7, 31 / 7, 18.0, Decimal("54.0000"), "2024-02-01"),
        (2, 1, 1, 0, 0.0, 17 / 7, None, Decimal("30.0000"), "2024-02-01"),
        (3, 1, 1, 0, 0.0, 0.0, None, Decimal("5.0000"), "2024-02-01"),
    ]
    assert {name for (name,) in _rows(database, "show tables")} == set(RESULT_TABLES)


def test_lean_affinities_count_customer_and_order_baskets_as_worked_by_hand(hand_run):
    database, result = hand_run
    assert result["category_pairs"] == 12  # 3 x 2 ordered pairs, two basket levels
    rows = _rows(
        database,
        "select basket_level, antecedent_category, consequent_category, basket_count,"
        " pair_basket_count, support, confidence, lift from category_affinities"
        " where (antecedent_category, consequent_category) in"
        " (('toys & games', 'books'), ('books', 'grocery'), ('books', 'toys & games'))"
        " order by all",
    )
    assert rows == [
        # customers: 1 owns all three, 2 books (not the cancelled toy), 3 grocery
        ("customer", "books", "grocery", 3, 1, 1 / 3, 1 / 2, 3 / 4),
        ("customer", "books", "toys & games", 3, 1, 1 / 3, 1 / 2, 3 / 2),
        ("customer", "toys & games", "books", 3, 1, 1 / 3, 1.0, 3 / 2),
        # orders 100 {books, toys}, 101 {grocery}, 102 {books}, 103 {toys}, 200, 300
        ("order", "books", "grocery", 6, 0, 0.0, 0.0, 0.0),
        ("order", "books", "toys & games", 6, 1, 1 / 6, 1 / 3, 1.0),
        ("order", "toys & games", "books", 6, 1, 1 / 6, 1 / 2, 1.0),
    ]


def test_lean_offers_are_unowned_categories_ranked_by_the_best_rule(hand_run):
    database, _ = hand_run
    rows = _rows(
        database,
        "select customer_id, offer_rank, category, evidence_category, evidence_confidence,"
        " evidence_lift from cross_sell_offers order by customer_id, offer_rank",
    )
    # customer 1 owns every category: nothing to offer
    assert rows == [
        (2, 1, "toys & games", "books", 1 / 2, 3 / 2),
        (2, 2, "grocery", "books", 1 / 2, 3 / 4),
        (3, 1, "toys & games", "grocery", 1 / 2, 3 / 2),
        (3, 2, "books", "grocery", 1 / 2, 3 / 4),
    ]


def test_lean_clv_fit_records_too_few_customers_instead_of_failing(hand_run):
    database, result = hand_run
    assert result["bgnbd"].startswith("not fitted: BG/NBD needs at least 20 customers")
    assert _rows(database, "select model, params from clv_fit order by model") == [
        ("bgnbd", None),
        ("gamma_gamma", None),
    ]


def test_lean_bgnbd_fit_recovers_the_generators_population_in_weeks(generated_run):
    [(params, status)] = _rows(
        generated_run, "select params, status from clv_fit where model = 'bgnbd'"
    )
    assert status == "converged"
    fitted = json.loads(params)
    # the generator's BG/NBD population (truth.json), alpha in weeks: recency or age in
    # days would put alpha 7x off
    for name, truth in {"r": 1.1, "alpha": 10.0, "a": 0.8, "b": 2.5}.items():
        assert fitted[name] == pytest.approx(truth, rel=0.3), name


def test_compare_with_build_counts_each_customer_and_pair_that_differs(generated_run, tmp_path):
    build = tmp_path / "build.duckdb"
    with duckdb.connect(str(build)) as connection:
        connection.execute(f"attach '{generated_run}' as lean (read_only)")
        # the build's marts as the product names them, equal to the lean tables ...
        connection.execute(
            "create table customer_value as select customer_id, order_count,"
            " repeat_purchase_count, recency_weeks as bgnbd_recency_weeks,"
            " age_weeks as bgnbd_age_weeks, total_spend as historical_clv,"
            " cast(mean_repeat_purchase_sales_revenue as decimal(18, 4))"
            " as mean_repeat_order_sales_revenue from lean.customer_summary"
        )
        connection.execute("create table category_affinities as from lean.category_affinities")
        connection.execute(
            "create table clv_model_runs as select"
            " (params->>'r')::double as bgnbd_r, (params->>'alpha')::double * 1.01"
            " as bgnbd_alpha, (params->>'a')::double as bgnbd_a,"
            " (params->>'b')::double as bgnbd_b from lean.clv_fit where model = 'bgnbd'"
        )
        # ... but for one customer's spend, one missing customer and one pair's lift
        connection.execute(
            "update customer_value set historical_clv = historical_clv + 0.0001"
            " where customer_id = (select min(customer_id) from customer_value)"
        )
        connection.execute(
            "delete from customer_value"
            " where customer_id = (select max(customer_id) from customer_value)"
        )
        connection.execute(
            "update category_affinities set lift = lift * 1.000001"
            " where basket_level = 'order' and antecedent_category = 'books'"
            " and consequent_category = 'beauty'"
        )
    agreement = compare_with_build(generated_run, build)
    [(customers,)] = _rows(generated_run, "select count(*) from customer_summary")
    assert agreement.customers == customers
    assert agreement.buyers_in_build == customers - 1
    assert agreement.customers_differing == 2
    assert (agreement.category_pairs, agreement.category_pairs_differing) == (112, 1)
    assert agreement.bgnbd_max_relative_difference == pytest.approx(0.01 / 1.01)


def test_benchmark_report_gives_medians_and_the_full_over_lean_ratio():
    def measured_round(first: str, lean: float, full: float, model: float) -> Round:
        return Round(
            first=first,
            lean=Measured(lean, 512.0, 0),
            full=Measured(full, 2048.0, 0),
            lean_steps={"purchase_lines": lean / 2, "clv_fit": lean / 4},
            model_seconds=[("base_retail__purchase", model)],
            phases={"model": (40, 3 * model), "test": (271, 10.0)},
            database_bytes=2**30,
        )

    rounds = [measured_round("lean", 10.0, 30.0, 4.0), measured_round("full", 20.0, 50.0, 6.0)]
    agreement = Agreement(99_496, 0, 99_496, 112, 0, 0.0)
    report = build_report(990_942, rounds, agreement)
    assert "### 990,942 purchase lines" in report
    assert "Full `dbt build`: 40.0 s wall, peak RSS 2.00 GiB, database 1.00 GiB" in report
    assert "15.0 s wall, peak RSS 0.50 GiB" in report
    assert "purchase_lines 7.5, clv_fit 3.8" in report
    assert "**Full / lean: 2.67x**" in report  # medians 40 / 15, not the rounds' 3.0, 2.5
    assert "| 1 | lean | 10.0 | 0.50 GiB | 30.0 | 2.00 GiB | 3.00x |" in report
    assert "| 2 | full | 20.0 | 0.50 GiB | 50.0 | 2.00 GiB | 2.50x |" in report
    assert "model 15.0 s (40), test 10.0 s (271)" in report
    assert "| base_retail__purchase | 5.0 |" in report
    assert "99,496 customers with a completed order (99,496 in customer_value), 0 with" in report
