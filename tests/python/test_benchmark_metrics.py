"""The latency benchmark's arithmetic and report (the timings themselves are not asserted).

The queries and timers are shared with the gate's query_latency objective
(retail_xsell.metric_queries); the report is the benchmark's own."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from retail_xsell.benchmark_metrics import render_exported, render_report
from retail_xsell.metric_queries import (
    QUERIES,
    MetricQuery,
    Timing,
    latency_p95_ms,
    percentile,
    time_calls,
)


def test_percentile_interpolates_between_ranks():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0


def test_percentile_matches_the_standard_library():
    values = [0.013, 0.011, 0.019, 0.012, 0.050, 0.014, 0.012, 0.016]
    cut_points = statistics.quantiles(values, n=20, method="inclusive")
    assert percentile(values, 95) == pytest.approx(cut_points[-1])
    assert percentile(values, 50) == pytest.approx(statistics.median(values))


@pytest.mark.parametrize("bad", [-1, 100.5])
def test_percentile_rejects_out_of_range_q(bad: float):
    with pytest.raises(ValueError):
        percentile([1.0], bad)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_time_calls_separates_the_first_call():
    calls = []
    timing = time_calls(lambda: calls.append(1), repeats=4)
    assert len(calls) == 5
    assert len(timing.repeats) == 4
    with pytest.raises(ValueError):
        time_calls(lambda: None, repeats=0)


def test_timing_summarises_only_the_repeats():
    timing = Timing(first=9.0, repeats=(1.0, 2.0, 3.0))
    assert timing.median == 2.0
    assert timing.p95 == pytest.approx(2.9)
    assert timing.sql_median is None


def test_queries_are_either_metrics_or_a_saved_query():
    for query in QUERIES:
        assert bool(query.metrics) != bool(query.saved_query), query.label


def test_report_is_a_markdown_table(tmp_path: Path):
    database = tmp_path / "x.duckdb"
    database.write_bytes(b"\0" * 2048)
    report = render_report(
        database,
        0.25,
        [
            (MetricQuery("clv", ("clv",)), Timing(0.1, (0.01, 0.02, 0.03), (0.004, 0.005)), None),
            (MetricQuery("aov", ("average_order_value",)), Timing(0.1, (0.001,)), "e0007"),
        ],
        ["clv"],
        [3.0, 2.0, 4.0],
    )
    assert "opening the layer took 250.0 ms" in report
    assert "| clv | MetricFlow | 100.0 | 20.0 | 29.0 | 4.5 |" in report
    assert "| aov | export e0007 | 100.0 | 1.0 | 1.0 | n/a |" in report
    assert "| 3 | 2.00 | 3.00 | 4.00 |" in report


def test_gate_latency_is_the_95th_percentile_of_every_warm_repeat():
    """Pinned on known samples: 1 to 20 ms over two query shapes, cold calls of 900 ms
    left out. Linear interpolation between closest ranks: position 19 x 0.95 = 18.05,
    so 19 ms + 0.05 x (20 - 19) ms = 19.05 ms (the old bug reported 1.18 ms)."""
    first = Timing(0.9, tuple(ms / 1000 for ms in range(1, 20, 2)))
    second = Timing(0.9, tuple(ms / 1000 for ms in range(2, 21, 2)))
    p95, count = latency_p95_ms([first, second])
    assert count == 20
    assert p95 == pytest.approx(19.05)


def test_exported_requests_report_the_pooled_p95_and_the_slowest():
    fast = Timing(0.01, tuple(ms / 1000 for ms in range(1, 21)))  # 1..20 ms
    slow = Timing(0.9, (0.5, 0.5))
    report = render_exported(
        [("clv", fast, "e0001"), ("running_total_spend by metric_time", slow, None)]
    )
    assert "Every exported request (2:" in report
    assert "1 answered from an export" in report
    # Pooled: 1..20 ms and 500 ms twice; position 21 x 0.95 = 19.95 -> 20 + 0.95 x 480 ms.
    assert "p95 over all warm repeats 476.0 ms" in report
    assert "slowest request's p95 500.0 ms" in report
    lines = report.splitlines()
    assert lines.index("| running_total_spend by metric_time | MetricFlow | 500.0 | 500.0 |") < (
        # median of 1..20 ms 10.5; p95 at position 19 x 0.95 = 18.05: 19 + 0.05 = 19.05 ms
        lines.index("| clv | export e0001 | 10.5 | 19.1 |")
    )
