"""BG/NBD model of repeat-purchase counts (Fader, Hardie & Lee 2005, Marketing Science 24(2)).

While alive, a customer buys at Poisson rate lambda ~ Gamma(r, rate alpha); after each repeat
purchase they drop out with probability p ~ Beta(a, b). Per customer we observe the number of
repeat purchases x, the time of the last one t_x and the age T, both measured from the first
purchase, in one explicit time unit.

Everything is computed in log space so that heavy buyers (x in the hundreds), long ages and
tiny or huge parameters neither overflow nor lose precision. See docs/clv.md.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy.special import betainc, betaln, digamma, expit, gammaln, logsumexp

from ._optimize import (
    SCREEN_ROWS,
    InsufficientDataError,
    as_float_array,
    check_non_negative,
    check_positive_scalar,
    check_same_length,
    check_whole_numbers,
    coerce_params,
    compress_rows,
    screened_minimize,
    subset_objectives,
    unique_rows,
    validate_weights,
)

#: fit_bgnbd needs at least this many customers (total weight) ...
MIN_CUSTOMERS = 20
#: ... and at least this many repeat buyers: without one, the dropout process is invisible.
MIN_REPEAT_BUYERS = 1

#: expected_purchases sums the exact series when it needs at most this many terms per
#: customer and falls back to adaptive quadrature beyond (very long horizons, tiny alpha).
MAX_SERIES_TERMS = 20_000

_PARAMETER_NAMES = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters; alpha is in `time_unit` (the rate of lambda is per time unit)."""

    r: float
    alpha: float
    a: float
    b: float
    time_unit: str | None = None

    def __post_init__(self) -> None:
        for name in _PARAMETER_NAMES:
            check_positive_scalar(name, getattr(self, name))


@dataclass(frozen=True)
class BgNbdFit:
    """A fitted BG/NBD model with the facts a caller needs to decide whether to trust it.

    n_customers is the total weight (the number of rows when unweighted); n_unique is the
    number of distinct (x, t_x, T) rows the likelihood was actually evaluated on.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    converged: bool
    n_customers: float
    n_unique: int
    n_repeat_buyers: float
    iterations: int
    message: str
    time_unit: str
    fit_seconds: float

    @property
    def params(self) -> BgNbdParams:
        """The parameters alone (with the time unit), e.g. for prediction."""
        return BgNbdParams(self.r, self.alpha, self.a, self.b, self.time_unit)


ParamsLike = BgNbdParams | BgNbdFit


def _as_params(params: object) -> BgNbdParams:
    return coerce_params(params, BgNbdParams, BgNbdFit, _PARAMETER_NAMES)


def _validate_rfm(
    frequency: object, recency: object, age: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the (x, t_x, T) columns and return them as float arrays."""
    x = as_float_array("frequency", frequency)
    t_x = as_float_array("recency", recency)
    t = as_float_array("age", age)
    check_same_length(frequency=x, recency=t_x, age=t)
    check_whole_numbers("frequency", x)
    check_non_negative("recency", t_x)
    check_non_negative("age", t)
    too_late = t_x > t
    if too_late.any():
        i = int(np.flatnonzero(too_late)[0])
        raise ValueError(
            f"recency must not exceed age (the last purchase happens before the end of the "
            f"calibration period); index {i} has recency {t_x[i]!r} > age {t[i]!r}"
        )
    stray = (x == 0) & (t_x != 0)
    if stray.any():
        i = int(np.flatnonzero(stray)[0])
        raise ValueError(
            "recency must be 0 for customers with frequency 0 (recency is the time of the "
            "last repeat purchase since the first purchase, not the time since the last "
            f"purchase); index {i} has frequency 0 and recency {t_x[i]!r}"
        )
    return x, t_x, t


class _Data:
    """(x, t_x, T) rows with weights, plus the distinct x values.

    Terms that depend on x only (gammaln, betaln, digamma: the costly ones) are evaluated
    once per distinct x and combined with the total weight of that x.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, t: np.ndarray, w: np.ndarray) -> None:
        self.x, self.t_x, self.t, self.w = x, t_x, t, w
        self.xu, self.ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(self.ix, weights=w, minlength=len(self.xu))
        self.repeat = x > 0
        self.total = float(w.sum())


def _loglik(
    log_params: np.ndarray, data: _Data, *, gradient: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row log-likelihood (eq. 6 of the paper) and the weighted-sum gradient.

    ln L = ln Gamma(r+x) - ln Gamma(r) + r ln alpha + ln B(a, b+x) - ln B(a, b)
           + logaddexp(-(r+x) ln(alpha+T),
                       [x>0] (ln a - ln(b+x-1) - (r+x) ln(alpha+t_x)))
    using B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1). The gradient is with respect to the
    log-parameters, summed over rows with their weights.
    """
    r, alpha, a, b = np.exp(log_params)
    xu, x = data.xu, data.x
    per_x = gammaln(r + xu) - gammaln(r) + r * math.log(alpha) + betaln(a, b + xu) - betaln(a, b)
    log_b_x1 = np.log(np.where(xu > 0, b + xu - 1, 1.0))
    log_alpha_t = np.log(alpha + data.t)
    log_alpha_tx = np.log(alpha + data.t_x)
    term_t = -(r + x) * log_alpha_t
    with np.errstate(divide="ignore"):
        term_tx = np.where(
            data.repeat, math.log(a) - log_b_x1[data.ix] - (r + x) * log_alpha_tx, -np.inf
        )
    mix = np.logaddexp(term_t, term_tx)
    ll = per_x[data.ix] + mix
    if not gradient:
        return ll, None

    w = data.w
    share_t = np.exp(term_t - mix)  # posterior weight of the "still alive" branch
    share_tx = np.exp(term_tx - mix)  # ... and of the "dropped out after t_x" branch
    wx = data.wx
    d_r = np.dot(wx, digamma(r + xu) - digamma(r) + math.log(alpha)) - np.dot(
        w, share_t * log_alpha_t + share_tx * log_alpha_tx
    )
    d_alpha = r / alpha * data.total - np.dot(
        w, (r + x) * (share_t / (alpha + data.t) + share_tx / (alpha + data.t_x))
    )
    psi_ab = digamma(a + b)
    psi_abx = digamma(a + b + xu)
    d_a = np.dot(wx, psi_ab - psi_abx) + np.dot(w, share_tx) / a
    inv_b_x1 = np.where(xu > 0, 1.0 / np.where(xu > 0, b + xu - 1, 1.0), 0.0)
    d_b = np.dot(wx, digamma(b + xu) - psi_abx - digamma(b) + psi_ab) - np.dot(
        w, share_tx * inv_b_x1[data.ix]
    )
    grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
    return ll, grad


def bgnbd_log_likelihood(
    params: ParamsLike | tuple[float, float, float, float],
    frequency: object,
    recency: object,
    age: object,
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood ln L(r, alpha, a, b | x, t_x, T) (paper eq. 6).

    `params` is a BgNbdParams/BgNbdFit or a tuple (r, alpha, a, b). The value is a density
    in the purchase times, so it depends on the time unit (see docs/clv.md).
    """
    p = _as_params(params)
    x, t_x, t = _validate_rfm(frequency, recency, age)
    data = _Data(x, t_x, t, np.ones(len(x)))
    ll, _ = _loglik(np.log([p.r, p.alpha, p.a, p.b]), data, gradient=False)
    return ll


def fit_bgnbd(
    frequency: object,
    recency: object,
    age: object,
    *,
    time_unit: str,
    weights: object = None,
    n_starts: int = 4,
    seed: int = 0,
    max_iterations: int = 1000,
    _screen_rows: int = SCREEN_ROWS,
) -> BgNbdFit:
    """Fit BG/NBD by maximum likelihood; identical rows are compressed first.

    `weights` are frequency weights (a row with weight 3 counts as three customers), so a
    pre-aggregated table can be fitted directly. Raises InsufficientDataError with fewer than
    MIN_CUSTOMERS customers or no repeat buyer; returns converged=False (with the reason in
    `message`) when the search does not reach a proper maximum, and leaves the decision to
    the caller.
    """
    started = time.perf_counter()
    if not isinstance(time_unit, str) or not time_unit.strip():
        raise ValueError(f"time_unit must be a non-empty string such as 'week'; got {time_unit!r}")
    x, t_x, t = _validate_rfm(frequency, recency, age)
    w = validate_weights(weights, len(x))
    n_customers = float(w.sum())
    n_repeat = float(w[x > 0].sum())
    if n_customers < MIN_CUSTOMERS:
        raise InsufficientDataError(
            f"BG/NBD needs at least {MIN_CUSTOMERS} customers; got {n_customers:g}"
        )
    if n_repeat < MIN_REPEAT_BUYERS:
        raise InsufficientDataError(
            "BG/NBD needs at least one repeat buyer (frequency > 0): with none, the "
            "purchase rate and the dropout process cannot be told apart"
        )
    (xc, txc, tc), wc = compress_rows([x, t_x, t], w)
    data, objective_for = subset_objectives(_loglik, _Data, [xc, txc, tc], wc)

    # Start at r = 1 with alpha matching the mean purchase rate, and a = b = 1 (uniform p).
    rate = float(np.dot(wc, xc)) / max(float(np.dot(wc, tc)), 1e-12)
    x0 = np.log([1.0, 1.0 / max(rate, 1e-12), 1.0, 1.0])
    result = screened_minimize(
        objective_for,
        len(xc),
        x0,
        names=_PARAMETER_NAMES,
        n_starts=n_starts,
        seed=seed,
        max_iterations=max_iterations,
        screen_rows=_screen_rows,
    )
    r, alpha, a, b = (float(value) for value in np.exp(result.x))
    ll, _ = _loglik(result.x, data, gradient=False)
    return BgNbdFit(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=float(np.dot(data.w, ll)),
        converged=result.converged,
        n_customers=n_customers,
        n_unique=len(xc),
        n_repeat_buyers=n_repeat,
        iterations=result.iterations,
        message=result.message,
        time_unit=time_unit,
        fit_seconds=time.perf_counter() - started,
    )


def _log_odds_dead(p: BgNbdParams, x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """ln[a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)] for x > 0 and -inf for x = 0."""
    with np.errstate(divide="ignore"):
        log_ratio = (
            math.log(p.a)
            - np.log(np.where(x > 0, p.b + x - 1, 1.0))
            + (p.r + x) * (np.log(p.alpha + t) - np.log(p.alpha + t_x))
        )
    return np.where(x > 0, log_ratio, -np.inf)


def probability_alive(
    fit: ParamsLike, frequency: object, recency: object, age: object
) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    Evaluated as a logistic function of the log-odds, so it is exactly 1 for x = 0 and
    never overflows for heavy buyers.
    """
    p = _as_params(fit)
    x, t_x, t = _validate_rfm(frequency, recency, age)
    return expit(-_log_odds_dead(p, x, t_x, t))


def _series_alive(
    big_a: np.ndarray, big_b: np.ndarray, a: float, log_u: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """S = sum_n NB(n; A, z) H(n), with H(n) = sum_{k<=n} B(a, B+k-1)/B(a, B), rows batched.

    Every term is positive, so there is no cancellation; the sum is truncated where the
    negative-binomial tail is negligible (see the bound in _expected_if_alive).
    """
    out = np.empty(len(big_a))
    order = np.argsort(hi)
    cells = hi[order] + 1  # series length per row, ascending
    budget = 1 << 21  # cells per batch (rows x longest series): ~16 MB per array
    start = 0
    while start < len(order):
        # Largest batch whose rows x longest series fits the budget (at least one row).
        fits = (np.arange(1, len(order) - start + 1) * cells[start:]) <= budget
        stop = start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))
        rows = order[start:stop]
        width = int(hi[rows].max()) + 1
        n = np.arange(width, dtype=float)
        aa, bb = big_a[rows, None], big_b[rows, None]
        lu = log_u[rows, None]
        log1p_u = np.logaddexp(0.0, lu)  # ln(1+u), no overflow for huge u
        zeros = np.zeros((len(rows), 1))
        # ln NB(n; A, z) = ln[Gamma(A+n) / (Gamma(A) n!)] + A ln(1-z) + n ln z, the first
        # term summed as sum_{j<=n} ln((A+j-1)/j): one log per term instead of three
        # gammaln calls (the series dominates the CLV of a million customers).
        steps = np.log((aa + n[1:] - 1) / n[1:])
        log_coef = np.concatenate([zeros, np.cumsum(steps, axis=1)], axis=1)
        log_pmf = log_coef - aa * log1p_u + n * (lu - log1p_u)
        # B(a, B+k-1)/B(a, B) for k = 1, 2, ...: 1, then times (B+m)/(a+B+m), m = 0, 1, ...
        ratios = np.cumprod((bb + n[: width - 2]) / (a + bb + n[: width - 2]), axis=1)
        beta_k = np.concatenate([np.ones((len(rows), 1)), ratios], axis=1)[:, : width - 1]
        cum = np.concatenate([zeros, np.cumsum(beta_k, axis=1)], axis=1)
        out[rows] = np.sum(np.exp(log_pmf) * cum, axis=1)
        start = stop
    return out


def _quadrature_alive(big_a: float, big_b: float, a: float, log_u: float) -> float:
    """S = E_p[(1 - (1 + p u)^-A) / p], p ~ Beta(a, B), by adaptive quadrature.

    Used only where the series would need more than MAX_SERIES_TERMS terms (huge u, i.e.
    horizons far longer than alpha + T). The Beta weight can pile up at either end (a or B
    tiny or huge), so the range is split at p = 1/2: below, y = ln p resolves p -> 0 and the
    transition at p = 1/u; above, s = -ln(1 - p) resolves the endpoint singularity at p = 1.
    Integrands are formed in log space; each neglected tail is below e^-70.
    """
    log_norm = -betaln(a, big_b)
    log_half = -math.log(2.0)

    log_big_a = math.log(big_a)

    def log_growth(log_p: float) -> float:
        """ln(1 - (1 + p u)^-A); for p u < e^-40 it is ln(A p u) to double precision."""
        log_pu = log_p + log_u
        if log_pu < -40.0:
            return log_big_a + log_pu
        return math.log(-math.expm1(-big_a * math.log1p(math.exp(log_pu))))

    def lower(y: float) -> float:  # p = e^y; (dp / p) p^(a-1) = p^(a-1) dy
        log_value = log_growth(y) + (a - 1) * y + (big_b - 1) * math.log1p(-math.exp(y))
        return math.exp(min(log_value + log_norm, 700.0))

    def upper(s: float) -> float:  # 1 - p = e^-s; (dp / p) = p^-1 (1 - p) ds
        log_p = math.log1p(-math.exp(-s))
        log_value = log_growth(log_p) + (a - 2) * log_p - big_b * s
        return math.exp(min(log_value + log_norm, 700.0))

    # lower <= A u e^(a y) / B(a, B) as y -> -inf; upper <= 2^max(1, 3-a) e^(-B s) / B(a, B).
    y_lo = (-70 - math.log(big_a) - log_u + math.log(a) - log_norm) / a
    y_lo = min(y_lo, -log_u - 1.0, log_half - 1.0)
    s_hi = (70 + max(1.0, 3 - a) * math.log(2.0) - math.log(big_b) + log_norm) / big_b
    s_hi = max(s_hi, -log_half + 1.0)
    # Break points at the features (p = 1/u, the Beta peak, where (1-p)^B switches off, where
    # p^a switches on) and on a doubling grid: QUADPACK's error estimate is unreliable over
    # tens of thousands of e-folds of a smooth exponential tail, and is sound on each piece.
    doubling = [2.0**k for k in range(64)]
    lower_points = [-log_u, math.log(a / (a + big_b)), -math.log(big_b), *(-d for d in doubling)]
    upper_points = [math.log(a) if a > 1 else 0.0, math.log((a + big_b) / big_b), *doubling]
    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for func, lo, hi, points in (
            (lower, y_lo, log_half, lower_points),
            (upper, -log_half, s_hi, upper_points),
        ):
            inside = sorted({point for point in points if lo < point < hi})
            value, _ = integrate.quad(
                func, lo, hi, points=inside or None, limit=500, epsabs=0.0, epsrel=1e-11
            )
            total += value
    return max(total, 0.0)


def _expected_if_alive(
    p: BgNbdParams, xu: np.ndarray, tu: np.ndarray, horizon: float, max_terms: int
) -> np.ndarray:
    """E[purchases in (T, T+horizon] | alive at T, x, T] for each row.

    Given alive at T, lambda ~ Gamma(r+x, alpha+T) and p ~ Beta(a, b+x) independently, so
    the number of Poisson events in the horizon is negative binomial NB(r+x, z) with
    z = u/(1+u), u = horizon/(alpha+T), and the k-th of them is a purchase with probability
    E[(1-p)^(k-1)] = B(a, b+x+k-1)/B(a, b+x). This equals the bracket of the paper's
    eq. (10), c/(a-1) [1 - (1-z)^(r+x) 2F1(r+x, b+x; c; z)] with c = a+b+x-1, without its
    cancellation (a near 1, short horizons) or overflow (heavy buyers, long horizons).
    """
    if horizon == 0:
        return np.zeros(len(xu))
    big_a = p.r + xu
    big_b = p.b + xu
    log_u = math.log(horizon) - np.log(p.alpha + tu)
    u = np.exp(log_u)
    # Terms needed: mean + 12 sd of the negative binomial, plus 50 (1 + u) for its geometric
    # tail: z^n = (1 + 1/u)^-n is below e^-50 after 50 (1 + u) terms.
    with np.errstate(over="ignore"):
        hi = np.ceil(big_a * u + 12 * np.sqrt(big_a * u * (1 + u)) + 50 * (1 + u) + 20)
    series = hi <= max_terms
    values = np.empty(len(xu))
    if series.any():
        values[series] = _series_alive(
            big_a[series], big_b[series], p.a, log_u[series], hi[series].astype(int)
        )
    for i in np.flatnonzero(~series):
        values[i] = _quadrature_alive(float(big_a[i]), float(big_b[i]), p.a, float(log_u[i]))
    return values


def expected_purchases(
    fit: ParamsLike,
    frequency: object,
    recency: object,
    age: object,
    horizon: float,
    *,
    _max_terms: int = MAX_SERIES_TERMS,
) -> np.ndarray:
    """E[number of purchases in (T, T+horizon] | x, t_x, T] (paper eq. 10); horizon in fit units.

    Computed as P(alive) times the expectation given alive (see _expected_if_alive), which
    is finite and >= 0 for any valid input. `_max_terms` is for tests: it moves the switch
    between the exact series and the quadrature fallback.
    """
    return expected_purchases_at(fit, frequency, recency, age, [horizon], _max_terms=_max_terms)[0]


def expected_purchases_at(
    fit: ParamsLike,
    frequency: object,
    recency: object,
    age: object,
    horizons: object,
    *,
    _max_terms: int = MAX_SERIES_TERMS,
) -> np.ndarray:
    """expected_purchases for several horizons at once: shape (len(horizons), n_customers).

    Validation, P(alive) and the grouping of customers by (x, T) are done once, which is
    what makes a monthly CLV schedule over a million customers affordable. Row k is
    bit-for-bit what expected_purchases(..., horizons[k]) returns.
    """
    p = _as_params(fit)
    x, t_x, t = _validate_rfm(frequency, recency, age)
    values = [
        check_positive_scalar("horizon", horizon, allow_zero=True)
        for horizon in np.atleast_1d(np.asarray(horizons, dtype=float))
    ]
    alive = expit(-_log_odds_dead(p, x, t_x, t))
    # Given alive only (x, T) matters: evaluate each distinct pair once.
    (xu, tu), inverse = unique_rows([x, t])
    out = np.empty((len(values), len(x)))
    for k, horizon in enumerate(values):
        out[k] = alive * _expected_if_alive(p, xu, tu, horizon, _max_terms)[inverse]
    return out


def expected_purchases_new_customer(params: ParamsLike, t: object) -> np.ndarray:
    """E[X(t)]: repeat purchases of a randomly chosen new customer in (0, t] (paper eq. 9).

    Eq. (9), (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))], cancels
    for short horizons and at a = 1 and overflows for long ones. A new customer is alive at
    time 0 with x = 0 and T = 0, so E[X(t)] is _expected_if_alive at (0, 0): the same
    positive-term series (quadrature for very long horizons) as expected_purchases, finite
    and non-decreasing in t. `t` is a number or a 1-D array of horizons in the fit's time
    unit; the result has its shape.
    """
    p = _as_params(params)
    spans = np.asarray(t, dtype=float)
    if spans.ndim > 1:
        raise ValueError(f"t must be a number or a 1-D array; got shape {spans.shape}")
    flat = as_float_array("t", spans.reshape(-1))
    check_non_negative("t", flat)
    zero = np.zeros(1)
    values = [
        float(_expected_if_alive(p, zero, zero, float(span), MAX_SERIES_TERMS)[0]) for span in flat
    ]
    return np.array(values).reshape(spans.shape)


def probability_of_n_purchases(
    params: ParamsLike, t: float, n: object, *, log: bool = False
) -> np.ndarray:
    """P(X(t) = n): a randomly chosen new customer makes n repeat purchases in (0, t] (eq. 8).

        P = B(a, b+n)/B(a, b) NB(n)
            + [n>0] B(a+1, b+n-1)/B(a, b) [1 - sum_{j<n} NB(j)],
        NB(j) = Gamma(r+j)/(Gamma(r) j!) (alpha/(alpha+t))^r (t/(alpha+t))^j,

    the first branch "alive after the n-th purchase", the second "dropped out right after
    it". Both are combined with logaddexp. The bracket is the tail P(N >= n) of the
    negative binomial number N of Poisson events in (0, t]: where it is above 1/2 it is
    1 - exp(logsumexp of the finite sum), which is then no cancellation; below, it is the
    regularized incomplete beta I_z(n, r), z = t/(alpha+t), which has none either; where
    that underflows (n far beyond the bulk) it is NB(n) 2F1(r+n, 1; n+1; z), summed in log
    space. `n` is a whole number or a 1-D array of them and the result has its shape; with
    log=True the natural logarithm is returned, which stays finite far in the tail.
    """
    p = _as_params(params)
    horizon = check_positive_scalar("t", t, allow_zero=True)
    counts = np.asarray(n, dtype=float)
    if counts.ndim > 1:
        raise ValueError(f"n must be a number or a 1-D array; got shape {counts.shape}")
    flat = as_float_array("n", counts.reshape(-1))
    check_whole_numbers("n", flat)
    if horizon == 0:
        out = np.where(flat == 0, 0.0, -np.inf)
        return (out if log else np.exp(out)).reshape(counts.shape)

    log_z = math.log(horizon) - math.log(p.alpha + horizon)  # z = t / (alpha + t)
    log_q = math.log(p.alpha) - math.log(p.alpha + horizon)  # 1 - z
    z = math.exp(log_z)

    def log_nb(j: np.ndarray) -> np.ndarray:
        return gammaln(p.r + j) - gammaln(p.r) - gammaln(j + 1) + p.r * log_q + j * log_z

    log_tail = np.zeros(len(flat))  # ln P(N >= n); 0 for n = 0
    repeat = flat > 0
    tail = np.zeros(len(flat))
    tail[repeat] = betainc(flat[repeat], p.r, z)
    head_rows = repeat & (tail > 0.5) & (flat <= 4096)
    if head_rows.any():
        # ln P(N <= n-1) as a running logsumexp of the finite sum, for each n at once.
        js = np.arange(int(flat[head_rows].max()), dtype=float)
        log_head = np.logaddexp.accumulate(log_nb(js))[flat[head_rows].astype(int) - 1]
        log_tail[head_rows] = np.log1p(-np.exp(log_head))
    mid_rows = repeat & ~head_rows & (tail > 1e-280)
    log_tail[mid_rows] = np.log(tail[mid_rows])
    far = np.flatnonzero(repeat & ~head_rows & ~mid_rows)
    if len(far):
        # Far tail: P(N >= n) = NB(n) sum_k prod_{i<k} z (r+n+i)/(n+1+i). The ratios are
        # monotone in i with limit z, so after K terms, where the larger of the first ratio
        # and z to the K is below e^-45, the rest is a geometric series in the last ratio.
        count = flat[far]
        ratio_max = np.minimum(z * np.maximum(1.0, (p.r + count) / (count + 1)), 1 - 1e-12)
        terms = np.minimum(1_000_000, np.ceil(45.0 / -np.log(ratio_max)) + 1)
        k = np.arange(int(terms.max()), dtype=float)
        log_series = np.empty(len(far))
        step = max(1, (1 << 16) // len(k))
        for lo in range(0, len(far), step):
            c = count[lo : lo + step, None]
            log_steps = np.log(z * (p.r + c + k) / (c + 1 + k))
            log_terms = np.concatenate([np.zeros((len(c), 1)), np.cumsum(log_steps, axis=1)], 1)
            last = np.minimum(log_steps[:, -1], -1e-12)
            log_rest = log_terms[:, -1] + last - np.log(-np.expm1(last))
            log_series[lo : lo + step] = np.logaddexp(
                logsumexp(log_terms[:, :-1], axis=1), log_rest
            )
        log_tail[far] = log_nb(count) + log_series

    log_beta_ab = betaln(p.a, p.b)
    alive = betaln(p.a, p.b + flat) - log_beta_ab + log_nb(flat)
    dropped = np.where(
        repeat, betaln(p.a + 1, p.b + np.maximum(flat, 1) - 1) - log_beta_ab + log_tail, -np.inf
    )
    out = np.logaddexp(alive, dropped).reshape(counts.shape)
    return out if log else np.exp(out)
