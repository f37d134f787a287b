"""Metric exports answer exactly what MetricFlow answers (retail_xsell.metric_exports).

The session's sample build is copied, every export is written into the copy, and each
answer served from an export is compared with MetricFlow's own answer on the same file
(``use_exports=False``): same columns, same rows. Doubles are compared to 12
significant digits: an average summed in another order (a metric computed alone
rather than beside others) can differ in its last bit, as two runs of one query on
several threads can; every other type must be equal exactly.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from retail_xsell.filters import Filter
from retail_xsell.metric_exports import (
    CONTRACT_DIMENSIONS,
    EXPORT_SCHEMA,
    INDEX_TABLE,
    ExportReport,
    export_requests,
    saved_query_item,
    write_exports,
)
from retail_xsell.semantic import MetricQueryResult, SemanticLayer, SemanticLayerError


@pytest.fixture(scope="module")
def exported(sample_db: Path, tmp_path_factory) -> tuple[Path, Path, ExportReport]:
    folder = tmp_path_factory.mktemp("exports")
    database = folder / sample_db.name
    shutil.copyfile(sample_db, database)
    manifest = sample_db.parent / "target" / "semantic_manifest.json"
    return database, manifest, write_exports(database, manifest)


@pytest.fixture(scope="module")
def layers(exported) -> Iterator[tuple[SemanticLayer, SemanticLayer]]:
    database, manifest, _ = exported
    with (
        SemanticLayer(manifest, database) as served,
        SemanticLayer(manifest, database, use_exports=False) as computed,
    ):
        yield served, computed


def _canonical(value: object) -> object:
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.12g}")
    return value


def _rows(result: MetricQueryResult, ordered: bool) -> list[tuple]:
    rows = [tuple(_canonical(v) for v in row) for row in result.rows]
    return rows if ordered else sorted(rows, key=repr)


def _assert_same(served: MetricQueryResult, computed: MetricQueryResult, ordered=False) -> None:
    """Same columns, same rows (in the same order if ``ordered``), same Python types."""
    assert computed.export is None
    assert served.columns == computed.columns
    left, right = _rows(served, ordered), _rows(computed, ordered)
    assert left == right
    assert [[type(v) for v in row] for row in left] == [[type(v) for v in row] for row in right]


def test_every_export_equals_metricflows_answer(layers, exported):
    served, computed = layers
    report = exported[2]
    requests = export_requests(computed)
    assert report.written + len(report.skipped) == len(requests)
    answered = 0
    for request in requests:
        arguments = dict(
            metrics=list(request.metrics),
            group_by=list(request.group_by),
            trusted_where=list(request.where) or None,
        )
        try:
            expected = computed.query(**arguments)
        except SemanticLayerError:
            # What MetricFlow refuses was not exported: the export layer refuses it too.
            assert request.label in {label for label, _ in report.skipped}
            with pytest.raises(SemanticLayerError):
                served.query(**arguments)
            continue
        answer = served.query(**arguments)
        assert answer.export is not None, request.label
        _assert_same(answer, expected)
        answered += 1
    assert answered == report.written
    # Some rows must be there to compare: the sample is not empty.
    assert report.rows > 1000


def _index(database: Path) -> dict[str, str]:
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach '{database}' as db (read_only)")
        return dict(
            con.execute(
                f"select label, table_name from db.{EXPORT_SCHEMA}.{INDEX_TABLE}"
            ).fetchall()
        )


def test_the_contract_dimensions_are_exported_for_every_metric_reaching_them(layers, exported):
    served, _ = layers
    index = _index(exported[0])
    assert {
        "clv",
        "purchase_frequency by customer__rfm_segment",
        "total_spend by product__category",
        "total_spend by metric_time__quarter",
        "saved query executive_monthly_kpis",
    } <= set(index)
    skipped = {label for label, _ in exported[2].skipped}
    for metric in served.metrics:
        reachable = served.group_by_kinds(metric)
        for dimension in CONTRACT_DIMENSIONS:
            if dimension not in reachable:
                continue
            label = f"{metric} by {dimension}"
            if served.metric_type(metric) == "cumulative" and reachable[dimension] == "time":
                assert label not in index and label not in skipped
            else:
                assert label in index or label in skipped, label
    # A bare time dimension is its default grain: one table serves both names.
    assert index["total_spend by metric_time"] == index["total_spend by metric_time__day"]
    assert len(set(index.values())) == exported[2].tables < len(index)


def test_cumulative_metrics_by_time_are_left_to_metricflow(layers):
    served, computed = layers
    answer = served.query(["running_total_spend"], ["metric_time__month"])
    assert answer.export is None
    _assert_same(answer, computed.query(["running_total_spend"], ["metric_time__month"]))
    assert served.query(["running_total_spend"], ["customer__region"]).export is not None


def test_saved_queries_served_from_exports_equal_metricflows(layers):
    served, computed = layers
    for name in served.saved_queries:
        answer = served.query_saved(name)
        assert answer.export is not None, name
        _, _, _, order_by, _ = served.saved_query_params(name)
        _assert_same(answer, computed.query_saved(name), ordered=bool(order_by))


def test_several_metrics_by_one_dimension_compose_as_metricflow_does(layers, exported):
    """For each exported group-by, every metric exported by it at once: the full outer
    join of their exports equals MetricFlow's multi-metric answer."""
    served, computed = layers
    by_group: dict[tuple[str, ...], list[str]] = {}
    for request in export_requests(computed):
        if request.saved_query is None:
            by_group.setdefault(request.group_by, []).append(request.metrics[0])
    skipped = {label for label, _ in exported[2].skipped}
    composed = 0
    for group_by, metrics in sorted(by_group.items()):
        metrics = (
            [m for m in metrics if f"{m} by {group_by[0]}" not in skipped]
            if group_by
            else [m for m in metrics if m not in skipped]
        )
        if len(metrics) < 2:
            continue
        # Asked in reverse, so the order of the answer's columns is tested too.
        metrics = metrics[::-1]
        answer = served.query(metrics, list(group_by))
        assert answer.export is not None and "+" in answer.export, group_by
        _assert_same(answer, computed.query(metrics, list(group_by)))
        composed += 1
    assert composed >= 15


def test_order_by_and_limit_are_applied_to_the_exported_rows(layers):
    served, computed = layers
    arguments = dict(
        metrics=["total_spend", "order_count"],
        group_by=["metric_time__month"],
        order_by=["-metric_time__month"],
        limit=3,
    )
    answer = served.query(**arguments)
    assert answer.export is not None
    assert len(answer.rows) == 3
    _assert_same(answer, computed.query(**arguments), ordered=True)
    by_value = served.query(["total_spend"], ["product__category"], order_by=["-total_spend"])
    spends = by_value.column("total_spend")
    assert spends == sorted(spends, reverse=True) and isinstance(spends[0], Decimal)


@pytest.mark.parametrize(
    "arguments",
    [
        {"where": [Filter(dimension="customer__region", operator="eq", value="Europe")]},
        {"start": "2024-01-01"},
        {"end": "2024-06-30"},
        {"group_by": ["customer"]},
        {"group_by": ["customer__region", "customer__gender"]},
        {"group_by": ["order__customer__region"]},
        {"trusted_where": "{{ Dimension('customer__region') }} = 'Europe'"},
    ],
    ids=["filter", "start", "end", "entity", "two-dimensions", "multi-hop", "trusted-where"],
)
def test_what_was_not_exported_goes_to_metricflow(layers, arguments):
    served, computed = layers
    query = {"metrics": ["total_spend"], "group_by": ["customer__region"], **arguments}
    answer = served.query(**query)
    assert answer.export is None
    _assert_same(answer, computed.query(**query))


def test_an_order_by_outside_the_answer_gets_metricflows_error(layers):
    served, computed = layers
    with pytest.raises(SemanticLayerError) as from_exports:
        served.query(["total_spend"], ["customer__region"], order_by=["customer__gender"])
    with pytest.raises(SemanticLayerError) as from_metricflow:
        computed.query(["total_spend"], ["customer__region"], order_by=["customer__gender"])
    assert str(from_exports.value) == str(from_metricflow.value)


def test_a_working_database_has_no_exports(sample_db):
    with SemanticLayer(sample_db.parent / "target" / "semantic_manifest.json", sample_db) as layer:
        assert layer.exports == 0
        assert layer.query(["clv"]).export is None


def test_a_tampered_index_is_refused(exported, tmp_path):
    database, manifest, _ = exported
    copy = tmp_path / database.name
    shutil.copyfile(database, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(
            f"update {EXPORT_SCHEMA}.{INDEX_TABLE} set table_name = 'main.customers' "
            "where label = 'clv'"
        )
    with pytest.raises(SemanticLayerError, match=r"metric exports .* unreadable.*main\.customers"):
        SemanticLayer(manifest, copy)


def test_skipped_requests_say_why(exported):
    report = exported[2]
    reasons = dict(report.skipped)
    assert "total_spend_growth_mom by customer__region" in reasons
    assert "time offset" in reasons["total_spend_growth_mom by customer__region"]
    json.dumps(reasons)  # goes into publication.json as it is


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("TimeDimension('metric_time', 'month')", "metric_time__month"),
        ("Dimension('customer__region')", "customer__region"),
        ("Entity('customer')", "customer"),
        ("-TimeDimension('metric_time', 'day')", "-metric_time__day"),
        ("-Metric('total_spend')", "-total_spend"),
    ],
)
def test_saved_query_items_read_as_dunder_names(text, name):
    assert saved_query_item(text) == name


def test_an_unreadable_saved_query_item_is_an_error():
    with pytest.raises(ValueError, match="Measure\\('clv'\\)"):
        saved_query_item("Measure('clv')")
