"""Customer lifetime value: BG/NBD or Pareto/NBD purchases x Gamma-Gamma spend, discounted.

CLV_i = E[spend]_i * sum_k d_k (E[Y(tau_k)]_i - E[Y(tau_{k-1})]_i),
with tau_k = min(k L, horizon) the end of period k (L = one period in the BG/NBD time
unit) and d_k = (1 + annual_rate)^(-tau_k / units_per_year): purchases expected in a period
are discounted as if they all happened at its end: a conservative discrete-time convention,
the scheme of the `lifetimes` package's customer_lifetime_value (which takes a per-period
rate). Fader, Hardie & Lee (2005, JMR) discount continuously instead; with monthly periods
the two differ by well under one month of discounting.
The sum is evaluated as E[spend] (E[Y(horizon)] - sum_k (1 - d_k) dE_k), so a zero rate
gives exactly E[Y(horizon)] * E[spend], with no rounding left by the telescoping sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import bgnbd, pareto_nbd
from ._optimize import check_positive_scalar
from .bgnbd import BgNbdFit, BgNbdParams
from .gamma_gamma import GammaGammaFit, GammaGammaParams, expected_spend
from .pareto_nbd import ParetoNbdFit, ParetoNbdParams

#: A fitted purchase model (or its parameters) that predicted_clv can discount.
PurchaseModel = BgNbdFit | BgNbdParams | ParetoNbdFit | ParetoNbdParams

#: Time units with a fixed length in years (a year of 365.25 days); any other unit needs
#: `time_units_per_year` passed explicitly.
TIME_UNITS_PER_YEAR = {"day": 365.25, "week": 365.25 / 7, "month": 12.0, "year": 1.0}


@dataclass(frozen=True)
class ClvResult:
    """Per-customer CLV (money units of the spend model) and its two ingredients.

    expected_purchases is undiscounted over the whole horizon; arrays are read-only.
    """

    clv: np.ndarray
    expected_purchases: np.ndarray
    expected_spend: np.ndarray
    horizon: float
    time_unit: str | None
    annual_discount_rate: float
    periods_per_year: int
    period_length: float  # one discounting period, in the BG/NBD time unit


def units_per_year(time_unit: str | None, override: float | None = None) -> float:
    """How many `time_unit` make a year (365.25 days), or `override` when given."""
    if override is not None:
        return check_positive_scalar("time_units_per_year", override)
    unit = (time_unit or "").strip().lower().removesuffix("s")
    if unit not in TIME_UNITS_PER_YEAR:
        raise ValueError(
            f"cannot tell how many {time_unit!r} make a year; pass time_units_per_year "
            f"(known units: {', '.join(TIME_UNITS_PER_YEAR)})"
        )
    return TIME_UNITS_PER_YEAR[unit]


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=float)
    array.flags.writeable = False
    return array


def period_ends(horizon: float, period: float) -> list[float]:
    """Ends of the discounting periods covering (0, horizon]; the last may be partial."""
    n_periods = max(1, math.ceil(horizon / period - 1e-12))
    return [min(k * period, horizon) for k in range(1, n_periods)] + [horizon]


def discounted_purchases(
    ends: list[float], cumulative: np.ndarray, annual_rate: float, year_length: float
) -> np.ndarray:
    """Discounted expected purchases: sum_k d_k (E_k - E_{k-1}), d_k = (1+rate)^-(end_k/year).

    `cumulative[k]` holds the expected purchases up to ends[k] (undiscounted); ends and
    year_length are in the same time unit. Evaluated as
    E_last - sum_k (1 - d_k) (E_k - E_{k-1}), so a zero rate returns E_last exactly. Any
    model of expected purchases can be discounted the same way (the CLV fallback uses a
    constant rate).
    """
    total = np.asarray(cumulative[-1], dtype=float)
    shortfall = np.zeros_like(total)
    previous = np.zeros_like(total)
    for end, purchases in zip(ends, cumulative, strict=True):
        shortfall += (1.0 - (1.0 + annual_rate) ** (-end / year_length)) * (purchases - previous)
        previous = purchases
    return total - shortfall


def _expected_purchases_at(fit: PurchaseModel, x, t_x, t, ends: list[float]) -> np.ndarray:
    if isinstance(fit, ParetoNbdFit | ParetoNbdParams):
        return pareto_nbd.expected_purchases_at(fit, x, t_x, t, ends)
    return bgnbd.expected_purchases_at(fit, x, t_x, t, ends)


def predicted_clv(
    bgnbd_fit: PurchaseModel,
    gg_fit: GammaGammaFit | GammaGammaParams,
    frequency: object,
    recency: object,
    age: object,
    monetary_value: object,
    *,
    horizon: float,
    annual_discount_rate: float,
    periods_per_year: int = 12,
    time_units_per_year: float | None = None,
    spend_frequency: object = None,
) -> ClvResult:
    """Discounted expected spend over (T, T + horizon] for each customer.

    `bgnbd_fit` is the purchase model, BG/NBD or Pareto/NBD (the name is kept for callers
    that pass it by keyword). `horizon` is in its time unit; the horizon is cut into periods of
    1/periods_per_year years (the last one may be partial), and each period's increment of
    expected purchases is discounted at the period's end. For x = 0 the spend is the
    population mean (see gamma_gamma.expected_spend). `spend_frequency` is the x the spend
    model conditions on when it differs from the purchase count (by default the same):
    repeat purchases that were all free (m_x = 0) say nothing about spend, so a caller
    passes 0 for them and they get the population mean.
    """
    horizon = check_positive_scalar("horizon", horizon, allow_zero=True)
    rate = check_positive_scalar("annual_discount_rate", annual_discount_rate, allow_zero=True)
    if int(periods_per_year) != periods_per_year or periods_per_year < 1:
        raise ValueError(f"periods_per_year must be a whole number >= 1; got {periods_per_year!r}")
    time_unit = bgnbd_fit.time_unit
    year_length = units_per_year(time_unit, time_units_per_year)
    period = year_length / periods_per_year
    spend = expected_spend(
        gg_fit, frequency if spend_frequency is None else spend_frequency, monetary_value
    )
    ends = period_ends(horizon, period)
    cumulative = _expected_purchases_at(bgnbd_fit, frequency, recency, age, ends)
    total = cumulative[-1]  # identical to expected_purchases(..., horizon)
    clv = spend * discounted_purchases(ends, cumulative, rate, year_length)
    return ClvResult(
        clv=_read_only(clv),
        expected_purchases=_read_only(total),
        expected_spend=_read_only(spend),
        horizon=horizon,
        time_unit=time_unit,
        annual_discount_rate=rate,
        periods_per_year=int(periods_per_year),
        period_length=period,
    )
