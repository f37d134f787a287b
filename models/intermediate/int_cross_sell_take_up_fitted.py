"""Fit the cross-sell take-up model twice (retail_xsell.crosssell, docs/cross_sell.md).

  production  learns from snapshot 1 (one horizon before as_of_date) what was first bought
              in the horizon after it; applied at as_of_date (snapshot 0) for the offers.
  backtest    learns the same way from snapshot 2; applied at snapshot 1, where the
              following horizon is known, so cross_sell_backtest can judge it.

One row per fit and term: the intercept, each feature_* column of
int_cross_sell_candidates (macros/cross_sell.sql defines them), then one "owns A &
offered B" pair term per well-supported ordered pair of categories
(retail_xsell.crosssell.pairs). Each row holds the coefficient on the
standardised term with the centre and scale that standardise it, so that a fit can be
read and re-applied from these rows alone (int_cross_sell_candidates_scored does, in SQL).
"""

from retail_xsell.arrow import table_from_rows
from retail_xsell.crosssell import (
    MAX_TRAINING_ROWS,
    fit_take_up,
    pair_indicator_sql,
    supported_pairs,
)

FITS = (("production", 1, 0), ("backtest", 2, 1))
#: Hash buckets of the deterministic training sample (see MAX_TRAINING_ROWS).
SAMPLE_BUCKETS = 1_000_000
OUTPUT_TYPES = {
    "fit_name": "varchar",
    "train_snapshot_lag": "bigint",
    "apply_snapshot_lag": "bigint",
    "term": "varchar",
    "term_order": "bigint",
    "owned_category": "varchar",
    "offered_category": "varchar",
    "coefficient": "double",
    "center": "double",
    "scale": "double",
    "fit_status": "varchar",
    "fit_message": "varchar",
    "training_candidates": "bigint",
    "training_rows": "bigint",
    "training_take_ups": "bigint",
    "training_take_up_rate": "double",
    "log_likelihood": "double",
    "is_converged": "boolean",
    "iterations": "bigint",
    "l2_penalty": "double",
}


def _training(candidates, lag):
    """The training candidates of one snapshot, and a deterministic uniform sample of at
    most MAX_TRAINING_ROWS of them."""
    rows = candidates.filter(f"snapshot_lag = {lag}")
    total = rows.aggregate("count(*)").fetchall()[0][0]
    if total <= MAX_TRAINING_ROWS:
        return total, rows
    kept = int(SAMPLE_BUCKETS * MAX_TRAINING_ROWS / total)
    return total, rows.filter(f"hash(customer_id, category) % {SAMPLE_BUCKETS} < {kept}")


def model(dbt, session):
    dbt.config(materialized="table")
    candidates = dbt.ref("int_cross_sell_candidates")
    # What each customer owned at each snapshot (the pair terms need it; the candidates
    # carry only the set's number, so that millions of rows do not each hold a list).
    ownership = dbt.ref("int_customer_category_sets_by_snapshot").select(
        "snapshot_lag, customer_id, owned_categories"
    )
    features = [name for name in candidates.columns if name.startswith("feature_")]
    rows = []
    for fit_name, train_lag, apply_lag in FITS:
        total, training = _training(candidates, train_lag)
        training = training.join(ownership, "snapshot_lag, customer_id")
        counts = training.query(
            "training",
            "select owned, offered, count(*) from (select unnest(owned_categories) as owned,"
            " category as offered from training) as exploded group by owned, offered",
        ).fetchall()
        pairs = supported_pairs(counts)
        aliases = [f"pair_{i}" for i in range(len(pairs))]
        expressions = [
            f"{pair_indicator_sql(p)} as {a}" for p, a in zip(pairs, aliases, strict=True)
        ]
        # In key order, so that the same data give the same fit to the last digit.
        columns = (
            training.select(
                ", ".join(
                    [
                        "customer_id",
                        "category",
                        *features,
                        *expressions,
                        "cast(is_taken_up as integer) as label",
                    ]
                )
            )
            .order("customer_id, category")
            .fetchnumpy()
        )
        fit = fit_take_up(columns, columns["label"], [*features, *aliases])
        common = {
            "fit_name": fit_name,
            "train_snapshot_lag": train_lag,
            "apply_snapshot_lag": apply_lag,
            "fit_status": fit.status,
            "fit_message": fit.message,
            "training_candidates": total,
            "training_rows": fit.n_rows,
            "training_take_ups": fit.n_positive,
            "training_take_up_rate": fit.base_rate,
            "log_likelihood": fit.log_likelihood,
            "is_converged": fit.converged,
            "iterations": fit.iterations,
            "l2_penalty": fit.l2,
        }
        terms = [("intercept", None, None, fit.intercept, 0.0, 1.0)]
        labels = [*features, *pairs]
        for label, coefficient, center, scale in zip(
            labels, fit.coefficients, fit.centers, fit.scales, strict=True
        ):
            if isinstance(label, str):
                terms.append((label, None, None, coefficient, center, scale))
            else:
                terms.append(
                    (label.label, label.owned_category, label.offered_category,
                     coefficient, center, scale)
                )  # fmt: skip
        for order, (term, owned, offered, coefficient, center, scale) in enumerate(terms):
            rows.append(
                common
                | {
                    "term": term,
                    "term_order": order,
                    "owned_category": owned,
                    "offered_category": offered,
                    "coefficient": coefficient,
                    "center": center,
                    "scale": scale,
                }
            )
    return table_from_rows(rows, OUTPUT_TYPES)
