"""Apply the take-up fits (int_cross_sell_take_up_fitted) to the candidates they score.

The production fit scores the candidates at as_of_date (snapshot 0), the backtest fit
those at snapshot 1. Each fit is rebuilt from its stored rows (retail_xsell.crosssell):
feature terms name a column of int_cross_sell_candidates, pair terms are recomputed from
the candidate's owned categories, so every probability here follows from numbers a
reader can see in cross_sell_take_up_models.
"""

import numpy as np

from retail_xsell.arrow import table_from_columns
from retail_xsell.crosssell import PairTerm, TakeUpFit, pair_indicator_sql

OUTPUT_TYPES = {
    "snapshot_lag": "bigint",
    "customer_id": "bigint",
    "category": "varchar",
    "fit_name": "varchar",
    "take_up_probability": "double",
}


def _fit(rows):
    """The fit of one set of stored rows, and the SQL select list of its terms."""
    rows = sorted(rows, key=lambda row: row["term_order"])
    intercept, terms = rows[0], rows[1:]
    names, selects = [], []
    for row in terms:
        if row["owned_category"] is None:
            names.append(row["term"])
            selects.append(row["term"])
        else:
            alias = f"pair_{row['term_order']}"
            pair = PairTerm(row["owned_category"], row["offered_category"])
            names.append(alias)
            selects.append(f"{pair_indicator_sql(pair)} as {alias}")
    fit = TakeUpFit(
        features=tuple(names),
        intercept=intercept["coefficient"],
        coefficients=tuple(row["coefficient"] for row in terms),
        centers=tuple(row["center"] for row in terms),
        scales=tuple(row["scale"] for row in terms),
        status=intercept["fit_status"],
        message=intercept["fit_message"],
        n_rows=intercept["training_rows"],
        n_positive=intercept["training_take_ups"],
        log_likelihood=intercept["log_likelihood"],
        converged=intercept["is_converged"],
        iterations=intercept["iterations"],
        l2=intercept["l2_penalty"],
    )
    return fit, selects


def model(dbt, session):
    dbt.config(materialized="table")
    fitted = dbt.ref("int_cross_sell_take_up_fitted")
    names = fitted.columns
    by_fit = {}
    for values in fitted.fetchall():
        row = dict(zip(names, values, strict=True))
        by_fit.setdefault((row["fit_name"], row["apply_snapshot_lag"]), []).append(row)
    candidates = dbt.ref("int_cross_sell_candidates")
    parts = {name: [] for name in OUTPUT_TYPES}
    for (fit_name, apply_lag), rows in sorted(by_fit.items()):
        fit, selects = _fit(rows)
        columns = (
            candidates.filter(f"snapshot_lag = {apply_lag}")
            .select(", ".join(["snapshot_lag", "customer_id", "category", *selects]))
            .fetchnumpy()
        )
        n = len(columns["customer_id"])
        parts["snapshot_lag"].append(np.asarray(columns["snapshot_lag"]))
        parts["customer_id"].append(np.asarray(columns["customer_id"]))
        parts["category"].append(np.asarray(columns["category"], dtype=object))
        parts["fit_name"].append(np.full(n, fit_name, dtype=object))
        parts["take_up_probability"].append(fit.predict(columns) if n else np.empty(0))
    return table_from_columns(
        {name: np.concatenate(arrays) if arrays else [] for name, arrays in parts.items()},
        OUTPUT_TYPES,
    )
