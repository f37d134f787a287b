"""The lean reference pipeline: the product's essential work, done as directly as possible.

Issue 12 asks that the full ``dbt build`` take at most 1.5x "the lean essential work
measured in the same run". This module is that yardstick. It reads the same raw input
files the build reads (``<input>/{customer_info,product,purchase}/**/*.parquet``, the
layout of ``scripts/generate_raw_data.py scale`` and of the parquet input port), in one
DuckDB connection, and writes its results as tables of a scratch database:

1. ``purchase_lines`` (temporary): the raw purchase rows cast to typed values (ids,
   quantity, ``decimal(20, 4)`` unit price, ``decimal(9, 4)`` discount, timestamps,
   status), exact copies dropped (``select distinct`` over the eleven raw columns), rows
   unusable under the base model's rules dropped, and of the rest the latest load of
   each (order id, line number) kept, ties to the larger raw values
   (base_retail__purchase's rule); each line's type and net revenue as
   int_order_lines_priced computes them, and its product's category.
2. ``customer_summary``: per customer with a completed order up to as_of_date (the last
   sale date), the CLV inputs at the day grain (purchase occasions, frequency x,
   recency t_x and age T in weeks, mean spend of the repeat occasions), completed order
   count and total net spend, as macros/clv.sql and the customers mart define them.
3. ``category_affinities``: support, confidence and lift of every ordered category pair,
   over order baskets and customer baskets, as the category_affinities mart defines
   them (leverage and conviction are left out: they add no scan).
4. ``cross_sell_offers``: per customer the top 3 categories they have not bought, ranked
   by the best customer-level rule from a category they own (confidence, then lift,
   then the category's name).
5. ``clv_fit``: BG/NBD fitted once on the summary with the project's own fitter
   (retail_xsell.clv.bgnbd, weeks, four starts, seed 0 as the build does), and
   Gamma-Gamma on the repeat buyers' spend, with one BLAS thread (blas_threads.py).

What it deliberately leaves out, so that the ratio to the full build is read honestly:

- quarantine: unusable rows are filtered out, not labelled with a reason, kept with
  their raw values or reconciled (no rejected-rows model, no row reconciliation);
- strict parsing: values are cast with DuckDB's ``try_cast`` alone, not first matched
  against the documented text forms of docs/input_contract.md (the regular expressions
  of macros/parsing.sql), and UTC offsets are not worked out; the generated inputs have
  no value on which the two disagree;
- customers' attributes: of customer_info only the valid customer keys are read (a
  purchase by an unknown customer is dropped, as in the base model); no versions,
  emails, phones, countries, ages, pseudonymisation or PII split;
- the channel, the products' other attributes, order- and order-line marts, RFM;
- Pareto/NBD, the holdout check, the per-customer CLV predictions, the take-up model
  (the offers are ranked by rule strength, not by a calibrated probability), the
  history snapshots and the backtest;
- dbt itself: parsing, data tests, unit tests, contracts, docs, the semantic layer, the
  build record and the gate.

Memory is bounded like the build's DuckDB (RETAIL_XSELL_MEMORY_LIMIT, spilling to
RETAIL_XSELL_TEMP_DIR; see retail_xsell.settings).

Run it alone: ``python -m retail_xsell.lean_reference --input data/generated/1000000``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from retail_xsell import settings
from retail_xsell.blas_threads import limit_blas_threads
from retail_xsell.clv import InsufficientDataError, fit_bgnbd, fit_gamma_gamma
from retail_xsell.clv.batch import TIME_UNIT, spend_frequency
from retail_xsell.generator.schema import PRODUCT_COLUMNS as RAW_PRODUCT_COLUMNS
from retail_xsell.generator.schema import PURCHASE_COLUMNS as RAW_PURCHASE_COLUMNS

#: The raw columns (the input contract, var raw_contract in dbt_project.yml).
PURCHASE_COLUMNS = RAW_PURCHASE_COLUMNS
PRODUCT_COLUMNS = RAW_PRODUCT_COLUMNS
#: The dbt vars' defaults the base model applies (dbt_project.yml).
MAX_QUANTITY = 10_000
ABSURD_PRICE_RATIO = 20
MAX_UNIT_PRICE = 50_000
LOAD_TIME_TOLERANCE = timedelta(hours=1)
TOP_N = 3
#: The tables the pipeline leaves in its database.
RESULT_TABLES = ("customer_summary", "category_affinities", "cross_sell_offers", "clv_fit")


def _reader(input_dir: Path, table: str) -> str:
    path = str(input_dir / table / "**" / "*.parquet").replace("'", "''")
    return f"read_parquet('{path}', union_by_name = true)"


def _listed(template: str, names: tuple[str, ...], indent: int = 8) -> str:
    """``template`` filled in with each name, one per line, comma-separated."""
    return (",\n" + " " * indent).join(template.format(name=name) for name in names)


def purchase_lines_sql(input_dir: Path, started_at: datetime) -> str:
    """Step 1: parse, filter and deduplicate the purchase lines (a temporary table)."""
    latest_load = (started_at.astimezone(UTC) + LOAD_TIME_TOLERANCE).replace(tzinfo=None)
    return f"""
create or replace temp table purchase_lines as
with

raw_products as (
    select distinct
        {_listed("cast({name} as varchar) as {name}", PRODUCT_COLUMNS)}
    from {_reader(input_dir, "product")}
),

parsed_products as (
    select
        try_cast(product_id as bigint) as product_id,
        coalesce(
            lower(nullif(regexp_replace(
                regexp_replace(category, '^\\s+|\\s+$', '', 'g'), '\\s+', ' ', 'g'
            ), '')),
            'uncategorised'
        ) as category,
        try_cast(list_price as decimal(18, 2)) as list_price
    from raw_products
),

products as (
    -- a key sent in two different versions is trusted in neither (no version time)
    select
        product_id,
        any_value(category) as category,
        any_value(list_price) as list_price
    from parsed_products
    where product_id > 0
    group by product_id
    having count(*) = 1
),

customers as (
    select distinct try_cast(customer_id as bigint) as customer_id
    from {_reader(input_dir, "customer_info")}
    where try_cast(customer_id as bigint) > 0
),

raw_lines as (
    select distinct
        {_listed("cast({name} as varchar) as {name}", PURCHASE_COLUMNS)}
    from {_reader(input_dir, "purchase")}
),

parsed as (
    select
        try_cast(order_id as bigint) as order_id,
        try_cast(line_number as bigint) as line_number,
        try_cast(customer_id as bigint) as customer_id,
        try_cast(product_id as bigint) as product_id,
        try_cast(quantity as bigint) as signed_quantity,
        try_cast(unit_price as decimal(20, 4)) as unit_price,
        case
            when nullif(trim(discount), '') is null then cast(0 as decimal(9, 4))
            else try_cast(discount as decimal(9, 4))
        end as discount,
        try_cast(order_at as timestamp) as ordered_at,
        try_cast(loaded_at as timestamp) as loaded_at,
        case lower(trim(status))
            when 'completed' then 'completed'
            when 'complete' then 'completed'
            when 'returned' then 'returned'
            when 'return' then 'returned'
            when 'cancelled' then 'cancelled'
            when 'canceled' then 'cancelled'
        end as status,
        {_listed("{name} as raw_{name}", PURCHASE_COLUMNS)}
    from raw_lines
),

usable as (
    select
        parsed.*,
        products.category
    from parsed
    inner join products on parsed.product_id = products.product_id
    semi join customers on parsed.customer_id = customers.customer_id
    where
        parsed.order_id > 0
        and parsed.line_number > 0
        and parsed.signed_quantity != 0
        and abs(parsed.signed_quantity) <= {MAX_QUANTITY}
        and parsed.unit_price >= 0
        and parsed.discount >= 0
        and parsed.discount < 1
        and parsed.status is not null
        and parsed.ordered_at <= parsed.loaded_at
        and parsed.loaded_at <= timestamp '{latest_load:%Y-%m-%d %H:%M:%S}'
        and parsed.unit_price <= coalesce(
            case when products.list_price > 0 then products.list_price end
            * {ABSURD_PRICE_RATIO},
            {MAX_UNIT_PRICE}
        )
),

latest as (
    -- the latest load of each line wins; on a tie, the larger raw values
    select *
    from usable
    qualify row_number() over (
        partition by order_id, line_number
        order by
            loaded_at desc,
            {_listed("raw_{name} desc", PURCHASE_COLUMNS, indent=12)}
    ) = 1
),

typed as (
    select
        order_id,
        line_number,
        customer_id,
        product_id,
        category,
        case
            when status = 'cancelled' then 'cancellation'
            when status = 'returned' or signed_quantity < 0 then 'return'
            else 'sale'
        end as line_type,
        abs(signed_quantity) as quantity,
        unit_price,
        discount,
        ordered_at,
        cast(ordered_at as date) as order_date
    from latest
)

select
    *,
    cast(
        round(
            case line_type
                when 'sale' then quantity * unit_price * (1 - discount)
                when 'return' then -quantity * unit_price * (1 - discount)
                else 0
            end,
            4
        )
        as decimal(18, 4)
    ) as net_revenue
from typed
"""


CUSTOMER_SUMMARY_SQL = """
create or replace table customer_summary as
with

as_of as (
    select max(order_date) as as_of_date
    from purchase_lines
    where line_type = 'sale'
),

lines as (
    select purchase_lines.*
    from purchase_lines
    cross join as_of
    where purchase_lines.order_date <= as_of.as_of_date
),

completed_orders as (
    -- an order's lines share its customer and time; a completed order has a sale line
    select
        customer_id,
        order_id,
        min(order_date) as order_date,
        min(ordered_at) as ordered_at,
        sum(net_revenue) as sales_revenue
    from lines
    where line_type = 'sale'
    group by customer_id, order_id
),

occasions as (
    select
        customer_id,
        order_date,
        count(*) as order_count,
        sum(sales_revenue) as sales_revenue,
        min(ordered_at) as first_ordered_at,
        min(order_id) as first_order_id
    from completed_orders
    group by customer_id, order_date
),

clv_inputs as (
    select
        occasions.customer_id,
        cast(sum(occasions.order_count) as bigint) as order_count,
        count(*) as purchase_count,
        count(*) - 1 as repeat_purchase_count,
        (max(occasions.order_date) - min(occasions.order_date)) / 7.0 as recency_weeks,
        (any_value(as_of.as_of_date) - min(occasions.order_date)) / 7.0 as age_weeks,
        case
            when count(*) > 1
                then (
                    sum(occasions.sales_revenue)
                    - arg_min(
                        occasions.sales_revenue,
                        (occasions.first_ordered_at, occasions.first_order_id)
                    )
                ) / (count(*) - 1)
        end as mean_repeat_purchase_sales_revenue,
        any_value(as_of.as_of_date) as as_of_date
    from occasions
    cross join as_of
    group by occasions.customer_id
),

spend as (
    select
        customer_id,
        sum(net_revenue) as total_spend
    from lines
    group by customer_id
)

select
    clv_inputs.*,
    cast(spend.total_spend as decimal(18, 4)) as total_spend
from clv_inputs
inner join spend on clv_inputs.customer_id = spend.customer_id
"""


CATEGORY_AFFINITIES_SQL = """
create or replace table category_affinities as
with

basket_items as (
    select distinct
        'order' as basket_level,
        order_id as basket_id,
        category
    from purchase_lines
    where line_type = 'sale' and category != 'uncategorised'

    union all

    select distinct
        'customer' as basket_level,
        customer_id as basket_id,
        category
    from purchase_lines
    where line_type = 'sale' and category != 'uncategorised'
),

basket_counts as (
    select
        basket_level,
        count(distinct basket_id) as basket_count
    from basket_items
    group by basket_level
),

category_counts as (
    select
        basket_level,
        category,
        count(*) as category_basket_count
    from basket_items
    group by basket_level, category
),

pair_counts as (
    select
        antecedent.basket_level,
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        count(*) as pair_basket_count
    from basket_items as antecedent
    inner join basket_items as consequent
        on
            antecedent.basket_level = consequent.basket_level
            and antecedent.basket_id = consequent.basket_id
            and antecedent.category != consequent.category
    group by antecedent.basket_level, antecedent.category, consequent.category
),

all_pairs as (
    select
        antecedent.basket_level,
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        basket_counts.basket_count,
        antecedent.category_basket_count as antecedent_basket_count,
        consequent.category_basket_count as consequent_basket_count,
        coalesce(pair_counts.pair_basket_count, 0) as pair_basket_count
    from category_counts as antecedent
    inner join category_counts as consequent
        on
            antecedent.basket_level = consequent.basket_level
            and antecedent.category != consequent.category
    inner join basket_counts on antecedent.basket_level = basket_counts.basket_level
    left join pair_counts
        on
            antecedent.basket_level = pair_counts.basket_level
            and antecedent.category = pair_counts.antecedent_category
            and consequent.category = pair_counts.consequent_category
)

select
    *,
    cast(pair_basket_count as double) / basket_count as support,  -- noqa: RF04
    cast(pair_basket_count as double) / antecedent_basket_count as confidence,
    cast(pair_basket_count * basket_count as double)
    / (antecedent_basket_count * consequent_basket_count) as lift
from all_pairs
"""


CROSS_SELL_OFFERS_SQL = f"""
create or replace table cross_sell_offers as
with

owned as (
    select distinct
        customer_id,
        category
    from purchase_lines
    where line_type = 'sale' and category != 'uncategorised'
),

rules as (
    select
        antecedent_category,
        consequent_category,
        confidence,
        lift,
        -- the order of strength: highest confidence, then lift, then the name
        {{
            'confidence': -confidence,
            'lift': -lift,
            'antecedent': antecedent_category
        }} as strength_order
    from category_affinities
    where basket_level = 'customer'
),

evidence as (
    -- the strongest rule into each category from any category the customer owns
    select
        owned.customer_id,
        rules.consequent_category as category,
        case
            when max(rules.confidence) > 0
                then arg_min(rules.antecedent_category, rules.strength_order)
        end as evidence_category,
        max(rules.confidence) as evidence_confidence,
        arg_min(rules.lift, rules.strength_order) as evidence_lift
    from owned
    inner join rules on owned.category = rules.antecedent_category
    group by owned.customer_id, rules.consequent_category
),

candidates as (
    select evidence.*
    from evidence
    anti join owned
        on
            evidence.customer_id = owned.customer_id
            and evidence.category = owned.category
)

select
    *,
    row_number() over (
        partition by customer_id
        order by evidence_confidence desc, evidence_lift desc, category asc
    ) as offer_rank
from candidates
qualify offer_rank <= {TOP_N}
"""


@dataclass(frozen=True)
class LeanResult:
    """What one run produced and how long each step took (seconds)."""

    database: str
    purchase_lines: int
    customers: int
    category_pairs: int
    offers: int
    bgnbd: str
    gamma_gamma: str
    step_seconds: dict[str, float]
    total_seconds: float


def connect(database: Path | str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection bounded like the build's (memory limit, spill folder)."""
    connection = duckdb.connect(str(database))
    temp_dir = settings.duckdb_temp_dir()
    temp_dir.mkdir(parents=True, exist_ok=True)
    connection.execute(f"set memory_limit = '{settings.duckdb_memory_limit()}'")
    connection.execute(f"set temp_directory = '{str(temp_dir).replace(chr(39), chr(39) * 2)}'")
    connection.execute("set TimeZone = 'UTC'")
    return connection


def fit_clv(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Step 5: BG/NBD and Gamma-Gamma fitted once on customer_summary, one row per model
    in clv_fit; returns each model's status (converged, not converged, or why it could
    not be fitted: too few customers or repeat buyers, as the fitters decide)."""
    columns = connection.sql(
        "select repeat_purchase_count::double as x, recency_weeks::double as t_x,"
        " age_weeks::double as t,"
        " coalesce(mean_repeat_purchase_sales_revenue::double, 0) as m"
        " from customer_summary order by customer_id"
    ).fetchnumpy()
    x, t_x, t, m = (columns[name] for name in ("x", "t_x", "t", "m"))
    fitters: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {
        "bgnbd": (
            lambda: fit_bgnbd(x, t_x, t, time_unit=TIME_UNIT, n_starts=4, seed=0),
            ("r", "alpha", "a", "b"),
        ),
        "gamma_gamma": (
            lambda: fit_gamma_gamma(spend_frequency(x, m), m, n_starts=4, seed=0),
            ("p", "q", "v"),
        ),
    }
    rows: list[tuple[Any, ...]] = []
    statuses: dict[str, str] = {}
    for name, (fit_model, parameters) in fitters.items():
        try:
            fit = fit_model()
        except InsufficientDataError as error:
            statuses[name] = f"not fitted: {error}"
            rows.append((name, None, None, None, None, None, statuses[name]))
            continue
        statuses[name] = "converged" if fit.converged else f"not converged: {fit.message}"
        params = {parameter: getattr(fit, parameter) for parameter in parameters}
        rows.append((
            name, json.dumps(params), fit.log_likelihood, fit.converged, fit.n_customers,
            fit.fit_seconds, statuses[name],
        ))  # fmt: skip
    connection.execute(
        "create or replace table clv_fit (model varchar, params json, log_likelihood double,"
        " converged boolean, n_customers double, fit_seconds double, status varchar)"
    )
    connection.executemany("insert into clv_fit values (?, ?, ?, ?, ?, ?, ?)", rows)
    return statuses


def run_lean_reference(input_dir: Path, database: Path | str = ":memory:") -> LeanResult:
    """Run the five steps on the raw files under ``input_dir`` into ``database``."""
    limit_blas_threads(1)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    connection = connect(database)

    def step(name: str, work: Callable[[], object]) -> None:
        begun = time.perf_counter()
        work()
        steps[name] = time.perf_counter() - begun

    try:
        now = datetime.now(UTC)
        step("purchase_lines", lambda: connection.execute(purchase_lines_sql(input_dir, now)))
        step("customer_summary", lambda: connection.execute(CUSTOMER_SUMMARY_SQL))
        step("category_affinities", lambda: connection.execute(CATEGORY_AFFINITIES_SQL))
        step("cross_sell_offers", lambda: connection.execute(CROSS_SELL_OFFERS_SQL))
        fits: dict[str, str] = {}
        step("clv_fit", lambda: fits.update(fit_clv(connection)))
        [counts] = connection.sql(
            "select (select count(*) from purchase_lines), (select count(*) from customer_summary),"
            " (select count(*) from category_affinities), (select count(*) from cross_sell_offers)"
        ).fetchall()
        connection.execute("checkpoint")
    finally:
        connection.close()
    return LeanResult(
        database=str(database),
        purchase_lines=int(counts[0]),
        customers=int(counts[1]),
        category_pairs=int(counts[2]),
        offers=int(counts[3]),
        bgnbd=fits["bgnbd"],
        gamma_gamma=fits["gamma_gamma"],
        step_seconds=steps,
        total_seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class Agreement:
    """The lean results against a full build's marts on the same input (the benchmark
    checks every run, so the ratio is between two pipelines that give the same answers).

    customers: rows of the lean customer_summary; customers_differing: those absent from
    the build's customer_value, or with a different completed order count, frequency,
    recency, age, mean repeat spend or total spend (historical_clv). buyers_in_build:
    customer_value rows with a completed order (equal to customers when nobody is missing
    on either side). category_pairs_differing: rows of either category_affinities
    without an equal row (counts, and support, confidence, lift to 1e-12) in the other.
    bgnbd_max_relative_difference: the largest relative difference of r, alpha, a, b
    from clv_model_runs (None when either side has no fit).
    """

    customers: int
    customers_differing: int
    buyers_in_build: int
    category_pairs: int
    category_pairs_differing: int
    bgnbd_max_relative_difference: float | None


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def compare_with_build(lean_database: Path | str, build_database: Path | str) -> Agreement:
    """Compare the tables of a lean run with those of a ``dbt build`` of the same input."""
    connection = duckdb.connect()
    try:
        connection.execute(f"attach {_quoted(lean_database)} as lean (read_only)")
        connection.execute(f"attach {_quoted(build_database)} as build (read_only)")
        [customers] = connection.sql(
            """
            select
                count(*),
                count(*) filter (
                    where
                        built.customer_id is null
                        or built.order_count != lean.order_count
                        or built.repeat_purchase_count != lean.repeat_purchase_count
                        or built.bgnbd_recency_weeks != lean.recency_weeks
                        or built.bgnbd_age_weeks != lean.age_weeks
                        or built.historical_clv != lean.total_spend
                        or built.mean_repeat_order_sales_revenue is distinct from
                            cast(lean.mean_repeat_purchase_sales_revenue as decimal(18, 4))
                ),
                (select count(*) from build.main.customer_value where order_count > 0)
            from lean.main.customer_summary as lean
            left join build.main.customer_value as built
                on lean.customer_id = built.customer_id
            """
        ).fetchall()
        [pairs] = connection.sql(
            """
            select
                count(lean.basket_level),
                count(*) filter (
                    where
                        lean.basket_level is null
                        or built.basket_level is null
                        or lean.basket_count != built.basket_count
                        or lean.antecedent_basket_count != built.antecedent_basket_count
                        or lean.consequent_basket_count != built.consequent_basket_count
                        or lean.pair_basket_count != built.pair_basket_count
                        or abs(lean.support - built.support) > 1e-12
                        or abs(lean.confidence - built.confidence) > 1e-12
                        or abs(lean.lift - built.lift) > 1e-12
                )
            from lean.main.category_affinities as lean
            full join build.main.category_affinities as built
                on
                    lean.basket_level = built.basket_level
                    and lean.antecedent_category = built.antecedent_category
                    and lean.consequent_category = built.consequent_category
            """
        ).fetchall()
        [[lean_params]] = connection.sql(
            "select any_value(params) from lean.main.clv_fit where model = 'bgnbd'"
        ).fetchall()
        built_params = connection.sql(
            "select bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b from build.main.clv_model_runs"
        ).fetchall()
    finally:
        connection.close()
    difference = None
    if lean_params is not None and built_params and None not in built_params[0]:
        lean_values = json.loads(lean_params)
        difference = max(
            abs(lean_values[name] - built) / abs(built)
            for name, built in zip(("r", "alpha", "a", "b"), built_params[0], strict=True)
        )
    return Agreement(
        customers=int(customers[0]),
        customers_differing=int(customers[1]),
        buyers_in_build=int(customers[2]),
        category_pairs=int(pairs[0]),
        category_pairs_differing=int(pairs[1]),
        bgnbd_max_relative_difference=difference,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retail_xsell.lean_reference",
        description=(
            "Run the lean reference pipeline (the product's essential work, no dbt) on raw "
            "Parquet input and print what it produced as JSON."
        ),
    )
    parser.add_argument(
        "--input",
        type=Path,
        required=True,
        help="raw input folder with customer_info/, product/, purchase/ (Parquet)",
    )
    parser.add_argument(
        "--database",
        default=":memory:",
        help="DuckDB file for the result tables (default: in memory, discarded)",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not (args.input / "purchase").is_dir():
        print(f"error: no purchase/ folder under {args.input}", file=sys.stderr)
        return 2
    result = run_lean_reference(args.input, args.database)
    text = json.dumps(asdict(result), indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
