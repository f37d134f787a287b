"""P(alive) of every customer at every cross-sell snapshot, from BG/NBD fitted there.

The take-up model uses P(alive) as a feature; to learn it at an earlier snapshot and
apply it at as_of_date, the feature must be computed the same way, from the history
known at each snapshot. So BG/NBD is fitted once per snapshot (on purchase occasions,
retail_xsell.clv), and P(alive) is 1 for a snapshot where it cannot be fitted (too
little history), as when the CLV models fall back.
"""

import numpy as np

from retail_xsell.arrow import table_from_columns
from retail_xsell.clv import InsufficientDataError, fit_bgnbd, probability_alive

OUTPUT_TYPES = {
    "snapshot_lag": "bigint",
    "customer_id": "bigint",
    "probability_alive": "double",
    "alive_model": "varchar",
}


def _alive(x, t_x, t):
    try:
        fit = fit_bgnbd(x, t_x, t, time_unit="week")
    except InsufficientDataError:
        return np.ones(x.shape), "not_fitted"
    if not fit.converged:
        return np.ones(x.shape), "not_fitted"
    return probability_alive(fit, x, t_x, t), "bgnbd"


def model(dbt, session):
    dbt.config(materialized="table")
    inputs = dbt.ref("int_customers_summarised_by_snapshot")
    columns = inputs.select(
        "snapshot_lag, customer_id, repeat_purchase_count, recency_weeks, age_weeks"
    ).fetchnumpy()
    lags = np.asarray(columns["snapshot_lag"])
    alive = np.ones(lags.shape)
    labels = np.full(lags.shape, "not_fitted", dtype=object)
    for lag in np.unique(lags):
        rows = lags == lag
        alive[rows], labels[rows] = _alive(
            np.asarray(columns["repeat_purchase_count"])[rows],
            np.asarray(columns["recency_weeks"])[rows],
            np.asarray(columns["age_weeks"])[rows],
        )
    return table_from_columns(
        {
            "snapshot_lag": lags,
            "customer_id": columns["customer_id"],
            "probability_alive": alive,
            "alive_model": labels,
        },
        OUTPUT_TYPES,
    )
