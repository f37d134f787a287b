"""Fit the CLV models (BG/NBD, Pareto/NBD, Gamma-Gamma) on every customer's history to as_of_date.

One row: the model run. The work is done by retail_xsell.clv.batch (docs/clv.md); this
model only reads the inputs, the settings (dbt vars clv_*, passed in through the model's
config in int_clv_models_fitted.yml), the holdout scores of both purchase models (which
choose the one used under clv_purchase_model = auto) and the revenue totals, and stores
the run.
"""

from retail_xsell.arrow import table_from_rows
from retail_xsell.clv.batch import RUN_COLUMN_TYPES, ClvSettings, fit_clv_models, holdout_scores

INPUT_COLUMNS = """
    repeat_purchase_count,
    recency_weeks,
    age_weeks,
    coalesce(cast(mean_repeat_purchase_sales_revenue as double), 0) as monetary_value,
    purchase_count
"""
HOLDOUT_COLUMNS = (
    "purchase_model, frequency_group, calibration_log_likelihood, mean_absolute_error,"
    " relative_error"
)


def model(dbt, session):
    dbt.config(materialized="table")
    settings = ClvSettings(
        horizon_months=dbt.config.get("clv_horizon_months"),
        annual_discount_rate=dbt.config.get("clv_annual_discount_rate"),
        on_fit_failure=dbt.config.get("clv_on_fit_failure"),
        purchase_model=dbt.config.get("clv_purchase_model"),
        purchase_grain=dbt.config.get("clv_purchase_grain"),
    )
    holdout = dbt.ref("int_clv_holdout_evaluated").select(HOLDOUT_COLUMNS)
    scores = holdout_scores(
        [dict(zip(holdout.columns, row, strict=True)) for row in holdout.fetchall()]
    )
    inputs = dbt.ref("int_customers_clv_summarised")
    # In customer order: Pareto/NBD is fitted on a sample of rows, which must not depend
    # on the order DuckDB happens to return them in (the same data, the same fit).
    columns = inputs.select(f"customer_id, {INPUT_COLUMNS}").order("customer_id").fetchnumpy()
    as_of_date, end_at = inputs.aggregate("max(as_of_date), max(calibration_end_at)").fetchall()[0]
    # Revenue of the same period, for the share of sales that is not returned.
    sales_revenue = net_revenue = 0.0
    if end_at is not None:
        lines = dbt.ref("int_order_lines_priced").filter(f"ordered_at < timestamp '{end_at}'")
        totals = lines.aggregate(
            "coalesce(sum(case when line_type = 'sale' then net_revenue end), 0)::double,"
            " coalesce(sum(net_revenue), 0)::double"
        ).fetchall()[0]
        sales_revenue, net_revenue = totals
    run = fit_clv_models(
        columns["repeat_purchase_count"],
        columns["recency_weeks"],
        columns["age_weeks"],
        columns["monetary_value"],
        order_count=int(columns["purchase_count"].sum()),
        sales_revenue=sales_revenue,
        net_revenue=net_revenue,
        settings=settings,
        holdout_scores=scores,
    )
    row = run.as_row() | {"as_of_date": as_of_date, "calibration_end_at": end_at}
    types = RUN_COLUMN_TYPES | {"as_of_date": "date", "calibration_end_at": "timestamp"}
    return table_from_rows([row], types)
