"""The representative metric queries and how to time them.

The gate's ``query_latency`` objective and the latency benchmark
(:mod:`retail_xsell.benchmark_metrics`) must time the same queries the same way, or
their numbers could not be compared; both take them from here. Nothing here imports
MetricFlow: a query is bound to a :class:`~retail_xsell.semantic.SemanticLayer` the
caller opened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retail_xsell.semantic import MetricQueryResult, SemanticLayer


@dataclass(frozen=True)
class MetricQuery:
    """One representative query: what it asks, and why it is in the benchmark."""

    label: str
    metrics: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    saved_query: str | None = None

    def bind(self, layer: SemanticLayer) -> Callable[[], MetricQueryResult]:
        """A no-argument call that runs this query on `layer` (for timing)."""
        saved_query = self.saved_query
        if saved_query:
            return lambda: layer.query_saved(saved_query)
        return lambda: layer.query(list(self.metrics), list(self.group_by))


#: Chosen to cover the shapes of query consumers run: a single customer-level average,
#: a join to the customer dimension, a time series, a join to products, a ratio metric,
#: and a saved query with four metrics of three semantic models.
QUERIES: tuple[MetricQuery, ...] = (
    MetricQuery("clv", ("clv",)),
    MetricQuery("clv by region", ("clv", "historical_clv", "predicted_clv"), ("customer__region",)),
    MetricQuery(
        "total_spend, order_count by month", ("total_spend", "order_count"), ("metric_time__month",)
    ),
    MetricQuery("total_spend by product category", ("total_spend",), ("product__category",)),
    MetricQuery(
        "purchase_frequency by RFM segment", ("purchase_frequency",), ("customer__rfm_segment",)
    ),
    MetricQuery("saved query executive_monthly_kpis", saved_query="executive_monthly_kpis"),
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default and Python's
    ``statistics.quantiles(method="inclusive")``, written out because the project does
    not depend on numpy for this and ``statistics.quantiles`` needs two values or more.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must lie in [0, 100]; got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class Timing:
    """Seconds of the first call and of the repeats that followed it.

    ``sql_repeats`` times the SQL MetricFlow generated, run alone on DuckDB: the rest
    of a query's time is MetricFlow planning, which does not grow with the data.
    """

    first: float
    repeats: tuple[float, ...] = field(default_factory=tuple)
    sql_repeats: tuple[float, ...] = field(default_factory=tuple)

    @property
    def median(self) -> float:
        return percentile(self.repeats, 50)

    @property
    def p95(self) -> float:
        return percentile(self.repeats, 95)

    @property
    def sql_median(self) -> float | None:
        return percentile(self.sql_repeats, 50) if self.sql_repeats else None

    @classmethod
    def pooled(cls, timings: Sequence[Timing]) -> Timing:
        """Every warm repeat of several timings as one: its p95 is the p95 over all of
        them (the first, cold calls are left out, as in each timing)."""
        return cls(
            first=max((t.first for t in timings), default=0.0),
            repeats=tuple(sample for t in timings for sample in t.repeats),
        )


def time_calls(call: Callable[[], object], repeats: int) -> Timing:
    """Time ``call`` once (first call), then ``repeats`` more times (warm)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    samples = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return Timing(samples[0], tuple(samples[1:]))


def latency_p95_ms(timings: Sequence[Timing]) -> tuple[float, int]:
    """The 95th percentile in milliseconds over every warm repeat of ``timings``, and
    how many repeats it rests on. The Timing computes its own percentile, so the gate
    cannot pass the wrong scale again (it once asked for the 0.95th percentile of a
    0-100 scale and reported about the fastest query)."""
    pooled = Timing.pooled(timings)
    return pooled.p95 * 1000, len(pooled.repeats)
