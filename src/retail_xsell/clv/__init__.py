"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma spend, discounted CLV.

Plain numpy arrays in, frozen dataclasses (fits) or arrays (per-customer predictions) out.
Formulas, units and behaviour on degenerate data are in docs/clv.md.
"""

from . import pareto_nbd
from ._optimize import InsufficientDataError
from .bgnbd import (
    BgNbdFit,
    BgNbdParams,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_purchases_at,
    expected_purchases_new_customer,
    fit_bgnbd,
    probability_alive,
    probability_of_n_purchases,
)
from .gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    expected_spend,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)
from .pareto_nbd import (
    ParetoNbdFit,
    ParetoNbdParams,
    fit_pareto_nbd,
    pareto_nbd_log_likelihood,
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
    "ParetoNbdFit",
    "ParetoNbdParams",
    "bgnbd_log_likelihood",
    "expected_purchases",
    "expected_purchases_at",
    "expected_purchases_new_customer",
    "expected_spend",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_pareto_nbd",
    "gamma_gamma_log_likelihood",
    "pareto_nbd",
    "pareto_nbd_log_likelihood",
    "predicted_clv",
    "probability_alive",
    "probability_of_n_purchases",
]
