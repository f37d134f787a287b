"""A pinned as_of_date is a point in time: no purchase line dated after it changes a
customer-level figure.

int_as_of_date is "the point in time of every customer-level figure" (its model doc):
ages, RFM, CLV and its holdout check, the take-up model's snapshots, the offers and the
backtest. With `--vars '{as_of_date: ...}'`, a figure that read a later line would leak
the future into a past point in time, and a backtest built on it would look better than
it is. It is also what a scheduled refit relies on (docs/benchmarks.md, "Incremental
daily loads"): new days appended after a pinned as_of_date must leave every customer
figure as it was.

The check builds the committed sample twice with the same pinned as_of_date, through the
CSV input port: once with every purchase row, once without the rows ordered after that
date. Every model downstream of int_as_of_date must hold the same rows in both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import PROJECT_DIR, run_dbt, table_differences
from retail_xsell.daily_load import AS_OF_DATE_NODE, downstream

#: Between the sample's median and 80th-percentile order dates: 2.5 years of history
#: before it (more than the holdout and both take-up snapshots need), 6 months after.
AS_OF_DATE = "2025-06-30"

#: Rows whose order time reads as a timestamp later than the pinned date are left out.
#: Unreadable times stay in both inputs (staging quarantines them either way).
AFTER = f"try_cast(order_at as timestamp) >= date '{AS_OF_DATE}' + 1"


def _raw_input(root: Path, purchase_filter: str) -> Path:
    """A CSV input folder of the committed sample, its purchase rows filtered."""
    for table in ("customer_info", "product", "purchase"):
        (root / table).mkdir(parents=True)
    for table in ("customer_info", "product"):
        shutil.copy(PROJECT_DIR / "seeds" / f"{table}.csv", root / table / f"{table}.csv")
    seed = PROJECT_DIR / "seeds" / "purchase.csv"
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from read_csv('{seed}', all_varchar = true, header = true)"
            f" where {purchase_filter}) to '{root / 'purchase' / 'purchase.csv'}'"
            " (header, delimiter ',')"
        )
    return root


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(every row, rows to the pinned date, manifest) built with as_of_date pinned."""
    root = tmp_path_factory.mktemp("point_in_time")
    built = []
    for name, keep in (("all", "true"), ("to_date", f"not coalesce({AFTER}, false)")):
        raw = _raw_input(root / f"raw_{name}", keep)
        dbt_vars = {"raw_input_format": "csv", "raw_input_path": str(raw)}
        result = run_dbt(["build"], root / name, {**dbt_vars, "as_of_date": AS_OF_DATE})
        assert result.returncode == 0, result.output[-4000:]
        built.append(result)
    return built[0].database, built[1].database, built[0].target_path / "manifest.json"


def test_the_inputs_differ_by_lines_after_the_pinned_date_only(builds):
    every_row, to_date, _ = builds
    counts, as_of = [], set()
    for database in (every_row, to_date):
        with duckdb.connect(str(database), read_only=True) as con:
            counts.append(
                con.execute(
                    "select count(*) filter (where order_date > ?), count(*) from order_lines",
                    [AS_OF_DATE],
                ).fetchone()
            )
            as_of |= {
                row[0]
                for row in con.execute(
                    "select cast(as_of_date as varchar) from int_as_of_date"
                ).fetchall()
            }
    (later_all, lines_all), (later_cut, lines_cut) = counts
    # The sample has months of clean lines after the date, and the cut input none.
    assert later_all > 1000 and later_cut == 0
    assert lines_all - lines_cut == later_all
    assert as_of == {AS_OF_DATE}


def test_no_customer_level_figure_reads_a_line_after_the_pinned_date(builds):
    every_row, to_date, manifest_path = builds
    manifest = json.loads(manifest_path.read_text())
    nodes = manifest["nodes"]
    customer_level = {
        nodes[node]["alias"]
        for node in downstream(manifest["child_map"], AS_OF_DATE_NODE)
        if node.startswith("model.") and node != AS_OF_DATE_NODE
    }
    differences, compared = table_differences(every_row, to_date, customer_level)
    # Every customer-level model is a table or view of schema main, so all are compared.
    assert set(compared) == customer_level
    assert {"customers", "customer_value", "cross_sell_opportunities"} <= customer_level
    assert differences == []
