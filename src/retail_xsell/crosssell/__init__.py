"""Cross-sell: the take-up model behind the offers (docs/cross_sell.md)."""

from .pairs import (
    MAX_TRAINING_ROWS,
    PairTerm,
    pair_indicator_sql,
    supported_pairs,
)
from .take_up import DEFAULT_L2, TakeUpFit, fit_take_up

__all__ = [
    "DEFAULT_L2",
    "MAX_TRAINING_ROWS",
    "PairTerm",
    "TakeUpFit",
    "fit_take_up",
    "pair_indicator_sql",
    "supported_pairs",
]
