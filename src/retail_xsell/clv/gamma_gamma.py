"""Gamma-Gamma model of average transaction value.

Fader, Hardie & Lee (2005), "RFM and CLV: Using iso-value curves for customer base
analysis", JMR 42(4); Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
Each transaction value of a customer is Gamma(p, rate nu); across customers
nu ~ Gamma(q, rate v). Only the mean value m_x of a customer's x repeat transactions is
used, and only for customers with x > 0. The model assumes spend is independent of
purchase frequency; check that on the data before combining it with BG/NBD (docs/clv.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from ._optimize import (
    SCREEN_ROWS,
    InsufficientDataError,
    as_float_array,
    check_positive_scalar,
    check_same_length,
    check_whole_numbers,
    coerce_params,
    compress_rows,
    screened_minimize,
    subset_objectives,
    validate_weights,
)

#: fit_gamma_gamma needs at least this many customers with x > 0 (total weight).
MIN_REPEAT_CUSTOMERS = 20

_PARAMETER_NAMES = ("p", "q", "v")


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters; v is in money units (p and q are unit-free)."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        for name in _PARAMETER_NAMES:
            check_positive_scalar(name, getattr(self, name))


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma model.

    n_customers is the total weight of the customers the model was fitted on (x > 0);
    n_excluded is the total weight of the rows with x = 0, which carry no spend information.
    """

    p: float
    q: float
    v: float
    log_likelihood: float
    converged: bool
    n_customers: float
    n_excluded: float
    n_unique: int
    iterations: int
    message: str
    fit_seconds: float

    @property
    def params(self) -> GammaGammaParams:
        """The parameters alone, e.g. for prediction."""
        return GammaGammaParams(self.p, self.q, self.v)


ParamsLike = GammaGammaParams | GammaGammaFit


def _as_params(params: object) -> GammaGammaParams:
    return coerce_params(params, GammaGammaParams, GammaGammaFit, _PARAMETER_NAMES)


def _validate(
    frequency: object, monetary_value: object, *, repeat_only: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Check (x, m_x); m_x must be > 0 where x > 0 (and is ignored where x = 0)."""
    x = as_float_array("frequency", frequency)
    m = as_float_array("monetary_value", monetary_value)
    check_same_length(frequency=x, monetary_value=m)
    check_whole_numbers("frequency", x)
    if repeat_only and (x == 0).any():
        i = int(np.flatnonzero(x == 0)[0])
        raise ValueError(
            "frequency must be > 0 here: the Gamma-Gamma likelihood is defined for customers "
            f"with repeat purchases only; index {i} has frequency 0"
        )
    bad = (x > 0) & (m <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            "monetary_value must be > 0 for customers with repeat purchases (it is the mean "
            f"value of their repeat transactions); index {i} has {m[i]!r}"
        )
    return x, m


class _Data:
    """(x, m_x) rows with weights; x-only terms are evaluated once per distinct x."""

    def __init__(self, x: np.ndarray, m: np.ndarray, w: np.ndarray) -> None:
        self.x, self.m, self.w = x, m, w
        self.log_m = np.log(m)
        self.xu, self.ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(self.ix, weights=w, minlength=len(self.xu))
        self.log_xu = np.log(self.xu)
        self.total = float(w.sum())


def _loglik(
    log_params: np.ndarray, data: _Data, *, gradient: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row log density of m_x and the weighted-sum gradient in log-parameters.

    ln f = ln Gamma(px+q) - ln Gamma(px) - ln Gamma(q) + q ln v + (px-1) ln m_x + px ln x
           - (px+q) ln(x m_x + v)
    """
    p, q, v = np.exp(log_params)
    xu, x = data.xu, data.x
    px_u = p * xu
    per_x = gammaln(px_u + q) - gammaln(px_u) - gammaln(q) + px_u * data.log_xu
    px = px_u[data.ix]
    log_xmv = np.log(x * data.m + v)
    ll = per_x[data.ix] + q * math.log(v) + (px - 1) * data.log_m - (px + q) * log_xmv
    if not gradient:
        return ll, None
    w, wx = data.w, data.wx
    psi_pxq = digamma(px_u + q)
    d_p = np.dot(wx, xu * (psi_pxq - digamma(px_u) + data.log_xu)) + np.dot(
        w, x * (data.log_m - log_xmv)
    )
    d_q = np.dot(wx, psi_pxq - digamma(q)) + np.dot(w, math.log(v) - log_xmv)
    d_v = q / v * data.total - np.dot(w, (px + q) / (x * data.m + v))
    return ll, np.array([d_p * p, d_q * q, d_v * v])


def gamma_gamma_log_likelihood(
    params: ParamsLike | tuple[float, float, float],
    frequency: object,
    monetary_value: object,
) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood (a density in money units) for x > 0."""
    g = _as_params(params)
    x, m = _validate(frequency, monetary_value, repeat_only=True)
    ll, _ = _loglik(np.log([g.p, g.q, g.v]), _Data(x, m, np.ones(len(x))), gradient=False)
    return ll


def fit_gamma_gamma(
    frequency: object,
    monetary_value: object,
    *,
    weights: object = None,
    n_starts: int = 4,
    seed: int = 0,
    max_iterations: int = 1000,
    _screen_rows: int = SCREEN_ROWS,
) -> GammaGammaFit:
    """Fit Gamma-Gamma by maximum likelihood on the customers with x > 0.

    Rows with x = 0 may be passed (so the same arrays serve both models) and are excluded;
    their monetary_value is ignored. Raises InsufficientDataError with fewer than
    MIN_REPEAT_CUSTOMERS repeat customers or when every m_x is identical (p and q are then
    infinite); returns converged=False with the reason when the search fails.
    """
    started = time.perf_counter()
    x, m = _validate(frequency, monetary_value, repeat_only=False)
    w = validate_weights(weights, len(x))
    repeat = (x > 0) & (w > 0)
    n_customers = float(w[repeat].sum())
    if n_customers < MIN_REPEAT_CUSTOMERS:
        raise InsufficientDataError(
            f"Gamma-Gamma needs at least {MIN_REPEAT_CUSTOMERS} customers with repeat "
            f"purchases (frequency > 0); got {n_customers:g}"
        )
    if np.ptp(m[repeat]) == 0:
        raise InsufficientDataError(
            "monetary_value is identical for every repeat customer: with no variation in "
            "spend the Gamma-Gamma parameters are not identified"
        )
    (xc, mc), wc = compress_rows([x[repeat], m[repeat]], w[repeat])
    data, objective_for = subset_objectives(_loglik, _Data, [xc, mc], wc)

    # Start at p = 2, q = 3 with v matching the mean spend, E[m] = p v / (q - 1).
    mean_spend = float(np.dot(wc, mc)) / data.total
    x0 = np.log([2.0, 3.0, mean_spend])
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
    p, q, v = (float(value) for value in np.exp(result.x))
    ll, _ = _loglik(result.x, data, gradient=False)
    return GammaGammaFit(
        p=p,
        q=q,
        v=v,
        log_likelihood=float(np.dot(data.w, ll)),
        converged=result.converged,
        n_customers=n_customers,
        n_excluded=float(w[(x == 0) & (w > 0)].sum()),
        n_unique=len(xc),
        iterations=result.iterations,
        message=result.message,
        fit_seconds=time.perf_counter() - started,
    )


def expected_spend(fit: ParamsLike, frequency: object, monetary_value: object) -> np.ndarray:
    """E[mean transaction value | x, m_x] = p (v + x m_x) / (p x + q - 1).

    For x = 0 this is the population mean p v / (q - 1) (m_x is ignored). The mean of the
    mixing distribution is infinite when q <= 1, so that raises ValueError.
    """
    g = _as_params(fit)
    if g.q <= 1:
        raise ValueError(
            f"expected_spend needs q > 1: with q = {g.q:g} the mean transaction value of "
            "the population is infinite"
        )
    x, m = _validate(frequency, monetary_value, repeat_only=False)
    m = np.where(x > 0, m, 0.0)
    return g.p * (g.v + x * m) / (g.p * x + g.q - 1)
