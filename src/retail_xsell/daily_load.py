"""`retail-xsell build --daily`: add new purchase files to the working database.

A full build recomputes every customer for the as_of_date of its data. With as_of_date
pinned (the scheduled refit of docs/daily_loads.md), the purchase lines ordered after it
change no customer-level figure (tests/python/test_point_in_time.py), so a new day of
purchase files only needs the purchase chain: the purchase base appends the files' rows,
and the order lines and orders are recomputed for the orders those rows touch
(macros/daily_loads.sql). Everything downstream of int_as_of_date stays as it was.

The daily load must end where a full build of all the files, with the same vars, would.
It does the short path only when it can show that, and otherwise runs the full build
(``retail-xsell build``), saying why. The short path needs:

- a working database built by ``retail-xsell build`` or a daily load of this project
  version (same manifest fingerprint) with the same vars, which records the raw files it
  read and its dbt results (``main_audit.build_inputs``, ``main_audit.raw_files_loaded``);
- a pinned as_of_date and file input (parquet or csv);
- customer and product files unchanged, and every purchase file already loaded unchanged
  (same size and modification time): only new files are added;
- no row rejected as ``loaded_at_in_future`` that the clock has caught up with;

and after the purchase chain ran, in place on the working database (a copy would take as
long as the load), three checks, on what hooks kept of the touched orders before:

- no (order_id, line_number) of the new files was already loaded (a re-sent line, or an
  exact copy of an earlier row): latest-load-wins ranks them with the earlier load's rows
  by their raw text, which only a full build has;
- no rejected row of the new files repeats an earlier rejected row (a full build would
  call it an exact copy);
- the orders the new files touch look the same on or before as_of_date: the same lines
  dated then, and the same customer, time, status and sales for those orders dated then.
  A late line, or a sale line added to an order cancelled before the date, fails this.

When one fails, or dbt does, the caller builds in full into a fresh file, which
replaces the part-loaded working database (the swap of build.py). Otherwise dbt's
results are merged with the previous build's for the nodes the daily load did not run,
each such result saying where it came from, so that the quality gate judges every test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from retail_xsell import settings
from retail_xsell.commandline import UsageError, shown

#: The raw tables whose files a daily load compares; only purchase files may be new.
RAW_TABLES = ("customer_info", "product", "purchase")
#: The new files of a daily load, a JSON list, for macros/daily_loads.sql. An environment
#: variable, not a dbt var: dbt parses the whole project again when a var changes.
DAILY_FILES_ENV = "RETAIL_XSELL_DAILY_PURCHASE_FILES"
INPUTS_TABLE = "main_audit.build_inputs"
FILES_TABLE = "main_audit.raw_files_loaded"
#: The order columns the customer-level models read (orders.sql has the rest, which
#: returns and net revenue change): a daily load must leave them as they were on or
#: before as_of_date.
CUSTOMER_LEVEL_ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "channel",
    "ordered_at",
    "order_date",
    "is_completed",
    "order_status",
    "sale_line_count",
    "cancelled_line_count",
    "units_sold",
    "sales_revenue",
)


#: Every customer-level figure joins this one-row model for its point in time, and by
#: default it is the date of the last clean sale line: a new day of purchases moves it.
AS_OF_DATE_NODE = "model.retail_xsell.int_as_of_date"
PURCHASE_SOURCE = "source.retail_xsell.retail_raw.purchase"


def downstream(child_map: dict[str, list[str]], start: str) -> set[str]:
    """`start` and every node that depends on it, directly or not."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(child_map.get(node, []))
    return seen


@dataclass(frozen=True)
class RawFile:
    table: str
    path: str
    size_bytes: int
    modified_ns: int


class FullBuildRequiredError(Exception):
    """The daily load cannot show that its short path equals a full build; the message
    says why."""


# --- what a build read, and its fingerprint -------------------------------------------


def parse_vars(dbt_args: Sequence[str]) -> dict[str, Any]:
    """The --vars of dbt arguments, parsed as dbt does (YAML), or {} without any."""
    for index, argument in enumerate(dbt_args):
        if argument == "--vars" and index + 1 < len(dbt_args):
            text = dbt_args[index + 1]
        elif argument.startswith("--vars="):
            text = argument.split("=", 1)[1]
        else:
            continue
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"--vars is not YAML: {exc}") from None
        if not isinstance(parsed, dict):
            raise UsageError(f"--vars must be a mapping of var names to values; got {text!r}")
        return {str(key): value for key, value in parsed.items()}
    return {}


def raw_files(dbt_vars: Mapping[str, Any]) -> list[RawFile]:
    """Every file under each raw table's folder (what the input port reads), with its
    size and modification time; [] for the committed sample (seed input)."""
    if str(dbt_vars.get("raw_input_format", "seed")).lower() == "seed":
        return []
    prefix = str(dbt_vars.get("raw_input_path", "")).rstrip("/")
    found = []
    for table in RAW_TABLES:
        folder = Path(prefix) / table
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                # as dbt is given it: the var's own spelling, then the file's place
                name = f"{prefix}/{table}/{path.relative_to(folder).as_posix()}"
                found.append(RawFile(table, name, stat.st_size, stat.st_mtime_ns))
    return found


def project_fingerprint(manifest: Mapping[str, Any]) -> str:
    """A hash of the project's code as dbt parsed it: every node's file checksum and
    config, every source's and unit test's definition and every macro of the project.
    Two builds with the same fingerprint ran the same SQL and tests."""
    parts = []
    for section in ("nodes", "sources", "unit_tests"):
        for unique_id, node in sorted(manifest.get(section, {}).items()):
            body = {
                "checksum": node.get("checksum"),
                "config": node.get("config"),
                **{k: node.get(k) for k in ("given", "expect", "overrides", "external")},
            }
            parts.append(f"{unique_id}:{json.dumps(body, sort_keys=True, default=str)}")
    project = manifest.get("metadata", {}).get("project_name")
    for unique_id, macro in sorted(manifest.get("macros", {}).items()):
        if macro.get("package_name") == project:
            parts.append(f"{unique_id}:{hashlib.sha256(macro['macro_sql'].encode()).hexdigest()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def record_build_inputs(
    database: Path, dbt_vars: Mapping[str, Any], files: Sequence[RawFile], target: Path
) -> None:
    """Write what a finished build read into its database: the vars (without the daily
    files), the project fingerprint, the nodes a daily load would run, dbt's results and
    the raw files."""
    manifest = json.loads((target / "manifest.json").read_text())
    run_results = (target / "run_results.json").read_text()
    invocation = json.loads(run_results)["metadata"]["invocation_id"]
    with duckdb.connect(str(database)) as con:
        con.execute("create schema if not exists main_audit")
        con.execute(
            f"create or replace table {INPUTS_TABLE} (invocation_id varchar, vars_json varchar,"
            " project_fingerprint varchar, daily_selection_json varchar,"
            " run_results_json varchar)"
        )
        con.execute(
            f"insert into {INPUTS_TABLE} values (?, ?, ?, ?, ?)",
            [
                invocation,
                json.dumps(dict(dbt_vars), sort_keys=True, default=str),
                project_fingerprint(manifest),
                json.dumps(daily_selection(manifest)),
                run_results,
            ],
        )
        con.execute(
            f"create or replace table {FILES_TABLE} (table_name varchar, path varchar,"
            " size_bytes bigint, modified_ns bigint)"
        )
        if files:
            con.executemany(
                f"insert into {FILES_TABLE} values (?, ?, ?, ?)",
                [[f.table, f.path, f.size_bytes, f.modified_ns] for f in files],
            )


# --- before the short path: can it apply? ---------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The short path's inputs: the new purchase files and what the last build left."""

    new_files: list[str]
    #: every raw file as it was when the load was planned: what it will have read
    files: list[RawFile]
    previous_run_results: dict[str, Any]
    as_of_date: str
    fingerprint: str
    selection: list[str]


def _latest_build(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest dbt invocation that wrote the database, if it finished."""
    row = con.execute(
        "select invocation_id, status from main_audit.build_runs order by started_at desc limit 1"
    ).fetchone()
    return None if row is None or row[1] == "running" else str(row[0])


def plan_daily_load(working: Path, dbt_vars: Mapping[str, Any], now: dt.datetime) -> Plan:
    """What the short path adds, or FullBuildRequiredError saying why it cannot be taken."""
    if not working.is_file():
        raise FullBuildRequiredError(f"there is no working database at {shown(working)} yet")
    if settings.wal_path(working).exists():
        raise FullBuildRequiredError(
            f"{shown(working)} has a write-ahead log: its last write did not finish"
        )
    try:
        con = duckdb.connect(str(working), read_only=True)
    except duckdb.Error as exc:
        raise FullBuildRequiredError(f"the working database cannot be read ({exc})") from None
    with con:
        try:
            row = con.execute(
                f"select invocation_id, vars_json, project_fingerprint, daily_selection_json,"
                f" run_results_json from {INPUTS_TABLE}"
            ).fetchone()
            recorded = con.execute(
                f"select table_name, path, size_bytes, modified_ns from {FILES_TABLE}"
            ).fetchall()
        except duckdb.CatalogException:
            row = None
        if row is None:
            raise FullBuildRequiredError(
                "the working database does not record which raw files it read (it was not "
                "built by retail-xsell build of this version)"
            )
        invocation, vars_json, fingerprint, selection_json, run_results_json = row
        previous = json.loads(run_results_json)
        failed = [
            r["unique_id"]
            for r in previous["results"]
            if r["status"] not in ("pass", "success", "no-op", "skipped")
        ]
        if failed:
            raise FullBuildRequiredError(
                f"the last build did not pass: {len(failed)} nodes failed or warned "
                f"({', '.join(sorted(failed)[:3])}); a daily load tests only the new orders"
            )
        if _latest_build(con) != invocation:
            raise FullBuildRequiredError(
                "the working database was written by another dbt command after the build "
                "that recorded its raw files, or that command did not finish"
            )
        previous_vars = json.loads(vars_json)
        if json.loads(json.dumps(dict(dbt_vars), sort_keys=True, default=str)) != previous_vars:
            raise FullBuildRequiredError(
                f"the vars differ from the last build's ({previous_vars} then, "
                f"{dict(dbt_vars)} now)"
            )
        tolerance = float(dbt_vars.get("load_time_tolerance_hours", 1))
        (caught_up,) = con.execute(
            "select count(*) from main.base_retail__purchase"
            " where disposition_reason = 'loaded_at_in_future' and loaded_at <= ?",
            [now.replace(tzinfo=None) + dt.timedelta(hours=tolerance)],
        ).fetchone() or (0,)
        if caught_up:
            raise FullBuildRequiredError(
                f"{caught_up} purchase rows were rejected as loaded_at_in_future and are no "
                "longer in the future"
            )
    before = {(table, path): (size, modified) for table, path, size, modified in recorded}
    files = raw_files(dbt_vars)
    now_files = {(f.table, f.path): (f.size_bytes, f.modified_ns) for f in files}
    for (table, path), stat in sorted(before.items()):
        if now_files.get((table, path)) != stat:
            state = "is gone" if (table, path) not in now_files else "changed"
            raise FullBuildRequiredError(f"{table} file {path} {state} since the last build")
    added = sorted(key for key in now_files if key not in before)
    for table, path in added:
        if table != "purchase":
            raise FullBuildRequiredError(
                f"{table} file {path} is new: customers or products changed"
            )
    return Plan(
        new_files=[path for _, path in added],
        files=files,
        previous_run_results=previous,
        as_of_date=str(dbt_vars["as_of_date"]),
        fingerprint=str(fingerprint),
        selection=list(json.loads(selection_json)),
    )


# --- the short path --------------------------------------------------------------------


def daily_selection(manifest: Mapping[str, Any]) -> list[str]:
    """The dbt nodes a daily load runs, by name: the models downstream of the purchase
    input and not of int_as_of_date, int_as_of_date itself (its last sale date moves),
    and the data tests that read those models and nothing customer-level. Unit tests
    check the SQL on fixed rows; the code is the last build's (the fingerprint), so
    their results carry over, as do those of everything customer-level."""
    child_map = manifest["child_map"]
    nodes = manifest["nodes"]
    customer_level = downstream(child_map, AS_OF_DATE_NODE) - {AS_OF_DATE_NODE}
    models = {
        node
        for node in downstream(child_map, PURCHASE_SOURCE) - customer_level
        if node.startswith("model.")
    } | {AS_OF_DATE_NODE}
    tests = {
        unique_id
        for unique_id, node in nodes.items()
        if node["resource_type"] == "test"
        and set(node["depends_on"]["nodes"]) & models
        and not set(node["depends_on"]["nodes"]) & customer_level
    }
    return sorted(nodes[node]["name"] for node in models | tests)


#: What the daily load's hooks keep before the purchase chain changes
#: (macros/daily_loads.sql, daily_load_snapshot_hook): the touched orders, and their
#: rows in order_lines and orders as they were.
SNAPSHOT_TABLES = (
    "main_audit.daily_load_orders",
    "main_audit.daily_load_before_order_lines",
    "main_audit.daily_load_before_orders",
)


def check_short_path(database: Path, as_of_date: str) -> None:
    """Raise FullBuildRequiredError when the daily load just run on ``database`` may have
    a result that differs from a full build's; drop the hooks' snapshots either way."""
    with duckdb.connect(str(database)) as con:
        try:
            _check_short_path(con, as_of_date)
        finally:
            for table in SNAPSHOT_TABLES:
                con.execute(f"drop table if exists {table}")


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(f"select count(*) from ({query})").fetchone()
    return int(row[0]) if row else 0


def _check_short_path(con: duckdb.DuckDBPyConnection, as_of_date: str) -> None:
    touched = "select order_id from main_audit.daily_load_orders"
    resent = _count(
        con,
        "select order_id, line_number from main.base_retail__purchase"
        f" where row_disposition = 'clean' and order_id in ({touched})"
        " group by all having count(*) > 1",
    )
    if resent:
        raise FullBuildRequiredError(
            f"{resent} order lines of the new files were loaded before (re-sent lines)"
        )
    copies = _count(
        con,
        "select raw_values from main.base_retail__purchase where row_disposition = 'rejected'"
        " group by raw_values having count(*) > 1",
    )
    if copies:
        raise FullBuildRequiredError(f"{copies} rejected rows of the new files came before")
    columns = ", ".join(CUSTOMER_LEVEL_ORDER_COLUMNS)
    on_or_before = f"order_date <= date '{as_of_date}'"
    changed = 0
    for table, select in (("order_lines", "*"), ("orders", columns)):
        before = f"select {select} from main_audit.daily_load_before_{table} where {on_or_before}"
        after = (
            f"select {select} from main.{table} where order_id in ({touched}) and {on_or_before}"
        )
        changed += _count(
            con, f"({after} except all {before}) union all ({before} except all {after})"
        )
    if changed:
        raise FullBuildRequiredError(
            f"the new files change {changed} order or line rows dated on or before "
            f"as_of_date {as_of_date} (late lines)"
        )


def merged_run_results(
    daily: dict[str, Any], previous: Mapping[str, Any], fingerprint: str
) -> dict[str, Any]:
    """dbt's results of the daily load, plus the previous build's for every node it did
    not run, marked as carried over: the gate judges every test of the database."""
    ran = {result["unique_id"] for result in daily["results"]}
    previous_id = previous["metadata"]["invocation_id"]
    carried = []
    for result in previous["results"]:
        if result["unique_id"] in ran:
            continue
        message = result.get("message") or ""
        carried.append(
            {
                **result,
                "message": f"{message} (carried over from dbt invocation {previous_id}: a "
                "daily load left its inputs unchanged)".strip(),
            }
        )
    return {
        **daily,
        "results": [*daily["results"], *carried],
        "daily_load": {
            "carried_from_invocation": previous_id,
            "carried_results": len(carried),
            "project_fingerprint": fingerprint,
        },
    }


# --- the command ---------------------------------------------------------------------


def target_path(dbt_args: Sequence[str]) -> Path:
    """dbt's target folder for these arguments: --target-path, else the project's."""
    for index, argument in enumerate(dbt_args):
        if argument == "--target-path" and index + 1 < len(dbt_args):
            return Path(dbt_args[index + 1])
        if argument.startswith("--target-path="):
            return Path(argument.split("=", 1)[1])
    return Path(os.environ.get("DBT_TARGET_PATH") or settings.target_path())


def check_daily_vars(dbt_vars: Mapping[str, Any]) -> None:
    """A daily load needs file input and a pinned as_of_date."""
    if str(dbt_vars.get("raw_input_format", "seed")).lower() not in ("parquet", "csv"):
        raise UsageError(
            "retail-xsell build --daily adds new files: pass --vars with raw_input_format "
            "parquet or csv and raw_input_path (the committed sample is loaded whole)"
        )
    if not str(dbt_vars.get("as_of_date") or "").strip():
        raise UsageError(
            "retail-xsell build --daily needs a pinned as_of_date in --vars (YYYY-MM-DD): "
            "with the default, as_of_date moves with every new day and every customer "
            "figure with it, which only a full build recomputes (docs/daily_loads.md)"
        )


def run_daily_load(
    working: Path, dbt: str, dbt_args: Sequence[str], now: dt.datetime | None = None
) -> tuple[int, str]:
    """The short path of a daily load onto ``working``: dbt's exit code and what it did.
    Raises FullBuildRequiredError when it cannot apply: before dbt runs, with the working
    database unchanged; after, with it part-loaded, for the caller's full build to
    replace."""
    working = working.absolute()
    dbt_vars = parse_vars(dbt_args)
    check_daily_vars(dbt_vars)
    target = target_path(dbt_args)
    plan = plan_daily_load(working, dbt_vars, now or dt.datetime.now(dt.UTC))
    if not plan.new_files:
        return 0, "no new purchase files; the working database is up to date"
    seconds: dict[str, float] = {}
    command = [
        dbt,
        "build",
        *dbt_args,
        "--indirect-selection",
        "empty",
        "--select",
        *plan.selection,
    ]
    # In place: a copy of the working database would take as long as the load itself
    # (8.6 s of 27 s at 10M lines). Whatever goes wrong after dbt starts, the caller
    # builds in full into a fresh file (FullBuildRequiredError), and an interrupted load
    # leaves its build record `running`, which the gate and the next load refuse. Under
    # the name a full build writes (<working>.building): dbt's profile then reads as the
    # last build's, and dbt parses only the files that the new files' list changes.
    building = settings.building_path(working)
    for path in (building, settings.wal_path(building)):
        path.unlink(missing_ok=True)
    env = {
        **os.environ,
        settings.DATABASE_ENV: str(building),
        DAILY_FILES_ENV: json.dumps(plan.new_files),
    }
    os.replace(working, building)
    try:
        started = time.perf_counter()
        returncode = subprocess.run(command, env=env, check=False).returncode
        seconds["dbt"] = time.perf_counter() - started
        if returncode not in (0, 1) or settings.wal_path(building).exists():
            raise FullBuildRequiredError(f"dbt exited with {returncode} during the daily load")
        started = time.perf_counter()
        manifest = json.loads((target / "manifest.json").read_text())
        if project_fingerprint(manifest) != plan.fingerprint:
            raise FullBuildRequiredError("the project's code changed since the last build")
        check_short_path(building, plan.as_of_date)
        seconds["checks"] = time.perf_counter() - started
        started = time.perf_counter()
        daily_results = json.loads((target / "run_results.json").read_text())
        merged = merged_run_results(daily_results, plan.previous_run_results, plan.fingerprint)
        (target / "run_results.json").write_text(json.dumps(merged))
        record_build_inputs(building, dbt_vars, plan.files, target)
        seconds["record"] = time.perf_counter() - started
    finally:
        # back under its own name, whatever happened (with its log, if dbt left one)
        os.replace(building, working)
        if settings.wal_path(building).exists():
            os.replace(settings.wal_path(building), settings.wal_path(working))
    timings = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
    return returncode, (
        f"added {len(plan.new_files)} purchase file(s) to {shown(working)}; customer-level "
        f"figures stay as of {plan.as_of_date} ({timings})"
    )


# --- checking a daily load against a full build ----------------------------------------

#: Columns that describe the run, not the data: a new id and time every build.
RUN_COLUMNS = {"model_run_id", "clv_model_run_id", "fitted_at"}


def table_differences(
    built: Path, reference: Path, tables: set[str] | None = None, schema: str = "main"
) -> tuple[list[str], list[str]]:
    """Tables of `schema` whose rows differ between two builds, run columns and
    timings aside, as "table: n rows"; and the tables compared (`tables`, or every
    table of the reference). Rows are compared as multisets, so order does not count."""
    problems = []
    with duckdb.connect() as con:
        con.execute(f"attach '{built}' as built (read_only)")
        con.execute(f"attach '{reference}' as reference (read_only)")
        columns: dict[str, list[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns"
            " where table_catalog = 'reference' and table_schema = ?"
            " order by table_name, ordinal_position",
            [schema],
        ).fetchall():
            if tables is not None and table not in tables:
                continue
            if column not in RUN_COLUMNS and not column.endswith("fit_seconds"):
                columns.setdefault(table, []).append(f'"{column}"')
        for table, names in columns.items():
            select = ", ".join(names)
            row = con.execute(
                f"select count(*) from ("
                f"(select {select} from built.{schema}.{table}"
                f" except all select {select} from reference.{schema}.{table})"
                f" union all (select {select} from reference.{schema}.{table}"
                f" except all select {select} from built.{schema}.{table}))"
            ).fetchone()
            differing = row[0] if row else 0
            if differing:
                problems.append(f"{table}: {differing} rows")
    return problems, sorted(columns)
