"""A short, human-readable account of what the last `dbt build` produced.

It reads the built database only (read-only), so it is safe to run at any time, and
it says plainly when there is nothing built yet instead of failing with a SQL error.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

RECONCILIATION_SQL = """
    select source_table, raw_row_count, clean_row_count, rejected_row_count,
           exact_duplicate_row_count, superseded_row_count, is_reconciled
    from main.stg_retail__row_reconciliation
    order by source_table
"""

REJECTIONS_SQL = """
    select source_table, rejection_reason, count(*) as row_count
    from main.stg_retail__rejected_rows
    group by all
    order by source_table, row_count desc, rejection_reason
"""

PURCHASES_SQL = """
    select
        count(*) filter (where is_completed) as completed_orders,
        count(distinct customer_id) filter (where is_completed) as buying_customers,
        sum(net_revenue) as net_revenue,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        (select max(loaded_at) from main.stg_retail__purchase_lines) as last_loaded_at
    from main.orders
"""

SEGMENTS_SQL = """
    select rfm_segment, count(*) as customers
    from main.customers
    group by all
    order by customers desc, rfm_segment
"""

VALUE_SQL = """
    select
        any_value(as_of_date) as as_of_date,
        avg(historical_clv) as historical_clv,
        avg(predicted_clv) as predicted_clv,
        avg(clv) as clv,
        avg(probability_alive) as probability_alive,
        avg(cross_sell_opportunity_score) as cross_sell_opportunity_score
    from main.customer_value
"""

RUN_SQL = """
    select
        model_run_id, method, fit_status, fit_message, horizon_months,
        annual_discount_rate, bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b,
        gamma_gamma_p, gamma_gamma_q, gamma_gamma_v
    from main.clv_model_runs
"""

HOLDOUT_SQL = """
    select holdout_weeks, actual_purchases, predicted_purchases, relative_error, fit_status
    from main.clv_holdout_validation
    where frequency_group = 'all'
"""

OFFERS_SQL = """
    select category, count(*) as customers
    from main.cross_sell_opportunities
    where opportunity_rank = 1
    group by all
    order by customers desc, category
"""


class NotBuiltError(RuntimeError):
    """The database or the staging models do not exist yet."""


def render_summary(database: Path) -> str:
    """Return the summary of the build in `database` as plain text."""
    if not database.exists():
        raise NotBuiltError(
            f"no database at {database}: run `make run` first (it builds, gates and publishes;"
            " `make summary` reads the published copy)"
        )
    with duckdb.connect(str(database), read_only=True) as con:
        try:
            reconciliation = con.sql(RECONCILIATION_SQL).fetchall()
            rejections = con.sql(REJECTIONS_SQL).fetchall()
            (purchases,) = con.sql(PURCHASES_SQL).fetchall()
            segments = con.sql(SEGMENTS_SQL).fetchall()
            (value,) = con.sql(VALUE_SQL).fetchall()
            (run,) = con.sql(RUN_SQL).fetchall()
            (holdout,) = con.sql(HOLDOUT_SQL).fetchall()
            offers = con.sql(OFFERS_SQL).fetchall()
        except duckdb.CatalogException as exc:
            raise NotBuiltError(
                f"{database} is missing models ({exc}); run `make run` first"
            ) from exc

    lines = [f"Retail cross-sell data product: build summary ({database})", ""]
    lines.append("Rows per raw table (raw = clean + rejected + duplicates):")
    header = f"  {'raw table':<14}{'raw':>9}{'clean':>9}{'rejected':>10}{'dup':>7}{'old':>7}  ok"
    lines.append(header)
    for table, raw, clean, rejected, exact, superseded, ok in reconciliation:
        lines.append(
            f"  {table:<14}{raw:>9,}{clean:>9,}{rejected:>10,}{exact:>7,}{superseded:>7,}"
            f"  {'yes' if ok else 'NO'}"
        )
    lines.append("")
    lines.append("Rejected rows by reason (quarantined in stg_retail__rejected_rows):")
    if not rejections:
        lines.append("  none")
    for table, reason, count in rejections:
        lines.append(f"  {table:<14}{reason:<28}{count:>7,}")
    orders, customers, net_revenue, first_date, last_date, loaded_at = purchases
    lines.append("")
    lines.append(
        f"Orders: {orders:,} completed orders from {customers:,} customers, "
        f"{first_date:%Y-%m-%d} to {last_date:%Y-%m-%d}; net revenue {net_revenue:,.2f}; "
        f"last load {loaded_at:%Y-%m-%d %H:%M} UTC."
    )
    lines.append(
        "Customers by RFM segment: "
        + ", ".join(f"{segment} {count:,}" for segment, count in segments)
    )
    lines.append("")
    lines.extend(_value_lines(value, run, holdout, offers))
    return "\n".join(lines)


def _value_lines(value, run, holdout, offers) -> list[str]:
    as_of, historical, predicted, clv, alive, score = value
    run_id, method, status, message, months, rate, r, alpha, a, b, p, q, v = run
    lines = [
        f"Customer value as of {as_of:%Y-%m-%d}, average per customer: historical CLV "
        f"{historical:,.2f} + predicted CLV {predicted:,.2f} (next {months:g} months, "
        f"discounted {rate:.0%} a year) = CLV {clv:,.2f}.",
    ]
    if status == "fitted":
        lines.append(
            f"CLV model run {run_id[:8]}: BG/NBD r {r:.3f}, alpha {alpha:.3f} weeks, "
            f"a {a:.3f}, b {b:.3f}; Gamma-Gamma p {p:.3f}, q {q:.3f}, v {v:.2f}; "
            f"average probability alive {alive:.2f}."
        )
    else:
        lines.append(f"CLV model run {run_id[:8]}: {method.upper()} ({message}).")
    weeks, actual, forecast, error, holdout_status = holdout
    if holdout_status == "fitted":
        lines.append(
            f"Holdout check (last {weeks:g} weeks): {forecast:,.0f} orders forecast, "
            f"{actual:,.0f} placed ({error:+.1%})."
        )
    else:
        lines.append(f"Holdout check (last {weeks:g} weeks): not fitted.")
    if score is not None:
        lines.append(
            f"Cross-sell: average opportunity score {score:.1f} of 100; top offer by category: "
            + ", ".join(f"{category} {count:,}" for category, count in offers)
        )
    return lines
