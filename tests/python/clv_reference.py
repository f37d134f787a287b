"""Reference computations for the CLV tests, written from the papers, not from the package.

Shared by test_clv.py (the models), test_clv_batch.py (fit/predict/holdout) and
test_customer_value.py (the built marts), so each checks against the same independent
arithmetic.
"""

from __future__ import annotations

import numpy as np

from retail_xsell.clv import BgNbdParams


def reference_expected(par: BgNbdParams, x: float, t_x: float, t: float, horizon: float) -> float:
    """Eq. (10) of the paper with 2F1 summed term by term (safe for moderate arguments)."""
    r, alpha, a, b = par.r, par.alpha, par.a, par.b
    big_a, big_b, c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + t + horizon)
    total, term, n = 0.0, 1.0, 0
    while term > 1e-18 * total or n < 5:
        total += term
        term *= (big_a + n) * (big_b + n) / ((c + n) * (n + 1)) * z
        n += 1
    bracket = c / (a - 1) * (1 - ((alpha + t) / (alpha + t + horizon)) ** big_a * total)
    odds = a / (b + x - 1) * ((alpha + t) / (alpha + t_x)) ** big_a if x > 0 else 0.0
    return bracket / (1 + odds)


def reference_expected_spend(p: float, q: float, v: float, x: float, m: float) -> float:
    """Gamma-Gamma E[mean spend | x, m_x] = p (v + x m_x) / (p x + q - 1).

    At x = 0 this is the population mean p v / (q - 1) (Fader & Hardie 2013, eq. 5).
    """
    return p * (v + x * m) / (p * x + q - 1)


def reference_probability_alive(par: BgNbdParams, x: float, t_x: float, t: float) -> float:
    """Eq. (11) of Fader, Hardie & Lee (2005) in plain arithmetic (moderate inputs only)."""
    if x == 0:
        return 1.0
    odds = par.a / (par.b + x - 1) * ((par.alpha + t) / (par.alpha + t_x)) ** (par.r + x)
    return 1.0 / (1.0 + odds)


def numerical_hessian(func, theta: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of a scalar function."""
    k = len(theta)
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * step, np.eye(k)[j] * step
            hess[i, j] = (
                func(theta + ei + ej)
                - func(theta + ei - ej)
                - func(theta - ei + ej)
                + func(theta - ei - ej)
            ) / (4 * step * step)
    return hess


# --- simulators (written from the model definitions, independent of the package) ---------


def simulate_bgnbd(rng, n, par: BgNbdParams, t, horizon=0.0):
    """Event by event: Poisson purchases at rate lambda, dropout with prob p after each.

    Returns x and t_x in (0, T] and the number of purchases in (T, T + horizon].
    """
    lam = rng.gamma(par.r, 1 / par.alpha, n)
    drop = rng.beta(par.a, par.b, n)
    clock = np.zeros(n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    active = np.flatnonzero(lam > 0)
    end = t + horizon
    while active.size:
        clock[active] += rng.exponential(1 / lam[active])
        active = active[clock[active] <= end[active]]
        calibration = clock[active] <= t[active]
        seen = active[calibration]
        x[seen] += 1
        t_x[seen] = clock[seen]
        future[active[~calibration]] += 1
        active = active[rng.random(active.size) >= drop[active]]
    return x, t_x, future
