"""Pareto/NBD model of repeat-purchase counts (Schmittlein, Morrison & Colombo 1987).

While alive a customer buys at Poisson rate lambda ~ Gamma(r, rate alpha); their lifetime is
exponential with rate mu ~ Gamma(s, rate beta), so the population's lifetimes are Pareto
(Lomax): P(tau > y) = (beta / (beta + y))^s. The data are the same (x, t_x, T) as for BG/NBD,
in one explicit time unit. Formulas follow Fader & Hardie (2005), "A Note on Deriving the
Pareto/NBD Model and Related Expressions" (brucehardie.com/notes/009), and Fader & Hardie
(2006, revised 2020), "Deriving an Expression for P(X(t) = x) Under the Pareto/NBD Model"
(notes/012).

The likelihood's Gaussian hypergeometric terms are evaluated from the integral they come from,

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ (alpha+T)^-(r+x) (beta+T)^-s + s I ],
    I = integral_{t_x}^{T} (alpha+y)^-(r+x) (beta+y)^-(s+1) dy,

s I being the branch "the customer dropped out at some y in (t_x, T]". I is the note's 2F1
series with its alpha >= beta / alpha < beta switch (or, for x >= 1, its Euler transform,
whose terms fall faster for heavy buyers), summed term by term over (t_x, T] so that the
note's difference of two 2F1 values never cancels, in log space with a proven truncation.
Where the series would be long (alpha and beta far apart: the optimiser goes there) a fixed
composite Gauss-Legendre rule in log-time is cheaper and is used instead; where both would
be too long, adaptive quadrature. All three routes agree to ~1e-13 and give the analytic
gradient the fit needs. See docs/clv.md, "Pareto/NBD".
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy.special import digamma, expit, exprel, gammaln

from ._optimize import (
    InsufficientDataError,
    as_float_array,
    check_positive_scalar,
    check_whole_numbers,
    coerce_params,
    compress_rows,
    row_groups,
    screened_minimize,
    subset_objectives,
    validate_weights,
)
from .bgnbd import _validate_rfm

#: With more distinct rows than this, fit_pareto_nbd tries its starting points on a
#: random subsample of this many and runs only the best on all rows (screened_minimize;
#: BG/NBD screens at 50,000). Pareto/NBD's likelihood costs ~10x BG/NBD's per row, and a
#: screen of 10,000 rows finds the same basin: on the 50,000-customer sample of the
#: 10M-line build the maximum is the same to 1e-7 (log-likelihood to 1e-12) in 3.0 s
#: instead of 7.9 s.
PARETO_SCREEN_ROWS = 10_000

#: fit_pareto_nbd needs at least this many customers (total weight) ...
MIN_CUSTOMERS = 20
#: ... and at least this many repeat buyers: without one, the dropout process is invisible.
MIN_REPEAT_BUYERS = 1

#: The likelihood's series is summed when it needs at most this many terms per customer;
#: beyond (alpha and beta hundreds of times apart), I is computed by adaptive quadrature.
MAX_SERIES_TERMS = 20_000
#: ... and truncated where the neglected terms are below this fraction of the sum.
SERIES_TOLERANCE = 1e-17

_PARAMETER_NAMES = ("r", "alpha", "s", "beta")


@dataclass(frozen=True)
class ParetoNbdParams:
    """Pareto/NBD parameters; alpha and beta are in `time_unit` (rates are per time unit)."""

    r: float
    alpha: float
    s: float
    beta: float
    time_unit: str | None = None

    def __post_init__(self) -> None:
        for name in _PARAMETER_NAMES:
            check_positive_scalar(name, getattr(self, name))


@dataclass(frozen=True)
class ParetoNbdFit:
    """A fitted Pareto/NBD model with the facts a caller needs to decide whether to trust it.

    n_customers is the total weight (the number of rows when unweighted); n_unique is the
    number of distinct (x, t_x, T) rows the likelihood was actually evaluated on.
    """

    r: float
    alpha: float
    s: float
    beta: float
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
    def params(self) -> ParetoNbdParams:
        """The parameters alone (with the time unit), e.g. for prediction."""
        return ParetoNbdParams(self.r, self.alpha, self.s, self.beta, self.time_unit)


ParamsLike = ParetoNbdParams | ParetoNbdFit


def _as_params(params: object) -> ParetoNbdParams:
    return coerce_params(params, ParetoNbdParams, ParetoNbdFit, _PARAMETER_NAMES)


# --- the integral I and its gradient ---------------------------------------------------------


def _batches(n_max: np.ndarray, budget: int = 1 << 13) -> list[np.ndarray]:
    """Row groups of similar series length whose rows x longest series fit `budget` cells.

    Small batches keep the working arrays in cache: 2^13 cells (64 kB per array) measured
    several times faster than 2^20 on long series.
    """
    order = np.argsort(n_max)
    cells = n_max[order] + 1
    groups = []
    start = 0
    while start < len(order):
        fits = (np.arange(1, len(order) - start + 1) * cells[start:]) <= budget
        stop = start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))
        groups.append(order[start:stop])
        start = stop
    return groups


def _weighted(log_terms: np.ndarray, gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """ln sum_n e^{log_terms} per row, and the terms' shares of the sum (for averages)."""
    top = np.max(log_terms, axis=1, keepdims=True)
    scaled = np.exp(log_terms - top)
    total = np.sum(scaled, axis=1, keepdims=True)
    log_sum = (top + np.log(total))[:, 0]
    return log_sum, (scaled / total if gradient else None)


def _series_fh(
    e: np.ndarray,
    w: np.ndarray,
    log_z: np.ndarray,
    delta: np.ndarray,
    n_max: np.ndarray,
    gradient: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Fader & Hardie's series: ln S and averages for its gradient, rows batched by length.

    S = sum_n (e)_n/n! z^n [1 - e^-(w+n) Delta] / (w+n). Returned averages over the terms'
    shares: [d ln S/dw, d ln S/de, <n>, d ln S/d Delta].
    """
    k = len(e)
    log_s = np.empty(k)
    avg = np.zeros((4, k))
    for rows in _batches(n_max):
        n = np.arange(int(n_max[rows].max()) + 1, dtype=float)
        ee, ww, dd = e[rows, None], w[rows, None], delta[rows, None]
        zeros = np.zeros((len(rows), 1))
        log_c = np.concatenate([zeros, np.cumsum(np.log((ee + n[1:] - 1) / n[1:]), axis=1)], 1)
        wn = ww + n
        with np.errstate(invalid="ignore"):
            log_zn = np.where(n == 0, 0.0, n * log_z[rows, None])  # z = 0: only n = 0
        em = np.expm1(-wn * dd)  # -(1 - e^-(w+n) Delta)
        log_terms = log_c + log_zn + np.log(-em) - np.log(wn)
        log_terms = np.where(n <= n_max[rows, None], log_terms, -np.inf)
        log_s[rows], share = _weighted(log_terms, gradient)
        if share is not None:
            slope = (1 + em) / -em  # d ln(1 - e^-q) / dq = 1 / (e^q - 1)
            harmonic = np.concatenate([zeros, np.cumsum(1.0 / (ee + n[:-1]), axis=1)], axis=1)
            avg[0, rows] = np.sum(share * (dd * slope - 1.0 / wn), axis=1)
            avg[1, rows] = np.sum(share * harmonic, axis=1)  # digamma(e+n) - digamma(e)
            avg[2, rows] = np.sum(share * n, axis=1)
            avg[3, rows] = np.sum(share * wn * slope, axis=1)
    return log_s, avg


def _series_euler(
    e_min: np.ndarray,
    e_max: np.ndarray,
    w: np.ndarray,
    log_z: np.ndarray,
    delta_min: np.ndarray,
    delta_max: np.ndarray,
    n_max: np.ndarray,
    gradient: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The Euler-transformed series: ln S and averages for its gradient, rows batched.

    S = sum_n (e_max)_n/(w+1)_n z^n [1 - e^-Q_n], Q_n = (e_min-1) D_min + (e_max+n) D_max.
    Returned averages: [<-sum_{k<n} 1/(w+1+k)>, <sum_{k<n} 1/(e_max+k)>, <n>, <rho>,
    <rho (e_max+n)>] with rho = d ln(1 - e^-Q)/dQ.
    """
    k = len(e_min)
    log_s = np.empty(k)
    avg = np.zeros((5, k))
    for rows in _batches(n_max):
        n = np.arange(int(n_max[rows].max()) + 1, dtype=float)
        em_, ww = e_max[rows, None], w[rows, None]
        zeros = np.zeros((len(rows), 1))
        steps = (em_ + n[:-1]) / (ww + 1 + n[:-1])
        log_a = np.concatenate([zeros, np.cumsum(np.log(steps), axis=1)], axis=1)
        with np.errstate(invalid="ignore"):
            log_zn = np.where(n == 0, 0.0, n * log_z[rows, None])
        q = (e_min[rows, None] - 1) * delta_min[rows, None] + (em_ + n) * delta_max[rows, None]
        em = np.expm1(-q)
        log_terms = log_a + log_zn + np.log(-em)
        log_terms = np.where(n <= n_max[rows, None], log_terms, -np.inf)
        log_s[rows], share = _weighted(log_terms, gradient)
        if share is not None:
            slope = (1 + em) / -em
            h_w = np.concatenate([zeros, np.cumsum(1.0 / (ww + 1 + n[:-1]), axis=1)], axis=1)
            h_e = np.concatenate([zeros, np.cumsum(1.0 / (em_ + n[:-1]), axis=1)], axis=1)
            avg[0, rows] = -np.sum(share * h_w, axis=1)
            avg[1, rows] = np.sum(share * h_e, axis=1)
            avg[2, rows] = np.sum(share * n, axis=1)
            avg[3, rows] = np.sum(share * slope, axis=1)
            avg[4, rows] = np.sum(share * slope * (em_ + n), axis=1)
    return log_s, avg


def _quadrature_row(
    r: float, alpha: float, s: float, beta: float, x: float, t_x: float, t: float, gradient: bool
) -> tuple[float, np.ndarray]:
    """ln I and d ln I / d(r, alpha, s, beta) by adaptive quadrature, for one row.

    With m = min(alpha, beta), M = max and u = ln((m+y)/(m+t_x)), the integrand is
    (m+t_x)^-w exp(-w u) (1 + kappa e^-u)^-e_M, kappa = (M-m)/(m+t_x) >= 0, e_M the exponent
    of the (M+y) factor: log-concave in u, with its peak u* in closed form. It is integrated
    scaled by its peak value (no underflow), with break points at the peak, at the bend
    u = ln kappa and on a doubling grid (as bgnbd._quadrature_alive); the gradient is the
    integral of the integrand times d ln(integrand) / d parameter, in the same pass.
    """
    m, big = min(alpha, beta), max(alpha, beta)
    e_big = s + 1 if big == beta else r + x
    w = r + s + x
    log_m_tx = math.log(m + t_x)
    kappa = (big - m) / (m + t_x)
    length = math.log1p((t - t_x) / (m + t_x))

    def shape(u: float) -> float:
        return -w * u - e_big * math.log1p(kappa * math.exp(-u))

    peak = 0.0
    if kappa > 0 and e_big > w:
        peak = min(max(math.log(kappa * (e_big - w) / w), 0.0), length)
    top = shape(peak)
    points = {peak, math.log(kappa) if kappa > 0 else 0.0}
    points |= {peak + 2.0**k for k in range(-6, 12)} | {peak - 2.0**k for k in range(-6, 12)}
    inside = sorted(p for p in points if 0.0 < p < length)

    def integrand(u: float) -> np.ndarray:
        value = math.exp(shape(u) - top)
        if not gradient:
            return np.array([value])
        y = (m + t_x) * math.exp(u) - m
        return value * np.array(
            [1.0, -math.log(alpha + y), -(r + x) / (alpha + y), -math.log(beta + y),
             -(s + 1) / (beta + y)]
        )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        values, _ = integrate.quad_vec(
            integrand, 0.0, length, epsabs=0.0, epsrel=1e-11, points=inside or None, limit=2000
        )
    values = np.atleast_1d(values)
    log_i = -w * log_m_tx + top + math.log(values[0])
    return log_i, values[1:] / values[0]


#: Gauss-Legendre nodes and weights on [-1, 1] for _gauss_rows.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
#: _gauss_rows is used for a row when cheaper than its series and at most this many panels.
MAX_GAUSS_PANELS = 64
#: Nodes (rows x panels x 16) _gauss_rows evaluates at once.
GAUSS_CHUNK_CELLS = 1 << 16


def _gauss_panels(w: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Panels for _gauss_rows: of width at most 2.5 and at most 25 / w in u."""
    return np.maximum(1.0, np.ceil(length / np.minimum(2.5, 25.0 / w)))


def _gauss_rows(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: np.ndarray,
    t_x: np.ndarray,
    t: np.ndarray,
    panels: np.ndarray,
    gradient: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """ln I and d ln I / d(r, alpha, s, beta) by composite 16-point Gauss-Legendre, batched.

    The integrand of _quadrature_row, (m+t_x)^-w e^-wu (1 + kappa e^-u)^-e_M on [0, L], has
    a log-slope between -w and 0 past its peak and complex singularities only at
    u = ln kappa +/- i pi. Panels of width <= 25/w see at most 25 e-folds of decay and
    panels of width <= 2.5 stay well clear of the singularities (Bernstein ellipse radius
    > 4), where 16 nodes integrate to full double precision. This is what makes the
    optimiser's excursions to alpha and beta far apart cheap, where the series are long;
    the gradient integrates d ln(integrand) / d parameter on the same nodes.
    """
    k = len(x)
    log_i = np.empty(k)
    grad = np.zeros((4, k))
    m, big = min(alpha, beta), max(alpha, beta)
    alpha_min = alpha < beta
    w = r + s + x
    e_big = np.full(k, s + 1.0) if alpha_min else r + x
    log_m_tx = np.log(m + t_x)
    kappa = (big - m) / (m + t_x)
    length = np.log1p((t - t_x) / (m + t_x))
    for count in np.unique(panels):
        group = np.flatnonzero(panels == count)
        # A few thousand rows at a time: the rows x nodes temporaries stay a few MB,
        # where one matrix over every customer (700k rows x 16 nodes at 10M lines, 90 MB
        # each) spent most of its time allocating and faulting in fresh pages.
        step = max(1, GAUSS_CHUNK_CELLS // (int(count) * len(_GL_NODES)))
        for start in range(0, len(group), step):
            rows = group[start : start + step]
            width = length[rows, None] / count
            cells = np.arange(int(count))[:, None] + (_GL_NODES[None, :] + 1) / 2
            u = width * cells.reshape(1, -1)  # rows x (panels * 16)
            weights = width / 2 * np.tile(_GL_WEIGHTS, int(count))[None, :]
            log_bend = np.log1p(kappa[rows, None] * np.exp(-u))
            log_f = -w[rows, None] * u - e_big[rows, None] * log_bend + np.log(weights)
            top = np.max(log_f, axis=1, keepdims=True)
            scaled = np.exp(log_f - top)
            total = np.sum(scaled, axis=1)
            log_i[rows] = -w[rows] * log_m_tx[rows] + top[:, 0] + np.log(total)
            if gradient:
                share = scaled / total[:, None]
                log_small = log_m_tx[rows, None] + u  # ln(m + y)
                log_large = log_small + log_bend  # ln(M + y)
                log_a, log_b = (log_small, log_large) if alpha_min else (log_large, log_small)
                grad[0, rows] = -np.sum(share * log_a, axis=1)
                grad[1, rows] = -(r + x[rows]) * np.sum(share * np.exp(-log_a), axis=1)
                grad[2, rows] = -np.sum(share * log_b, axis=1)
                grad[3, rows] = -(s + 1) * np.sum(share * np.exp(-log_b), axis=1)
    return log_i, grad


def _solve_length(log_bound, lo: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest n >= lo (to within one) with log_bound(n) <= target; the bound decreases in n
    from lo on. Doubling brackets it, then bisection; vectorised over rows."""
    hi = np.maximum(2 * lo, 8.0)
    for _ in range(200):
        short = log_bound(hi) > target
        if not short.any():
            break
        hi = np.where(short, 2 * hi, hi)
    lo = np.minimum(lo, hi)
    while np.any(hi - lo > 0.5):
        mid = 0.5 * (lo + hi)
        above = log_bound(mid) > target
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.ceil(hi)


def _fh_length(e: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Terms to sum in _series_fh (n = 0 .. N) for a relative error below SERIES_TOLERANCE.

    With E_n/(w+n) <= E_0/w the tail beyond N is at most (E_0/w) (1-z)^-e P(N_e > N),
    N_e ~ NB(e, z) with mean m = e z/(1-z), and S >= E_0 (1-z)^-e / (w+m) (Jensen). So the
    relative error is below (w+m)/w P(N_e > N), and P(N_e >= n) <= ((1-z)(n+e)/e)^e
    (z(n+e)/n)^n for n > m (Chernoff at the optimal exponent), decreasing in n.
    """
    out = np.zeros(len(e))
    rows = z > 0
    if rows.any():
        ee, zz, ww = e[rows], z[rows], w[rows]
        mean = ee * zz / (1 - zz)
        target = math.log(SERIES_TOLERANCE) + np.log(ww) - np.log(ww + mean)

        def log_bound(n: np.ndarray) -> np.ndarray:
            return ee * np.log((1 - zz) * (n + ee) / ee) + n * np.log(zz * (n + ee) / n)

        out[rows] = _solve_length(log_bound, mean + 1.0, target)
    return out


def _euler_length(e_max: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Terms to sum in _series_euler (n = 0 .. N) for a relative error below SERIES_TOLERANCE.

    a_n = (e_max)_n/(w+1)_n decreases in n, and [1 - e^-Q_n] <= [1 - e^-Q_0] (1 + n/e_max)
    (Q_n / Q_0 <= 1 + n/e_max when e_min >= 1), so the tail beyond N relative to the first
    term is at most a_{N+1} z^{N+1} [(1 + (N+1)/e_max)/(1-z) + z/(e_max (1-z)^2)].
    """
    out = np.zeros(len(e_max))
    rows = z > 0
    if rows.any():
        ee, zz, ww = e_max[rows], z[rows], w[rows]
        base = gammaln(ww + 1) - gammaln(ee)
        target = np.full(len(ee), math.log(SERIES_TOLERANCE))

        def log_bound(n: np.ndarray) -> np.ndarray:
            log_a = gammaln(ee + n + 1) - gammaln(ww + n + 2) + base
            tail = (1 + (n + 1) / ee) / (1 - zz) + zz / (ee * (1 - zz) ** 2)
            return log_a + (n + 1) * np.log(zz) + np.log(tail)

        out[rows] = _solve_length(log_bound, np.ones(len(ee)), target)
    return out


@dataclass(frozen=True)
class RecencyPairs:
    """The distinct (x, t_x) of a set of rows: `first[j]` is a row with the j-th pair and
    `of_row[i]` the pair of row i. At 10M purchase lines, 700,066 distinct (x, t_x, T)
    rows have 31,120 distinct (x, t_x)."""

    first: np.ndarray
    of_row: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray) -> RecencyPairs:
        return cls(*row_groups([x, t_x]))

    @classmethod
    def each_row(cls, k: int) -> RecencyPairs:
        """Every row its own pair: nothing shared, nothing to sort."""
        rows = np.arange(k)
        return cls(rows, rows)


def _series_lengths(
    euler: np.ndarray,
    live: np.ndarray,
    e_min: np.ndarray,
    e_max: np.ndarray,
    z: np.ndarray,
    w: np.ndarray,
    pairs: RecencyPairs,
) -> np.ndarray:
    """Terms of each live row's series (_euler_length where `euler`, else _fh_length); 0
    for the other rows.

    Each length is solved on one row per distinct (x, t_x) of `pairs`, whose e_min, e_max,
    z and w are those of every row of the pair. The solvers run the same iterations on
    any set of rows with the same distinct values, so the lengths are those of solving
    every row (RecencyPairs.each_row), bit for bit (tests/python/test_pareto_nbd.py).
    """
    n_max = np.zeros(len(live))
    pair_live = np.zeros(len(pairs.first), dtype=bool)
    pair_live[pairs.of_row[live]] = True
    pair_euler = euler[pairs.first]
    pair_n = np.zeros(len(pairs.first))
    for chosen, length in ((pair_euler, _euler_length), (~pair_euler, _fh_length)):
        chosen_pairs = pair_live & chosen
        if chosen_pairs.any():
            rows = pairs.first[chosen_pairs]
            pair_n[chosen_pairs] = length(
                e_max[rows] if chosen is pair_euler else e_min[rows], z[rows], w[rows]
            )
    n_max[live] = pair_n[pairs.of_row[live]]
    return n_max


def _log_integral(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: np.ndarray,
    t_x: np.ndarray,
    t: np.ndarray,
    *,
    gradient: bool,
    max_terms: int = MAX_SERIES_TERMS,
    force: str | None = None,
    pairs: RecencyPairs | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ln I per row (-inf where t_x = T) and, with `gradient`, d ln I / d(r, alpha, s, beta).

    Let m = min(alpha, beta) and M = max (beta when they tie), e_min and e_max the exponents
    of the (m+y) and (M+y) factors of the integrand (r+x for alpha, s+1 for beta), w = r+s+x
    = e_min + e_max - 1, z = (M-m)/(M+t_x) in [0, 1), D_min = ln((m+T)/(m+t_x)) and D_max
    likewise. Fader & Hardie (2005; the likelihood and its alpha >= beta switch) expand
    (m+y)^-e_min = (M+y)^-e_min (1 - (M-m)/(M+y))^-e_min binomially: A_0/w of the note is

        I = (M+t_x)^-w sum_n (e_min)_n/n! z^n [1 - e^-(w+n) D_max] / (w+n),

    2F1(w, e_min; w+1; .) at t_x minus at T, each term carrying its own [1 - e^-q] (an
    expm1), so nothing cancels when t_x is close to T. Its terms follow a negative binomial
    of mean e_min z/(1-z): thousands for a heavy buyer when alpha < beta. Where e_min >= 1
    (always when alpha >= beta) the sum is taken after Euler's transformation
    2F1(w, e_min; w+1; z) = (1-z)^(1-e_min) 2F1(1, e_max; w+1; z) instead,

        I = (m+t_x)^(1-e_min) (M+t_x)^-e_max / w
            * sum_n (e_max)_n/(w+1)_n z^n [1 - e^-((e_min-1) D_min + (e_max+n) D_max)],

    whose terms fall at least as fast as z^n from the first. Both are cut where a bound
    puts the neglected tail below SERIES_TOLERANCE of the sum (_fh_length, _euler_length).
    Rows whose series is longer than a fixed Gauss-Legendre rule on at most
    MAX_GAUSS_PANELS panels go to _gauss_rows, and rows needing more than `max_terms` terms
    and too many panels to _quadrature_row. `force` ("series", "gauss" or "adaptive") is
    for tests: it sends every row one way.

    A series' length depends on x and t_x only, not on T. With `pairs` (the distinct
    (x, t_x) of the rows, see RecencyPairs) it is worked out once per distinct pair, with
    the same result per row.
    """
    k = len(x)
    log_i = np.full(k, -np.inf)
    grad = np.zeros((4, k))
    alpha_min = alpha < beta
    m, big = (alpha, beta) if alpha_min else (beta, alpha)
    e_min = r + x if alpha_min else np.full(k, s + 1.0)
    e_max = np.full(k, s + 1.0) if alpha_min else r + x
    w = r + s + x
    z = np.full(k, (big - m)) / (big + t_x)
    with np.errstate(divide="ignore"):
        log_z = np.log(z)
    delta_min = np.log1p((t - t_x) / (m + t_x))
    delta_max = np.log1p((t - t_x) / (big + t_x))
    euler = e_min >= 1
    live = delta_max > 0  # t_x = T: the dropout branch is empty, I = 0
    n_max = _series_lengths(euler, live, e_min, e_max, z, w, pairs or RecencyPairs.each_row(k))
    panels = _gauss_panels(w, delta_min)
    route = np.where(~live, "", np.where(n_max <= max_terms, "series", "adaptive"))
    cheaper = live & (panels <= MAX_GAUSS_PANELS) & (len(_GL_NODES) * panels < n_max)
    route = np.where(cheaper, "gauss", route)
    if force is not None:
        route = np.where(live, force, "")
    # Partial derivatives of ln I in (w, e_min, e_max, m, M), mapped to parameters below.
    parts = np.zeros((5, k))
    for use_euler in (True, False):
        rows = np.flatnonzero((route == "series") & (euler == use_euler))
        if not len(rows):
            continue
        log_m_tx, log_big_tx = np.log(m + t_x[rows]), np.log(big + t_x[rows])
        inv_m = 1 / (m + t[rows]) - 1 / (m + t_x[rows])  # d D_min / dm
        inv_big = 1 / (big + t[rows]) - 1 / (big + t_x[rows])  # d D_max / dM
        ww, em, e_mx = w[rows], e_min[rows], e_max[rows]
        lengths = n_max[rows].astype(int)
        if use_euler:
            log_s, avg = _series_euler(
                em, e_mx, ww, log_z[rows], delta_min[rows], delta_max[rows], lengths, gradient
            )
            log_i[rows] = (1 - em) * log_m_tx - e_mx * log_big_tx - np.log(ww) + log_s
            if not gradient:
                continue
            first = (
                e_mx
                / (ww + 1)
                * _expm1_ratio(  # z = 0: <n>/z -> a_1 B_1 / B_0
                    (em - 1) * delta_min[rows] + (e_mx + 1) * delta_max[rows],
                    (em - 1) * delta_min[rows] + e_mx * delta_max[rows],
                )
            )
            per_z = _per_z(avg[2], z[rows], first)
            parts[:, rows] = [
                -1 / ww + avg[0],
                -log_m_tx + avg[3] * delta_min[rows],
                -log_big_tx + avg[1] + avg[3] * delta_max[rows],
                (1 - em) / (m + t_x[rows]) - per_z / (big + t_x[rows]) + avg[3] * (em - 1) * inv_m,
                -e_mx / (big + t_x[rows])
                + per_z * (m + t_x[rows]) / (big + t_x[rows]) ** 2
                + avg[4] * inv_big,
            ]
        else:
            log_s, avg = _series_fh(em, ww, log_z[rows], delta_max[rows], lengths, gradient)
            log_i[rows] = -ww * log_big_tx + log_s
            if not gradient:
                continue
            first = (
                em * ww / (ww + 1) * _expm1_ratio((ww + 1) * delta_max[rows], ww * delta_max[rows])
            )
            per_z = _per_z(avg[2], z[rows], first)
            parts[:, rows] = [
                avg[0] - log_big_tx,
                avg[1],
                np.zeros(len(rows)),
                -per_z / (big + t_x[rows]),
                -ww / (big + t_x[rows])
                + per_z * (m + t_x[rows]) / (big + t_x[rows]) ** 2
                + avg[3] * inv_big,
            ]
    if gradient:
        d_w, d_emin, d_emax, d_m, d_big = parts
        if alpha_min:  # e_min = r + x, e_max = s + 1, m = alpha, M = beta
            grad[:] = [d_w + d_emin, d_m, d_w + d_emax, d_big]
        else:  # e_min = s + 1, e_max = r + x, m = beta, M = alpha
            grad[:] = [d_w + d_emax, d_big, d_w + d_emin, d_m]
    gauss = np.flatnonzero(route == "gauss")
    if len(gauss):
        log_i[gauss], grad[:, gauss] = _gauss_rows(
            r, alpha, s, beta, x[gauss], t_x[gauss], t[gauss], panels[gauss], gradient
        )
    for i in np.flatnonzero(route == "adaptive"):
        log_i[i], g_row = _quadrature_row(
            r, alpha, s, beta, float(x[i]), float(t_x[i]), float(t[i]), gradient
        )
        if gradient:
            grad[:, i] = g_row
    return log_i, grad


def _expm1_ratio(q_num: np.ndarray, q_den: np.ndarray) -> np.ndarray:
    """(1 - e^-q_num) / (1 - e^-q_den), accurate for small q."""
    return np.expm1(-q_num) / np.expm1(-q_den)


def _per_z(mean_n: np.ndarray, z: np.ndarray, at_zero: np.ndarray) -> np.ndarray:
    """<n> / z = d ln S / dz, with its limit (second term over first) where z = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z > 0, mean_n / z, at_zero)


# --- likelihood and fit ----------------------------------------------------------------------


class _Data:
    """(x, t_x, T) rows with weights, plus the distinct x values for the x-only terms and
    the distinct (x, t_x) for the series lengths."""

    def __init__(
        self,
        x: np.ndarray,
        t_x: np.ndarray,
        t: np.ndarray,
        w: np.ndarray,
        route: str | None = None,
    ) -> None:
        self.x, self.t_x, self.t, self.w = x, t_x, t, w
        self.xu, self.ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(self.ix, weights=w, minlength=len(self.xu))
        self.total = float(w.sum())
        self.route = route
        self.pairs = RecencyPairs.of(x, t_x)


def _loglik(
    log_params: np.ndarray, data: _Data, *, gradient: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row log-likelihood (Fader & Hardie 2005) and the weighted-sum gradient.

    ln L = ln Gamma(r+x) - ln Gamma(r) + r ln alpha + s ln beta
           + logaddexp(-(r+x) ln(alpha+T) - s ln(beta+T), ln s + ln I)
    The gradient is with respect to the log-parameters, summed over rows with their weights.
    """
    r, alpha, s, beta = (float(v) for v in np.exp(log_params))
    x, t = data.x, data.t
    per_x = gammaln(r + data.xu) - gammaln(r)
    log_alpha_t = np.log(alpha + t)
    log_beta_t = np.log(beta + t)
    term_alive = -(r + x) * log_alpha_t - s * log_beta_t
    log_i, d_log_i = _log_integral(
        r, alpha, s, beta, x, data.t_x, t, gradient=gradient, force=data.route, pairs=data.pairs
    )
    term_dropped = math.log(s) + log_i
    mix = np.logaddexp(term_alive, term_dropped)
    ll = per_x[data.ix] + r * math.log(alpha) + s * math.log(beta) + mix
    if not gradient:
        return ll, None

    w = data.w
    share_alive = np.exp(term_alive - mix)
    share_dropped = np.exp(term_dropped - mix)
    total = data.total
    d_r = (
        np.dot(data.wx, digamma(r + data.xu) - digamma(r))
        + total * math.log(alpha)
        + np.dot(w, -share_alive * log_alpha_t + share_dropped * d_log_i[0])
    )
    d_alpha = total * r / alpha + np.dot(
        w, -share_alive * (r + x) / (alpha + t) + share_dropped * d_log_i[1]
    )
    d_s = total * math.log(beta) + np.dot(
        w, -share_alive * log_beta_t + share_dropped * (1 / s + d_log_i[2])
    )
    d_beta = total * s / beta + np.dot(
        w, -share_alive * s / (beta + t) + share_dropped * d_log_i[3]
    )
    grad = np.array([d_r * r, d_alpha * alpha, d_s * s, d_beta * beta])
    return ll, grad


def pareto_nbd_log_likelihood(
    params: ParamsLike | tuple[float, float, float, float],
    frequency: object,
    recency: object,
    age: object,
    *,
    _route: str | None = None,
) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood ln L(r, alpha, s, beta | x, t_x, T).

    `params` is a ParetoNbdParams/ParetoNbdFit or a tuple (r, alpha, s, beta). Like the
    BG/NBD likelihood it is a density in the purchase times, so it depends on the time unit.
    `_route` is for tests: it evaluates I one way for every row (see _log_integral).
    """
    p = _as_params(params)
    x, t_x, t = _validate_rfm(frequency, recency, age)
    data = _Data(x, t_x, t, np.ones(len(x)), _route)
    ll, _ = _loglik(np.log([p.r, p.alpha, p.s, p.beta]), data, gradient=False)
    return ll


def fit_pareto_nbd(
    frequency: object,
    recency: object,
    age: object,
    *,
    time_unit: str,
    weights: object = None,
    n_starts: int = 4,
    seed: int = 0,
    max_iterations: int = 1000,
    _screen_rows: int = PARETO_SCREEN_ROWS,
) -> ParetoNbdFit:
    """Fit Pareto/NBD by maximum likelihood; identical rows are compressed first.

    Same contract as fit_bgnbd: `weights` are frequency weights; InsufficientDataError with
    fewer than MIN_CUSTOMERS customers or no repeat buyer; converged=False (with the reason
    in `message`) when the search does not reach a proper maximum.
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
            f"Pareto/NBD needs at least {MIN_CUSTOMERS} customers; got {n_customers:g}"
        )
    if n_repeat < MIN_REPEAT_BUYERS:
        raise InsufficientDataError(
            "Pareto/NBD needs at least one repeat buyer (frequency > 0): with none, the "
            "purchase rate and the dropout process cannot be told apart"
        )
    (xc, txc, tc), wc = compress_rows([x, t_x, t], w)
    data, objective_for = subset_objectives(_loglik, _Data, [xc, txc, tc], wc)

    # Start at r = s = 1 with alpha matching the mean purchase rate and beta the mean age
    # (a median lifetime of the order of the observation period).
    rate = float(np.dot(wc, xc)) / max(float(np.dot(wc, tc)), 1e-12)
    mean_age = float(np.dot(wc, tc)) / float(wc.sum())
    x0 = np.log([1.0, 1.0 / max(rate, 1e-12), 1.0, max(mean_age, 1e-12)])
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
    r, alpha, s, beta = (float(value) for value in np.exp(result.x))
    ll, _ = _loglik(result.x, data, gradient=False)
    return ParetoNbdFit(
        r=r,
        alpha=alpha,
        s=s,
        beta=beta,
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


# --- predictions ---------------------------------------------------------------------------


def _log_odds_alive(
    p: ParetoNbdParams, x: np.ndarray, t_x: np.ndarray, t: np.ndarray, route: str | None
) -> np.ndarray:
    """ln[(alive branch) / (dropped branch)] = -(r+x) ln(alpha+T) - s ln(beta+T) - ln(s I)."""
    log_i, _ = _log_integral(
        p.r,
        p.alpha,
        p.s,
        p.beta,
        x,
        t_x,
        t,
        gradient=False,
        force=route,
        pairs=RecencyPairs.of(x, t_x),
    )
    alive = -(p.r + x) * np.log(p.alpha + t) - p.s * np.log(p.beta + t)
    return alive - (math.log(p.s) + log_i)


def probability_alive(
    fit: ParamsLike,
    frequency: object,
    recency: object,
    age: object,
    *,
    _route: str | None = None,
) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + s I (alpha+T)^(r+x) (beta+T)^s) (F&H 2005).

    A logistic function of the log-odds: exactly 1 when t_x = T (including a customer of
    age 0), never overflowing for heavy buyers. Unlike BG/NBD, a customer without repeat
    purchases is not certainly alive: they may have dropped out at any time in (0, T].
    """
    p = _as_params(fit)
    x, t_x, t = _validate_rfm(frequency, recency, age)
    return expit(_log_odds_alive(p, x, t_x, t, _route))


def _log_lifetime_share(s: float, scale: object, horizon: object) -> np.ndarray:
    """ln of E[(1 - e^{-mu t}) / mu] / scale for mu ~ Gamma(s, rate scale), t = horizon:

    (1 - (scale/(scale+t))^(s-1)) / (s-1) = h exprel(-(s-1) h), h = ln(1 + t/scale),
    which is exact at s = 1 (the limit h) and has no cancellation near it.
    """
    h = np.log1p(np.asarray(horizon, dtype=float) / np.asarray(scale, dtype=float))
    k = s - 1.0
    arg = -k * h
    # ln exprel(y) = y - ln y + ln(1 - e^-y) for large y, where exprel itself overflows.
    with np.errstate(over="ignore", divide="ignore"):
        log_rel = np.where(
            arg > 500,
            arg - np.log(np.maximum(arg, 1.0)) + np.log1p(-np.exp(-np.maximum(arg, 1.0))),
            np.log(exprel(np.minimum(arg, 500.0))),
        )
        return np.log(h) + log_rel


def expected_purchases(
    fit: ParamsLike,
    frequency: object,
    recency: object,
    age: object,
    horizon: float,
    *,
    _route: str | None = None,
) -> np.ndarray:
    """E[number of purchases in (T, T+horizon] | x, t_x, T] (F&H 2005); horizon in fit units.

    P(alive) * (r+x)(beta+T) / ((alpha+T)(s-1)) * [1 - ((beta+T)/(beta+T+horizon))^(s-1)]:
    given alive at T, lambda ~ Gamma(r+x, alpha+T) and mu ~ Gamma(s, beta+T). Computed in log
    space and exact at s = 1 (where the bracket over s-1 becomes ln(1 + horizon/(beta+T))).
    """
    span = check_positive_scalar("horizon", horizon, allow_zero=True)
    return expected_purchases_at(fit, frequency, recency, age, [span], _route=_route)[0]


def expected_purchases_at(
    fit: ParamsLike,
    frequency: object,
    recency: object,
    age: object,
    horizons: object,
    *,
    _route: str | None = None,
) -> np.ndarray:
    """expected_purchases for several horizons at once: one row per horizon.

    P(alive), the costly part (the integral I), is computed once for all horizons, which is
    what discounting CLV period by period needs (value.predicted_clv).
    """
    p = _as_params(fit)
    x, t_x, t = _validate_rfm(frequency, recency, age)
    spans = _as_horizons("horizons", horizons).reshape(-1)
    result = np.zeros((len(spans), len(x)))
    if not len(x) or not (spans > 0).any():
        return result
    log_alive = -np.logaddexp(0.0, -_log_odds_alive(p, x, t_x, t, _route))
    log_rate = np.log(p.r + x) - np.log(p.alpha + t) + np.log(p.beta + t)
    for k, span in enumerate(spans):
        if span > 0:
            result[k] = np.exp(
                log_alive + log_rate + _log_lifetime_share(p.s, p.beta + t, float(span))
            )
    return result


def _as_horizons(name: str, values: object) -> np.ndarray:
    """A scalar or 1-D array of time spans (finite, >= 0), as floats of the same shape."""
    array = np.asarray(values, dtype=float)
    if array.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-D array; got shape {array.shape}")
    flat = as_float_array(name, array.reshape(-1))
    negative = flat < 0
    if negative.any():
        index = int(np.flatnonzero(negative)[0])
        raise ValueError(f"{name} must be >= 0; index {index} has {flat[index]!r}")
    return flat.reshape(array.shape)


def _as_counts(name: str, values: object) -> np.ndarray:
    """A scalar or 1-D array of whole numbers >= 0, as floats of the same shape."""
    array = np.asarray(values, dtype=float)
    if array.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-D array; got shape {array.shape}")
    flat = as_float_array(name, array.reshape(-1))
    check_whole_numbers(name, flat)
    return flat.reshape(array.shape)


def expected_purchases_new_customer(params: ParamsLike, t: object) -> np.ndarray:
    """E[X(t)]: repeat purchases of a randomly chosen new customer in (0, t] (F&H 2005).

    r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)], i.e. expected_purchases at x = 0,
    T = 0 (alive for sure). `t` is a number or a 1-D array; the result has its shape.
    """
    p = _as_params(params)
    spans = _as_horizons("t", t)
    flat = spans.reshape(-1)
    out = np.zeros(flat.shape)
    positive = flat > 0
    log_life = math.log(p.beta) + _log_lifetime_share(p.s, p.beta, flat[positive])
    out[positive] = np.exp(math.log(p.r) - math.log(p.alpha) + log_life)
    return out.reshape(spans.shape)


def _log_dropout_integral(p: ParetoNbdParams, horizon: float, n: float) -> float:
    """ln K_n, K_n = integral_0^t y^n (alpha+y)^-(r+n) (beta+y)^-(s+1) dy, by quadrature.

    In v = ln y the log-integrand (n+1) v - (r+n) ln(alpha+e^v) - (s+1) ln(beta+e^v) is
    concave (ln(c + e^v) is convex), so it has one peak, found by root-finding on its
    slope; the integrand is scaled by its peak value, the left tail is cut where it has
    fallen by e^-75 (concavity bounds what is left beyond), and break points at the peak,
    at ln alpha and ln beta and on a doubling grid let QUADPACK resolve it.
    """
    r, alpha, s, beta = p.r, p.alpha, p.s, p.beta
    log_alpha, log_beta, log_t = math.log(alpha), math.log(beta), math.log(horizon)

    def shape(v: float) -> float:
        return (
            (n + 1) * v - (r + n) * np.logaddexp(log_alpha, v) - (s + 1) * np.logaddexp(log_beta, v)
        )

    def slope(v: float) -> float:
        return float((n + 1) - (r + n) * expit(v - log_alpha) - (s + 1) * expit(v - log_beta))

    lo = min(log_alpha, log_beta, log_t) - 50.0
    hi = max(log_alpha, log_beta, log_t) + 50.0 + math.log(n + 2)
    peak = optimize.brentq(slope, lo, hi, xtol=1e-12) if slope(hi) < 0 else hi
    top_at = min(peak, log_t)
    top = float(shape(top_at))
    width = 1.0
    while shape(top_at - width) > top - 75.0:
        width *= 2.0
    start = top_at - width
    points = {top_at, log_alpha, log_beta} | {top_at - 2.0**k for k in range(-6, 12)}
    points |= {top_at + 2.0**k for k in range(-6, 12)}
    inside = sorted(v for v in points if start < v < log_t)

    def integrand(v: float) -> float:
        return math.exp(float(shape(v)) - top)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(
            integrand, start, log_t, points=inside or None, limit=1000, epsabs=0.0, epsrel=1e-11
        )
    return top + math.log(value)


def probability_of_n_purchases(
    params: ParamsLike, t: float, n: object, *, log: bool = False
) -> np.ndarray:
    """P(X(t) = n): a randomly chosen new customer makes n repeat purchases in (0, t].

    Fader & Hardie (2006), written as its two branches (alive at t, or dropped out at y < t):

        P = (beta/(beta+t))^s NB(n; r, alpha/(alpha+t))
            + Gamma(r+n)/(Gamma(r) n!) s alpha^r beta^s K_n,
        K_n = integral_0^t y^n (alpha+y)^-(r+n) (beta+y)^-(s+1) dy,

    both positive, combined in log space (the note's closed form subtracts two 2F1 sums
    instead). `n` is a whole number or a 1-D array of them; the result has its shape. With
    log=True the natural logarithm is returned, which stays finite far in the tail.
    """
    p = _as_params(params)
    horizon = check_positive_scalar("t", t, allow_zero=True)
    counts = _as_counts("n", n)
    flat = counts.reshape(-1)
    if horizon == 0:
        out = np.where(flat == 0, 0.0, -np.inf)
    else:
        log_coef = gammaln(p.r + flat) - gammaln(p.r) - gammaln(flat + 1)
        log_alive = (
            p.s * (math.log(p.beta) - math.log(p.beta + horizon))
            + log_coef
            + p.r * (math.log(p.alpha) - math.log(p.alpha + horizon))
            + flat * (math.log(horizon) - math.log(p.alpha + horizon))
        )
        log_k = np.array([_log_dropout_integral(p, horizon, float(v)) for v in flat])
        log_dropped = (
            log_coef + math.log(p.s) + p.r * math.log(p.alpha) + p.s * math.log(p.beta) + log_k
        )
        out = np.logaddexp(log_alive, log_dropped)
    out = out.reshape(counts.shape)
    return out if log else np.exp(out)
