"""`retail-xsell backtest`: reads the backtest marts of a build and renders them, judging
the goals from the numbers (not from the build's own verdict), with clear errors."""

from __future__ import annotations

import json

import duckdb
import pytest

from retail_xsell.cli import main

COLUMNS = (
    "strategy varchar, strategy_order integer, k integer, is_product_ranking boolean,"
    " is_default_ranking boolean, cutoff_date date, horizon_end_date date,"
    " horizon_days integer, customer_count bigint, offer_count bigint,"
    " hit_customer_count bigint, taken_up_offer_count bigint, hit_rate double,"
    " precision_at_k double, revenue_captured decimal(18, 4),"
    " new_category_net_revenue decimal(18, 4), revenue_captured_share double,"
    " mean_predicted_probability double, brier_score double, calibration_error double,"
    " unweighted_calibration_error double"
)


def _database(path, default_hit_rate, default_revenue, calibration_error):
    def row(strategy, order, product, default, hit_rate, revenue, calibration):
        calibration_sql = "null" if calibration is None else calibration
        brier = "0.09" if product == "true" else "null"
        return (
            f"('{strategy}', {order}, 3, {product}, {default}, date '2025-10-01',"
            f" date '2025-12-31', 91, 100, 300, {int(hit_rate * 100)}, 40, {hit_rate}, 0.1,"
            f" {revenue}, 1000, {revenue / 1000}, 0.1, {brier}, {calibration_sql}, null)"
        )

    with duckdb.connect(str(path)) as con:
        con.execute(f"create table cross_sell_backtest ({COLUMNS})")
        con.execute(
            "insert into cross_sell_backtest values "
            + ", ".join(
                [
                    row(
                        "take_up_probability",
                        1,
                        "true",
                        "true",
                        default_hit_rate,
                        default_revenue,
                        calibration_error,
                    ),
                    row("popularity", 3, "false", "false", 0.30, 500, None),
                ]
            )
        )
        con.execute(
            "create table cross_sell_calibration as select 'offered' as population,"
            " 0.0 as bin_lower, 0.1 as bin_upper, 300 as candidate_count,"
            " 0.05 as mean_predicted_probability, 0.06 as observed_take_up_rate,"
            " 0.01 as absolute_error"
        )
        con.execute(
            "create table cross_sell_take_up_models as select 'production' as fit_name,"
            " 'intercept' as term, 0 as term_order, -3.0 as coefficient"
        )
    return path


@pytest.mark.parametrize(
    ("hit_rate", "revenue", "calibration", "met"),
    [
        (0.35, 600, 0.02, True),
        (0.30, 600, 0.02, False),  # a tie with popularity is not "above"
        (0.35, 499, 0.02, False),
        (0.35, 600, 0.05, False),
    ],
)
def test_goals_are_judged_from_the_numbers(tmp_path, capsys, hit_rate, revenue, calibration, met):
    database = _database(tmp_path / "b.duckdb", hit_rate, revenue, calibration)
    out = tmp_path / "out" / "backtest.json"
    code = main(["backtest", "--database", str(database), "--json", str(out), "--check-goals"])
    assert code == (0 if met else 1)
    report = json.loads(out.read_text())
    goals = report["goals"]
    assert goals["hit_rate_above_popularity"] == (hit_rate > 0.30)
    assert goals["revenue_captured_not_below_popularity"] == (revenue >= 500)
    assert goals["calibration_error_met"] == (calibration < 0.05)
    assert report["cutoff_date"] == "2025-10-01" and report["customer_count"] == 100
    printed = capsys.readouterr().out
    assert f"| take_up_probability (default) | 3 | {hit_rate:.3f} | 0.100 |" in printed
    assert "| popularity | 3 | 0.300 | 0.100 | 500 | 0.500 | - | - |" in printed
    assert "| offered | 0.0-0.1 | 300 | 0.050 | 0.060 | 0.010 |" in printed


def test_without_check_goals_a_missed_goal_still_exits_0(tmp_path):
    database = _database(tmp_path / "b.duckdb", 0.1, 1, 0.2)
    assert main(["backtest", "--database", str(database), "--json", str(tmp_path / "j")]) == 0


def test_a_missing_database_is_a_one_line_error(tmp_path, capsys):
    assert main(["backtest", "--database", str(tmp_path / "none.duckdb")]) == 2
    assert capsys.readouterr().err.startswith(f"error: no database at {tmp_path / 'none.duckdb'}")


def test_a_database_without_the_backtest_marts_names_them(tmp_path, capsys):
    database = tmp_path / "old.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("create table cross_sell_calibration (x integer)")
    assert main(["backtest", "--database", str(database)]) == 2
    err = capsys.readouterr().err
    assert "has no cross_sell_backtest, cross_sell_take_up_models" in err
