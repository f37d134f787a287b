"""Tests of retail_xsell.clv.batch: the fit, the per-customer figures and the holdout check
that the dbt Python models run, checked against the papers' formulas (clv_reference.py)
and numbers worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clv_reference import (
    reference_expected,
    reference_expected_spend,
    reference_probability_alive,
    simulate_bgnbd,
)
from retail_xsell.arrow import table_from_columns, table_from_rows
from retail_xsell.clv import BgNbdParams
from retail_xsell.clv.batch import (
    HOLDOUT_COLUMN_TYPES,
    METHOD_FALLBACK,
    METHOD_MODEL,
    METHOD_PARETO,
    RUN_COLUMN_TYPES,
    ClvFitError,
    ClvSettings,
    HoldoutScore,
    choose_purchase_model,
    evaluate_holdout,
    fit_clv_models,
    holdout_scores,
    predict_customer_value,
)

CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, time_unit="week")
WEEKS_PER_YEAR = 365.25 / 7  # 52.178571... weeks in a year of 365.25 days


@pytest.fixture(scope="module")
def simulated():
    """8,000 BG/NBD customers (CDNOW parameters), T ~ U(26, 104) weeks, 26 weeks of future,
    and Gamma-Gamma spends (p = 6, q = 4, v = 15) for the repeat buyers."""
    rng = np.random.default_rng(7)
    n = 8_000
    t = rng.uniform(26, 104, n)
    x, t_x, future = simulate_bgnbd(rng, n, CDNOW, t, horizon=26.0)
    # whole days, as the build counts them (and what lets the fits group customers)
    t, t_x = np.floor(t * 7) / 7, np.floor(t_x * 7) / 7
    nu = rng.gamma(4.0, 1 / 15.0, n)
    # The mean of x Gamma(p, rate nu) spends is Gamma(p x, rate nu x).
    m = np.where(x > 0, rng.gamma(6.0 * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), np.nan)
    return x, t_x, t, m, future


def _fit(data, **settings):
    x, t_x, t, m, _ = data
    return fit_clv_models(
        x,
        t_x,
        t,
        m,
        order_count=int((x + 1).sum()),
        sales_revenue=1000.0,
        net_revenue=900.0,
        settings=ClvSettings(**settings),
    )


@pytest.fixture(scope="module")
def fitted(simulated):
    return _fit(simulated)


def test_run_records_settings_and_fit(simulated, fitted):
    run = fitted
    row = run.as_row()
    assert list(row) == list(RUN_COLUMN_TYPES)
    assert run.method == METHOD_MODEL and run.fit_status == "fitted"
    assert run.time_unit == "week"
    assert run.horizon_weeks == pytest.approx(WEEKS_PER_YEAR, rel=1e-12)  # 12 months
    assert run.annual_discount_rate == 0.1
    assert run.revenue_retention_rate == pytest.approx(0.9, rel=1e-12)  # 900 / 1000
    assert run.customer_count == 8_000
    assert run.repeat_customer_count == int((simulated[0] > 0).sum())
    assert run.gamma_gamma_customer_count == run.repeat_customer_count
    assert run.bgnbd_converged and run.gamma_gamma_converged and run.pareto_nbd_converged
    assert np.isfinite(run.pareto_nbd_log_likelihood) and run.pareto_nbd_fit_seconds > 0
    # no holdout scores given: auto keeps BG/NBD and says why
    assert (run.purchase_model, run.purchase_grain) == ("bgnbd", "day")
    assert run.purchase_model_rule.startswith("auto: BG/NBD")
    assert np.isfinite(run.bgnbd_log_likelihood) and run.bgnbd_log_likelihood < 0
    assert run.fallback_purchases_per_week is None
    assert len(run.model_run_id) == 32 and run.fit_seconds > 0


def test_predictions_match_the_papers_formulas(simulated, fitted):
    """P(alive) (eq. 11), E[Y] (eq. 10) x E[spend] x retention, undiscounted and discounted
    monthly, for customers across the range of x, from the stored run's parameters."""
    x, t_x, t, m, _ = simulated
    run = fitted.as_row()
    par = BgNbdParams(run["bgnbd_r"], run["bgnbd_alpha"], run["bgnbd_a"], run["bgnbd_b"])
    gg = (run["gamma_gamma_p"], run["gamma_gamma_q"], run["gamma_gamma_v"])
    picks = [int(np.flatnonzero(x == k)[0]) for k in (0, 1, 2, 5)] + [int(np.argmax(x))]
    undiscounted = predict_customer_value(run | {"annual_discount_rate": 0.0}, x, t_x, t, m)
    discounted = predict_customer_value(run, x, t_x, t, m)
    horizon = WEEKS_PER_YEAR
    month = horizon / 12
    for i in picks:
        xi, mi = float(x[i]), (float(m[i]) if x[i] > 0 else 0.0)
        alive = reference_probability_alive(par, xi, t_x[i], t[i])
        spend = reference_expected_spend(*gg, xi, mi)
        purchases = reference_expected(par, xi, t_x[i], t[i], horizon)
        assert discounted["probability_alive"][i] == pytest.approx(alive, rel=1e-9)
        assert discounted["expected_purchases"][i] == pytest.approx(purchases, rel=1e-9)
        assert discounted["expected_spend_per_purchase"][i] == pytest.approx(spend, rel=1e-9)
        assert undiscounted["predicted_clv"][i] == pytest.approx(0.9 * purchases * spend, rel=1e-9)
        cumulative = [reference_expected(par, xi, t_x[i], t[i], k * month) for k in range(13)]
        want = sum((cumulative[k] - cumulative[k - 1]) * 1.1 ** (-k / 12) for k in range(1, 13))
        assert discounted["predicted_clv"][i] == pytest.approx(0.9 * spend * want, rel=1e-9)


TINY = {  # five customers: too few for the models (they need 20)
    "x": [0, 1, 2, 0, 3],
    "t_x": [0.0, 2.0, 5.0, 0.0, 9.0],
    "t": [10.0, 10.0, 20.0, 4.0, 12.0],
    "m": [float("nan"), 20.0, 30.0, float("nan"), 40.0],
}


def _fit_tiny(**settings):
    return fit_clv_models(
        TINY["x"],
        TINY["t_x"],
        TINY["t"],
        TINY["m"],
        order_count=11,
        sales_revenue=550.0,
        net_revenue=495.0,
        settings=ClvSettings(**settings),
    )


def test_fallback_uses_population_averages_worked_by_hand():
    run = _fit_tiny()
    assert run.method == METHOD_FALLBACK and run.fit_status == "fallback"
    assert "5 customers" in run.fit_message and "at least 20" in run.fit_message
    assert run.bgnbd_r is None and run.gamma_gamma_p is None
    # 6 repeat orders over 56 customer-weeks; 550 of sales over 11 orders.
    assert run.fallback_purchases_per_week == pytest.approx(6 / 56, rel=1e-12)
    assert run.fallback_spend_per_order == pytest.approx(50.0, rel=1e-12)
    row = run.as_row()
    flat = predict_customer_value(row | {"annual_discount_rate": 0.0}, *TINY.values())
    purchases = 6 / 56 * WEEKS_PER_YEAR  # 5.5906... in a year, for everyone
    assert np.allclose(flat["expected_purchases"], purchases, rtol=1e-12)
    assert np.all(np.isnan(flat["probability_alive"]))
    assert np.allclose(flat["predicted_clv"], 0.9 * 50 * purchases, rtol=1e-12)
    # Discounted: the same purchases each month, month k discounted by 1.1^(-k/12).
    discounted = predict_customer_value(row, *TINY.values())
    factor = sum(1.1 ** (-k / 12) for k in range(1, 13)) / 12
    assert np.allclose(discounted["predicted_clv"], 0.9 * 50 * purchases * factor, rtol=1e-12)


def test_fit_failure_can_stop_the_build():
    with pytest.raises(ClvFitError, match=r"5 customers.*clv_on_fit_failure: fallback"):
        _fit_tiny(on_fit_failure="error")


def test_no_repeat_buyer_falls_back_with_the_reason():
    n = 30
    run = fit_clv_models(
        np.zeros(n),
        np.zeros(n),
        np.linspace(1, 30, n),
        np.full(n, np.nan),
        order_count=n,
        sales_revenue=3000.0,
        net_revenue=3000.0,
        settings=ClvSettings(),
    )
    assert run.method == METHOD_FALLBACK
    assert "repeat buyer" in run.fit_message
    assert run.fallback_purchases_per_week == 0.0
    values = predict_customer_value(run.as_row(), np.zeros(n), np.zeros(n), np.ones(n), np.ones(n))
    assert np.all(values["predicted_clv"] == 0.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"horizon_months": 0}, "clv_horizon_months must be > 0"),
        ({"horizon_months": "twelve"}, "clv_horizon_months must be a number"),
        ({"annual_discount_rate": 1.5}, r"clv_annual_discount_rate must be a yearly rate"),
        ({"annual_discount_rate": -0.1}, r"clv_annual_discount_rate must be a yearly rate"),
        ({"annual_discount_rate": float("inf")}, "must be finite"),
        ({"on_fit_failure": "ignore"}, "clv_on_fit_failure must be one of fallback, error"),
    ],
)
def test_settings_are_validated(settings, message):
    with pytest.raises(ValueError, match=message):
        ClvSettings(**settings)


def test_settings_accept_dbt_var_strings():
    """dbt passes vars to Python models as rendered strings."""
    settings = ClvSettings(horizon_months="6", annual_discount_rate="0.05")
    assert settings.horizon_months == 6.0
    assert settings.horizon_weeks == pytest.approx(WEEKS_PER_YEAR / 2, rel=1e-12)


def test_returns_cannot_exceed_sales():
    with pytest.raises(ValueError, match="returns only ever reduce revenue"):
        fit_clv_models(
            *TINY.values(),
            order_count=11,
            sales_revenue=100.0,
            net_revenue=150.0,
            settings=ClvSettings(),
        )


def test_holdout_forecast_matches_simulated_future(simulated):
    """Fitted on the calibration weeks, the forecast of the next 26 weeks is within 5% of
    what the simulated customers did (the sum's sampling sd is about 2%)."""
    x, t_x, t, _, future = simulated
    rows = evaluate_holdout(x, t_x, t, future, holdout_weeks=26, settings=ClvSettings())
    assert list(rows[0]) == list(HOLDOUT_COLUMN_TYPES)
    assert {row["purchase_model"] for row in rows} == {"bgnbd", "pareto_nbd"}
    by_group = {row["frequency_group"]: row for row in rows if row["purchase_model"] == "bgnbd"}
    assert list(by_group) == [f"x = {k}" for k in range(7)] + ["x >= 7", "all"]
    everyone = by_group.pop("all")
    assert everyone["customer_count"] == 8_000
    assert everyone["actual_purchases"] == future.sum()
    assert abs(everyone["relative_error"]) < 0.05
    assert sum(row["customer_count"] for row in by_group.values()) == 8_000
    assert sum(row["predicted_purchases"] for row in by_group.values()) == pytest.approx(
        everyone["predicted_purchases"], rel=1e-12
    )
    assert by_group["x >= 7"]["customer_count"] == int((x >= 7).sum())
    zero = by_group["x = 0"]
    assert zero["actual_purchases_per_customer"] == pytest.approx(future[x == 0].mean(), rel=1e-12)
    assert zero["error"] == pytest.approx(
        zero["predicted_purchases"] - zero["actual_purchases"], rel=1e-12
    )


def test_holdout_without_enough_data_reports_instead_of_failing():
    rows = evaluate_holdout(
        TINY["x"], TINY["t_x"], TINY["t"], [0, 1, 0, 0, 2], holdout_weeks=4, settings=ClvSettings()
    )
    assert {row["fit_status"] for row in rows} == {"not_fitted"}
    assert all(row["predicted_purchases"] is None for row in rows)
    assert rows[-1]["actual_purchases"] == 3.0
    with pytest.raises(ValueError, match="clv_holdout_weeks must be > 0"):
        evaluate_holdout([1], [1.0], [2.0], [0], holdout_weeks=0, settings=ClvSettings())


def test_arrow_tables_keep_declared_types():
    run = _fit_tiny().as_row()
    table = table_from_rows([run], RUN_COLUMN_TYPES)
    assert str(table.schema.field("bgnbd_r").type) == "double"  # all null, still double
    assert table.column("bgnbd_r").null_count == 1
    columns = table_from_columns({"v": np.array([1.0, np.nan])}, {"v": "double"})
    assert columns.column("v").to_pylist() == [1.0, None]
    with pytest.raises(ValueError, match="differ from the declared columns"):
        table_from_rows([{"a": 1}], {"b": "bigint"})
    with pytest.raises(ValueError, match="no Arrow type"):
        table_from_columns({"a": [1]}, {"a": "hugeint"})
    assert math.isclose(table.column("revenue_retention_rate")[0].as_py(), 0.9)


def test_a_build_without_customers_falls_back_and_reports():
    run = fit_clv_models(
        [], [], [], [], order_count=0, sales_revenue=0.0, net_revenue=0.0, settings=ClvSettings()
    )
    assert run.method == METHOD_FALLBACK and "no customer has a completed order" in run.fit_message
    assert run.customer_count == 0 and run.revenue_retention_rate == 1.0
    values = predict_customer_value(run.as_row(), [], [], [], [])
    assert all(len(column) == 0 for column in values.values())
    rows = evaluate_holdout([], [], [], [], holdout_weeks=26, settings=ClvSettings())
    assert rows[-1]["frequency_group"] == "all" and rows[-1]["customer_count"] == 0
    assert rows[-1]["fit_status"] == "not_fitted" and rows[-1]["relative_error"] is None
    with pytest.raises(ValueError, match="one value per customer"):
        evaluate_holdout(
            [1, 2], [1.0, 1.0], [2.0, 2.0], [0], holdout_weeks=4, settings=ClvSettings()
        )


def _score(mae: float | None) -> HoldoutScore:
    return HoldoutScore(log_likelihood=-1.0, mean_absolute_error=mae, relative_error=0.0)


def test_auto_chooses_the_lower_holdout_error_and_a_tie_goes_to_bgnbd():
    """The documented rule on hand-made scores: lower per-customer MAE wins; equal MAE, a
    model without a score, or no scores at all -> BG/NBD; a forced setting always wins."""
    lower_pareto = {"bgnbd": _score(0.84), "pareto_nbd": _score(0.80)}
    assert choose_purchase_model("auto", lower_pareto)[0] == "pareto_nbd"
    assert choose_purchase_model("auto", {"bgnbd": _score(0.80), "pareto_nbd": _score(0.84)})[
        0
    ] == ("bgnbd")
    assert choose_purchase_model("auto", {"bgnbd": _score(0.8), "pareto_nbd": _score(0.8)})[0] == (
        "bgnbd"
    )
    assert choose_purchase_model("auto", {"pareto_nbd": _score(0.9)})[0] == "pareto_nbd"
    assert choose_purchase_model("auto", {"bgnbd": _score(0.9), "pareto_nbd": _score(None)})[0] == (
        "bgnbd"
    )
    assert choose_purchase_model("auto", {})[0] == "bgnbd"
    model, rule = choose_purchase_model("bgnbd", lower_pareto)
    assert (model, rule) == ("bgnbd", "forced by clv_purchase_model = bgnbd")
    with pytest.raises(ValueError, match="clv_purchase_model must be one of auto, bgnbd"):
        choose_purchase_model("nbd", lower_pareto)


def test_the_chosen_model_makes_the_predictions(simulated):
    x, t_x, t, m, _ = simulated
    scores = {"bgnbd": _score(0.9), "pareto_nbd": _score(0.5)}
    chosen = fit_clv_models(
        x, t_x, t, m, order_count=int((x + 1).sum()), sales_revenue=1000.0,
        net_revenue=900.0, settings=ClvSettings(), holdout_scores=scores,
    )  # fmt: skip
    assert (chosen.method, chosen.purchase_model) == (METHOD_PARETO, "pareto_nbd")
    assert chosen.pareto_nbd_holdout_mean_absolute_error == 0.5
    figures = predict_customer_value(chosen.as_row(), x, t_x, t, m)
    from retail_xsell.clv import pareto_nbd

    params = pareto_nbd.ParetoNbdParams(
        chosen.pareto_nbd_r, chosen.pareto_nbd_alpha, chosen.pareto_nbd_s, chosen.pareto_nbd_beta
    )
    assert figures["probability_alive"] == pytest.approx(
        pareto_nbd.probability_alive(params, x, t_x, t), rel=1e-12
    )


def test_customers_first_seen_on_as_of_date_fit_and_predict():
    """x = t_x = T = 0 (first purchase on as_of_date): P(alive) = 1 under both models,
    finite predictions, and the fits still converge; free repeat purchases (m_x = 0) get
    the population's spend instead of breaking Gamma-Gamma."""
    rng = np.random.default_rng(3)
    n = 400
    t = np.floor(rng.uniform(0, 104 * 7, n)) / 7
    x, t_x, _ = simulate_bgnbd(rng, n, CDNOW, t, horizon=1.0)
    t_x = np.floor(t_x * 7) / 7
    x[:40], t_x[:40], t[:40] = 0, 0.0, 0.0
    nu = rng.gamma(4.0, 1 / 15.0, n)
    k = np.maximum(x, 1)
    m = np.where(x > 0, rng.gamma(6.0 * k, 1 / (nu * k)), np.nan)
    m[np.flatnonzero(x > 0)[:3]] = 0.0  # every repeat purchase was a free item
    for model in ("bgnbd", "pareto_nbd"):
        run = fit_clv_models(
            x, t_x, t, m, order_count=int((x + 1).sum()), sales_revenue=1000.0,
            net_revenue=1000.0, settings=ClvSettings(purchase_model=model),
        )  # fmt: skip
        assert run.fit_status == "fitted", run.fit_message
        figures = predict_customer_value(run.as_row(), x, t_x, t, m)
        assert np.all(figures["probability_alive"][:40] == 1.0)
        for values in figures.values():
            assert np.isfinite(values).all()


def test_holdout_scores_both_models_for_the_rule(simulated):
    x, t_x, t, _, future = simulated
    rows = evaluate_holdout(x, t_x, t, future, holdout_weeks=26, settings=ClvSettings())
    scores = holdout_scores(rows)
    assert set(scores) == {"bgnbd", "pareto_nbd"}
    for name, score in scores.items():
        everyone = next(
            r for r in rows if r["purchase_model"] == name and r["frequency_group"] == "all"
        )
        assert score.mean_absolute_error == everyone["mean_absolute_error"] > 0
        assert score.log_likelihood < 0


def test_pareto_nbd_is_fitted_on_a_sample_but_scored_on_everyone(simulated, fitted, monkeypatch):
    # With the limit below the 8,000 customers, Pareto/NBD's parameters come from a
    # 2,000-customer sample, and the recorded log-likelihood is the sum over all 8,000
    # at those parameters (so it compares with BG/NBD's, fitted on everyone).
    from retail_xsell.clv import batch, pareto_nbd_log_likelihood

    monkeypatch.setattr(batch, "PARETO_NBD_FIT_CUSTOMERS", 2_000)
    run = _fit(simulated).as_row()
    x, t_x, t, _, _ = simulated
    params = (
        run["pareto_nbd_r"],
        run["pareto_nbd_alpha"],
        run["pareto_nbd_s"],
        run["pareto_nbd_beta"],
    )
    assert run["pareto_nbd_log_likelihood"] == pytest.approx(
        float(pareto_nbd_log_likelihood(params, x, t_x, t).sum()), rel=1e-9
    )
    # The estimates are the sample's: not those of the fit on all 8,000, but close.
    unsampled = fitted.as_row()
    assert run["pareto_nbd_r"] != unsampled["pareto_nbd_r"]
    assert run["pareto_nbd_r"] == pytest.approx(unsampled["pareto_nbd_r"], rel=0.5)
    assert run["pareto_nbd_log_likelihood"] <= unsampled["pareto_nbd_log_likelihood"] + 1e-6
