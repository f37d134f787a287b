"""CLV for a whole customer base: the fit, the per-customer figures and the holdout check.

The dbt Python models (models/intermediate/int_clv_*.py) only move columns between DuckDB
and these functions; every decision (units, horizon, discounting, returns, what happens
when the models cannot be fitted) is made here, so it can be tested without dbt. The
fitted run is a flat record (`ClvModelRun.as_row`) that is stored in a table and read back
for the predictions, so every figure can be traced to the fit that made it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .. import __version__
from . import bgnbd, pareto_nbd
from ._optimize import InsufficientDataError, as_float_array, compress_rows
from .bgnbd import BgNbdParams
from .gamma_gamma import GammaGammaParams, fit_gamma_gamma
from .pareto_nbd import ParetoNbdParams
from .value import discounted_purchases, period_ends, predicted_clv, units_per_year

#: The BG/NBD time unit of the product: recency, age, alpha and the horizon are in weeks.
TIME_UNIT = "week"
WEEKS_PER_MONTH = units_per_year(TIME_UNIT) / 12
#: Discounting periods per year (monthly), see value.predicted_clv.
PERIODS_PER_YEAR = 12

METHOD_MODEL = "bgnbd_gamma_gamma"
METHOD_PARETO = "pareto_nbd_gamma_gamma"
METHOD_FALLBACK = "population_average_fallback"
ON_FIT_FAILURE = ("fallback", "error")
#: What one purchase is (dbt var clv_purchase_grain; macros/clv.sql counts them).
PURCHASE_GRAINS = ("day", "order")
#: The purchase models, in order of preference on a tie: (label, module, parameter names).
PURCHASE_MODELS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "bgnbd": ("BG/NBD", bgnbd, ("r", "alpha", "a", "b")),
    "pareto_nbd": ("Pareto/NBD", pareto_nbd, ("r", "alpha", "s", "beta")),
}
#: Pareto/NBD's likelihood needs a hypergeometric integral per distinct (x, t_x, T) row,
#: about 40x BG/NBD's cost: at a million customers one fit took 154-190 s. It is fitted on
#: a uniform random sample of at most this many customers (fixed seed), which estimates
#: its four parameters to well under their own spread, and its log-likelihood is then
#: evaluated on every customer, so that it compares with BG/NBD's.
PARETO_NBD_FIT_CUSTOMERS = 50_000
#: dbt var clv_purchase_model: 'auto' picks by the holdout, the others force a model.
PURCHASE_MODEL_SETTINGS = ("auto", *PURCHASE_MODELS)
METHOD_OF_MODEL = {"bgnbd": METHOD_MODEL, "pareto_nbd": METHOD_PARETO}


class ClvFitError(RuntimeError):
    """The CLV models could not be fitted and the settings say to stop."""


@dataclass(frozen=True)
class ClvSettings:
    """What a consumer may choose (dbt vars clv_*); validated so a typo fails loudly."""

    horizon_months: float = 12.0
    annual_discount_rate: float = 0.10
    on_fit_failure: str = "fallback"
    purchase_model: str = "auto"
    purchase_grain: str = "day"
    n_starts: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        horizon = _finite_number("clv_horizon_months", self.horizon_months)
        if horizon <= 0:
            raise ValueError(f"clv_horizon_months must be > 0; got {self.horizon_months!r}")
        rate = _finite_number("clv_annual_discount_rate", self.annual_discount_rate)
        if not 0 <= rate < 1:
            raise ValueError(
                "clv_annual_discount_rate must be a yearly rate in [0, 1), e.g. 0.1 for 10%; "
                f"got {self.annual_discount_rate!r}"
            )
        if self.on_fit_failure not in ON_FIT_FAILURE:
            raise ValueError(
                f"clv_on_fit_failure must be one of {', '.join(ON_FIT_FAILURE)}; "
                f"got {self.on_fit_failure!r}"
            )
        for name, value, allowed in (
            ("clv_purchase_model", self.purchase_model, PURCHASE_MODEL_SETTINGS),
            ("clv_purchase_grain", self.purchase_grain, PURCHASE_GRAINS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        object.__setattr__(self, "horizon_months", horizon)
        object.__setattr__(self, "annual_discount_rate", rate)

    @property
    def horizon_weeks(self) -> float:
        return self.horizon_months * WEEKS_PER_MONTH


def _finite_number(name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return number


@dataclass(frozen=True)
class ClvModelRun:
    """One fit of the CLV models: settings, parameters, goodness of fit, timing.

    Parameters of a model that was not fitted are None. Both purchase models are fitted
    (bgnbd_*, pareto_nbd_*) and scored on the holdout (*_holdout_*); `purchase_model` is
    the one used, chosen by `purchase_model_rule`. `method` says how the figures are
    made: METHOD_MODEL (BG/NBD x Gamma-Gamma), METHOD_PARETO (Pareto/NBD x Gamma-Gamma)
    or METHOD_FALLBACK (every customer gets the population's average purchase rate and
    spend per purchase; see docs/clv.md).
    """

    method: str
    fit_status: str  # 'fitted' or 'fallback'
    fit_message: str
    customer_count: int
    repeat_customer_count: int
    horizon_months: float
    horizon_weeks: float
    annual_discount_rate: float
    revenue_retention_rate: float
    purchase_grain: str = "day"
    purchase_model: str | None = None
    purchase_model_rule: str = ""
    bgnbd_r: float | None = None
    bgnbd_alpha: float | None = None
    bgnbd_a: float | None = None
    bgnbd_b: float | None = None
    bgnbd_log_likelihood: float | None = None
    bgnbd_converged: bool | None = None
    bgnbd_iterations: int | None = None
    bgnbd_fit_seconds: float | None = None
    bgnbd_holdout_log_likelihood: float | None = None
    bgnbd_holdout_mean_absolute_error: float | None = None
    bgnbd_holdout_relative_error: float | None = None
    pareto_nbd_r: float | None = None
    pareto_nbd_alpha: float | None = None
    pareto_nbd_s: float | None = None
    pareto_nbd_beta: float | None = None
    pareto_nbd_log_likelihood: float | None = None
    pareto_nbd_converged: bool | None = None
    pareto_nbd_iterations: int | None = None
    pareto_nbd_fit_seconds: float | None = None
    pareto_nbd_holdout_log_likelihood: float | None = None
    pareto_nbd_holdout_mean_absolute_error: float | None = None
    pareto_nbd_holdout_relative_error: float | None = None
    gamma_gamma_p: float | None = None
    gamma_gamma_q: float | None = None
    gamma_gamma_v: float | None = None
    gamma_gamma_log_likelihood: float | None = None
    gamma_gamma_converged: bool | None = None
    gamma_gamma_iterations: int | None = None
    gamma_gamma_customer_count: int | None = None
    gamma_gamma_fit_seconds: float | None = None
    fallback_purchases_per_week: float | None = None
    fallback_spend_per_order: float | None = None
    time_unit: str = TIME_UNIT
    model_version: str = f"retail_xsell {__version__}"
    model_run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    fitted_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))
    fit_seconds: float = 0.0

    def as_row(self) -> dict[str, Any]:
        """A flat record for the model-run table (column order = field order)."""
        return asdict(self)


_SQL_TYPES = {
    "str": "varchar",
    "str | None": "varchar",
    "int": "bigint",
    "int | None": "bigint",
    "float": "double",
    "float | None": "double",
    "bool | None": "boolean",
    "datetime": "timestamp",
}
#: SQL type of each column of the model-run table, in order.
RUN_COLUMN_TYPES: dict[str, str] = {f.name: _SQL_TYPES[str(f.type)] for f in fields(ClvModelRun)}


def _rfm(frequency: object, recency: object, age: object):
    # A build may have no customer with an order yet; that is a fallback, not a crash.
    x = as_float_array("frequency", frequency, allow_empty=True)
    t_x = as_float_array("recency", recency, allow_empty=True)
    t = as_float_array("age", age, allow_empty=True)
    if not x.size == t_x.size == t.size:
        raise ValueError("frequency, recency and age need one value per customer")
    return x, t_x, t


def _arrays(frequency: object, recency: object, age: object, monetary_value: object):
    x, t_x, t = _rfm(frequency, recency, age)
    # m_x is undefined (null, NaN) for customers without a repeat purchase.
    m = np.asarray(monetary_value, dtype=float).copy()
    if m.shape != x.shape:
        raise ValueError(
            f"monetary_value has {m.size} values but frequency has {x.size}; "
            "pass one value per customer"
        )
    m[x == 0] = 0.0
    return x, t_x, t, m


def spend_frequency(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The x Gamma-Gamma conditions on: 0 where every repeat purchase was free (m_x = 0).

    A free item is a real sale (so it counts as a purchase), but a mean spend of 0 is
    outside Gamma-Gamma's support; such customers get the population's mean spend.
    """
    return np.where(m > 0, x, 0.0)


@dataclass(frozen=True)
class HoldoutScore:
    """How one purchase model did on the holdout check (None where it was not fitted)."""

    log_likelihood: float | None
    mean_absolute_error: float | None
    relative_error: float | None


def choose_purchase_model(setting: str, scores: Mapping[str, HoldoutScore]) -> tuple[str, str]:
    """The purchase model to use and the rule that chose it (docs/clv.md).

    A forced setting ('bgnbd', 'pareto_nbd') wins. 'auto' takes the model with the lower
    per-customer mean absolute error of the holdout forecast; a tie, or a model without a
    holdout score, goes to BG/NBD (the simpler model, and the product's default).
    """
    if setting != "auto":
        if setting not in PURCHASE_MODELS:
            raise ValueError(
                f"clv_purchase_model must be one of {', '.join(PURCHASE_MODEL_SETTINGS)}; "
                f"got {setting!r}"
            )
        return setting, f"forced by clv_purchase_model = {setting}"
    errors = {
        name: scores[name].mean_absolute_error
        for name in PURCHASE_MODELS
        if name in scores and scores[name].mean_absolute_error is not None
    }
    shown = ", ".join(f"{name} {error:.6g}" for name, error in errors.items()) or "none"
    bg, pareto = errors.get("bgnbd"), errors.get("pareto_nbd")
    if pareto is not None and (bg is None or pareto < bg):
        return "pareto_nbd", f"auto: lower holdout mean absolute error per customer ({shown})"
    return "bgnbd", f"auto: BG/NBD unless Pareto/NBD has a lower holdout error ({shown})"


def _sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """All row indices, or a sorted uniform random sample of ``limit`` of them."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _fit_purchase_models(
    x: np.ndarray, t_x: np.ndarray, t: np.ndarray, settings: ClvSettings
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Fit every purchase model: (run fields, fits, problem per model; '' = converged)."""
    fields: dict[str, Any] = {}
    fits: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, (label, module, params) in PURCHASE_MODELS.items():
        fitter = getattr(module, f"fit_{name}")  # fit_bgnbd, fit_pareto_nbd
        limit = PARETO_NBD_FIT_CUSTOMERS if name == "pareto_nbd" else x.size
        rows = _sample_rows(x.size, limit, settings.seed)
        try:
            fit = fitter(
                x[rows],
                t_x[rows],
                t[rows],
                time_unit=TIME_UNIT,
                n_starts=settings.n_starts,
                seed=settings.seed,
            )
        except InsufficientDataError as error:
            problems[name] = str(error)
            continue
        if rows.size < x.size:
            (xc, txc, tc), wc = compress_rows([x, t_x, t], np.ones(x.size))
            everyone = float(np.dot(wc, pareto_nbd.pareto_nbd_log_likelihood(fit, xc, txc, tc)))
            fit = replace(fit, log_likelihood=everyone)
        fits[name] = fit
        fields |= _prefixed(name, fit, (*params, *_FIT_FIELDS))
        problems[name] = "" if fit.converged else f"{label} did not converge: {fit.message}"
    return fields, fits, problems


#: What the run table keeps of each model's fit besides its parameters.
_FIT_FIELDS = ("log_likelihood", "converged", "iterations", "fit_seconds")


def _prefixed(prefix: str, fit: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {f"{prefix}_{name}": getattr(fit, name) for name in names}


def fit_clv_models(
    frequency: object,
    recency: object,
    age: object,
    monetary_value: object,
    *,
    order_count: int,
    sales_revenue: float,
    net_revenue: float,
    settings: ClvSettings,
    holdout_scores: Mapping[str, HoldoutScore] | None = None,
) -> ClvModelRun:
    """Fit BG/NBD and Pareto/NBD (weeks) and Gamma-Gamma on one calibration period.

    The purchase model used is chosen by choose_purchase_model from settings.purchase_model
    and the holdout scores (evaluate_holdout); under 'auto', when the chosen model does not
    converge on the whole history and the other does, the other is used (the rule says so).
    order_count is the number of purchases (at the purchase grain) the spend comes from.

    order_count, sales_revenue and net_revenue are totals over the same customers and
    period: sales revenue is what the orders were worth when placed, net revenue is after
    returns. Their ratio, the revenue retention rate, turns predicted sales into predicted
    net revenue. When a model cannot be fitted (too few customers or repeat buyers, spend
    without variation, no convergence) the run falls back to population averages, or
    raises ClvFitError when settings.on_fit_failure == 'error'.
    """
    started = time.perf_counter()
    x, t_x, t, m = _arrays(frequency, recency, age, monetary_value)
    if sales_revenue < 0 or net_revenue > sales_revenue + 1e-9 * max(1.0, sales_revenue):
        raise ValueError(
            f"sales revenue ({sales_revenue:g}) must be >= 0 and net revenue "
            f"({net_revenue:g}) no more than it: returns only ever reduce revenue"
        )
    retention = 1.0 if sales_revenue == 0 else min(1.0, max(0.0, net_revenue / sales_revenue))
    common: dict[str, Any] = {
        "customer_count": int(x.size),
        "repeat_customer_count": int((x > 0).sum()),
        "horizon_months": settings.horizon_months,
        "horizon_weeks": settings.horizon_weeks,
        "annual_discount_rate": settings.annual_discount_rate,
        "revenue_retention_rate": retention,
        "purchase_grain": settings.purchase_grain,
    }
    scores = dict(holdout_scores or {})
    for name in PURCHASE_MODELS:
        score = scores.get(name)
        if score is not None:
            common[f"{name}_holdout_log_likelihood"] = score.log_likelihood
            common[f"{name}_holdout_mean_absolute_error"] = score.mean_absolute_error
            common[f"{name}_holdout_relative_error"] = score.relative_error
    chosen, rule = choose_purchase_model(settings.purchase_model, scores)
    fitted: dict[str, Any] = {}
    problem = "" if x.size else "no customer has a completed order"
    try:
        if problem:
            raise InsufficientDataError(problem)
        fields, _, problems = _fit_purchase_models(x, t_x, t, settings)
        fitted |= fields
        other = next(name for name in PURCHASE_MODELS if name != chosen)
        if problems[chosen] and settings.purchase_model == "auto" and not problems[other]:
            rule += f"; {chosen} failed on the whole history ({problems[chosen]}), so {other}"
            chosen = other
        problem = problems[chosen]
        gg = fit_gamma_gamma(
            spend_frequency(x, m), m, n_starts=settings.n_starts, seed=settings.seed
        )
        fitted |= _prefixed("gamma_gamma", gg, ("p", "q", "v", *_FIT_FIELDS))
        fitted["gamma_gamma_customer_count"] = int(gg.n_customers)
        if not gg.converged:
            problem = problem or f"Gamma-Gamma did not converge: {gg.message}"
        elif gg.q <= 1:
            problem = problem or (
                f"Gamma-Gamma gives q = {gg.q:.3g} <= 1: the population's mean order value "
                "would be infinite"
            )
    except InsufficientDataError as error:
        problem = problem or str(error)

    common["purchase_model_rule"] = rule
    if not problem:
        return ClvModelRun(
            method=METHOD_OF_MODEL[chosen],
            fit_status="fitted",
            fit_message=f"{PURCHASE_MODELS[chosen][0]} and Gamma-Gamma converged",
            purchase_model=chosen,
            fit_seconds=time.perf_counter() - started,
            **common,
            **fitted,
        )
    message = (
        f"the CLV models could not be fitted on {x.size} customers "
        f"({int((x > 0).sum())} with a repeat purchase): {problem}"
    )
    if settings.on_fit_failure == "error":
        raise ClvFitError(
            f"{message}. Build on more history, or set the dbt var clv_on_fit_failure: "
            "fallback to publish flagged population averages instead."
        )
    total_age = float(t.sum())
    return ClvModelRun(
        method=METHOD_FALLBACK,
        fit_status="fallback",
        fit_message=f"{message}; every customer gets the population averages",
        fallback_purchases_per_week=float(x.sum()) / total_age if total_age > 0 else 0.0,
        fallback_spend_per_order=sales_revenue / order_count if order_count > 0 else 0.0,
        fit_seconds=time.perf_counter() - started,
        **common,
        **fitted,
    )


def predict_customer_value(
    run: Mapping[str, Any],
    frequency: object,
    recency: object,
    age: object,
    monetary_value: object,
) -> dict[str, np.ndarray]:
    """Per-customer figures from a stored run (a row of the model-run table).

    Returns probability_alive (NaN under the fallback, which has no dropout model),
    expected_purchases over the run's horizon (undiscounted), expected_spend_per_purchase
    (sales value of an order, before returns) and predicted_clv: expected purchases
    discounted monthly at the run's rate, times expected spend, times the revenue retention
    rate, i.e. expected net revenue.
    """
    x, t_x, t, m = _arrays(frequency, recency, age, monetary_value)
    if x.size == 0:
        names = ("probability_alive", "expected_purchases", "expected_spend_per_purchase")
        return {name: np.empty(0) for name in (*names, "predicted_clv")}
    horizon = float(run["horizon_weeks"])
    rate = float(run["annual_discount_rate"])
    retention = float(run["revenue_retention_rate"])
    if run["method"] in (METHOD_MODEL, METHOD_PARETO):
        name = "bgnbd" if run["method"] == METHOD_MODEL else "pareto_nbd"
        module = PURCHASE_MODELS[name][1]
        kind = BgNbdParams if name == "bgnbd" else ParetoNbdParams
        values = {param: run[f"{name}_{param}"] for param in PURCHASE_MODELS[name][2]}
        purchases = kind(**values, time_unit=TIME_UNIT)
        gg = GammaGammaParams(run["gamma_gamma_p"], run["gamma_gamma_q"], run["gamma_gamma_v"])
        result = predicted_clv(
            purchases,
            gg,
            x,
            t_x,
            t,
            m,
            horizon=horizon,
            annual_discount_rate=rate,
            periods_per_year=PERIODS_PER_YEAR,
            spend_frequency=spend_frequency(x, m),
        )
        return {
            "probability_alive": module.probability_alive(purchases, x, t_x, t),
            "expected_purchases": np.array(result.expected_purchases),
            "expected_spend_per_purchase": np.array(result.expected_spend),
            "predicted_clv": retention * result.clv,
        }
    if run["method"] == METHOD_FALLBACK:
        per_week = float(run["fallback_purchases_per_week"])
        spend = float(run["fallback_spend_per_order"])
        year_length = units_per_year(TIME_UNIT)
        ends = period_ends(horizon, year_length / PERIODS_PER_YEAR)
        cumulative = np.array([np.full(x.shape, per_week * end) for end in ends])
        discounted = discounted_purchases(ends, cumulative, rate, year_length)
        return {
            "probability_alive": np.full(x.shape, np.nan),
            "expected_purchases": cumulative[-1],
            "expected_spend_per_purchase": np.full(x.shape, spend),
            "predicted_clv": retention * spend * discounted,
        }
    raise ValueError(f"unknown CLV method {run['method']!r} in the model run")


#: Customers with at least this many calibration repeat purchases form one holdout group.
HOLDOUT_TOP_GROUP = 7
#: SQL type of each column of evaluate_holdout's rows, in order.
HOLDOUT_COLUMN_TYPES: dict[str, str] = {
    "purchase_model": "varchar",
    "frequency_group": "varchar",
    "group_order": "bigint",
    "customer_count": "bigint",
    "actual_purchases": "double",
    "predicted_purchases": "double",
    "actual_purchases_per_customer": "double",
    "predicted_purchases_per_customer": "double",
    "error": "double",
    "relative_error": "double",
    "mean_absolute_error": "double",
    "calibration_log_likelihood": "double",
    "holdout_weeks": "double",
    "fit_status": "varchar",
    "fit_message": "varchar",
    "bgnbd_r": "double",
    "bgnbd_alpha": "double",
    "bgnbd_a": "double",
    "bgnbd_b": "double",
    "pareto_nbd_r": "double",
    "pareto_nbd_alpha": "double",
    "pareto_nbd_s": "double",
    "pareto_nbd_beta": "double",
}


def evaluate_holdout(
    frequency: object,
    recency: object,
    age: object,
    holdout_purchases: object,
    *,
    holdout_weeks: float,
    settings: ClvSettings,
) -> list[dict[str, Any]]:
    """Fit BG/NBD and Pareto/NBD on a calibration period; compare forecasts with the holdout.

    Per purchase model, one row per calibration-frequency group (x = 0, 1, ...,
    HOLDOUT_TOP_GROUP - 1, then x >= HOLDOUT_TOP_GROUP) and one 'all' row: customers,
    actual and predicted repeat purchases in the holdout (sums and per customer), the
    error predicted - actual, the relative error (error / actual, None when nothing was
    bought), the mean absolute error per customer (mean |predicted_i - actual_i|, the
    score 'auto' chooses by) and the model's calibration log-likelihood. Every row also
    carries both models' parameters. A fit that fails does not stop the build: that
    model's rows carry fit_status 'not_fitted' and the reason, with no prediction.
    """
    holdout_weeks = _finite_number("clv_holdout_weeks", holdout_weeks)
    if holdout_weeks <= 0:
        raise ValueError(f"clv_holdout_weeks must be > 0; got {holdout_weeks!r}")
    x, t_x, t = _rfm(frequency, recency, age)
    actual = as_float_array("holdout_purchases", holdout_purchases, allow_empty=True)
    if actual.size != x.size:
        raise ValueError("holdout_purchases needs one value per customer")
    params: dict[str, Any] = {
        f"{name}_{param}": None
        for name, (_, _, names) in PURCHASE_MODELS.items()
        for param in names
    }
    if x.size:
        fields, fits, problems = _fit_purchase_models(x, t_x, t, settings)
        params |= {key: fields[key] for key in params if key in fields}
    else:
        fits, problems = (
            {},
            dict.fromkeys(PURCHASE_MODELS, "no customer has a completed order before the cut-off"),
        )

    groups = [(f"x = {k}", k, x == k) for k in range(HOLDOUT_TOP_GROUP)]
    groups.append((f"x >= {HOLDOUT_TOP_GROUP}", HOLDOUT_TOP_GROUP, x >= HOLDOUT_TOP_GROUP))
    groups.append(("all", HOLDOUT_TOP_GROUP + 1, np.ones(x.shape, dtype=bool)))
    rows = []
    for name, (label, module, _) in PURCHASE_MODELS.items():
        predicted: np.ndarray | None = None
        status, message = "not_fitted", problems[name]
        if not problems[name]:
            status, message = "fitted", f"{label} converged"
            predicted = module.expected_purchases(fits[name], x, t_x, t, holdout_weeks)
        fit = fits.get(name)
        for group, order, members in groups:
            n = int(members.sum())
            actual_sum = float(actual[members].sum())
            predicted_sum = None if predicted is None else float(predicted[members].sum())
            difference = None if predicted_sum is None else predicted_sum - actual_sum
            rows.append(
                {
                    "purchase_model": name,
                    "frequency_group": group,
                    "group_order": order,
                    "customer_count": n,
                    "actual_purchases": actual_sum,
                    "predicted_purchases": predicted_sum,
                    "actual_purchases_per_customer": actual_sum / n if n else None,
                    "predicted_purchases_per_customer": (
                        predicted_sum / n if n and predicted_sum is not None else None
                    ),
                    "error": difference,
                    "relative_error": (
                        difference / actual_sum if difference is not None and actual_sum else None
                    ),
                    "mean_absolute_error": (
                        float(np.abs(predicted[members] - actual[members]).mean())
                        if predicted is not None and n
                        else None
                    ),
                    "calibration_log_likelihood": (
                        None if fit is None or predicted is None else fit.log_likelihood
                    ),
                    "holdout_weeks": float(holdout_weeks),
                    "fit_status": status,
                    "fit_message": message,
                    **params,
                }
            )
    return rows


def holdout_scores(rows: list[Mapping[str, Any]]) -> dict[str, HoldoutScore]:
    """Each purchase model's score from evaluate_holdout's rows (its 'all' row)."""
    return {
        row["purchase_model"]: HoldoutScore(
            log_likelihood=row["calibration_log_likelihood"],
            mean_absolute_error=row["mean_absolute_error"],
            relative_error=row["relative_error"],
        )
        for row in rows
        if row["frequency_group"] == "all"
    }
