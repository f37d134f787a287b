"""Whole-number dbt vars are refused at compile time with a message naming the var and
the value, through the entry point a user has: `dbt` with `--vars`."""

from __future__ import annotations

import pytest

from conftest import run_dbt

pytestmark = pytest.mark.dbt


@pytest.mark.parametrize(
    ("model", "name", "value", "shown"),
    [
        ("int_cross_sell_history_customers", "cross_sell_history_customers", 0, "0"),
        ("int_cross_sell_snapshots", "cross_sell_horizon_days", 30.5, "30.5"),
        ("int_customers_clv_holdout_summarised", "clv_holdout_weeks", "soon", "soon"),
        ("int_cross_sell_history_customers", "cross_sell_history_customers", True, "True"),
    ],
)
def test_a_var_that_is_not_a_whole_number_stops_the_build_naming_it(
    tmp_path, model, name, value, shown
):
    result = run_dbt(["compile", "--select", model], tmp_path, {name: value})
    assert result.returncode != 0
    unit = {"cross_sell_history_customers": "customers"}.get(name, name.rsplit("_", 1)[-1])
    assert f"{name} must be a whole number of {unit} >= 1; got '{shown}'" in result.output
    assert "Traceback" not in result.output


def test_a_whole_number_var_compiles_into_the_sql(tmp_path):
    result = run_dbt(
        ["compile", "--select", "int_cross_sell_history_customers"],
        tmp_path,
        {"cross_sell_history_customers": 250},
    )
    assert result.returncode == 0, result.output[-2000:]
    compiled = next(
        (tmp_path / "target" / "compiled").rglob("int_cross_sell_history_customers.sql")
    )
    assert "sample_rank <= 250" in compiled.read_text()
