"""A short, human-readable account of what the last `dbt build` produced.

It reads the built database only (read-only), so it is safe to run at any time, and
it says plainly when there is nothing built yet instead of failing with a SQL error.
The headline figures (orders, buyers, revenue, CLV, probability alive, cross-sell
score) are the semantic layer's metrics, asked through
:class:`~retail_xsell.semantic.SemanticLayer`, so the summary can never disagree with
``mf query`` or the API; only what no metric states (dates, the CLV fit, counts per
segment and offer) is read with SQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from retail_xsell.ports import single_row

RECONCILIATION_SQL = """
    select source_table, raw_row_count, clean_row_count, rejected_row_count,
           exact_duplicate_row_count, superseded_row_count, is_reconciled
    from main_audit.row_reconciliation
    order by source_table
"""

REJECTIONS_SQL = """
    select source_table, rejection_reason, count(*) as row_count
    from main.stg_retail__rejected_rows
    group by all
    order by source_table, row_count desc, rejection_reason
"""

#: The headline metrics, in the order the summary reads them.
HEADLINE_METRICS = (
    "order_count",
    "purchasing_customers",
    "total_spend",
    "historical_clv",
    "predicted_clv",
    "clv",
    "probability_alive",
    "cross_sell_opportunity_score",
)

ORDER_DATES_SQL = "select min(order_date), max(order_date) from main.orders"

SEGMENTS_SQL = """
    select rfm_segment, count(*) as customers
    from main.customers
    group by all
    order by customers desc, rfm_segment
"""

AS_OF_SQL = "select any_value(as_of_date) from main.customer_value"

RUN_SQL = """
    select
        model_run_id, method, fit_status, fit_message, horizon_months,
        annual_discount_rate, bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b,
        gamma_gamma_p, gamma_gamma_q, gamma_gamma_v, purchase_model, purchase_grain,
        pareto_nbd_r, pareto_nbd_alpha, pareto_nbd_s, pareto_nbd_beta
    from main.clv_model_runs
"""

HOLDOUT_SQL = """
    select holdout_weeks, actual_purchases, predicted_purchases, relative_error, fit_status
    from main.clv_holdout_validation
    where
        frequency_group = 'all'
        and purchase_model
        = coalesce((select any_value(purchase_model) from main.clv_model_runs), 'bgnbd')
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


def _has_table(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> bool:
    (found,) = single_row(
        con,
        "select count(*) from duckdb_tables() where database_name = current_database()"
        " and schema_name = ? and table_name = ?",
        [schema, name],
    )
    return bool(found)


def headline_metrics(database: Path, target_path: Path | None = None) -> dict[str, Any]:
    """The headline metrics of ``database``, from the semantic layer.

    A publication carries its own semantic manifest; any other database is read with
    the manifest in ``target_path`` (default: the project's target/, where dbt and
    ``mf`` keep it).
    """
    from retail_xsell.semantic import SemanticLayer, SemanticLayerError  # MetricFlow

    try:
        if target_path is None and (database.resolve().parent / "semantic_manifest.json").is_file():
            layer = SemanticLayer.from_publication(database)
        else:
            layer = SemanticLayer.from_project(target_path=target_path, database=database)
        with layer:
            result = layer.query(list(HEADLINE_METRICS))
    except SemanticLayerError as exc:
        raise NotBuiltError(f"the semantic layer cannot answer on {database}: {exc}") from exc
    (row,) = result.to_dicts()
    return row


def _steward_lines(working: Path) -> list[str]:
    """Reconciliation and quarantine: the data stewards' material, which stays in the
    working database (a publication never carries it)."""
    with duckdb.connect(str(working), read_only=True) as con:
        try:
            reconciliation = con.sql(RECONCILIATION_SQL).fetchall()
            rejections = con.sql(REJECTIONS_SQL).fetchall()
            (last_load,) = single_row(con, LAST_LOAD_SQL)
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


def render_summary(
    database: Path, working: Path | None = None, target_path: Path | None = None
) -> str:
    """Return the summary of the product in ``database`` as plain text.

    ``database`` is what consumers read (the publication) or the working database. The
    data stewards' part (reconciliation, quarantine) comes from ``working``, or from
    ``database`` itself when it is the working database; a publication alone does not
    carry it, and the summary says so. ``target_path`` holds the semantic manifest of a
    working database (see :func:`headline_metrics`).
    """
    for path in (database, working):
        if path is not None and not path.exists():
            raise NotBuiltError(
                f"no database at {path}: run `make run` first (it builds, gates and publishes;"
                " `make summary` reads the published copy)"
            )
    with duckdb.connect(str(database), read_only=True) as con:
        try:
            first_date, last_date = single_row(con, ORDER_DATES_SQL)
            segments = con.sql(SEGMENTS_SQL).fetchall()
            (as_of,) = single_row(con, AS_OF_SQL)
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
        is_working = _has_table(con, "row_reconciliation", schema="main_audit")
    # After the connection is closed: the semantic layer opens the file itself.
    metrics = headline_metrics(database, target_path)

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
    lines.append("")
    lines.append(
        f"Orders: {metrics['order_count']:,} completed orders from "
        f"{metrics['purchasing_customers']:,} customers, "
        f"{first_date:%Y-%m-%d} to {last_date:%Y-%m-%d}; "
        f"net revenue {metrics['total_spend']:,.2f}."
    )
    lines.append(
        "Customers by RFM segment: "
        + ", ".join(f"{segment} {count:,}" for segment, count in segments)
    )
    lines.append("")
    lines.extend(_value_lines(as_of, metrics, run, holdout, offers))
    return "\n".join(lines)


def _value_lines(
    as_of: Any,
    metrics: dict[str, Any],
    run: tuple[Any, ...],
    holdout: tuple[Any, ...],
    offers: list[tuple[Any, ...]],
) -> list[str]:
    historical, predicted, clv = (metrics[m] for m in ("historical_clv", "predicted_clv", "clv"))
    alive, score = metrics["probability_alive"], metrics["cross_sell_opportunity_score"]
    run_id, method, status, message, months, rate, r, alpha, a, b, p, q, v = run[:13]
    model, grain, pr, palpha, ps, pbeta = run[13:]
    lines = [
        f"Customer value as of {as_of:%Y-%m-%d}, average per customer: historical CLV "
        f"{historical:,.2f} + predicted CLV {predicted:,.2f} (next {months:g} months, "
        f"discounted {rate:.0%} a year) = CLV {clv:,.2f}.",
    ]
    if status == "fitted":
        purchases = (
            f"Pareto/NBD r {pr:.3f}, alpha {palpha:.3f} weeks, s {ps:.3f}, beta {pbeta:.3f} weeks"
            if model == "pareto_nbd"
            else f"BG/NBD r {r:.3f}, alpha {alpha:.3f} weeks, a {a:.3f}, b {b:.3f}"
        )
        lines.append(
            f"CLV model run {run_id[:8]} (purchases per {grain}): {purchases}; "
            f"Gamma-Gamma p {p:.3f}, q {q:.3f}, v {v:.2f}; "
            f"average probability alive {alive:.2f}."
        )
    else:
        lines.append(f"CLV model run {run_id[:8]}: {method.upper()} ({message}).")
    weeks, actual, forecast, error, holdout_status = holdout
    if holdout_status == "fitted":
        lines.append(
            f"Holdout check (last {weeks:g} weeks): {forecast:,.0f} purchases forecast, "
            f"{actual:,.0f} made ({error:+.1%})."
        )
    else:
        lines.append(f"Holdout check (last {weeks:g} weeks): not fitted.")
    if score is not None:
        lines.append(
            f"Cross-sell: average opportunity score {score:.1f} of 100; top offer by category: "
            + ", ".join(f"{category} {count:,}" for category, count in offers)
        )
    return lines
