"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma spend, discounted CLV.

Plain numpy arrays in, frozen dataclasses (fits) or arrays (per-customer predictions) out.
Formulas, units and behaviour on degenerate data are in docs/clv.md.
"""

from ._optimize import InsufficientDataError
from .bgnbd import (
    BgNbdFit,
    BgNbdParams,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_purchases_at,
    fit_bgnbd,
    probability_alive,
)
from .gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    expected_spend,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)
from .value import TIME_UNITS_PER_YEAR, ClvResult, predicted_clv

__all__ = [
    "TIME_UNITS_PER_YEAR",
    "BgNbdFit",
    "BgNbdParams",
    "ClvResult",
    "GammaGammaFit",
    "GammaGammaParams",
    "InsufficientDataError",
    "bgnbd_log_likelihood",
    "expected_purchases",
    "expected_purchases_at",
    "expected_spend",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "predicted_clv",
    "probability_alive",
]
