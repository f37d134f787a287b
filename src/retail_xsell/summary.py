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
        max(order_date) as last_order_date
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

LAST_LOAD_SQL = "select max(loaded_at) from main.stg_retail__purchase_lines"

PUBLICATION_SQL = """
    select publication_id, published_at, git_commit
    from main.publications
    order by published_at desc
    limit 1
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


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (found,) = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database()"
        " and schema_name = 'main' and table_name = ?",
        [name],
    ).fetchone()
    return bool(found)


def _steward_lines(working: Path) -> list[str]:
    """Reconciliation and quarantine: the data stewards' material, which stays in the
    working database (a publication never carries it)."""
    with duckdb.connect(str(working), read_only=True) as con:
        try:
            reconciliation = con.sql(RECONCILIATION_SQL).fetchall()
            rejections = con.sql(REJECTIONS_SQL).fetchall()
            (last_load,) = con.execute(LAST_LOAD_SQL).fetchone()
        except duckdb.CatalogException as exc:
            raise NotBuiltError(
                f"{working} has no staging models ({exc}); is it the working database?"
            ) from exc
    lines = [f"For data stewards (working database {working}):", ""]
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
    lines.append(f"Last purchase load: {last_load:%Y-%m-%d %H:%M} UTC.")
    return lines


def render_summary(database: Path, working: Path | None = None) -> str:
    """Return the summary of the product in ``database`` as plain text.

    ``database`` is what consumers read (the publication) or the working database. The
    data stewards' part (reconciliation, quarantine) comes from ``working``, or from
    ``database`` itself when it is the working database; a publication alone does not
    carry it, and the summary says so.
    """
    for path in (database, working):
        if path is not None and not path.exists():
            raise NotBuiltError(
                f"no database at {path}: run `make run` first (it builds, gates and publishes;"
                " `make summary` reads the published copy)"
            )
    with duckdb.connect(str(database), read_only=True) as con:
        try:
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
        publication = (
            con.execute(PUBLICATION_SQL).fetchone() if _has_table(con, "publications") else None
        )
        is_working = _has_table(con, "stg_retail__row_reconciliation")

    lines = [f"Retail cross-sell data product: summary ({database})", ""]
    if publication is not None:
        publication_id, published_at, commit = publication
        lines += [
            f"Publication {publication_id[:8]}, published {published_at:%Y-%m-%d %H:%M} UTC "
            f"from commit {commit}: the output ports only (public marts, time spine).",
            "",
        ]
    if working is not None or is_working:
        lines += _steward_lines(working or database)
    else:
        lines.append(
            "Reconciliation and quarantine are for data stewards and stay in the working "
            "database (retail-xsell summary --working FILE)."
        )
    orders, customers, net_revenue, first_date, last_date = purchases
    lines.append("")
    lines.append(
        f"Orders: {orders:,} completed orders from {customers:,} customers, "
        f"{first_date:%Y-%m-%d} to {last_date:%Y-%m-%d}; net revenue {net_revenue:,.2f}."
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
