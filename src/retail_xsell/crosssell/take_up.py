"""The take-up model: P(customer first buys category B within the horizon | what is known).

A logistic regression on features known at a cut-off (docs/cross_sell.md), trained on an
earlier window of the data's own history and applied at a later cut-off. Logistic
regression because its maximum-likelihood fit with an intercept is calibrated in the
large on the data it was fitted on (the mean prediction equals the observed rate), its
coefficients can be read, and Newton's method fits millions of rows in seconds.

Features are standardised (centred and scaled by their standard deviation) before the fit,
so one small ridge penalty treats them alike and keeps the fit finite on separable data; the
intercept is not penalised. The centres and scales are part of the fit and applied again
when it predicts, so a fit is reproducible from its stored numbers alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

#: Ridge penalty (on standardised coefficients, in units of the log-likelihood). Against a
#: training set of thousands of rows it moves no coefficient noticeably; it only keeps
#: separable or collinear data from running a coefficient to infinity.
DEFAULT_L2 = 1.0

#: Newton's method stops when no coefficient moves by more than this (standardised scale).
STEP_TOLERANCE = 1e-8
MAX_ITERATIONS = 100

#: The log-odds of a fallback whose training rows were all take-ups (or none): sigma(750)
#: is 1.0 and sigma(-750) 0.0 in double precision, and the number stays finite for storage.
CERTAIN_LOG_ODDS = 750.0

STATUS_FITTED = "fitted"
STATUS_FALLBACK = "fallback"


@dataclass(frozen=True)
class TakeUpFit:
    """A fitted (or fallen-back) take-up model.

    A fallback (too little history: no positive or no negative label) predicts the
    training rate (0 or 1) for everyone: its coefficients are all 0 and its intercept is
    -CERTAIN_LOG_ODDS or +CERTAIN_LOG_ODDS.
    """

    features: tuple[str, ...]
    intercept: float
    coefficients: tuple[float, ...]
    centers: tuple[float, ...]
    scales: tuple[float, ...]
    status: str
    message: str
    n_rows: int
    n_positive: int
    log_likelihood: float
    converged: bool
    iterations: int
    l2: float = DEFAULT_L2
    extra: Mapping[str, float] = field(default_factory=dict)

    @property
    def base_rate(self) -> float:
        return self.n_positive / self.n_rows if self.n_rows else 0.0

    def linear_predictor(self, columns: Mapping[str, object]) -> np.ndarray:
        """The log-odds of take-up for rows given as {feature: array}."""
        design = _design(columns, self.features)
        standardised = (design - np.asarray(self.centers)) / np.asarray(self.scales)
        return self.intercept + standardised @ np.asarray(self.coefficients, dtype=float)

    def predict(self, columns: Mapping[str, object]) -> np.ndarray:
        """P(take-up within the horizon) for rows given as {feature: array}."""
        return expit(self.linear_predictor(columns))


def _design(columns: Mapping[str, object], features: Sequence[str]) -> np.ndarray:
    missing = [name for name in features if name not in columns]
    if missing:
        raise KeyError(f"take-up features missing from the input: {', '.join(missing)}")
    arrays = [np.asarray(columns[name], dtype=float) for name in features]
    lengths = {a.shape for a in arrays}
    if len(lengths) > 1:
        raise ValueError(f"take-up feature columns differ in length: {sorted(lengths)}")
    design = np.column_stack(arrays) if arrays else np.empty((0, 0))
    bad = [name for name, a in zip(features, arrays, strict=True) if not np.isfinite(a).all()]
    if bad:
        raise ValueError(f"take-up features must be finite numbers; not so in {', '.join(bad)}")
    return design


def _log_likelihood(eta: np.ndarray, y: np.ndarray) -> float:
    # log P(y | eta) = y log sigma(eta) + (1 - y) log sigma(-eta), without overflow.
    return float(np.sum(y * log_expit(eta) + (1.0 - y) * log_expit(-eta)))


def fit_take_up(
    columns: Mapping[str, object],
    label: object,
    features: Sequence[str],
    *,
    l2: float = DEFAULT_L2,
    max_iterations: int = MAX_ITERATIONS,
) -> TakeUpFit:
    """Fit P(label = 1) = sigma(b0 + sum_j b_j (f_j - center_j) / scale_j) by penalised
    maximum likelihood (Newton's method with step halving).

    columns holds one array per feature name; label is 0/1 (or boolean). Raises
    ValueError on bad input (non-finite features, labels other than 0/1, length
    mismatch, negative l2); falls back to the training rate when every label is equal.
    """
    features = tuple(features)
    if not features:
        raise ValueError("the take-up model needs at least one feature")
    if not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
    design = _design(columns, features)
    y = np.asarray(label, dtype=float)
    if y.shape != (design.shape[0],):
        raise ValueError(
            f"label has {y.size} values for {design.shape[0]} rows of features: they must match"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("label must hold only 0/1 (false/true)")
    n, n_positive = int(y.size), int(y.sum())
    centers = design.mean(axis=0) if n else np.zeros(len(features))
    scales = design.std(axis=0) if n else np.ones(len(features))
    scales = np.where(scales > 0, scales, 1.0)
    common: dict[str, Any] = {
        "features": features,
        "centers": tuple(float(c) for c in centers),
        "scales": tuple(float(s) for s in scales),
        "n_rows": n,
        "n_positive": n_positive,
        "l2": l2,
    }
    if n_positive in (0, n):
        return TakeUpFit(
            intercept=CERTAIN_LOG_ODDS if n and n_positive == n else -CERTAIN_LOG_ODDS,
            coefficients=(0.0,) * len(features),
            status=STATUS_FALLBACK,
            message=(
                f"{n} training rows with {n_positive} take-ups: a model needs both outcomes; "
                "every candidate gets the training rate"
            ),
            log_likelihood=0.0,
            converged=False,
            iterations=0,
            **common,
        )

    z = np.column_stack([np.ones(n), (design - centers) / scales])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    rate = n_positive / n
    beta = np.zeros(z.shape[1])
    beta[0] = math.log(rate / (1 - rate))

    def objective(b: np.ndarray) -> float:
        return _log_likelihood(z @ b, y) - 0.5 * float(np.sum(penalty * b * b))

    current = objective(beta)
    converged = False
    iterations = 0
    while not converged and iterations < max_iterations:
        iterations += 1
        p = expit(z @ beta)
        gradient = z.T @ (y - p) - penalty * beta
        weights = p * (1.0 - p)
        hessian = (z * weights[:, None]).T @ z + np.diag(penalty)
        # A tiny jitter keeps a constant (zero-variance) feature's row solvable.
        step = np.linalg.solve(hessian + 1e-12 * np.eye(z.shape[1]), gradient)
        size = 1.0
        while True:
            candidate = beta + size * step
            value = objective(candidate)
            if value >= current - 1e-12 or size < 1e-10:
                break
            size /= 2.0
        converged = float(np.max(np.abs(candidate - beta))) < STEP_TOLERANCE
        beta, current = candidate, value
    return TakeUpFit(
        intercept=float(beta[0]),
        coefficients=tuple(float(b) for b in beta[1:]),
        status=STATUS_FITTED,
        message=(
            f"converged after {iterations} Newton steps"
            if converged
            else f"did not converge in {max_iterations} Newton steps"
        ),
        log_likelihood=_log_likelihood(z @ beta, y),
        converged=converged,
        iterations=iterations,
        **common,
    )
