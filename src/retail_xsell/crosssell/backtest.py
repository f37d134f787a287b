"""`retail-xsell backtest`: the cross-sell backtest of a build, as a table and as JSON.

The build computes the backtest itself (the marts cross_sell_backtest,
cross_sell_calibration and cross_sell_take_up_models, docs/cross_sell.md), so every
build, on the sample or on your own data, carries its own evidence. This command only
reads those marts from a built database and renders them: a Markdown table for people
(and the docs), a JSON document for machines (CI, a notebook, a comparison of runs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell import settings
from retail_xsell.commandline import Subcommands, add_command, shown

BACKTEST_TABLES = ("cross_sell_backtest", "cross_sell_calibration", "cross_sell_take_up_models")

#: The goals issue 14 sets, checked on the default ranking at k = cross_sell_top_n.
CALIBRATION_ERROR_GOAL = 0.05


class BacktestNotBuiltError(RuntimeError):
    """The database has no backtest marts (not built, or built before they existed)."""


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [
        {name: _plain(value) for name, value in zip(names, row, strict=True)}
        for row in result.fetchall()
    ]


def read_backtest(database: Path) -> dict[str, Any]:
    """The backtest of the build in ``database`` as one JSON-ready document."""
    if not database.is_file():
        raise BacktestNotBuiltError(f"no database at {database}: build first (make build)")
    with duckdb.connect(str(database), read_only=True) as con:
        present = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        missing = [name for name in BACKTEST_TABLES if name not in present]
        if missing:
            raise BacktestNotBuiltError(
                f"{database} has no {', '.join(missing)}: build it with this version first"
            )
        rankings = _rows(con, "select * from cross_sell_backtest order by strategy_order, k")
        calibration = _rows(
            con, "select * from cross_sell_calibration order by population desc, bin_lower"
        )
        fits = _rows(con, "select * from cross_sell_take_up_models order by fit_name, term_order")
    if not rankings:
        raise BacktestNotBuiltError(
            f"{database} holds an empty backtest: the data have no customer with a "
            "not-yet-bought category at the backtest cut-off"
        )
    top_k = max(row["k"] for row in rankings)
    at_k = {row["strategy"]: row for row in rankings if row["k"] == top_k}
    default = next(row for row in at_k.values() if row["is_default_ranking"])
    popularity = at_k["popularity"]
    goals = {
        "k": top_k,
        "default_ranking": default["strategy"],
        "hit_rate_above_popularity": default["hit_rate"] > popularity["hit_rate"],
        "revenue_captured_not_below_popularity": (
            default["revenue_captured"] >= popularity["revenue_captured"]
        ),
        "calibration_error_below": CALIBRATION_ERROR_GOAL,
        "calibration_error_met": (
            default["calibration_error"] is not None
            and default["calibration_error"] < CALIBRATION_ERROR_GOAL
        ),
    }
    return {
        "database": str(database),
        "cutoff_date": default["cutoff_date"],
        "horizon_end_date": default["horizon_end_date"],
        "horizon_days": default["horizon_days"],
        "customer_count": default["customer_count"],
        "goals": goals,
        "rankings": rankings,
        "calibration": calibration,
        "take_up_models": fits,
    }


def _number(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The backtest as Markdown: the rankings at every k, the goals, the calibration."""
    lines = [
        f"Backtest: ranked at {report['cutoff_date']}, observed for {report['horizon_days']} "
        f"days to {report['horizon_end_date']}, {report['customer_count']:,} customers.",
        "",
        "| ranking | k | hit rate | precision | revenue captured | share of new-category "
        "revenue | Brier | calibration error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rankings"]:
        name = row["strategy"] + (" (default)" if row["is_default_ranking"] else "")
        lines.append(
            f"| {name} | {row['k']} | {_number(row['hit_rate'], 3)} | "
            f"{_number(row['precision_at_k'], 3)} | {_number(row['revenue_captured'], 0)} | "
            f"{_number(row['revenue_captured_share'], 3)} | {_number(row['brier_score'], 4)} | "
            f"{_number(row['calibration_error'], 4)} |"
        )
    goals = report["goals"]
    verdict = {True: "met", False: "NOT met"}
    lines += [
        "",
        f"Goals at k = {goals['k']} for the default ranking ({goals['default_ranking']}): "
        f"hit rate above popularity's: {verdict[goals['hit_rate_above_popularity']]}; "
        "revenue captured not below popularity's: "
        f"{verdict[goals['revenue_captured_not_below_popularity']]}; calibration error "
        f"under {goals['calibration_error_below']}: {verdict[goals['calibration_error_met']]}.",
        "",
        "| offers | probability bin | count | mean predicted | observed | error |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in report["calibration"]:
        lines.append(
            f"| {row['population']} | {row['bin_lower']:.1f}-{row['bin_upper']:.1f} | "
            f"{row['candidate_count']:,} | {_number(row['mean_predicted_probability'], 3)} | "
            f"{_number(row['observed_take_up_rate'], 3)} | {_number(row['absolute_error'], 3)} |"
        )
    return "\n".join(lines) + "\n"


def register(subcommands: Subcommands) -> None:
    parser = add_command(
        subcommands,
        "backtest",
        _backtest,
        help="print the cross-sell backtest of a build (Markdown) and write it as JSON",
        description="Reads cross_sell_backtest, cross_sell_calibration and "
        "cross_sell_take_up_models from a built database (docs/cross_sell.md).",
    )
    parser.add_argument("--database", help="DuckDB file (default: the one profiles.yml uses)")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="where to write the JSON document (default: backtest.json beside the database)",
    )
    parser.add_argument(
        "--check-goals",
        action="store_true",
        help="exit 1 when the default ranking misses a goal (hit rate, revenue, calibration)",
    )


def _backtest(args: argparse.Namespace) -> int:
    database = Path(args.database) if args.database else settings.database_path()
    output = Path(args.json) if args.json else database.parent / "backtest.json"
    try:
        report = read_backtest(database)
    except (BacktestNotBuiltError, duckdb.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(report), end="")
    print(f"\nJSON: {shown(output)}")
    goals = report["goals"]
    met = (
        goals["hit_rate_above_popularity"]
        and goals["revenue_captured_not_below_popularity"]
        and goals["calibration_error_met"]
    )
    return 1 if args.check_goals and not met else 0
