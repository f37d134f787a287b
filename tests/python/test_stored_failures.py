"""Data tests store their failing rows, and only those (macros/materializations/test.sql).

dbt's own materialization writes a main_audit table for every test, passing or not;
the project's keeps a table only for a test that found failing rows. These tests run
`dbt test` on a copy of the sample build with a fault put in by hand, so what they check
is what dbt did, not what the materialization says it does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from conftest import run_dbt

STORED = (
    "select table_name from information_schema.tables"
    " where table_schema = 'main_audit' and table_name like '%orders%' order by 1"
)


def _tests_of_orders(result) -> dict[str, dict]:
    return {
        r["unique_id"].split(".")[2]: r
        for r in result.run_results()["results"]
        if r["unique_id"].startswith("test.")
    }


def test_only_a_failing_test_keeps_its_rows_and_a_fixed_one_drops_them(sample_db, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    database = work / "test.duckdb"
    shutil.copy(sample_db, database)
    with duckdb.connect(str(database)) as con:
        (order_id,) = con.execute("select min(order_id) from main.orders").fetchone()
        # a fan-out bug: one order twice
        con.execute(
            f"insert into main.orders select * from main.orders where order_id = {order_id}"
        )

    failing = run_dbt(["test", "--select", "orders"], work)
    assert failing.returncode == 1, failing.output[-3000:]
    results = _tests_of_orders(failing)
    assert len(results) > 5
    unique = results["unique_orders_order_id"]
    assert unique["status"] == "fail" and unique["failures"] == 1
    passing = {name for name, r in results.items() if r["status"] == "pass"}
    assert passing == set(results) - {"unique_orders_order_id"}, results
    with duckdb.connect(str(database), read_only=True) as con:
        stored = [name for (name,) in con.execute(STORED).fetchall()]
        # The table the run names holds the failing key, as dbt's unique test reports it.
        relation = ".".join(unique["relation_name"].split(".")[-2:])
        rows = con.execute(f"select * from {relation}").fetchall()
    assert stored == ["unique_orders_order_id"]
    assert rows == [(order_id, 2)]

    with duckdb.connect(str(database)) as con:
        con.execute("create or replace table main.orders as select distinct * from main.orders")
    fixed = run_dbt(["test", "--select", "orders"], work)
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert {r["status"] for r in _tests_of_orders(fixed).values()} == {"pass"}
    with duckdb.connect(str(database), read_only=True) as con:
        # the last run's failures only: the stale table of the fixed test is gone
        assert con.execute(STORED).fetchall() == []


def test_a_warning_keeps_its_rows_too(sample_db, tmp_path: Path):
    """A test of severity warn that finds rows does not fail the build, but a steward
    still needs to see them."""
    work = tmp_path / "work"
    work.mkdir()
    database = work / "test.duckdb"
    shutil.copy(sample_db, database)
    with duckdb.connect(str(database)) as con:
        # every fit fell back: what clv_models_fitted_without_fallback warns about
        con.execute("update main.clv_model_runs set fit_status = 'fallback'")
    warned = run_dbt(["test", "--select", "clv_models_fitted_without_fallback"], work)
    assert warned.returncode == 0, warned.output[-3000:]
    (result,) = [r for r in warned.run_results()["results"] if r["unique_id"].startswith("test.")]
    assert result["status"] == "warn" and result["failures"] > 0
    relation = ".".join(result["relation_name"].split(".")[-2:])
    with duckdb.connect(str(database), read_only=True) as con:
        (rows,) = con.execute(f"select count(*) from {relation}").fetchone()
    assert rows == result["failures"]
