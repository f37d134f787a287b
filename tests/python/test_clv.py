"""Tests of the CLV models (retail_xsell.clv) against independent arithmetic and simulation.

Everything the package computes is checked against something it did not compute itself:
likelihoods against the published formulas written out here with `math`, the expected
purchases against the paper's hypergeometric form summed term by term, fits against data
simulated here from the models' definitions. Recovery tolerances are 4 standard errors
from the observed information (central-difference Hessian of the log-likelihood), so they
scale with the sample size instead of being picked by hand; see docs/clv.md.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from clv_reference import numerical_hessian, reference_expected, simulate_bgnbd
from retail_xsell.clv import (
    BgNbdParams,
    GammaGammaParams,
    InsufficientDataError,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    predicted_clv,
    probability_alive,
)
from retail_xsell.clv import bgnbd as bgnbd_module

# Fader, Hardie & Lee (2005), CDNOW 1/10 sample, weeks; Fader & Hardie (2013), CDNOW spend.
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, time_unit="week")
CDNOW_GG = GammaGammaParams(p=6.25, q=3.74, v=15.44)

TINY_X = [0, 1, 2, 5, 0, 3, 10, 1]
TINY_TX = [0.0, 4.5, 20.0, 30.25, 0.0, 2.0, 38.0, 1.0]
TINY_T = [38.0, 10.0, 33.5, 31.0, 5.0, 39.0, 38.0, 1.0]


# --- independent reference implementations -----------------------------------------------


def reference_bgnbd_ll(r: float, alpha: float, a: float, b: float, x, t_x, t) -> float:
    """ln L from eq. (6) of Fader, Hardie & Lee (2005), in plain floating-point arithmetic."""

    def beta(p: float, q: float) -> float:
        return math.exp(math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q))

    gamma_ratio = math.exp(math.lgamma(r + x) - math.lgamma(r))
    first = beta(a, b + x) / beta(a, b) * gamma_ratio * alpha**r / (alpha + t) ** (r + x)
    second = 0.0
    if x > 0:
        second = beta(a + 1, b + x - 1) / beta(a, b) * gamma_ratio * alpha**r
        second /= (alpha + t_x) ** (r + x)
    return math.log(first + second)


def reference_gg_ll(p: float, q: float, v: float, x: float, m: float) -> float:
    """ln f(m_x | p, q, v, x) of Fader & Hardie (2013), written out directly."""
    density = math.exp(math.lgamma(p * x + q) - math.lgamma(p * x) - math.lgamma(q))
    density *= v**q * m ** (p * x - 1) * x ** (p * x) / (v + m * x) ** (p * x + q)
    return math.log(density)


# --- simulators (written from the model definitions, independent of the package) ---------


def simulate_bgnbd_fast(rng, n, par: BgNbdParams, t):
    """Same model without a loop: x = min(N(T), K) with N ~ Poisson(lambda T) and K the
    purchase at which the customer drops (geometric); given N = n events on [0, T], the
    x-th is the x-th order statistic of n uniforms, T * Beta(x, n - x + 1)."""
    lam = rng.gamma(par.r, 1 / par.alpha, n)
    drop = rng.beta(par.a, par.b, n)
    events = rng.poisson(lam * t)
    last = rng.geometric(np.maximum(drop, 1e-300))
    x = np.minimum(events, last)
    t_x = np.zeros(n)
    has = x > 0
    t_x[has] = t[has] * rng.beta(x[has], events[has] - x[has] + 1)
    return x.astype(float), t_x


def simulate_gamma_gamma(rng, n, par: GammaGammaParams):
    """nu ~ Gamma(q, rate v) per customer; each transaction ~ Gamma(p, rate nu)."""
    x = 1 + rng.poisson(2.0, n)
    nu = rng.gamma(par.q, 1 / par.v, n)
    owner = np.repeat(np.arange(n), x)
    values = rng.gamma(par.p, 1 / nu[owner])
    m = np.bincount(owner, weights=values, minlength=n) / x
    return x.astype(float), m


@pytest.fixture(scope="module")
def population():
    """20,000 simulated CDNOW-like customers, T ~ U(26, 104) weeks, 39 weeks of future."""
    rng = np.random.default_rng(20050601)
    n = 20_000
    t = rng.uniform(26, 104, n)
    x, t_x, future = simulate_bgnbd(rng, n, CDNOW, t, horizon=39.0)
    return x, t_x, t, future


@pytest.fixture(scope="module")
def population_fit(population):
    x, t_x, t, _ = population
    return fit_bgnbd(x, t_x, t, time_unit="week")


# --- log-likelihoods ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params", [CDNOW, BgNbdParams(1.7, 0.3, 2.5, 0.6), BgNbdParams(0.05, 40.0, 0.2, 9.0)]
)
def test_bgnbd_log_likelihood_matches_paper_formula(params):
    got = bgnbd_log_likelihood(params, TINY_X, TINY_TX, TINY_T)
    p = params
    want = [
        reference_bgnbd_ll(p.r, p.alpha, p.a, p.b, x, tx, t)
        for x, tx, t in zip(TINY_X, TINY_TX, TINY_T, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)


def test_bgnbd_gradient_matches_finite_differences():
    """The fit relies on the analytic gradient; check it against central differences."""
    data = bgnbd_module._Data(
        np.array(TINY_X, float), np.array(TINY_TX), np.array(TINY_T), np.arange(1.0, 9.0)
    )
    theta = np.log([0.4, 3.0, 0.9, 2.2])
    _, grad = bgnbd_module._loglik(theta, data, gradient=True)

    def total(th):
        return float(np.dot(data.w, bgnbd_module._loglik(th, data, gradient=False)[0]))

    step = 1e-6
    numeric = [(total(theta + step * e) - total(theta - step * e)) / (2 * step) for e in np.eye(4)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


def test_gamma_gamma_log_likelihood_matches_formula():
    x = [1, 2, 3, 7, 1]
    m = [10.0, 35.5, 12.25, 80.0, 3.0]
    for par in (CDNOW_GG, GammaGammaParams(0.8, 1.5, 200.0)):
        got = gamma_gamma_log_likelihood(par, x, m)
        want = [reference_gg_ll(par.p, par.q, par.v, xi, mi) for xi, mi in zip(x, m, strict=True)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)


# --- parameter recovery ---------------------------------------------------------------------


def test_bgnbd_recovers_simulated_parameters(population, population_fit):
    x, t_x, t, _ = population
    fit = population_fit
    assert fit.converged, fit.message
    truth = np.log([CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b])
    estimate = np.log([fit.r, fit.alpha, fit.a, fit.b])

    def ll(theta):
        return float(bgnbd_log_likelihood(tuple(np.exp(theta)), x, t_x, t).sum())

    covariance = np.linalg.inv(-numerical_hessian(ll, estimate))
    se = np.sqrt(np.diag(covariance))
    print(f"\nBG/NBD 20k: estimate {np.exp(estimate).round(4)}, SE of log-params {se.round(4)}")
    assert np.all(np.abs(estimate - truth) < 4 * se)
    assert np.all(se < 0.15)  # the sample is informative: every parameter to ~15% or better
    # Derived quantities: mean purchase rate r/alpha and mean dropout a/(a+b), delta method.
    for name, grad, got, want in (
        ("r/alpha", np.array([1, -1, 0, 0]), fit.r / fit.alpha, CDNOW.r / CDNOW.alpha),
        (
            "a/(a+b)",
            np.array([0, 0, 1, -1]) * fit.b / (fit.a + fit.b),
            fit.a / (fit.a + fit.b),
            CDNOW.a / (CDNOW.a + CDNOW.b),
        ),
    ):
        rel_se = math.sqrt(grad @ covariance @ grad)  # SE of log(quantity)
        print(f"  {name}: {got:.4f} vs {want:.4f} (relative SE {rel_se:.3f})")
        assert abs(math.log(got / want)) < 4 * rel_se
        assert rel_se < 0.05


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(2013)
    x, m = simulate_gamma_gamma(rng, 20_000, CDNOW_GG)
    fit = fit_gamma_gamma(x, m)
    assert fit.converged, fit.message
    estimate = np.log([fit.p, fit.q, fit.v])
    truth = np.log([CDNOW_GG.p, CDNOW_GG.q, CDNOW_GG.v])

    def ll(theta):
        return float(gamma_gamma_log_likelihood(tuple(np.exp(theta)), x, m).sum())

    se = np.sqrt(np.diag(np.linalg.inv(-numerical_hessian(ll, estimate))))
    print(
        f"\nGamma-Gamma 20k: estimate {np.exp(estimate).round(3)}, SE of log-params {se.round(4)}"
    )
    assert np.all(np.abs(estimate - truth) < 4 * se)
    assert np.all(se < 0.1)
    # The population mean spend p v / (q - 1) to a few percent.
    mean_fit = fit.p * fit.v / (fit.q - 1)
    mean_true = CDNOW_GG.p * CDNOW_GG.v / (CDNOW_GG.q - 1)
    assert abs(mean_fit / mean_true - 1) < 0.03


def test_fast_simulator_agrees_with_event_simulator():
    """The loop-free simulator used for the 1M-customer test draws from the same model."""
    rng = np.random.default_rng(7)
    n = 40_000
    t = rng.uniform(26, 104, n)
    x1, tx1, _ = simulate_bgnbd(rng, n, CDNOW, t)
    x2, tx2 = simulate_bgnbd_fast(rng, n, CDNOW, t)
    for stat in (np.mean, lambda v: np.mean(v > 0), lambda v: np.mean(v >= 5)):
        a, b = stat(x1), stat(x2)
        assert abs(a - b) < 4 * math.sqrt((np.var(x1) + np.var(x2)) / n) + 0.01
    assert abs(np.mean(tx1) - np.mean(tx2)) < 4 * math.sqrt((np.var(tx1) + np.var(tx2)) / n)


# --- expected purchases and P(alive) ----------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [CDNOW, BgNbdParams(2.0, 10.0, 3.5, 6.0), BgNbdParams(0.5, 1.2, 0.4, 0.9)],
)
def test_expected_purchases_matches_hypergeometric_series(params):
    cases = [(0, 0.0, 30.0, 10.0), (2, 10.0, 30.0, 20.0), (5, 28.0, 40.0, 39.0)]
    cases += [(10, 30.0, 35.0, 30.0), (1, 1.0, 1.0, 0.5), (30, 50.0, 52.0, 26.0)]
    x, t_x, t, _ = map(np.array, zip(*cases, strict=True))
    want = [reference_expected(params, *case) for case in cases]
    for horizon in sorted({case[3] for case in cases}):
        rows = [i for i, case in enumerate(cases) if case[3] == horizon]
        got = expected_purchases(params, x[rows], t_x[rows], t[rows], horizon)
        # ... by the series and by the quadrature fallback (forced with _max_terms=0).
        fallback = expected_purchases(params, x[rows], t_x[rows], t[rows], horizon, _max_terms=0)
        np.testing.assert_allclose(got, [want[i] for i in rows], rtol=1e-9)
        np.testing.assert_allclose(fallback, [want[i] for i in rows], rtol=1e-9)


def test_expected_purchases_matches_monte_carlo(population):
    """Mean of predictions (true parameters) vs mean simulated future purchases, by group."""
    x, t_x, t, future = population
    predicted = expected_purchases(CDNOW, x, t_x, t, 39.0)
    groups = {"x=0": x == 0, "x=1-2": (x >= 1) & (x <= 2), "x=3-6": (x >= 3) & (x <= 6)}
    groups |= {"x>=7": x >= 7, "all": np.ones(len(x), bool)}
    for name, rows in groups.items():
        se = future[rows].std() / math.sqrt(rows.sum())
        diff = predicted[rows].mean() - future[rows].mean()
        print(
            f"  {name}: predicted {predicted[rows].mean():.4f}, simulated "
            f"{future[rows].mean():.4f} +/- {se:.4f}"
        )
        assert abs(diff) < 4 * se, name


def test_expected_purchases_extreme_inputs_are_finite_and_monotone():
    x = np.array([0, 0, 1, 1, 50, 500, 500, 1000, 1000])
    t = np.array([0.0, 5000, 0.001, 5000, 100, 1000, 1000, 5000, 1000])
    t_x = np.array([0.0, 0, 0.0005, 1, 99, 999, 0, 5000, 10])
    horizons = [0.0, 1e-3, 1.0, 100.0, 10_000.0]
    for r, alpha, a, b in np.array(np.meshgrid(*[[1e-3, 1.0, 1e3]] * 4)).reshape(4, -1).T:
        params = BgNbdParams(r, alpha, a, b)
        previous = np.zeros(len(x))
        for horizon in horizons:
            got = expected_purchases(params, x, t_x, t, horizon)
            assert np.all(np.isfinite(got)) and np.all(got >= 0), (params, horizon)
            assert np.all(got >= previous * (1 - 1e-9)), (params, horizon)
            previous = got
    # The case named in the brief, at moderate parameters: a heavy buyer, long horizon.
    got = expected_purchases(CDNOW, [500], [999], [1000], 10_000)
    assert np.isfinite(got).all() and got[0] > 0
    grid = expected_purchases(CDNOW, [3] * 6, [20] * 6, [50] * 6, 52)
    assert np.ptp(grid) == 0


def test_series_and_quadrature_agree_at_extreme_parameters():
    """Where both evaluations are feasible they must agree, so the switch between them
    (at MAX_SERIES_TERMS terms) cannot introduce a jump."""
    x = np.array([0, 1, 20, 500])
    t = np.array([0.0, 10, 1000, 1000])
    t_x = np.array([0.0, 5, 900, 1000])
    for r, alpha, a, b in np.array(np.meshgrid(*[[1e-3, 0.7, 1e3]] * 4)).reshape(4, -1).T[::3]:
        params = BgNbdParams(r, alpha, a, b)
        for horizon in (1e-3, 3.0, 100.0):
            series = expected_purchases(params, x, t_x, t, horizon)
            quadrature = expected_purchases(params, x, t_x, t, horizon, _max_terms=0)
            np.testing.assert_allclose(quadrature, series, rtol=1e-8, atol=1e-300)


def test_probability_alive_properties():
    p_zero = probability_alive(CDNOW, [0, 0, 0], [0, 0, 0], [1, 50, 5000])
    assert np.all(p_zero == 1.0)
    ages = np.linspace(20, 500, 50)
    for x in (1, 5, 200):
        alive = probability_alive(CDNOW, [x] * 50, [20] * 50, ages)
        assert np.all((alive >= 0) & (alive <= 1))
        assert np.all(np.diff(alive) <= 0) and alive[0] > alive[-1]
    # Independent arithmetic for one customer.
    x, t_x, t = 4, 30.0, 40.0
    odds = CDNOW.a / (CDNOW.b + x - 1) * ((CDNOW.alpha + t) / (CDNOW.alpha + t_x)) ** (CDNOW.r + x)
    assert probability_alive(CDNOW, [x], [t_x], [t])[0] == pytest.approx(1 / (1 + odds), rel=1e-12)


# --- units, compression ---------------------------------------------------------------------


def test_time_unit_invariance(population):
    x, t_x, t, _ = population
    rows = slice(0, 5000)
    weeks = fit_bgnbd(x[rows], t_x[rows], t[rows], time_unit="week")
    days = fit_bgnbd(x[rows], 7 * t_x[rows], 7 * t[rows], time_unit="day")
    assert weeks.converged and days.converged
    for name in ("r", "a", "b"):
        assert getattr(days, name) == pytest.approx(getattr(weeks, name), rel=1e-4)
    assert days.alpha == pytest.approx(7 * weeks.alpha, rel=1e-4)
    # L is the joint density of the x repeat purchase times: each carries a factor 1/7.
    assert days.log_likelihood == pytest.approx(
        weeks.log_likelihood - math.log(7) * x[rows].sum(), abs=1e-6
    )
    np.testing.assert_allclose(
        expected_purchases(days, x[rows], 7 * t_x[rows], 7 * t[rows], 7 * 52),
        expected_purchases(weeks, x[rows], t_x[rows], t[rows], 52),
        rtol=1e-4,
    )


def test_gamma_gamma_currency_invariance():
    rng = np.random.default_rng(11)
    x, m = simulate_gamma_gamma(rng, 3000, CDNOW_GG)
    dollars = fit_gamma_gamma(x, m)
    cents = fit_gamma_gamma(x, 100 * m)
    assert cents.p == pytest.approx(dollars.p, rel=1e-4)
    assert cents.q == pytest.approx(dollars.q, rel=1e-4)
    assert cents.v == pytest.approx(100 * dollars.v, rel=1e-4)
    assert cents.log_likelihood == pytest.approx(dollars.log_likelihood - len(x) * math.log(100))


def test_duplicated_rows_equal_weights():
    rng = np.random.default_rng(3)
    t = rng.integers(26, 105, 400).astype(float)
    x, t_x = simulate_bgnbd_fast(rng, 400, CDNOW, t)
    t_x = np.floor(t_x)
    counts = rng.integers(1, 4, 400)
    expanded = fit_bgnbd(*(np.repeat(v, counts) for v in (x, t_x, t)), time_unit="week")
    weighted = fit_bgnbd(x, t_x, t, time_unit="week", weights=counts)
    assert expanded.n_customers == weighted.n_customers == counts.sum()
    assert expanded.n_unique == weighted.n_unique
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(expanded, name) == pytest.approx(getattr(weighted, name), rel=1e-10)

    x_gg, m_gg = simulate_gamma_gamma(rng, 300, CDNOW_GG)
    counts = rng.integers(1, 4, 300)
    expanded = fit_gamma_gamma(np.repeat(x_gg, counts), np.repeat(m_gg, counts))
    weighted = fit_gamma_gamma(x_gg, m_gg, weights=counts)
    for name in ("p", "q", "v", "log_likelihood"):
        assert getattr(expanded, name) == pytest.approx(getattr(weighted, name), rel=1e-10)


def test_million_customers_fit_quickly_after_compression():
    rng = np.random.default_rng(1_000_000)
    n = 1_000_000
    t = rng.integers(26, 105, n).astype(float)  # whole weeks, as a warehouse would supply
    x, t_x = simulate_bgnbd_fast(rng, n, CDNOW, t)
    t_x = np.minimum(np.round(t_x), t)  # to the nearest week (flooring would bias the rate up)
    started = time.perf_counter()
    fit = fit_bgnbd(x, t_x, t, time_unit="week")
    elapsed = time.perf_counter() - started
    print(f"\n1M customers: {fit.n_unique} unique rows, fit in {elapsed:.2f} s ({fit.message})")
    assert fit.n_customers == n
    assert fit.n_unique < n / 10
    assert fit.converged
    # The relative SE of r/alpha is ~0.25% at 1M customers (0.018 / sqrt(1M / 20k) from the
    # 20k recovery test); 2% leaves room for the small misspecification of week rounding.
    assert fit.r / fit.alpha == pytest.approx(CDNOW.r / CDNOW.alpha, rel=0.02)


# --- degenerate input -------------------------------------------------------------------------


def test_bgnbd_rejects_insufficient_data():
    with pytest.raises(InsufficientDataError, match="at least 20 customers"):
        fit_bgnbd([1, 0, 2], [1.0, 0, 3], [5.0, 5, 5], time_unit="week")
    with pytest.raises(InsufficientDataError, match="repeat buyer"):
        fit_bgnbd(np.zeros(50), np.zeros(50), np.full(50, 10.0), time_unit="week")
    assert issubclass(InsufficientDataError, ValueError)


@pytest.mark.parametrize(
    ("frequency", "recency", "age", "message"),
    [
        ([1, -1], [1.0, 0.0], [2.0, 2.0], "frequency must be >= 0"),
        ([1, 1.5], [1.0, 1.0], [2.0, 2.0], "frequency must be whole numbers"),
        ([1, 1], [1.0, -1.0], [2.0, 2.0], "recency must be >= 0"),
        ([1, 1], [1.0, 3.0], [2.0, 2.0], "recency must not exceed age"),
        ([0, 1], [1.0, 1.0], [2.0, 2.0], "recency must be 0 for customers with frequency 0"),
        ([1, 1], [1.0, 1.0], [2.0], "one value per customer"),
        ([], [], [], "frequency is empty"),
        ([1, 1], [1.0, np.nan], [2.0, 2.0], "recency contains NaN at index 1"),
        ([1, 1], [1.0, 1.0], [2.0, np.inf], "age contains an infinite value"),
    ],
)
def test_bgnbd_input_validation(frequency, recency, age, message):
    for call in (
        lambda: fit_bgnbd(frequency, recency, age, time_unit="week"),
        lambda: expected_purchases(CDNOW, frequency, recency, age, 10.0),
        lambda: probability_alive(CDNOW, frequency, recency, age),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_other_invalid_arguments():
    ok = ([1], [1.0], [2.0])
    with pytest.raises(ValueError, match="horizon"):
        expected_purchases(CDNOW, *ok, -1.0)
    with pytest.raises(ValueError, match="time_unit"):
        fit_bgnbd(*ok, time_unit="")
    with pytest.raises(ValueError, match="alpha"):
        BgNbdParams(1.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        fit_bgnbd([1] * 30, [1.0] * 30, [2.0] * 30, time_unit="week", weights=[-1.0] * 30)


def test_non_converged_fit_is_reported(population):
    x, t_x, t, _ = population
    fit = fit_bgnbd(x, t_x, t, time_unit="week", max_iterations=1, n_starts=2)
    assert not fit.converged
    assert "NOT converged" in fit.message


def test_gamma_gamma_degenerate_and_invalid_input():
    with pytest.raises(InsufficientDataError, match="at least 20 customers with repeat"):
        fit_gamma_gamma([0] * 50 + [1] * 5, [0.0] * 50 + [10.0] * 5)
    with pytest.raises(InsufficientDataError, match="identical"):
        fit_gamma_gamma([1, 2, 3] * 10, [25.0] * 30)
    with pytest.raises(ValueError, match="monetary_value must be > 0"):
        fit_gamma_gamma([1] * 30, [10.0] * 29 + [0.0])
    with pytest.raises(ValueError, match="frequency must be > 0 here"):
        gamma_gamma_log_likelihood(CDNOW_GG, [0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="q > 1"):
        expected_spend(GammaGammaParams(2.0, 0.9, 10.0), [1], [10.0])
    fit = fit_gamma_gamma([0] * 10 + [1, 2] * 15, [0.0] * 10 + list(np.linspace(5, 50, 30)))
    assert fit.n_excluded == 10 and fit.n_customers == 30


def test_expected_spend_by_hand():
    par = GammaGammaParams(p=2.0, q=3.0, v=10.0)
    got = expected_spend(par, [2, 0], [20.0, 0.0])
    # x=2, m=20: 2 (10 + 40) / (4 + 3 - 1) = 100/6; x=0: population mean 2 * 10 / 2 = 10.
    np.testing.assert_allclose(got, [100 / 6, 10.0], rtol=1e-15)


# --- CLV ------------------------------------------------------------------------------------------


def test_clv_without_discounting_is_the_product(population, population_fit):
    x, t_x, t, _ = population
    rows = slice(0, 2000)
    m = np.where(x[rows] > 0, 30.0 + x[rows], 0.0)
    result = predicted_clv(
        population_fit,
        CDNOW_GG,
        x[rows],
        t_x[rows],
        t[rows],
        m,
        horizon=52.0,
        annual_discount_rate=0.0,
    )
    purchases = expected_purchases(population_fit, x[rows], t_x[rows], t[rows], 52.0)
    spend = expected_spend(CDNOW_GG, x[rows], m)
    assert np.array_equal(result.clv, purchases * spend)
    discounted = predicted_clv(
        population_fit,
        CDNOW_GG,
        x[rows],
        t_x[rows],
        t[rows],
        m,
        horizon=52.0,
        annual_discount_rate=0.1,
    )
    assert np.all(discounted.clv < result.clv)
    # A year at 10%: every purchase is discounted by between 1.1^-1/12 and 1.1^-1.
    assert np.all(discounted.clv > result.clv / 1.1)
    assert result.clv.flags.writeable is False


def test_clv_worked_example():
    """One customer, two monthly periods at 10% a year, recomputed by hand."""
    bg = BgNbdParams(r=0.5, alpha=2.0, a=0.7, b=2.0, time_unit="month")
    gg = GammaGammaParams(p=2.0, q=3.0, v=10.0)
    x, t_x, t = 2, 6.0, 10.0
    e1 = reference_expected(bg, x, t_x, t, 1.0)  # purchases in month 1
    e2 = reference_expected(bg, x, t_x, t, 2.0)  # ... cumulative to month 2
    spend = 100 / 6  # 2 (10 + 2 * 20) / (2 * 2 + 3 - 1)
    want = spend * (e1 * 1.1 ** (-1 / 12) + (e2 - e1) * 1.1 ** (-2 / 12))
    got = predicted_clv(bg, gg, [x], [t_x], [t], [20.0], horizon=2.0, annual_discount_rate=0.1)
    assert got.clv[0] == pytest.approx(want, rel=1e-9)
    assert got.period_length == 1.0
    # A horizon that is not a whole number of periods: the last period is partial.
    half = predicted_clv(bg, gg, [x], [t_x], [t], [20.0], horizon=1.5, annual_discount_rate=0.1)
    e15 = reference_expected(bg, x, t_x, t, 1.5)
    want = spend * (e1 * 1.1 ** (-1 / 12) + (e15 - e1) * 1.1 ** (-1.5 / 12))
    assert half.clv[0] == pytest.approx(want, rel=1e-9)


def test_clv_needs_a_known_time_unit():
    bg = BgNbdParams(r=0.5, alpha=2.0, a=0.7, b=2.0)  # no time unit
    args = (bg, CDNOW_GG, [1], [1.0], [2.0], [10.0])
    with pytest.raises(ValueError, match="time_units_per_year"):
        predicted_clv(*args, horizon=2.0, annual_discount_rate=0.1)
    result = predicted_clv(*args, horizon=2.0, annual_discount_rate=0.1, time_units_per_year=12)
    assert result.clv[0] > 0


def test_expected_purchases_reproduces_the_published_cdnow_example():
    """Fader, Hardie & Lee (2005, section 4): with the CDNOW parameters, a customer with
    x = 2, t_x = 30.43 and T = 38.86 weeks is expected to make 1.226 purchases in the
    next 39 weeks (printed to three decimals)."""
    cdnow = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    (value,) = expected_purchases(cdnow, np.array([2]), np.array([30.43]), np.array([38.86]), 39)
    assert round(float(value), 3) == 1.226


def test_screening_starts_on_a_subsample_reaches_the_same_maximum(population, population_fit):
    """Big data screen the starting points on a subsample, then optimise on all rows: the
    result must be the same full-data maximum as the plain multi-start search."""
    x, t_x, t, _ = population
    screened = fit_bgnbd(x, t_x, t, time_unit="week", _screen_rows=2_000)
    assert "started from the best of 4 starts on a random 2,000" in screened.message
    assert screened.converged
    for name in ("r", "alpha", "a", "b"):
        assert getattr(screened, name) == pytest.approx(getattr(population_fit, name), rel=1e-5)
    assert screened.log_likelihood == pytest.approx(population_fit.log_likelihood, rel=1e-10)
    rng = np.random.default_rng(11)
    gx, gm = simulate_gamma_gamma(rng, 20_000, CDNOW_GG)
    full = fit_gamma_gamma(gx, gm)
    quick = fit_gamma_gamma(gx, gm, _screen_rows=2_000)
    assert "started from the best" not in full.message and quick.converged
    for name in ("p", "q", "v"):
        assert getattr(quick, name) == pytest.approx(getattr(full, name), rel=1e-5)
