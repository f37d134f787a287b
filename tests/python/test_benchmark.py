"""The benchmark helpers measure what they say (the timings themselves are not asserted)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from retail_xsell.benchmark import (
    DailyLoadShares,
    Measured,
    Round,
    build_report,
    daily_load_shares,
    database_bytes,
    model_timings,
    phase_totals,
    run_measured,
)
from retail_xsell.lean_reference import Agreement


def test_model_timings_keep_models_only_slowest_first(tmp_path):
    run_results = tmp_path / "run_results.json"
    run_results.write_text(
        json.dumps(
            {
                "results": [
                    {"unique_id": "model.retail_xsell.orders", "execution_time": 1.5},
                    {"unique_id": "test.retail_xsell.not_null_x", "execution_time": 9.0},
                    {"unique_id": "model.retail_xsell.customers", "execution_time": 2.25},
                    {"unique_id": "seed.retail_xsell.product", "execution_time": 4.0},
                ]
            }
        )
    )
    assert model_timings(run_results) == [("customers", 2.25), ("orders", 1.5)]


def test_phase_totals_count_and_sum_each_kind_of_node(tmp_path):
    run_results = tmp_path / "run_results.json"
    results = [
        ("model.retail_xsell.orders", 1.5),
        ("test.retail_xsell.not_null_x", 0.25),
        ("model.retail_xsell.customers", 2.25),
        ("test.retail_xsell.unique_y", 0.5),
        ("unit_test.retail_xsell.orders.by_hand", 0.125),
    ]
    run_results.write_text(
        json.dumps({"results": [{"unique_id": u, "execution_time": t} for u, t in results]})
    )
    assert phase_totals(run_results) == {
        "model": (2, 3.75),
        "test": (2, 0.75),
        "unit_test": (1, 0.125),
    }


def test_database_bytes_count_the_file_and_its_write_ahead_log(tmp_path):
    database = tmp_path / "bench.duckdb"
    assert database_bytes(database) == 0
    database.write_bytes(b"x" * 1000)
    assert database_bytes(database) == 1000
    (tmp_path / "bench.duckdb.wal").write_bytes(b"y" * 24)
    assert database_bytes(database) == 1024


def test_run_measured_reports_exit_code_and_memory_of_the_child():
    # the child holds ~200 MiB; the parent (pytest, made 300 MiB bigger here) is not what
    # is measured, even though a child shares the parent's memory until it execs
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    allocate = "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    measured = run_measured([sys.executable, "-c", allocate])
    assert measured.returncode == 0
    assert measured.peak_rss_mib >= 200
    failed = run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.returncode == 3 and failed.peak_rss_mib < 100
    del ballast


def _write_build_artifacts(tmp_path, child_map, timings):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"child_map": child_map}))
    run_results = tmp_path / "run_results.json"
    run_results.write_text(
        json.dumps({"results": [{"unique_id": u, "execution_time": t} for u, t in timings]})
    )
    return manifest, run_results


def test_daily_load_shares_split_by_as_of_date_then_the_purchase_input(tmp_path):
    purchase = "source.retail_xsell.retail_raw.purchase"
    customer_info = "source.retail_xsell.retail_raw.customer_info"
    base_customers = "model.retail_xsell.base_retail__customer_info"
    base_purchase = "model.retail_xsell.base_retail__purchase"
    as_of_date = "model.retail_xsell.int_as_of_date"
    customers = "model.retail_xsell.customers"
    order_lines = "model.retail_xsell.order_lines"
    child_map = {
        purchase: [base_purchase],
        customer_info: [base_customers],
        # the purchase base reads the customers too: it is still purchase work
        base_customers: [base_purchase, customers],
        base_purchase: [as_of_date, order_lines, "test.retail_xsell.unique_base"],
        # customers depends on customer_info and on as_of_date: as_of_date wins
        as_of_date: [customers],
        customers: ["test.retail_xsell.not_null_customers"],
        order_lines: [],
        "test.retail_xsell.unique_base": [],
        "test.retail_xsell.not_null_customers": [],
    }
    manifest, run_results = _write_build_artifacts(
        tmp_path,
        child_map,
        [
            (base_customers, 1.0),
            (base_purchase, 4.0),
            ("test.retail_xsell.unique_base", 0.5),
            (order_lines, 2.0),
            (as_of_date, 0.25),
            (customers, 1.5),
            ("test.retail_xsell.not_null_customers", 0.125),
            # hooks are not in the child map
            ("operation.retail_xsell.retail_xsell-on-run-start-0", 0.0625),
        ],
    )
    shares = daily_load_shares(manifest, run_results)
    assert shares == DailyLoadShares(as_of_date=1.875, purchase_only=6.5, other=1.0625)
    assert shares.total == 9.4375


def test_daily_load_shares_name_the_manifest_without_the_as_of_date_model(tmp_path):
    manifest, run_results = _write_build_artifacts(
        tmp_path, {"source.retail_xsell.retail_raw.purchase": []}, []
    )
    expected = re.escape(f"{manifest}: no node model.retail_xsell.int_as_of_date")
    with pytest.raises(ValueError, match=expected):
        daily_load_shares(manifest, run_results)


def test_build_report_gives_the_daily_load_shares_and_the_floor_of_a_dbt_run():
    def measured_round(full: float, floor: float, as_of_date: float) -> Round:
        return Round(
            first="lean",
            lean=Measured(10.0, 512.0, 0),
            full=Measured(full, 2048.0, 0),
            lean_steps={"purchase_lines": 5.0},
            model_seconds=[("base_retail__purchase", 4.0)],
            phases={"model": (40, 12.0)},
            database_bytes=2**30,
            shares=DailyLoadShares(as_of_date=as_of_date, purchase_only=30.0, other=10.0),
            floor=Measured(floor, 300.0, 0),
        )

    rounds = [measured_round(80.0, 6.0, 60.0), measured_round(100.0, 9.0, 70.0)]
    report = build_report(990_942, rounds, Agreement(1, 0, 1, 112, 0, 0.0))
    # medians: as_of_date 65 of a 105 total, full 90 s, floor 7.5 s
    assert "downstream of `int_as_of_date` 65.0 thread-s (62%)" in report
    assert "purchase input only 30.0 thread-s (29%)" in report
    assert "the rest 10.0 thread-s (10%)" in report
    assert "its tests on the built database: 7.5 s wall, 8.3% of the full build" in report


def test_build_report_leaves_the_daily_load_lines_out_when_not_measured():
    unmeasured = Round(
        first="lean",
        lean=Measured(10.0, 512.0, 0),
        full=Measured(20.0, 2048.0, 0),
        lean_steps={},
        model_seconds=[],
        phases={},
        database_bytes=0,
    )
    report = build_report(10, [unmeasured], Agreement(1, 0, 1, 112, 0, 0.0))
    assert "int_as_of_date" not in report


def test_main_reports_an_unreadable_build_as_an_error_not_a_traceback(monkeypatch, capsys):
    from retail_xsell import benchmark

    def fails(*_args, **_kwargs):
        raise ValueError("target/manifest.json: no node model.retail_xsell.int_as_of_date")

    monkeypatch.setattr(benchmark, "benchmark_build", fails)
    assert benchmark.main(["--purchase-lines", "10"]) == 1
    assert "error: target/manifest.json: no node" in capsys.readouterr().err
