"""Per-customer CLV figures from the stored model run (retail_xsell.clv.batch).

Reads the single row of int_clv_models_fitted, so every figure here comes from exactly
the parameters, horizon and discount rate recorded there (model_run_id).
"""

from retail_xsell.arrow import table_from_columns
from retail_xsell.clv.batch import predict_customer_value

INPUT_COLUMNS = """
    customer_id,
    repeat_purchase_count,
    recency_weeks,
    age_weeks,
    coalesce(cast(mean_repeat_purchase_sales_revenue as double), 0) as monetary_value
"""
OUTPUT_TYPES = {
    "customer_id": "bigint",
    "model_run_id": "varchar",
    "clv_method": "varchar",
    "probability_alive": "double",
    "expected_purchases": "double",
    "expected_spend_per_purchase": "double",
    "predicted_clv": "double",
}


def model(dbt, session):
    dbt.config(materialized="table")
    runs = dbt.ref("int_clv_models_fitted")
    rows = runs.fetchall()
    if len(rows) != 1:
        raise ValueError(f"int_clv_models_fitted must hold exactly one run; found {len(rows)}")
    run = dict(zip(runs.columns, rows[0], strict=True))
    columns = dbt.ref("int_customers_clv_summarised").select(INPUT_COLUMNS).fetchnumpy()
    figures = predict_customer_value(
        run,
        columns["repeat_purchase_count"],
        columns["recency_weeks"],
        columns["age_weeks"],
        columns["monetary_value"],
    )
    n = len(columns["customer_id"])
    return table_from_columns(
        {
            "customer_id": columns["customer_id"],
            "model_run_id": [run["model_run_id"]] * n,
            "clv_method": [run["method"]] * n,
            **figures,
        },
        OUTPUT_TYPES,
    )
