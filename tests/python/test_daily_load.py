"""`retail-xsell build --daily` (daily_load.py, macros/daily_loads.sql): a new day of
purchase files added to the working database must give what a full build of all the
files gives, with the same vars, or the command must build in full and say why.

End to end on the committed sample, split by load day: the rows loaded before
2025-12-29 are the first build's input; the next day's file, with a return of an order
placed before the pinned as_of_date added to it, is the daily load. A full build of the
same files is the reference. The rules that send a load to the full build are checked
on small hand-made databases, without dbt.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import PROJECT_DIR, run_dbt, table_differences
from retail_xsell import daily_load
from retail_xsell.commandline import UsageError

AS_OF_DATE = "2025-12-20"
FIRST_DAY = "2025-12-29"
XSELL = str(Path(sys.executable).with_name("retail-xsell"))
#: A return, loaded on the new day, of an order placed on or before the pinned date:
#: it changes that order's refunds but no figure as of that date.
LATE_RETURN = (
    "select order_id, '99' as line_number, customer_id, product_id, '-1' as quantity,"
    " unit_price, discount, '{day} 09:00:00' as order_at, channel, 'returned' as status,"
    " '{day} 10:00:00' as loaded_at from purchase"
    " where try_cast(order_at as date) <= date '{as_of}' and status = 'completed'"
    " and try_cast(quantity as integer) > 0 order by order_id, line_number limit 1"
)


def _xsell(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """retail-xsell with dbt's artifacts and logs in workdir/."""
    env = {**os.environ, "DBT_PROFILES_DIR": str(PROJECT_DIR), "RETAIL_XSELL_TARGET": "dev"}
    env.pop("RETAIL_XSELL_DUCKDB_PATH", None)
    return subprocess.run(
        [XSELL, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _build(raw: Path, workdir: Path, *, daily: bool) -> subprocess.CompletedProcess[str]:
    dbt_vars = {"raw_input_format": "csv", "raw_input_path": str(raw), "as_of_date": AS_OF_DATE}
    return _xsell(
        [
            "build",
            *(["--daily"] if daily else []),
            "--database",
            str(workdir / "work.duckdb"),
            "--",
            "--vars",
            json.dumps(dbt_vars),
            "--target-path",
            str(workdir / "target"),
            "--log-path",
            str(workdir / "logs"),
        ],
        workdir,
    )


def _split_sample(raw: Path) -> None:
    """The sample as CSV input: customers and products, the purchase rows loaded before
    FIRST_DAY in one file; FIRST_DAY's rows plus LATE_RETURN in raw/../day.csv."""
    for table in ("customer_info", "product", "purchase"):
        (raw / table).mkdir(parents=True)
    for table in ("customer_info", "product"):
        (raw / table / f"{table}.csv").write_bytes(
            (PROJECT_DIR / "seeds" / f"{table}.csv").read_bytes()
        )
    seed = PROJECT_DIR / "seeds" / "purchase.csv"
    loaded = "try_cast(loaded_at as date)"
    with duckdb.connect() as con:
        con.execute(
            f"create table purchase as select * from read_csv('{seed}', all_varchar = true,"
            " header = true)"
        )
        con.execute(
            f"copy (select * from purchase where coalesce({loaded} < date '{FIRST_DAY}', true))"
            f" to '{raw / 'purchase' / 'until.csv'}' (header)"
        )
        late_return = LATE_RETURN.format(day=FIRST_DAY, as_of=AS_OF_DATE)
        con.execute(
            f"copy (select * from purchase where {loaded} = date '{FIRST_DAY}'"
            f" union all ({late_return})) to '{raw.parent / 'day.csv'}' (header)"
        )


@pytest.fixture(scope="module")
def loads(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("daily_load")
    raw = root / "raw"
    _split_sample(raw)
    first = _build(raw, root / "daily", daily=False)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (raw / "purchase" / f"{FIRST_DAY}.csv").write_bytes((root / "day.csv").read_bytes())
    daily = _build(raw, root / "daily", daily=True)
    assert daily.returncode == 0, daily.stdout[-3000:] + daily.stderr[-3000:]
    reference = _build(raw, root / "full", daily=False)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    (root / "daily_output.txt").write_text(daily.stdout + daily.stderr)
    return {"raw": raw, "daily": root / "daily", "full": root / "full", "root": root}


def test_a_daily_load_takes_the_short_path(loads):
    output = (loads["root"] / "daily_output.txt").read_text()
    assert "added 1 purchase file(s)" in output
    assert "a full build" not in output
    results = json.loads((loads["daily"] / "target" / "run_results.json").read_text())
    # dbt ran the purchase chain; the customer-level nodes' results carried over.
    assert results["daily_load"]["carried_results"] > 150
    ran = [r for r in results["results"] if "carried over" not in (r.get("message") or "")]
    names = {r["unique_id"].split(".")[2] for r in ran}
    assert {"base_retail__purchase", "orders", "order_lines", "int_as_of_date"} <= names
    assert not {"customers", "customer_value", "cross_sell_opportunities"} & names
    # The tests of order-keyed models read the orders of the day's file only; the others
    # read their whole table.
    compiled = loads["daily"] / "target" / "compiled" / "retail_xsell" / "models"
    keyed = (
        compiled / "marts" / "order_lines.yml" / "unique_order_lines_order_line_id.sql"
    ).read_text()
    assert f"{FIRST_DAY}.csv" in keyed and "or order_id is null)) dbt_subquery" in keyed
    other = next(compiled.rglob("unique_stg_retail__rejected_rows_rejected_row_id.sql")).read_text()
    assert "dbt_subquery" not in other


def test_a_daily_load_equals_a_full_build_of_the_same_files(loads):
    daily, full = loads["daily"] / "work.duckdb", loads["full"] / "work.duckdb"
    differences, compared = table_differences(daily, full)
    assert len(compared) > 40
    assert differences == []
    assert table_differences(daily, full, {"row_reconciliation"}, "main_audit") == (
        [],
        ["row_reconciliation"],
    )
    with duckdb.connect(str(daily), read_only=True) as con:
        # The new day is in: its lines, and the return's refund on an older order.
        (returns,) = con.execute(
            "select count(*) from main.order_lines where line_number = 99 and line_type = 'return'"
        ).fetchone()
        assert returns == 1


def test_the_gate_sees_every_test_after_a_daily_load(loads):
    daily = json.loads((loads["daily"] / "target" / "run_results.json").read_text())
    full = json.loads((loads["full"] / "target" / "run_results.json").read_text())
    assert {r["unique_id"] for r in daily["results"]} == {r["unique_id"] for r in full["results"]}
    # The results belong to the database: its newest build record is the daily load's.
    with duckdb.connect(str(loads["daily"] / "work.duckdb"), read_only=True) as con:
        (latest,) = con.execute(
            "select invocation_id from main_audit.build_runs order by started_at desc limit 1"
        ).fetchone()
    assert latest == daily["metadata"]["invocation_id"]
    carried = [r for r in daily["results"] if "carried over" in (r.get("message") or "")]
    assert {r["status"] for r in carried} <= {"pass", "success", "no-op"}


def test_a_second_run_with_no_new_file_does_nothing(loads):
    before = (loads["daily"] / "work.duckdb").stat().st_mtime_ns
    again = _build(loads["raw"], loads["daily"], daily=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "no new purchase files" in again.stdout
    assert (loads["daily"] / "work.duckdb").stat().st_mtime_ns == before


# --- when the short path is refused, without dbt ---------------------------------------

VARS = {"raw_input_format": "csv", "as_of_date": AS_OF_DATE}
NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


def _recorded(tmp_path: Path, **overrides) -> tuple[Path, dict]:
    """A working database as a build leaves it for a daily load, and its vars."""
    raw = tmp_path / "raw"
    for table in ("customer_info", "product", "purchase"):
        (raw / table).mkdir(parents=True)
        (raw / table / f"{table}.csv").write_text("a\n1\n")
    dbt_vars = {**VARS, "raw_input_path": str(raw)}
    working = tmp_path / "work.duckdb"
    with duckdb.connect(str(working)) as con:
        con.execute(
            "create schema main_audit; create table main_audit.build_runs (invocation_id"
            " varchar, started_at timestamp, status varchar);"
            " insert into main_audit.build_runs values ('b1', '2026-01-05 08:00', 'success');"
            " create table main.base_retail__purchase (disposition_reason varchar,"
            " loaded_at timestamp);"
            f" insert into main.base_retail__purchase values"
            f" ('loaded_at_in_future', '{overrides.get('future_loaded_at', '2026-02-01')}')"
        )
    target = tmp_path / "target"
    target.mkdir()
    (target / "manifest.json").write_text(
        json.dumps({"metadata": {"project_name": "p"}, "nodes": _NODES, "child_map": _CHILD_MAP})
    )
    (target / "run_results.json").write_text(
        json.dumps({"metadata": {"invocation_id": "b1"}, "results": []})
    )
    daily_load.record_build_inputs(working, dbt_vars, daily_load.raw_files(dbt_vars), target)
    return working, dbt_vars


_CHILD_MAP = {daily_load.AS_OF_DATE_NODE: [], daily_load.PURCHASE_SOURCE: []}
_NODES = {
    daily_load.AS_OF_DATE_NODE: {
        "name": "int_as_of_date",
        "resource_type": "model",
        "depends_on": {"nodes": []},
    }
}


def test_a_new_purchase_file_is_planned(tmp_path):
    working, dbt_vars = _recorded(tmp_path)
    new = Path(dbt_vars["raw_input_path"]) / "purchase" / "2026-01-05.csv"
    new.write_text("a\n2\n")
    plan = daily_load.plan_daily_load(working, dbt_vars, NOW)
    assert plan.new_files == [str(new)]
    assert plan.as_of_date == AS_OF_DATE


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("customer_file", "customer_info file .* changed"),
        ("product_file_new", "product file .* is new"),
        ("purchase_file_gone", "purchase file .* is gone"),
        ("vars", "the vars differ"),
        ("later_build", "written by another dbt command"),
        ("future_caught_up", "1 purchase rows were rejected as loaded_at_in_future"),
        ("no_record", "does not record which raw files"),
        ("no_database", "no working database"),
        ("last_failed", "the last build did not pass: 1 nodes failed"),
    ],
)
def test_a_load_that_a_full_build_must_do_is_refused_with_its_reason(tmp_path, change, reason):
    overrides = {"future_loaded_at": "2026-01-05 12:30"} if change == "future_caught_up" else {}
    working, dbt_vars = _recorded(tmp_path, **overrides)
    raw = Path(dbt_vars["raw_input_path"])
    if change == "customer_file":
        (raw / "customer_info" / "customer_info.csv").write_text("a\n1\n2\n")
    elif change == "product_file_new":
        (raw / "product" / "more.csv").write_text("a\n3\n")
    elif change == "purchase_file_gone":
        (raw / "purchase" / "purchase.csv").unlink()
    elif change == "vars":
        dbt_vars = {**dbt_vars, "as_of_date": "2025-12-27"}
    elif change in ("later_build", "no_record"):
        with duckdb.connect(str(working)) as con:
            if change == "later_build":
                con.execute(
                    "insert into main_audit.build_runs values ('b2', '2026-01-05 09:00', 'success')"
                )
            else:
                con.execute(f"drop table {daily_load.INPUTS_TABLE}")
    elif change == "no_database":
        working = tmp_path / "none.duckdb"
    elif change == "last_failed":
        results = {
            "metadata": {"invocation_id": "b1"},
            "results": [{"unique_id": "test.p.unique_orders_order_id", "status": "fail"}],
        }
        with duckdb.connect(str(working)) as con:
            con.execute(
                f"update {daily_load.INPUTS_TABLE} set run_results_json = ?", [json.dumps(results)]
            )
    with pytest.raises(daily_load.FullBuildRequiredError, match=reason):
        daily_load.plan_daily_load(working, dbt_vars, NOW)


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ({"raw_input_format": "seed", "as_of_date": AS_OF_DATE}, "raw_input_format parquet or csv"),
        ({"raw_input_format": "csv", "raw_input_path": "/x"}, "needs a pinned as_of_date"),
    ],
)
def test_a_daily_load_needs_file_input_and_a_pinned_date(dbt_vars, message):
    with pytest.raises(UsageError, match=message):
        daily_load.check_daily_vars(dbt_vars)


def _loaded(
    path: Path,
    touched: tuple[int, ...],
    extra_base: str = "",
    extra_lines: str = "",
    orders: str = "",
) -> Path:
    """A database as a daily load leaves it for the checks: the purchase chain after the
    load (orders 1 and 2 before it, plus the extras) and what the hooks kept before it:
    the touched order ids and their rows of orders 1 and 2."""
    ids = ", ".join(str(order_id) for order_id in touched)
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table order_lines as select * from (values"
            " (1, 1, date '2025-12-01', 10.0), (2, 1, date '2025-12-30', 5.0))"
            " t(order_id, line_number, order_date, net_revenue)"
        )
        con.execute(
            "create table orders as select order_id, 7 as customer_id, 'web' as channel,"
            " timestamp '2025-12-01 10:00' as ordered_at, order_date, true as is_completed,"
            " 'completed' as order_status, 1 as sale_line_count, 0 as cancelled_line_count,"
            " 1 as units_sold, 10.0 as sales_revenue, 0.0 as returned_revenue"
            " from (values (1, date '2025-12-01'), (2, date '2025-12-30')) t(order_id, order_date)"
        )
        con.execute(
            "create schema main_audit;"
            f" create table main_audit.daily_load_orders as select unnest([{ids}]) as order_id;"
            " create table main_audit.daily_load_before_order_lines as select * from order_lines"
            f" where order_id in ({ids});"
            " create table main_audit.daily_load_before_orders as select * from orders"
            f" where order_id in ({ids})"
        )
        con.execute(
            "create table base_retail__purchase as select * from (values"
            " (1, 1, 'clean', null), (2, 1, 'clean', null), (3, 1, 'rejected', '{\"a\": 1}')"
            f" {extra_base}) t(order_id, line_number, row_disposition, raw_values)"
        )
        if extra_lines:
            con.execute(f"insert into order_lines values {extra_lines.lstrip(', ')}")
        if orders:
            con.execute(
                "insert into orders select order_id, 7, 'web', timestamp '2025-12-01 10:00',"
                " order_date, true, 'completed', 1, 0, 1, 10.0, 0.0"
                f" from (values {orders.lstrip(', ')}) t(order_id, order_date)"
            )
    return path


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        ({"touched": (1,), "extra_base": ", (1, 1, 'clean', null)"}, "1 order lines .* before"),
        ({"touched": (4,), "extra_base": ", (4, 1, 'rejected', '{\"a\": 1}')"}, "1 rejected rows"),
        (
            {
                "touched": (5,),
                "extra_base": ", (5, 1, 'clean', null)",
                "extra_lines": ", (5, 1, date '2025-12-19', 1.0)",
            },
            "change 1 order or line rows",
        ),
        (
            {
                "touched": (6,),
                "extra_base": ", (6, 1, 'clean', null)",
                "orders": ", (6, date '2025-12-20')",
            },
            "change 1 order or line rows",
        ),
        # A line dated on or before the date, added to an older order (1).
        (
            {
                "touched": (1,),
                "extra_base": ", (1, 2, 'clean', null)",
                "extra_lines": ", (1, 2, date '2025-12-02', 1.0)",
            },
            "change 1 order or line rows",
        ),
    ],
)
def test_the_checks_after_the_daily_run_refuse_what_a_full_build_would_differ_on(
    tmp_path, after, reason
):
    database = _loaded(tmp_path / "loaded.duckdb", **after)
    with pytest.raises(daily_load.FullBuildRequiredError, match=reason):
        daily_load.check_short_path(database, AS_OF_DATE)
    with duckdb.connect(str(database), read_only=True) as con:
        left = con.execute("select count(*) from duckdb_tables() where schema_name = 'main_audit'")
        assert left.fetchone() == (0,), "the snapshots are dropped"


@pytest.mark.parametrize(("return_date", "passes"), [("2025-12-31", True), ("2025-12-19", False)])
def test_a_refund_of_an_older_order_is_late_only_when_dated_on_or_before_the_date(
    tmp_path, return_date, passes
):
    # A new order after the date, and a return of the older order 1: after the date, only
    # its refunds move, which no customer-level figure reads.
    database = _loaded(
        tmp_path / "loaded.duckdb",
        touched=(1, 8),
        extra_base=", (8, 1, 'clean', null), (1, 2, 'clean', null)",
        extra_lines=f", (8, 1, date '2025-12-31', 3.0), (1, 2, date '{return_date}', -4.0)",
        orders=", (8, date '2025-12-31')",
    )
    with duckdb.connect(str(database)) as con:
        con.execute("update orders set returned_revenue = 4.0 where order_id = 1")
    if passes:
        daily_load.check_short_path(database, AS_OF_DATE)
    else:
        with pytest.raises(daily_load.FullBuildRequiredError, match="1 order or line rows"):
            daily_load.check_short_path(database, AS_OF_DATE)


def test_carried_results_say_where_they_came_from():
    previous = {
        "metadata": {"invocation_id": "full-1"},
        "results": [
            {"unique_id": "model.p.orders", "status": "success", "message": "OK"},
            {"unique_id": "test.p.unique_customers", "status": "pass", "message": None},
        ],
    }
    daily = {
        "metadata": {"invocation_id": "daily-2"},
        "results": [{"unique_id": "model.p.orders", "status": "success", "message": "OK 3"}],
    }
    merged = daily_load.merged_run_results(daily, previous, "f")
    assert merged["metadata"]["invocation_id"] == "daily-2"
    assert [r["unique_id"] for r in merged["results"]] == [
        "model.p.orders",
        "test.p.unique_customers",
    ]
    assert merged["results"][0]["message"] == "OK 3"
    assert merged["results"][1]["message"].startswith("(carried over from dbt invocation full-1")
    assert merged["daily_load"]["carried_results"] == 1


def test_a_bad_list_of_daily_files_stops_dbt_naming_it(tmp_path):
    raw = tmp_path / "raw"
    dbt_vars = {"raw_input_format": "csv", "raw_input_path": str(raw)}
    for files, message in [
        ('"one.csv"', "must be a JSON list of purchase file paths; got '\"one.csv\"'"),
        ("[]", "must be a JSON list of purchase file paths; got '[]'"),
        ('["/elsewhere/purchase/day.csv"]', "'/elsewhere/purchase/day.csv' is not a file under"),
        (f'["{raw}/purchase/day.txt"]', f"'{raw}/purchase/day.txt' is not a csv file"),
    ]:
        # one work folder: dbt parses once, as the variable is not read while it parses
        result = run_dbt(
            ["compile", "--select", "base_retail__purchase"],
            tmp_path / "work",
            dbt_vars,
            env={daily_load.DAILY_FILES_ENV: files},
        )
        assert result.returncode != 0, files
        assert message in result.output, files


def test_raw_files_keep_the_spelling_dbt_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "own" / "purchase" / "2026").mkdir(parents=True)
    (tmp_path / "own" / "purchase" / "2026" / "day.csv").write_text("a\n1\n")
    files = daily_load.raw_files({"raw_input_format": "csv", "raw_input_path": "./own/"})
    assert [(f.table, f.path) for f in files] == [("purchase", "./own/purchase/2026/day.csv")]
    assert daily_load.raw_files({"raw_input_format": "seed"}) == []
