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


class NotBuiltError(RuntimeError):
    """The database or the staging models do not exist yet."""


def render_summary(database: Path) -> str:
    """Return the summary of the build in `database` as plain text."""
    if not database.exists():
        raise NotBuiltError(f"no database at {database}: run `make run` (or `dbt build`) first")
    with duckdb.connect(str(database), read_only=True) as con:
        try:
            reconciliation = con.sql(RECONCILIATION_SQL).fetchall()
            rejections = con.sql(REJECTIONS_SQL).fetchall()
            (purchases,) = con.sql(PURCHASES_SQL).fetchall()
            segments = con.sql(SEGMENTS_SQL).fetchall()
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
    return "\n".join(lines)
