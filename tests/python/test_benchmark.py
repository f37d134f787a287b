"""The benchmark helpers measure what they say (the timings themselves are not asserted)."""

from __future__ import annotations

import json
import sys

from retail_xsell.benchmark import database_bytes, model_timings, phase_totals, run_measured


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
