"""Tests of the Pareto/NBD model (retail_xsell.clv.pareto_nbd) against independent arithmetic,
published values and simulation.

Independent references written out here: the likelihood as Fader & Hardie's closed form with
scipy's hyp2f1 (their 2005 note, eq. 22, with the alpha >= beta switch) and as a brute-force
double integral of the individual-level likelihood over both Gamma mixing distributions;
P(X(t) = n) as Fader & Hardie's 2006 closed form with hyp2f1; E[X(t)] as a one-dimensional
integral over the dropout rate; and a simulator of the model's story. Published values: the
BTYD R package's documented examples and walkthrough (McCarthy & Wadsworth). Fits recover
simulated parameters within 4 standard errors from the observed information, as for BG/NBD.

The CDNOW sample is not a fixture of this project, so its published log-likelihood (-9595.0
at r = 0.55, alpha = 10.58, s = 0.61, beta = 11.67) is not checked here; see docs/clv.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import betainc, betaln, gammaln, hyp2f1

from clv_reference import numerical_hessian
from retail_xsell.clv import (
    InsufficientDataError,
    ParetoNbdFit,
    ParetoNbdParams,
    fit_pareto_nbd,
    pareto_nbd,
    pareto_nbd_log_likelihood,
)
from retail_xsell.clv._optimize import row_groups, unique_rows
from retail_xsell.clv.pareto_nbd import (
    expected_purchases,
    expected_purchases_new_customer,
    probability_alive,
    probability_of_n_purchases,
)

# Fader, Hardie & Lee (2005, JMR), CDNOW 1/10 sample, weeks.
CDNOW = ParetoNbdParams(r=0.55, alpha=10.58, s=0.61, beta=11.67, time_unit="week")
# BTYD's documented example parameters (pnbd.Expectation), and the CDNOW maximum-likelihood
# estimates to 3 decimals, as the lifetimes package's tests record BTYD's and its own fit.
BTYD_EXAMPLE = (0.55, 10.56, 0.61, 11.64)
CDNOW_MLE_3DP = (0.553, 10.578, 0.606, 11.669)
ROUTES = ["series", "gauss", "adaptive"]

TINY_X = [0, 1, 2, 5, 0, 3, 10, 1, 30]
TINY_TX = [0.0, 4.5, 20.0, 30.25, 0.0, 2.0, 38.0, 1.0, 50.0]
TINY_T = [38.0, 10.0, 33.5, 31.0, 5.0, 39.0, 38.0, 1.0, 52.0]


# --- independent reference implementations -----------------------------------------------


def reference_ll(r: float, alpha: float, s: float, beta: float, x, t_x, t) -> float:
    """ln L from Fader & Hardie (2005 note, eq. 22) with scipy's hyp2f1 and their switch."""
    w = r + s + x
    if alpha >= beta:

        def term(y: float) -> float:
            return hyp2f1(w, s + 1, w + 1, (alpha - beta) / (alpha + y)) / (alpha + y) ** w
    else:

        def term(y: float) -> float:
            return hyp2f1(w, r + x, w + 1, (beta - alpha) / (beta + y)) / (beta + y) ** w

    a0 = term(t_x) - term(t)
    alive = 1 / ((alpha + t) ** (r + x) * (beta + t) ** s)
    front = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r * beta**s
    return math.log(front * (alive + s / w * a0))


def brute_force_ll(r: float, alpha: float, s: float, beta: float, x, t_x, t) -> float:
    """ln E[L(lambda, mu | x, t_x, T)] over lambda ~ Gamma(r, alpha), mu ~ Gamma(s, beta),
    by two-dimensional quadrature over (ln lambda, ln mu) of the individual likelihood

        lambda^x e^-(lambda+mu)T + lambda^x mu/(lambda+mu) [e^-(lambda+mu)t_x - e^-(lambda+mu)T]

    (the customer is alive at T, or died at some time in (t_x, T]). The integrand is scaled
    by the alive branch's magnitude so that quad works near 1.
    """
    shift = -(
        math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha) - (r + x) * math.log(alpha + t)
    )

    def integrand(v: float, u: float) -> float:
        lam, mu = math.exp(u), math.exp(v)
        k = lam + mu
        individual = math.exp(-k * t) + mu / k * (math.exp(-k * t_x) - math.exp(-k * t))
        log_lam = r * math.log(alpha) - math.lgamma(r) + (r + x) * u - alpha * lam
        log_mu = s * math.log(beta) - math.lgamma(s) + s * v - beta * mu
        return math.exp(log_lam + log_mu + shift) * individual

    value, _ = integrate.dblquad(integrand, -60, 8, -60, 8, epsabs=0, epsrel=1e-10)
    return math.log(value) - shift


def reference_pmf(r: float, alpha: float, s: float, beta: float, t: float, x: int) -> float:
    """P(X(t) = x), Fader & Hardie (2006), in the form of BTYD's pnbd.pmf.General."""
    log_alive = (
        gammaln(r + x)
        - gammaln(r)
        - gammaln(x + 1)
        + r * math.log(alpha / (alpha + t))
        + x * math.log(t / (alpha + t))
        + s * math.log(beta / (beta + t))
    )
    coef = math.exp(r * math.log(alpha) + s * math.log(beta) + betaln(r + x, s + 1) - betaln(r, s))
    if alpha > beta:
        b1 = hyp2f1(r + s, s + 1, r + s + x + 1, (alpha - beta) / alpha) / alpha ** (r + s)

        def b2(i: int) -> float:
            z = (alpha - beta) / (alpha + t)
            return hyp2f1(r + s + i, s + 1, r + s + x + 1, z) / (alpha + t) ** (r + s + i)
    else:
        b1 = hyp2f1(r + s, r + x, r + s + x + 1, (beta - alpha) / beta) / beta ** (r + s)

        def b2(i: int) -> float:
            z = (beta - alpha) / (beta + t)
            return hyp2f1(r + s + i, r + x, r + s + x + 1, z) / (beta + t) ** (r + s + i)

    total = b2(0) + sum(t**i / (i * math.exp(betaln(r + s, i))) * b2(i) for i in range(1, x + 1))
    return math.exp(log_alive) + coef * (b1 - total)


def simulate_pareto_nbd(rng, n, par: ParetoNbdParams, t, horizon=0.0):
    """lambda ~ Gamma(r, alpha), mu ~ Gamma(s, beta), lifetime tau ~ Exp(mu). Purchases are
    Poisson(lambda) while alive: x ~ Poisson(lambda min(tau, T)) and, given x, the last one
    is the maximum of x uniforms on (0, min(tau, T)), i.e. min(tau, T) Beta(x, 1).
    Returns x, t_x and the number of purchases in (T, T + horizon]."""
    lam = rng.gamma(par.r, 1 / par.alpha, n)
    mu = rng.gamma(par.s, 1 / par.beta, n)
    tau = rng.exponential(1 / np.maximum(mu, 1e-300))
    active = np.minimum(tau, t)
    x = rng.poisson(lam * active).astype(float)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    future = rng.poisson(lam * np.clip(np.minimum(tau, t + horizon) - t, 0, None))
    return x, t_x, future.astype(float)


# --- log-likelihood ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        (CDNOW.r, CDNOW.alpha, CDNOW.s, CDNOW.beta),
        (0.55, 11.67, 0.61, 10.58),  # alpha > beta: the other branch of the switch
        (1.7, 0.3, 2.5, 0.6),
        (0.05, 40.0, 0.2, 9.0),
        (2.0, 5.0, 2.0, 5.0),  # alpha = beta: the hypergeometric argument is 0
    ],
)
def test_log_likelihood_matches_fader_hardie_closed_form(params):
    """By every route for I: the series (Fader & Hardie's, and its Euler transform for
    x >= 1), fixed Gauss-Legendre and adaptive quadrature."""
    want = [
        reference_ll(*params, x, tx, t) for x, tx, t in zip(TINY_X, TINY_TX, TINY_T, strict=True)
    ]
    for route in [None, *ROUTES]:
        got = pareto_nbd_log_likelihood(params, TINY_X, TINY_TX, TINY_T, _route=route)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10, err_msg=str(route))


@pytest.mark.parametrize(("x", "t_x", "t"), [(0, 0.0, 38.0), (1, 4.5, 10.0), (2, 20.0, 33.5)])
def test_log_likelihood_equals_integral_over_the_mixing_distributions(x, t_x, t):
    got = pareto_nbd_log_likelihood(CDNOW, [x], [t_x], [t])[0]
    assert got == pytest.approx(
        brute_force_ll(CDNOW.r, CDNOW.alpha, CDNOW.s, CDNOW.beta, x, t_x, t), abs=1e-9
    )


@pytest.mark.parametrize(
    "params", [(0.4, 3.0, 0.9, 2.2), (0.4, 2.0, 0.9, 3.2), (1.0, 2.0, 3.0, 2.0)]
)
@pytest.mark.parametrize("route", [None, *ROUTES])
def test_gradient_matches_finite_differences(params, route):
    """The fit relies on the analytic gradient, by every route for I."""
    x = np.array([*TINY_X, 0], float)
    data = pareto_nbd._Data(
        x, np.array([*TINY_TX, 0.0]), np.array([*TINY_T, 0.0]), np.arange(1.0, 11.0), route
    )
    theta = np.log(params)
    _, grad = pareto_nbd._loglik(theta, data, gradient=True)

    def total(th):
        return float(np.dot(data.w, pareto_nbd._loglik(th, data, gradient=False)[0]))

    step = 1e-6
    numeric = [(total(theta + step * e) - total(theta - step * e)) / (2 * step) for e in np.eye(4)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


def _routes_agree(params, x, t_x, t, routes):
    r, alpha, s, beta = params
    scale = np.array([r, alpha, s, beta])[:, None]  # compare gradients in log-parameters
    base, d_base = pareto_nbd._log_integral(r, alpha, s, beta, x, t_x, t, gradient=True)
    for route in routes:
        got, d_got = pareto_nbd._log_integral(
            r, alpha, s, beta, x, t_x, t, gradient=True, force=route
        )
        np.testing.assert_allclose(got, base, rtol=1e-11, err_msg=f"{route} {params}")
        np.testing.assert_allclose(
            d_got * scale, d_base * scale, rtol=1e-9, atol=1e-9, err_msg=f"{route} {params}"
        )


def test_routes_agree_at_extreme_parameters():
    """The route for I is chosen by cost, so neighbouring parameters can take different
    routes: where each is feasible they must agree, values and gradients, or the switch
    would put jumps into the likelihood. Quadrature everywhere on an extreme grid ..."""
    x = np.array([0, 1, 20, 500, 3, 0.0])
    t = np.array([1.0, 10, 1000, 1000, 40, 5000])
    t_x = np.array([0.0, 5, 900, 999, 39.9, 0])
    for params in np.array(np.meshgrid(*[[1e-3, 0.7, 1e3]] * 4)).reshape(4, -1).T[::2]:
        _routes_agree(tuple(params), x, t_x, t, ["gauss", "adaptive"])
    # ... and the series too where it stays short (alpha and beta within a factor of 40).
    for params in np.array(np.meshgrid(*[[0.05, 0.7, 20.0]] * 4)).reshape(4, -1).T[::2]:
        _routes_agree(tuple(params), x[:5], t_x[:5], t[:5], ROUTES)


def test_gauss_rows_in_chunks_equal_one_pass_over_every_row(monkeypatch):
    """_gauss_rows works through a few thousand rows at a time (GAUSS_CHUNK_CELLS); each
    row's nodes are its own, so the pieces must give exactly what one matrix over every
    row gives. 20,000 rows with 1 to 3 panels span several chunks of each panel count."""
    rng = np.random.default_rng(7)
    n = 20_000
    x = rng.integers(0, 40, n).astype(float)
    t = rng.uniform(1.0, 400.0, n)
    t_x = np.where(x > 0, t * rng.uniform(0.0, 1.0, n), 0.0)
    params = (0.8, 5.0, 0.6, 300.0)  # alpha and beta far apart: long panels for some rows
    r, alpha, s, beta = params
    w = r + s + x
    panels = pareto_nbd._gauss_panels(w, np.log1p((t - t_x) / (min(alpha, beta) + t_x)))
    assert {1.0, 2.0, 3.0} <= set(np.unique(panels))
    assert (panels == 1).sum() > 2 * pareto_nbd.GAUSS_CHUNK_CELLS // 16
    chunked = pareto_nbd._gauss_rows(*params, x, t_x, t, panels, True)
    monkeypatch.setattr(pareto_nbd, "GAUSS_CHUNK_CELLS", 16 * 64 * n)
    whole = pareto_nbd._gauss_rows(*params, x, t_x, t, panels, True)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    # and the route it serves still matches the closed form (a few rows, as above)
    some = np.flatnonzero(panels == 2)[:3]
    want = [reference_ll(*params, x[i], t_x[i], t[i]) for i in some]
    got = pareto_nbd_log_likelihood(params, x[some], t_x[some], t[some], _route="gauss")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)


def test_row_groups_give_a_row_of_each_distinct_row_and_the_row_of_each_input():
    x = np.array([2.0, 1.0, 2.0, 1.0, 1.0])
    t_x = np.array([5.0, 3.0, 5.0, 4.0, 3.0])
    first, inverse = row_groups([x, t_x])
    # distinct rows in lexicographic order: (1, 3), (1, 4), (2, 5)
    assert [(x[i], t_x[i]) for i in first] == [(1.0, 3.0), (1.0, 4.0), (2.0, 5.0)]
    assert inverse.tolist() == [2, 0, 2, 1, 0]
    assert unique_rows([x, t_x])[0][1].tolist() == [3.0, 4.0, 5.0]
    empty_first, empty_inverse = row_groups([np.array([]), np.array([])])
    assert len(empty_first) == len(empty_inverse) == 0


@pytest.mark.parametrize(
    ("params", "series"),
    [((0.4, 3.0, 0.9, 2.2), {"euler"}), ((0.4, 2.0, 0.9, 300.0), {"euler", "fader_hardie"})],
)
def test_series_lengths_by_distinct_recency_equal_those_of_every_row(params, series):
    """The series lengths are solved once per distinct (x, t_x) (RecencyPairs), not per
    row: they must be exactly the lengths solved over every row, and so must ln I and its
    gradient, on rows that share (x, t_x) with different ages, some with t_x = T (no
    series), on both series (Euler's where r + x >= 1, Fader-Hardie's below)."""
    rng = np.random.default_rng(11)
    n = 6000
    x = rng.integers(0, 25, n).astype(float)
    t_x = np.where(x > 0, rng.integers(1, 60, n) / 7 * 4, 0.0)
    t = t_x + rng.integers(0, 3, n) * rng.uniform(0.5, 30.0, n)
    # a heavy buyer last seen at the end (t_x = T): a pair with no series at all
    x[0], t_x[0], t[0] = 900.0, 90.0, 90.0
    assert (t == t_x).any() and (t > t_x).any()
    pairs = pareto_nbd.RecencyPairs.of(x, t_x)
    assert len(pairs.first) < n // 4  # several rows per pair: a real test of sharing
    r, alpha, s, beta = params
    plain = pareto_nbd._log_integral(*params, x, t_x, t, gradient=True)
    by_pair = pareto_nbd._log_integral(*params, x, t_x, t, gradient=True, pairs=pairs)
    np.testing.assert_array_equal(by_pair[0], plain[0])
    np.testing.assert_array_equal(by_pair[1], plain[1])
    m, big = min(alpha, beta), max(alpha, beta)
    e_min = r + x if alpha < beta else np.full(n, s + 1.0)
    e_max = np.full(n, s + 1.0) if alpha < beta else r + x
    z = np.full(n, big - m) / (big + t_x)
    live = np.log1p((t - t_x) / (big + t_x)) > 0
    euler = e_min >= 1
    used = {name for name, rows in (("euler", euler), ("fader_hardie", ~euler)) if rows[live].any()}
    assert used == series
    # the reference: each solver called on every live row of its series, as before pairs
    w = r + s + x
    expected = np.zeros(n)
    for rows, length, exponent in (
        (live & euler, pareto_nbd._euler_length, e_max),
        (live & ~euler, pareto_nbd._fh_length, e_min),
    ):
        if rows.any():
            expected[rows] = length(exponent[rows], z[rows], w[rows])
    assert (expected[live] > 0).all() and (expected[~live] == 0).all()
    args = (euler, live, e_min, e_max, z, w)
    np.testing.assert_array_equal(pareto_nbd._series_lengths(*args, pairs), expected)
    each_row = pareto_nbd.RecencyPairs.each_row(n)
    np.testing.assert_array_equal(pareto_nbd._series_lengths(*args, each_row), expected)


def test_time_unit_changes_the_likelihood_by_the_jacobian_only():
    """Weeks to days: alpha and beta scale by 7, each repeat purchase's density by 1/7, so the
    maximum moves to (r, 7 alpha, s, 7 beta) and predictions do not change."""
    days = (CDNOW.r, 7 * CDNOW.alpha, CDNOW.s, 7 * CDNOW.beta)
    x, t_x, t = (np.array(v, float) for v in (TINY_X, TINY_TX, TINY_T))
    weeks_ll = pareto_nbd_log_likelihood(CDNOW, x, t_x, t)
    days_ll = pareto_nbd_log_likelihood(days, x, 7 * t_x, 7 * t)
    np.testing.assert_allclose(days_ll, weeks_ll - math.log(7) * x, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(
        probability_alive(days, x, 7 * t_x, 7 * t), probability_alive(CDNOW, x, t_x, t), rtol=1e-12
    )
    np.testing.assert_allclose(
        expected_purchases(days, x, 7 * t_x, 7 * t, 7 * 52),
        expected_purchases(CDNOW, x, t_x, t, 52),
        rtol=1e-12,
    )


# --- fitting ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population():
    """4,000 simulated CDNOW-like customers, T ~ U(26, 104) weeks, 39 weeks of future."""
    rng = np.random.default_rng(20051987)
    n = 4000
    t = rng.uniform(26, 104, n)
    x, t_x, future = simulate_pareto_nbd(rng, n, CDNOW, t, horizon=39.0)
    return x, t_x, t, future


def test_recovers_simulated_parameters(population):
    """Every log-parameter within 4 standard errors (observed information) of the truth.

    The dropout parameters are the weakly identified ones (dropout is never seen, only
    inferred from silence): at 4,000 customers the SE of ln s is ~0.12 and of ln beta ~0.25,
    against ~0.06 for ln r and ln alpha; the bounds below hold those with 50% room. The mean
    purchase rate r/alpha and the mean dropout rate s/beta are checked the same way.
    """
    x, t_x, t, _ = population
    fit = fit_pareto_nbd(x, t_x, t, time_unit="week")
    assert isinstance(fit, ParetoNbdFit)
    assert fit.converged, fit.message
    assert fit.n_customers == len(x) and fit.time_unit == "week"
    assert fit.log_likelihood == pytest.approx(
        float(pareto_nbd_log_likelihood(fit, x, t_x, t).sum()), rel=1e-12
    )
    truth = np.log([CDNOW.r, CDNOW.alpha, CDNOW.s, CDNOW.beta])
    estimate = np.log([fit.r, fit.alpha, fit.s, fit.beta])

    def ll(theta):
        return float(pareto_nbd_log_likelihood(tuple(np.exp(theta)), x, t_x, t).sum())

    covariance = np.linalg.inv(-numerical_hessian(ll, estimate))
    se = np.sqrt(np.diag(covariance))
    print(f"\nPareto/NBD 4k: estimate {np.exp(estimate).round(4)}, SE of log-params {se.round(4)}")
    assert np.all(np.abs(estimate - truth) < 4 * se)
    assert np.all(se < [0.1, 0.1, 0.2, 0.4])
    for name, grad, got, want in (
        ("r/alpha", np.array([1, -1, 0, 0]), fit.r / fit.alpha, CDNOW.r / CDNOW.alpha),
        ("s/beta", np.array([0, 0, 1, -1]), fit.s / fit.beta, CDNOW.s / CDNOW.beta),
    ):
        rel_se = math.sqrt(grad @ covariance @ grad)  # SE of ln(quantity), delta method
        print(f"  {name}: {got:.4f} vs {want:.4f} (relative SE {rel_se:.3f})")
        assert abs(math.log(got / want)) < 4 * rel_se


def test_screened_starts_reach_the_maximum_of_the_full_search(population):
    """Beyond PARETO_SCREEN_ROWS distinct rows the starts are tried on a subsample and only
    the best is run on all rows: the same maximum as running every start on all rows."""
    x, t_x, t, _ = population
    full = fit_pareto_nbd(x, t_x, t, time_unit="week", _screen_rows=10**9)
    screened = fit_pareto_nbd(x, t_x, t, time_unit="week", _screen_rows=1_000)
    assert full.converged and screened.converged, (full.message, screened.message)
    assert "started from the best of 4 starts on a random 1,000" in screened.message
    assert "random" not in full.message
    assert screened.log_likelihood == pytest.approx(full.log_likelihood, rel=1e-9)
    for name in ("r", "alpha", "s", "beta"):
        assert getattr(screened, name) == pytest.approx(getattr(full, name), rel=1e-4), name


def test_duplicated_rows_equal_weights():
    rng = np.random.default_rng(5)
    t = rng.integers(26, 105, 300).astype(float)
    x, t_x, _ = simulate_pareto_nbd(rng, 300, CDNOW, t)
    t_x = np.floor(t_x)
    counts = rng.integers(1, 4, 300)
    # One start each: the point is that both see the same objective, not the search.
    expanded = fit_pareto_nbd(
        *(np.repeat(v, counts) for v in (x, t_x, t)), time_unit="week", n_starts=1
    )
    weighted = fit_pareto_nbd(x, t_x, t, time_unit="week", weights=counts, n_starts=1)
    assert expanded.n_customers == weighted.n_customers == counts.sum()
    assert expanded.n_unique == weighted.n_unique
    for name in ("r", "alpha", "s", "beta", "log_likelihood"):
        assert getattr(expanded, name) == pytest.approx(getattr(weighted, name), rel=1e-8)


def test_non_converged_fit_is_reported(population):
    x, t_x, t, _ = population
    fit = fit_pareto_nbd(x, t_x, t, time_unit="week", max_iterations=1, n_starts=2)
    assert not fit.converged
    assert "NOT converged" in fit.message


def test_rejects_insufficient_data():
    with pytest.raises(InsufficientDataError, match="at least 20 customers"):
        fit_pareto_nbd([1, 0, 2], [1.0, 0, 3], [5.0, 5, 5], time_unit="week")
    with pytest.raises(InsufficientDataError, match="repeat buyer"):
        fit_pareto_nbd(np.zeros(50), np.zeros(50), np.full(50, 10.0), time_unit="week")


# --- P(alive) and conditional expectations ----------------------------------------------------


def test_reproduces_the_btyd_walkthrough():
    """BTYD walkthrough, customer 1516 (x = 26, t_x = 30.86, T = 31 weeks) with the CDNOW
    estimates: P(alive) 0.9979 and 25.46 expected purchases in the next 52 weeks. The
    estimates are known to 3 decimals, so the tolerance is half a unit of the printed last
    digit plus the first-order effect of rounding each parameter by up to 5e-4, computed."""
    case = ([26], [30.86], [31])
    params = np.array(CDNOW_MLE_3DP)
    for published, digits, predict in (
        (0.9979, 4, lambda p: probability_alive(tuple(p), *case)[0]),
        (25.46, 2, lambda p: expected_purchases(tuple(p), *case, 52)[0]),
    ):
        step = 1e-6
        slopes = [(predict(params + step * e) - predict(params - step * e)) / (2 * step)
                  for e in np.eye(4)]  # fmt: skip
        tolerance = 0.5 * 10.0**-digits + 5e-4 * np.abs(slopes).sum()
        assert abs(predict(params) - published) <= tolerance, (predict(params), tolerance)


def test_probability_alive_properties():
    # Last purchase at the end of the period, including a customer of age 0: certainly alive.
    assert np.all(probability_alive(CDNOW, [0, 3, 100], [0, 20, 50], [0, 20, 50]) == 1.0)
    # Silence lowers P(alive), also for customers without repeat purchases (unlike BG/NBD).
    ages = np.linspace(2, 500, 50)
    for x in (0, 1, 5, 200):
        t_x = 0.0 if x == 0 else 1.0
        alive = probability_alive(CDNOW, [x] * 50, [t_x] * 50, ages)
        assert np.all((alive >= 0) & (alive < 1))  # 200 purchases, then 300 weeks of silence: 0
        assert np.all(np.diff(alive) <= 0) and alive[0] > alive[-1]
    # Independent arithmetic for one customer: 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A_0).
    r, alpha, s, beta = CDNOW.r, CDNOW.alpha, CDNOW.s, CDNOW.beta
    x, t_x, t = 4, 30.0, 40.0
    w = r + s + x
    a0 = hyp2f1(w, r + x, w + 1, (beta - alpha) / (beta + t_x)) / (beta + t_x) ** w
    a0 -= hyp2f1(w, r + x, w + 1, (beta - alpha) / (beta + t)) / (beta + t) ** w
    want = 1 / (1 + s / w * (alpha + t) ** (r + x) * (beta + t) ** s * a0)
    assert probability_alive(CDNOW, [x], [t_x], [t])[0] == pytest.approx(want, rel=1e-12)


def test_expected_purchases_matches_monte_carlo(population):
    """Mean of predictions (true parameters) vs mean simulated future purchases, by group."""
    x, t_x, t, future = population
    predicted = expected_purchases(CDNOW, x, t_x, t, 39.0)
    groups = {"x=0": x == 0, "x=1-2": (x >= 1) & (x <= 2), "x=3-6": (x >= 3) & (x <= 6)}
    groups |= {"x>=7": x >= 7, "all": np.ones(len(x), bool)}
    for name, rows in groups.items():
        se = future[rows].std() / math.sqrt(rows.sum())
        print(
            f"  {name}: predicted {predicted[rows].mean():.4f}, simulated "
            f"{future[rows].mean():.4f} +/- {se:.4f}"
        )
        assert abs(predicted[rows].mean() - future[rows].mean()) < 4 * se, name


def test_expected_purchases_is_continuous_at_s_equal_one():
    """The bracket [1 - (.)^(s-1)] / (s-1) is 0/0 at s = 1; its limit ln(1 + t/(beta+T))."""
    at_one = expected_purchases((0.5, 10.0, 1.0, 12.0), [3], [20.0], [30.0], 52)[0]
    near = [
        expected_purchases((0.5, 10.0, s, 12.0), [3], [20.0], [30.0], 52)[0]
        for s in (1 - 1e-9, 1 + 1e-9)
    ]
    assert near == pytest.approx([at_one, at_one], rel=1e-8)
    (new_at_one,) = expected_purchases_new_customer((0.5, 10.0, 1.0, 12.0), [52.0])
    assert new_at_one == pytest.approx(0.5 * 12 / 10 * math.log(1 + 52 / 12), rel=1e-14)


def test_extreme_inputs_are_finite_and_monotone():
    """Heavy buyers, long ages and every combination of parameters in {1e-3, 1, 1e3}."""
    x = np.array([0, 0, 1, 1, 50, 500, 500, 1000, 1000, 3])
    t = np.array([0.0, 5000, 0.001, 5000, 100, 1000, 1000, 5000, 1000, 40])
    t_x = np.array([0.0, 0, 0.0005, 1, 99, 999, 0, 5000, 10, 40])
    horizons = [0.0, 1e-3, 1.0, 100.0, 10_000.0]
    for r, alpha, s, beta in np.array(np.meshgrid(*[[1e-3, 1.0, 1e3]] * 4)).reshape(4, -1).T:
        params = ParetoNbdParams(r, alpha, s, beta)
        assert np.all(np.isfinite(pareto_nbd_log_likelihood(params, x, t_x, t))), params
        alive = probability_alive(params, x, t_x, t)
        assert np.all((alive >= 0) & (alive <= 1)), params
        previous = np.zeros(len(x))
        for horizon in horizons:
            got = expected_purchases(params, x, t_x, t, horizon)
            assert np.all(np.isfinite(got)) and np.all(got >= previous * (1 - 1e-9)), params
            previous = got
        new = expected_purchases_new_customer(params, horizons)
        assert np.all(np.isfinite(new)) and np.all(new[1:] >= new[:-1] * (1 - 1e-12)), params


# --- a new customer: E[X(t)] and P(X(t) = n) ---------------------------------------------------


def test_new_customer_expectation_reproduces_btyd_and_the_integral():
    """BTYD's pnbd.Expectation example (parameters 0.55, 10.56, 0.61, 11.64; t = 1..9 weeks,
    printed to 8 decimals in the lifetimes package's port of it), and E[X(t)] =
    (r/alpha) E[(1 - e^-mu t)/mu] over mu ~ Gamma(s, beta) by quadrature."""
    published = [0.05077821, 0.09916088, 0.14542507, 0.18979930, 0.23247466]
    published += [0.27361274, 0.31335159, 0.35181024, 0.38909211]
    got = expected_purchases_new_customer(BTYD_EXAMPLE, np.arange(1.0, 10.0))
    np.testing.assert_allclose(got, published, rtol=0, atol=5e-9)
    r, alpha, s, beta = CDNOW.r, CDNOW.alpha, CDNOW.s, CDNOW.beta
    for t in (0.5, 39.0, 520.0):

        def integrand(log_mu, t=t):
            mu = math.exp(log_mu)
            density = math.exp(s * math.log(beta) - math.lgamma(s) + s * log_mu - beta * mu)
            return density * -math.expm1(-mu * t) / mu

        lifetime, _ = integrate.quad(integrand, -60, 10, epsabs=0, epsrel=1e-12, limit=400)
        assert expected_purchases_new_customer(CDNOW, t) == pytest.approx(
            r / alpha * lifetime, rel=1e-9
        )
    assert expected_purchases_new_customer(CDNOW, 0.0) == 0.0
    assert expected_purchases_new_customer(CDNOW, [1.0, 2.0]).shape == (2,)


def test_new_customer_expectation_and_pmf_match_simulation():
    """200,000 new customers observed for 39 weeks: the mean count within 4 Monte Carlo SEs of
    E[X(39)], and the frequency of each n = 0..6 and of n >= 7 within 4 binomial SEs."""
    rng = np.random.default_rng(2006)
    n = 200_000
    x, _, _ = simulate_pareto_nbd(rng, n, CDNOW, np.full(n, 39.0))
    expected = expected_purchases_new_customer(CDNOW, 39.0)
    assert abs(x.mean() - expected) < 4 * x.std() / math.sqrt(n)
    pmf = probability_of_n_purchases(CDNOW, 39.0, np.arange(7))
    for k, p in enumerate([*pmf, 1 - pmf.sum()]):
        seen = np.mean(x == k) if k < 7 else np.mean(x >= 7)
        assert abs(seen - p) < 4 * math.sqrt(p * (1 - p) / n), k


def test_pmf_sums_to_one_and_has_the_model_mean():
    """A real consistency check of two different computations: sum_n P(X(t) = n) = 1 and
    sum_n n P(X(t) = n) = E[X(t)] (closed form), up to the truncation at n < N, bounded by
    the negative binomial count of purchases of a customer who never drops out:
    P(X >= N) <= I_z(N, r) and E[X; X >= N] <= r z/(1-z) I_z(N-1, r+1), z = t/(alpha+t)."""
    for t in (1.0, 39.0, 104.0):
        z = t / (CDNOW.alpha + t)
        big_n = 20
        while betainc(big_n, CDNOW.r, z) > 1e-13:
            big_n += 20
        n = np.arange(big_n)
        pmf = probability_of_n_purchases(CDNOW, t, n)
        tail = betainc(big_n, CDNOW.r, z)
        mean_tail = CDNOW.r * z / (1 - z) * betainc(big_n - 1, CDNOW.r + 1, z)
        assert abs(pmf.sum() - 1) <= tail + 1e-12, t
        assert abs((n * pmf).sum() - expected_purchases_new_customer(CDNOW, t)) <= mean_tail + 1e-11


@pytest.mark.parametrize(
    "params",
    [
        (0.55, 10.58, 0.61, 11.67),
        (0.55, 11.67, 0.61, 10.58),
        (1.5, 3.0, 2.0, 20.0),
        (0.3, 20.0, 0.8, 2.0),
    ],
)
def test_pmf_matches_fader_hardie_closed_form(params):
    """n = 0..10; the closed form subtracts two hypergeometric sums, which costs it some
    digits at short horizons, hence 1e-9."""
    for t in (5.0, 39.0, 100.0):
        got = probability_of_n_purchases(params, t, np.arange(11))
        want = [reference_pmf(*params, t, k) for k in range(11)]
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_pmf_far_tail_and_edge_cases():
    log_p = probability_of_n_purchases(CDNOW, 39.0, [10, 100, 1000, 10_000], log=True)
    assert np.all(np.isfinite(log_p)) and np.all(np.diff(log_p) < 0)
    assert probability_of_n_purchases(CDNOW, 0.0, [0, 1, 5]).tolist() == [1.0, 0.0, 0.0]
    assert probability_of_n_purchases(CDNOW, 39.0, 3).shape == ()
    for params in [(1e-3, 1e-3, 1e-3, 1e3), (1e3, 1e3, 1e3, 1e-3), (1e-3, 1e3, 1e3, 1e-3)]:
        got = probability_of_n_purchases(params, 52.0, [0, 1, 10, 1000])
        assert np.all(np.isfinite(got)) and np.all((got >= 0) & (got <= 1)), params


# --- validation ----------------------------------------------------------------------------


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
def test_input_validation(frequency, recency, age, message):
    for call in (
        lambda: fit_pareto_nbd(frequency, recency, age, time_unit="week"),
        lambda: pareto_nbd_log_likelihood(CDNOW, frequency, recency, age),
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
        fit_pareto_nbd(*ok, time_unit="")
    with pytest.raises(ValueError, match="beta"):
        ParetoNbdParams(1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"params must be \(r, alpha, s, beta\)"):
        probability_alive((1.0, 2.0), *ok)
    with pytest.raises(ValueError, match="t must be >= 0"):
        expected_purchases_new_customer(CDNOW, [1.0, -2.0])
    with pytest.raises(ValueError, match="t contains NaN"):
        expected_purchases_new_customer(CDNOW, np.nan)
    with pytest.raises(ValueError, match="t must be a finite number"):
        probability_of_n_purchases(CDNOW, -1.0, 0)
    with pytest.raises(ValueError, match="n must be whole numbers"):
        probability_of_n_purchases(CDNOW, 1.0, [0, 1.5])
    with pytest.raises(ValueError, match="n must be >= 0"):
        probability_of_n_purchases(CDNOW, 1.0, [-1])
