"""The cross-sell take-up model (retail_xsell.crosssell.take_up): a logistic regression
whose fitted probabilities must be right, not merely plausible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retail_xsell.crosssell import fit_take_up


def test_one_binary_feature_reproduces_the_group_rates_worked_by_hand():
    # Group x = 0: 1 take-up in 4 (rate 1/4); group x = 1: 3 in 4 (rate 3/4). The unpenalised
    # maximum-likelihood logistic fit with an intercept reproduces both rates exactly. On
    # the standardised scale (mean 1/2, sd 1/2, so z = -1 / +1) the log-odds are
    # ln(1/3) = b0 - b1 and ln(3) = b0 + b1: b0 = 0, b1 = ln 3 = 1.0986...
    x = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    fit = fit_take_up({"x": x}, y, ["x"], l2=0.0)
    assert fit.status == "fitted" and fit.converged
    assert fit.intercept == pytest.approx(0.0, abs=1e-9)
    assert fit.coefficients[0] == pytest.approx(math.log(3), rel=1e-9)
    assert (fit.centers, fit.scales) == ((0.5,), (0.5,))
    assert fit.predict({"x": np.array([0.0, 1.0])}) == pytest.approx([0.25, 0.75], rel=1e-9)
    # log-likelihood: 2 x (ln 1/4 + 3 ln 3/4)
    assert fit.log_likelihood == pytest.approx(2 * (math.log(0.25) + 3 * math.log(0.75)))


def test_mean_prediction_equals_the_training_rate_even_with_the_ridge():
    # The intercept is not penalised, so its score equation sum(y - p) = 0 holds at the
    # optimum: the fit is calibrated in the large on its own training data.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5_000, 3))
    y = rng.random(5_000) < 1 / (1 + np.exp(-(-2 + x @ [0.8, -0.5, 0.0])))
    columns = {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}
    fit = fit_take_up(columns, y, ["a", "b", "c"], l2=5.0)
    assert fit.predict(columns).mean() == pytest.approx(y.mean(), rel=1e-9)


def test_known_coefficients_are_recovered_from_simulated_data():
    # Data simulated from log-odds = -3 + 1.2 u + 0.6 v - 0.9 w (u, v, w independent,
    # u ~ N(0, 1), v ~ N(2, 0.5^2), w ~ Bernoulli(0.3)): with 200,000 rows the estimates
    # land within a few standard errors (~0.02) of the truth. On the raw scale a
    # coefficient is the standardised one / the feature's scale.
    rng = np.random.default_rng(2024)
    n = 200_000
    u = rng.normal(size=n)
    v = rng.normal(2.0, 0.5, size=n)
    w = (rng.random(n) < 0.3).astype(float)
    eta = -3 + 1.2 * u + 0.6 * v - 0.9 * w
    y = rng.random(n) < 1 / (1 + np.exp(-eta))
    fit = fit_take_up({"u": u, "v": v, "w": w}, y, ["u", "v", "w"])
    raw = np.array(fit.coefficients) / np.array(fit.scales)
    raw_intercept = fit.intercept - float(np.sum(raw * np.array(fit.centers)))
    assert raw == pytest.approx([1.2, 0.6, -0.9], abs=0.06)
    assert raw_intercept == pytest.approx(-3.0, abs=0.15)
    assert fit.converged and fit.iterations < 20


def test_separable_data_give_finite_coefficients_with_the_ridge():
    x = np.arange(10, dtype=float)
    y = x >= 5
    fit = fit_take_up({"x": x}, y, ["x"])
    assert fit.converged
    assert all(math.isfinite(c) for c in (fit.intercept, *fit.coefficients))
    p = fit.predict({"x": x})
    assert (p[5:] > 0.5).all() and (p[:5] < 0.5).all()


@pytest.mark.parametrize(("labels", "expected"), [([0, 0, 0], 0.0), ([1, 1, 1], 1.0)])
def test_one_outcome_only_falls_back_to_the_training_rate(labels, expected):
    fit = fit_take_up({"x": np.array([1.0, 2.0, 3.0])}, labels, ["x"])
    assert fit.status == "fallback" and not fit.converged
    assert "needs both outcomes" in fit.message
    assert fit.predict({"x": np.array([0.0, 10.0])}).tolist() == [expected, expected]


def test_a_constant_feature_gets_no_weight_and_does_not_break_the_fit():
    x = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    fit = fit_take_up({"x": x, "k": np.full(6, 3.0)}, [0, 1, 1, 1, 0, 0], ["x", "k"])
    assert fit.converged and fit.scales[1] == 1.0
    assert fit.coefficients[1] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("columns", "labels", "features", "error", "message"),
    [
        ({"x": [1.0, float("nan")]}, [0, 1], ["x"], ValueError, "finite numbers; not so in x"),
        ({"x": [1.0, 2.0]}, [0, 2], ["x"], ValueError, "only 0/1"),
        ({"x": [1.0, 2.0]}, [0, 1, 1], ["x"], ValueError, "3 values for 2 rows"),
        ({"x": [1.0, 2.0]}, [0, 1], ["x", "popularity"], KeyError, "popularity"),
        ({"x": [1.0, 2.0]}, [0, 1], [], ValueError, "at least one feature"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(columns, labels, features, error, message):
    with pytest.raises(error, match=message):
        fit_take_up(columns, labels, features)


def test_negative_penalty_is_refused():
    with pytest.raises(ValueError, match="l2 must be"):
        fit_take_up({"x": [1.0, 2.0]}, [0, 1], ["x"], l2=-1.0)


def test_pairs_need_support_and_are_capped_best_supported_first(monkeypatch):
    from retail_xsell.crosssell import pairs

    counts = [("a", "b", 30), ("b", "a", 29), ("c", "a", 500), ("a", "c", 31)]
    assert pairs.supported_pairs(counts) == [
        pairs.PairTerm("a", "b"),
        pairs.PairTerm("a", "c"),
        pairs.PairTerm("c", "a"),
    ]
    monkeypatch.setattr(pairs, "MAX_PAIRS", 2)
    assert pairs.supported_pairs(counts) == [pairs.PairTerm("a", "c"), pairs.PairTerm("c", "a")]


def test_pair_indicator_quotes_category_names():
    import duckdb

    from retail_xsell.crosssell import PairTerm, pair_indicator_sql

    sql = pair_indicator_sql(PairTerm("kid's", "o'clock"))
    with duckdb.connect() as con:
        rows = con.execute(
            f"select {sql} from (values (['kid''s'], 'o''clock'), (['kid''s'], 'x'),"
            " (['y'], 'o''clock')) as t(owned_categories, category)"
        ).fetchall()
    assert [r[0] for r in rows] == [1.0, 0.0, 0.0]
