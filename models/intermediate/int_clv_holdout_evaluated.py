"""Calibration/holdout check of both purchase models (retail_xsell.clv.batch).

Fits BG/NBD and Pareto/NBD on the history up to 7 x clv_holdout_weeks days before
as_of_date, predicts each customer's repeat purchases in the holdout days and compares
them with what the customers did, per model, per calibration-frequency group and overall.
int_clv_models_fitted chooses the purchase model from these scores.
"""

from retail_xsell.arrow import table_from_rows
from retail_xsell.clv.batch import HOLDOUT_COLUMN_TYPES, ClvSettings, evaluate_holdout

INPUT_COLUMNS = """
    repeat_purchase_count,
    recency_weeks,
    age_weeks,
    holdout_purchase_count
"""


def model(dbt, session):
    dbt.config(materialized="table")
    holdout_weeks = float(dbt.config.get("clv_holdout_weeks"))
    inputs = dbt.ref("int_customers_clv_holdout_summarised")
    # In customer order: Pareto/NBD is fitted on a sample of rows, which must not depend
    # on the order DuckDB happens to return them in (the same data, the same fit).
    columns = inputs.select(f"customer_id, {INPUT_COLUMNS}").order("customer_id").fetchnumpy()
    cutoff_at = inputs.aggregate("max(calibration_end_at)").fetchall()[0][0]
    rows = evaluate_holdout(
        columns["repeat_purchase_count"],
        columns["recency_weeks"],
        columns["age_weeks"],
        columns["holdout_purchase_count"],
        holdout_weeks=holdout_weeks,
        settings=ClvSettings(),
    )
    types = HOLDOUT_COLUMN_TYPES | {"calibration_end_at": "timestamp"}
    return table_from_rows([row | {"calibration_end_at": cutoff_at} for row in rows], types)
