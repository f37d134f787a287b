"""Tests of the BG/NBD quantities for a randomly chosen new customer: the expected number of
repeat purchases E[X(t)] (Fader, Hardie & Lee 2005, eq. 9) and their distribution
P(X(t) = n) (eq. 8), both in retail_xsell.clv.bgnbd.

Checked against published values (Hardie's CDNOW spreadsheet, as the lifetimes package's
tests record it; the BTYD R package's documented bgnbd.pmf examples), against eq. (9) with
scipy's hyp2f1 and eq. (8) in plain arithmetic, against the model's definition integrated
numerically, against simulation, and against each other: the distribution must sum to 1
and have mean E[X(t)].
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import betainc, betaln, gammaln, hyp2f1, logsumexp

from clv_reference import simulate_bgnbd
from retail_xsell.clv import (
    BgNbdParams,
    expected_purchases,
    expected_purchases_new_customer,
    probability_of_n_purchases,
)

# Fader, Hardie & Lee (2005), CDNOW 1/10 sample, weeks (also BTYD's bgnbd.pmf example).
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, time_unit="week")
OTHERS = [BgNbdParams(2.0, 10.0, 3.5, 6.0), BgNbdParams(0.5, 1.2, 0.4, 0.9)]


# --- independent references -------------------------------------------------------------


def eq9(par: BgNbdParams, t: float) -> float:
    """E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]."""
    r, alpha, a, b = par.r, par.alpha, par.a, par.b
    return (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    )


def definition(par: BgNbdParams, t: float) -> float:
    """E[X(t)] from the model's story: given lambda and p, E[X(t)] = (1 - e^-lambda p t)/p
    (FHL 2005, eq. 7); over lambda ~ Gamma(r, alpha) that is (1 - (alpha/(alpha+p t))^r)/p,
    then integrated over p ~ Beta(a, b) by quadrature with the Beta weight p^(a-1) (1-p)^(b-1)
    handled by QUADPACK's algebraic-weight rule."""

    def conditional(p: float) -> float:
        if p * t < 1e-8 * par.alpha:  # (1 - (1 + u)^-r)/p = r t/alpha (1 - (r+1)u/2 + ...)
            u = p * t / par.alpha
            return par.r * t / par.alpha * (1 - (par.r + 1) * u / 2)
        return -math.expm1(-par.r * math.log1p(p * t / par.alpha)) / p

    value, _ = integrate.quad(
        conditional, 0, 1, weight="alg", wvar=(par.a - 1, par.b - 1), epsabs=0, epsrel=1e-12
    )
    return value / math.exp(betaln(par.a, par.b))


def eq8(par: BgNbdParams, t: float, x: int) -> float:
    """P(X(t) = x), eq. (8), in plain floating point (moderate x only: it subtracts)."""
    r, alpha, a, b = par.r, par.alpha, par.a, par.b

    def nb(j: int) -> float:
        coef = math.exp(math.lgamma(r + j) - math.lgamma(r) - math.lgamma(j + 1))
        return coef * (alpha / (alpha + t)) ** r * (t / (alpha + t)) ** j

    value = math.exp(betaln(a, b + x) - betaln(a, b)) * nb(x)
    if x > 0:
        value += math.exp(betaln(a + 1, b + x - 1) - betaln(a, b)) * (
            1 - sum(nb(j) for j in range(x))
        )
    return value


# --- E[X(t)] ------------------------------------------------------------------------------


def test_new_customer_expectation_reproduces_hardie_spreadsheet():
    """Hardie's BG/NBD spreadsheet for CDNOW (times in weeks; printed to 4 decimals, values
    as the lifetimes package's tests record them). The sheet uses the unrounded estimates and
    FHL publish them to 3 decimals, so the tolerance is half a unit in the 4th decimal plus
    the first-order effect of rounding each parameter by up to 5e-4, computed here."""
    times = np.array([0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0])
    published = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    theta = np.array([CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b])
    step = 1e-6
    slopes = [
        (
            expected_purchases_new_customer(tuple(theta + step * e), times)
            - expected_purchases_new_customer(tuple(theta - step * e), times)
        )
        / (2 * step)
        for e in np.eye(4)
    ]
    tolerance = 5e-5 + 5e-4 * np.sum(np.abs(slopes), axis=0)
    got = expected_purchases_new_customer(CDNOW, times)
    diff = np.abs(got - published)
    print(f"\nE[X(t)]: {got.round(5)}; |diff| {diff.round(5)} <= {tolerance.round(5)}")
    assert np.all(np.abs(got - published) <= tolerance)


@pytest.mark.parametrize("par", [CDNOW, *OTHERS])
def test_new_customer_expectation_matches_eq9_and_the_definition(par):
    horizons = [0.01, 1.0, 10.0, 52.0, 200.0]
    got = expected_purchases_new_customer(par, horizons)
    np.testing.assert_allclose(got, [eq9(par, t) for t in horizons], rtol=1e-10)
    np.testing.assert_allclose(got, [definition(par, t) for t in horizons], rtol=1e-8)


def test_new_customer_expectation_at_a_equal_one():
    """Eq. (9) is 0/0 at a = 1; the series has no such point. With r = alpha = a = b = 1 the
    definition integrates in closed form: E_p[(1 - 1/(1 + p t))/p] = E_p[t/(1 + p t)] with
    p uniform, = ln(1 + t)."""
    got = expected_purchases_new_customer((1.0, 1.0, 1.0, 1.0), [0.01, 1.0, 52.0])
    np.testing.assert_allclose(got, np.log1p([0.01, 1.0, 52.0]), rtol=1e-12)


def test_new_customer_expectation_is_a_customer_with_no_history():
    """A new customer is the case x = 0, t_x = 0, T = 0 of the conditional expectation."""
    for t in (0.5, 39.0, 5000.0):
        assert (
            expected_purchases_new_customer(CDNOW, t)
            == expected_purchases(CDNOW, [0], [0], [0], t)[0]
        )


def test_new_customer_expectation_is_finite_and_monotone_at_extremes():
    horizons = [0.0, 1e-3, 1.0, 100.0, 1e4, 1e6]
    for r, alpha, a, b in np.array(np.meshgrid(*[[1e-3, 1.0, 1e3]] * 4)).reshape(4, -1).T[::3]:
        got = expected_purchases_new_customer(BgNbdParams(r, alpha, a, b), horizons)
        assert got[0] == 0 and np.all(np.isfinite(got)), (r, alpha, a, b)
        assert np.all(got[1:] >= got[:-1] * (1 - 1e-9)), (r, alpha, a, b)


# --- P(X(t) = n) ------------------------------------------------------------------------------


def test_pmf_reproduces_btyd_examples():
    """BTYD's bgnbd.pmf examples with these parameters, as printed (the lifetimes package's
    tests record the output): each within half a unit of its last printed digit."""
    assert probability_of_n_purchases(CDNOW, 2, 10) == pytest.approx(1.07869e-07, abs=5e-13)
    assert probability_of_n_purchases(CDNOW, 39, 0) == pytest.approx(0.5737864, abs=5e-8)
    published = [0.0019995214, 0.0015170236, 0.0011633150, 0.0009003148, 0.0007023638]
    published += [0.0005517902, 0.0004361913, 0.0003467171, 0.0002769613, 0.0002222260]
    got = probability_of_n_purchases(CDNOW, 30, np.arange(11, 21))
    np.testing.assert_allclose(got, published, rtol=0, atol=5e-11)


@pytest.mark.parametrize("par", [CDNOW, *OTHERS])
def test_pmf_matches_eq8(par):
    """The reference's 1 - sum loses digits as the sum approaches 1 (short horizons, larger
    n), so it is trusted to 1e-9 relative or 1e-15 absolute."""
    for t in (0.5, 39.0, 300.0):
        got = probability_of_n_purchases(par, t, np.arange(16))
        want = [eq8(par, t, x) for x in range(16)]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("par", [CDNOW, *OTHERS])
def test_pmf_sums_to_one_and_has_mean_eq9(par):
    """A real consistency check of two different computations: sum_n P(X(t) = n) = 1 and
    sum_n n P(X(t) = n) = E[X(t)], up to the truncation at n < N, bounded by the negative
    binomial count N(t) of Poisson events (purchases of a customer who never drops out):
    P(X >= N) <= I_z(N, r) and E[X; X >= N] <= r z/(1-z) I_z(N-1, r+1), z = t/(alpha+t)."""
    for t in (1.0, 39.0, 104.0, 520.0):
        z = t / (par.alpha + t)
        big_n = 50
        while betainc(big_n, par.r, z) > 1e-13:
            big_n *= 2
        n = np.arange(big_n)
        pmf = probability_of_n_purchases(par, t, n)
        tail = betainc(big_n, par.r, z)
        mean_tail = par.r * z / (1 - z) * betainc(big_n - 1, par.r + 1, z)
        assert abs(pmf.sum() - 1) <= tail + 1e-12, t
        assert abs((n * pmf).sum() - eq9(par, t)) <= mean_tail + 1e-10 * eq9(par, t), t


def test_pmf_and_expectation_match_simulation():
    """100,000 new customers simulated event by event for 39 weeks: the mean within 4 Monte
    Carlo SEs of E[X(39)], the frequency of n = 0..6 and of n >= 7 within 4 binomial SEs."""
    rng = np.random.default_rng(2005)
    n = 100_000
    x, _, _ = simulate_bgnbd(rng, n, CDNOW, np.full(n, 39.0))
    expected = expected_purchases_new_customer(CDNOW, 39.0)
    assert abs(x.mean() - expected) < 4 * x.std() / math.sqrt(n)
    pmf = probability_of_n_purchases(CDNOW, 39.0, np.arange(7))
    for k, p in enumerate([*pmf, 1 - pmf.sum()]):
        seen = np.mean(x == k) if k < 7 else np.mean(x >= 7)
        assert abs(seen - p) < 4 * math.sqrt(p * (1 - p) / n), k


def test_pmf_tail_branches_agree_with_a_direct_log_space_sum():
    """The bracket of eq. (8) is P(N(t) >= n): computed from the finite sum where that is
    small, from the incomplete beta function, and far beyond the bulk (where I_z underflows,
    here n > ~600) from a log-space series. Each is checked against ln of the tail summed
    directly, term by term, with logsumexp, and the log-pmf must stay smooth in n across the
    switches (its second difference is ~(1 - r)/n^2 here)."""
    par = CDNOW
    t = 2.0
    z = t / (par.alpha + t)

    def log_nb(j):
        j = np.asarray(j, dtype=float)
        return (
            gammaln(par.r + j)
            - gammaln(par.r)
            - gammaln(j + 1)
            + par.r * math.log(1 - z)
            + j * math.log(z)
        )

    for count in (1, 3, 50, 400, 1000, 5000):
        log_tail = logsumexp(log_nb(np.arange(count, count + 20_000)))
        want = np.logaddexp(
            betaln(par.a, par.b + count) - betaln(par.a, par.b) + log_nb(count),
            betaln(par.a + 1, par.b + count - 1) - betaln(par.a, par.b) + log_tail,
        )
        got = probability_of_n_purchases(par, t, count, log=True)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), count
    counts = np.arange(500, 800)
    second = np.diff(probability_of_n_purchases(par, t, counts, log=True), 2)
    assert np.all(np.abs(second) < 2 / counts[2:] ** 2)


def test_pmf_at_extreme_parameters():
    counts = np.array([0, 1, 10, 1000, 100_000])
    for r, alpha, a, b in np.array(np.meshgrid(*[[1e-3, 1.0, 1e3]] * 4)).reshape(4, -1).T[::3]:
        for t in (1e-3, 1.0, 1e4):
            log_p = probability_of_n_purchases((r, alpha, a, b), t, counts, log=True)
            assert np.all(np.isfinite(log_p)) and np.all(log_p <= 1e-12), (r, alpha, a, b, t)


def test_edge_cases_and_invalid_arguments():
    assert probability_of_n_purchases(CDNOW, 0.0, [0, 1, 5]).tolist() == [1.0, 0.0, 0.0]
    assert probability_of_n_purchases(CDNOW, 0.0, [0, 1], log=True).tolist() == [0.0, -np.inf]
    assert probability_of_n_purchases(CDNOW, 39.0, 3).shape == ()
    assert expected_purchases_new_customer(CDNOW, 0.0) == 0.0
    assert expected_purchases_new_customer(CDNOW, [1.0, 2.0, 3.0]).shape == (3,)
    with pytest.raises(ValueError, match="t must be >= 0"):
        expected_purchases_new_customer(CDNOW, [1.0, -2.0])
    with pytest.raises(ValueError, match="t contains an infinite value"):
        expected_purchases_new_customer(CDNOW, np.inf)
    with pytest.raises(ValueError, match="t must be a number or a 1-D array"):
        expected_purchases_new_customer(CDNOW, [[1.0]])
    with pytest.raises(ValueError, match="t must be a finite number"):
        probability_of_n_purchases(CDNOW, -1.0, 0)
    with pytest.raises(ValueError, match="n must be whole numbers"):
        probability_of_n_purchases(CDNOW, 1.0, [0, 1.5])
    with pytest.raises(ValueError, match="n must be >= 0"):
        probability_of_n_purchases(CDNOW, 1.0, [-1])
    with pytest.raises(ValueError, match="n contains NaN"):
        probability_of_n_purchases(CDNOW, 1.0, [np.nan])
    with pytest.raises(ValueError, match="alpha"):
        probability_of_n_purchases((0.2, -1.0, 1.0, 1.0), 1.0, 0)
