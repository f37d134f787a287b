"""Pair terms of the take-up model: "owns category A and is offered category B".

The rule features (confidence, lift) say how strongly co-ownership links two categories,
symmetrically and over all time. What a customer who owns A does next about B is
directional and can be weak next to popularity, and only the data's own history shows
it: one indicator per ordered pair lets the model learn it, on the same footing as the
other features. Pairs are kept only where the training rows hold enough of them, and at
most MAX_PAIRS, so the model stays small on data with many categories.

The indicators are computed by DuckDB from the owned_categories list of each training
candidate's owned set (int_customer_category_sets_by_snapshot), with
the category names as SQL string literals (data of the product, quoted, never text a
consumer sent).
"""

from __future__ import annotations

from dataclasses import dataclass

from retail_xsell.ports import sql_string

#: A pair enters the model when at least this many training candidates have it (owned A,
#: offered B): fewer carry too little evidence for a coefficient of its own.
MIN_PAIR_ROWS = 30
#: At most this many pairs (the best-supported first): 8 categories give 56 pairs; data
#: with hundreds of categories would otherwise give the model tens of thousands.
MAX_PAIRS = 200
#: The fit uses at most this many training candidates, a deterministic hash sample of
#: them: a uniform sample keeps the fit unbiased and calibrated, and 200,000 rows
#: (thousands of take-ups) estimate every coefficient far below its own effect,
#: while the fit's time stops growing with the data (a few seconds at 56 pairs).
MAX_TRAINING_ROWS = 200_000


@dataclass(frozen=True, order=True)
class PairTerm:
    owned_category: str
    offered_category: str

    @property
    def label(self) -> str:
        return f"owns {self.owned_category} & offered {self.offered_category}"


def pair_indicator_sql(pair: PairTerm) -> str:
    """1.0 when the candidate's customer owns pair.owned_category and the candidate is
    pair.offered_category, else 0.0 (columns owned_categories and category)."""
    return (
        f"cast(category = {sql_string(pair.offered_category)} and "
        f"list_contains(owned_categories, {sql_string(pair.owned_category)}) as double)"
    )


def supported_pairs(counts: list[tuple[str, str, int]]) -> list[PairTerm]:
    """The pairs that enter the model, from (owned, offered, training rows) counts:
    at least MIN_PAIR_ROWS rows, the MAX_PAIRS best-supported (ties by name)."""
    kept = sorted(
        (row for row in counts if row[2] >= MIN_PAIR_ROWS), key=lambda r: (-r[2], r[0], r[1])
    )
    return sorted(PairTerm(a, b) for a, b, _ in kept[:MAX_PAIRS])
