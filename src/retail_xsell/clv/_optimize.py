"""Fitting machinery shared by the BG/NBD and Gamma-Gamma models.

Both models are fitted the same way, so the code lives here once:

* input checks that name the offending argument (a silent NaN or a mixed-up column is the
  usual way a customer-base model goes wrong, so every public entry point validates);
* compression of identical rows into (unique row, total weight), which is what lets a
  million customers on a day or week grid fit in seconds;
* a deterministic multi-start maximum-likelihood search over log-parameters, with an
  explicit convergence test instead of trusting the optimiser's own flag.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np
from scipy.optimize import minimize

#: Log-parameters are searched in [-SEARCH_BOUND, SEARCH_BOUND] (parameters in
#: [e^-30, e^30] ~ [1e-13, 1e13]). The box is only a guard against overflow: an estimate
#: that ends on it means the data do not identify that parameter, and the fit is reported
#: as not converged.
SEARCH_BOUND = 30.0

#: With more distinct rows than this, the starting points are first tried on a random
#: subsample of this many rows, and only the best one is run on all rows (see
#: screened_minimize): at a million customers on a day grid that is ~700,000 distinct
#: rows and a full multi-start search would take most of a minute.
SCREEN_ROWS = 50_000

#: A fit counts as converged when the largest gradient component of the *mean* per-customer
#: log-likelihood with respect to the log-parameters is at most this.
GRADIENT_TOLERANCE = 1e-5


class InsufficientDataError(ValueError):
    """The data cannot identify the model (too few customers, or no repeat buyers).

    A subclass of ValueError so that callers who only catch bad input still catch it, while
    a pipeline can single it out (e.g. skip a tiny segment instead of failing the run).
    """


def as_float_array(name: str, values: object, *, allow_empty: bool = False) -> np.ndarray:
    """Return `values` as a 1-D float array, or raise ValueError naming `name`."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array; got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: at least one customer is needed")
    bad = ~np.isfinite(array)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(array[index]) else "an infinite value"
        raise ValueError(f"{name} contains {kind} at index {index}")
    return array


def check_same_length(**arrays: np.ndarray) -> None:
    """Raise ValueError unless all arrays have the same length (one row per customer)."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"arrays must have one value per customer; got lengths {described}")


def check_non_negative(name: str, array: np.ndarray) -> None:
    """Raise ValueError if any value of `array` is negative."""
    negative = array < 0
    if negative.any():
        index = int(np.flatnonzero(negative)[0])
        raise ValueError(f"{name} must be >= 0; index {index} has {array[index]!r}")


def check_whole_numbers(name: str, array: np.ndarray) -> None:
    """Raise ValueError unless every value is a non-negative whole number (a count)."""
    check_non_negative(name, array)
    fractional = array != np.floor(array)
    if fractional.any():
        index = int(np.flatnonzero(fractional)[0])
        raise ValueError(
            f"{name} must be whole numbers (a count of repeat purchases); "
            f"index {index} has {array[index]!r}"
        )


def validate_weights(weights: object, n_rows: int) -> np.ndarray:
    """Return frequency weights (ones when None); they must be finite and >= 0."""
    if weights is None:
        return np.ones(n_rows)
    array = as_float_array("weights", weights)
    if len(array) != n_rows:
        raise ValueError(
            f"weights must have one value per customer; got {len(array)}, not {n_rows}"
        )
    check_non_negative("weights", array)
    return array


def check_positive_scalar(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return `value` as a float after checking it is finite and positive (or >= 0)."""
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {expected}; got {value!r}")
    return number


ParamsT = TypeVar("ParamsT")
ParamsT_co = TypeVar("ParamsT_co", covariant=True)


class _Fitted(Protocol[ParamsT_co]):
    """A fit result: its parameters alone."""

    @property
    def params(self) -> ParamsT_co: ...


def coerce_params(
    value: object,
    params_type: type[ParamsT],
    fit_type: type[_Fitted[ParamsT]],
    names: Sequence[str],
) -> ParamsT:
    """Accept a parameter dataclass, a fit (its `.params`) or a plain sequence of numbers
    in the order of `names`, so callers can predict from published parameters too."""
    if isinstance(value, params_type):
        return value
    if isinstance(value, fit_type):
        return value.params
    if not isinstance(value, Iterable):
        raise TypeError(f"params must be ({', '.join(names)}); got {type(value).__name__}")
    values = tuple(float(item) for item in value)
    if len(values) != len(names):
        raise ValueError(f"params must be ({', '.join(names)}); got {len(values)} values")
    return params_type(*values)


def row_groups(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Of equal-length columns: one input row per distinct row (in the columns'
    lexicographic order) and, per input row, the index of its distinct row.

    A lexsort of the columns: several times faster than np.unique(axis=0) on a million rows.
    """
    order = np.lexsort(columns[::-1])
    new_group = np.zeros(len(order), dtype=bool)
    new_group[:1] = True
    for column in columns:
        ordered = np.asarray(column)[order]
        new_group[1:] |= ordered[1:] != ordered[:-1]
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(new_group) - 1
    return order[new_group], inverse


def unique_rows(columns: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of equal-length columns (in lexicographic order) and, per input row,
    the index of its distinct row."""
    first, inverse = row_groups(columns)
    return [np.asarray(column)[first] for column in columns], inverse


def compress_rows(
    columns: Sequence[np.ndarray], weights: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Collapse identical rows into unique rows with summed weights (zero weights dropped).

    The likelihood of a row depends only on its values, so n identical customers contribute
    n times the same term: summing weights is exact, not an approximation.
    """
    keep = weights > 0
    unique, inverse = unique_rows([np.asarray(column, dtype=float)[keep] for column in columns])
    counts = np.bincount(inverse, weights=weights[keep], minlength=len(unique[0]))
    return unique, counts


@dataclass(frozen=True)
class MultiStartResult:
    """Outcome of `multistart_minimize` for the best start."""

    x: np.ndarray  # best log-parameters
    fun: float  # objective at x (mean negative log-likelihood)
    max_gradient: float  # largest |gradient| component at x
    converged: bool
    iterations: int  # iterations of the best start
    message: str


ObjectiveWithGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]


def multistart_minimize(
    objective: ObjectiveWithGradient,
    x0: np.ndarray,
    *,
    names: Sequence[str],
    n_starts: int,
    seed: int,
    spread: float = 1.0,
    max_iterations: int = 1000,
) -> MultiStartResult:
    """Minimise `objective` (value and gradient) from several starts and keep the best.

    Start 0 is the data-driven guess `x0`; the others add N(0, spread^2) noise to it (seeded,
    so fits are reproducible). Several starts guard against the flat ridges these
    likelihoods have (e.g. r and alpha trade off along r/alpha). `objective` should be
    the *mean* negative log-likelihood so that the tolerances do not depend on sample size.

    Convergence is judged here, not by the optimiser's flag: the best point must have a
    finite value, a gradient no larger than GRADIENT_TOLERANCE and no parameter on the
    search box. L-BFGS-B often stops with "abnormal termination in line search" once it is
    at machine precision, which is a success by this test, while it can report success on a
    flat plateau at the bound, which is not.
    """
    if n_starts < 1:
        raise ValueError(f"n_starts must be >= 1; got {n_starts}")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1; got {max_iterations}")
    x0 = np.clip(np.asarray(x0, dtype=float), -SEARCH_BOUND + 1, SEARCH_BOUND - 1)
    rng = np.random.default_rng(seed)
    starts = [x0] + [
        np.clip(x0 + rng.normal(0.0, spread, x0.size), -SEARCH_BOUND + 1, SEARCH_BOUND - 1)
        for _ in range(n_starts - 1)
    ]

    def guarded(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # A non-finite value would derail the line search; a huge finite one makes it back off.
        value, gradient = objective(theta)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e100, np.zeros_like(theta)
        return value, gradient

    outcomes = []
    for start in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = minimize(
                guarded,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-SEARCH_BOUND, SEARCH_BOUND)] * x0.size,
                options={"maxiter": max_iterations, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20},
            )
        outcomes.append(result)

    best = min(outcomes, key=lambda result: result.fun)
    value, gradient = objective(best.x)
    max_gradient = float(np.max(np.abs(gradient))) if np.all(np.isfinite(gradient)) else math.inf
    on_bound = [
        name for name, theta in zip(names, best.x, strict=True) if abs(theta) >= SEARCH_BOUND - 1e-6
    ]
    agreeing = sum(
        abs(result.fun - best.fun) <= 1e-8 * max(1.0, abs(best.fun)) for result in outcomes
    )
    problems = []
    if not math.isfinite(value):
        problems.append("the log-likelihood is not finite at the best point")
    if on_bound:
        problems.append(
            f"{', '.join(on_bound)} reached the search bound exp(+/-{SEARCH_BOUND:g}): "
            "the data do not identify it"
        )
    if max_gradient > GRADIENT_TOLERANCE:
        problems.append(
            f"gradient {max_gradient:.2e} above tolerance {GRADIENT_TOLERANCE:.0e} "
            f"after {best.nit} iterations"
        )
    status = "converged" if not problems else "NOT converged: " + "; ".join(problems)
    message = (
        f"{status} ({agreeing}/{n_starts} starts reached the best log-likelihood; "
        f"max |gradient| {max_gradient:.1e}; optimiser: {best.message})"
    )
    return MultiStartResult(
        x=np.asarray(best.x, dtype=float),
        fun=float(value),
        max_gradient=max_gradient,
        converged=not problems,
        iterations=int(best.nit),
        message=message,
    )


def subset_objectives(
    loglik: Callable[..., tuple[np.ndarray, np.ndarray | None]],
    make_data: Callable[..., Any],
    columns: Sequence[np.ndarray],
    weights: np.ndarray,
) -> tuple[Any, Callable[[np.ndarray | None], ObjectiveWithGradient]]:
    """The model's data on all (compressed) rows, and `objective_for` for screened_minimize.

    `make_data(*columns, weights)` builds the model's data object (with `.w` and
    `.total`); `loglik(theta, data, gradient=True)` returns per-row log-likelihoods and
    the weighted gradient. Each objective is the mean negative log-likelihood on its rows.
    """
    full = make_data(*columns, weights)

    def objective_for(rows: np.ndarray | None) -> ObjectiveWithGradient:
        part = full if rows is None else make_data(*(c[rows] for c in columns), weights[rows])

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            ll, grad = loglik(theta, part, gradient=True)
            assert grad is not None, "loglik(gradient=True) returns the gradient"
            return -float(np.dot(part.w, ll)) / part.total, -grad / part.total

        return objective

    return full, objective_for


def screened_minimize(
    objective_for: Callable[[np.ndarray | None], ObjectiveWithGradient],
    n_rows: int,
    x0: np.ndarray,
    *,
    names: Sequence[str],
    n_starts: int,
    seed: int,
    max_iterations: int,
    screen_rows: int = SCREEN_ROWS,
) -> MultiStartResult:
    """multistart_minimize, with the starts screened on a subsample when the data are big.

    `objective_for(rows)` returns the objective on those rows of the (compressed) data, or
    on all rows for None. Up to `screen_rows` rows the search is the plain multi-start one.
    Beyond, the starts run on a seeded random subsample of `screen_rows` rows (whose
    likelihood has the same shape, so the best basin is found there), and the best point
    is then optimised on all rows to the same convergence test. The result is the
    full-data maximum; only the choice among starting points used the subsample.
    """
    if n_starts == 1 or n_rows <= screen_rows:
        return multistart_minimize(
            objective_for(None),
            x0,
            names=names,
            n_starts=n_starts,
            seed=seed,
            max_iterations=max_iterations,
        )
    rows = np.sort(np.random.default_rng(seed).choice(n_rows, screen_rows, replace=False))
    screen = multistart_minimize(
        objective_for(rows),
        x0,
        names=names,
        n_starts=n_starts,
        seed=seed,
        max_iterations=max_iterations,
    )
    final = multistart_minimize(
        objective_for(None),
        screen.x,
        names=names,
        n_starts=1,
        seed=seed,
        max_iterations=max_iterations,
    )
    return replace(
        final,
        message=(
            f"{final.message}; started from the best of {n_starts} starts on a random "
            f"{screen_rows:,} of {n_rows:,} distinct rows"
        ),
    )
