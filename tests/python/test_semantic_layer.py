"""Every metric of the semantic layer, asked through retail_xsell.semantic, must equal the
same figure computed independently in plain SQL on the marts of the built sample.

The reference SQL follows the metric contract in DESIGN.md, not MetricFlow's SQL, so a
wrong measure, join, filter or time window in semantic_models/*.yml fails here. Values
agree to 1e-9 relative. The sanity checks make sure the sample actually contains what a
subtle mistake would get wrong (returns, refund-only orders, cancelled orders, customers
without orders), so the comparisons can fail.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conftest import PROJECT_DIR
from retail_xsell.semantic import (
    Filter,
    InvalidTimeRangeError,
    MetricQueryResult,
    SemanticLayer,
    SemanticLayerError,
    UnknownDimensionError,
    UnknownMetricError,
    UnreachableDimensionError,
    query_metrics,
)

pytestmark = pytest.mark.dbt

PUBLIC_METRICS = {
    "total_spend",
    "running_total_spend",
    "trailing_90_day_total_spend",
    "total_spend_growth_mom",
    "total_spend_growth_yoy",
    "order_count",
    "purchasing_customers",
    "purchase_frequency",
    "average_order_value",
    "historical_clv",
    "repeat_purchase_rate",
    "first_time_buyers",
    "second_order_within_90_days",
    "predicted_clv",
    "clv",
    "probability_alive",
    "cross_sell_rate",
    "cross_sell_opportunity_score",
    "cross_sell_potential_revenue",
}
FIRST_DAY, LAST_DAY = dt.date(2023, 1, 1), dt.date(2025, 12, 31)


@pytest.fixture(scope="module")
def layer(sample_db: Path) -> Iterator[SemanticLayer]:
    """The semantic layer over the session's sample build (its own target/ manifest)."""
    with SemanticLayer(sample_db.parent / "target" / "semantic_manifest.json", sample_db) as sl:
        yield sl


@pytest.fixture(scope="module")
def marts(sample_db: Path, layer: SemanticLayer) -> Iterator[duckdb.DuckDBPyConnection]:
    """A separate read-only connection for the reference SQL (after `layer`: same config)."""
    connection = duckdb.connect(str(sample_db), read_only=True)
    yield connection
    connection.close()


def _key(value: Any) -> Any:
    """Group keys from either side in one form: dates as datetimes at midnight."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    return value


def _as_dict(rows: list[tuple]) -> dict[Any, Any]:
    """{group key: value} from rows (key..., value); a single key is not a tuple."""
    result = {}
    for *keys, value in rows:
        key = tuple(_key(k) for k in keys)
        result[key[0] if len(key) == 1 else key] = value
    return result


def _metric(result: MetricQueryResult, metric: str, group_by: list[str]) -> dict[Any, Any]:
    rows = [
        (*(row[result.columns.index(g)] for g in group_by), row[result.columns.index(metric)])
        for row in result.rows
    ]
    return _as_dict(rows)


def assert_close(actual: Any, expected: Any, where: object = "") -> None:
    if expected is None or actual is None:
        assert actual is None and expected is None, f"{where}: {actual!r} != {expected!r}"
        return
    assert math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-12), (
        f"{where}: {actual!r} != {expected!r}"
    )


def assert_same(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected), sorted(set(actual) ^ set(expected), key=str)[:10]
    assert expected, "the reference query returned nothing to compare"
    for key, value in expected.items():
        assert_close(actual[key], value, key)


def check(
    layer: SemanticLayer,
    marts: duckdb.DuckDBPyConnection,
    metric: str,
    group_by: list[str],
    reference_sql: str,
    **query: Any,
) -> None:
    """Compare one metric, grouped by `group_by`, with the reference SQL's (keys..., value)."""
    result = layer.query([metric], group_by, **query)
    expected = _as_dict(marts.execute(reference_sql).fetchall())
    if not group_by:
        assert len(result.rows) == 1
        assert_close(result.rows[0][0], expected[next(iter(expected))] if expected else None)
    else:
        assert_same(_metric(result, metric, group_by), expected)


# What the sample must contain for the comparisons below to mean something.


def test_sample_has_the_cases_a_wrong_definition_would_miss(marts):
    (returns, refund_only, not_completed, never_ordered, same_day_repeat) = marts.execute(
        """
        select
            (select sum(net_revenue) from order_lines where line_type = 'return'),
            (select sum(net_revenue) from orders where order_status = 'return_only'),
            (select count(*) from orders where not is_completed),
            (select count(*) from customers where lifetime_order_count = 0),
            (select count(*) from (
                select customer_id, order_date from orders where is_completed
                group by all having count(*) > 1))
        """
    ).fetchone()
    assert returns < 0
    assert refund_only < 0
    assert not_completed > 0
    assert never_ordered > 0
    assert same_day_repeat > 0


def test_metricflow_accepts_the_definitions(layer):
    assert layer.validation_errors() == []


def test_only_the_contract_metrics_are_public(layer):
    assert set(layer.metrics) == PUBLIC_METRICS
    assert sorted(layer.saved_queries) == [
        "executive_monthly_kpis",
        "marketing_customer_value",
        "sales_cross_sell_potential",
    ]


# total_spend: the sum of every order line's net revenue, returns and refund-only orders
# included, as summing order_lines.net_revenue gives.

TOTAL_SPEND = "select sum(net_revenue) from order_lines"


def test_total_spend(layer, marts):
    check(layer, marts, "total_spend", [], TOTAL_SPEND)
    completed_sales_only = marts.execute(
        "select sum(sales_revenue) from orders where is_completed"
    ).fetchone()[0]
    assert layer.query(["total_spend"]).rows[0][0] != completed_sales_only


@pytest.mark.parametrize(
    ("group_by", "reference_sql"),
    [
        (
            "customer__region",
            "select c.region, sum(l.net_revenue) from order_lines as l "
            "join customers as c using (customer_id) group by all",
        ),
        (
            "product__category",
            "select p.category, sum(l.net_revenue) from order_lines as l "
            "join products as p using (product_id) group by all",
        ),
        (
            "metric_time__month",
            "select date_trunc('month', order_date), sum(net_revenue) "
            "from order_lines group by all",
        ),
        (
            "order__channel",
            "select o.channel, sum(l.net_revenue) from order_lines as l "
            "join orders as o using (order_id) group by all",
        ),
        (
            "order__order_status",
            "select o.order_status, sum(l.net_revenue) from order_lines as l "
            "join orders as o using (order_id) group by all",
        ),
    ],
)
def test_total_spend_grouped(layer, marts, group_by, reference_sql):
    check(layer, marts, "total_spend", [group_by], reference_sql)


def test_total_spend_filtered_and_time_bounded(layer, marts):
    check(
        layer,
        marts,
        "total_spend",
        ["metric_time__day"],
        "select l.order_date, sum(l.net_revenue) from order_lines as l "
        "join customers as c using (customer_id) where c.region = 'Europe' "
        "and l.order_date between date '2024-03-01' and date '2024-05-31' group by all",
        where=Filter(dimension="customer__region", operator="eq", value="Europe"),
        start="2024-03-01",
        end=dt.date(2024, 5, 31),
    )


# order_count and purchasing_customers: completed orders only.

ORDERS_BY = {
    "customer__region": (
        "select c.region, {agg} from orders as o join customers as c using (customer_id) "
        "where o.is_completed group by all"
    ),
    "metric_time__month": (
        "select date_trunc('month', o.order_date), {agg} from orders as o "
        "where o.is_completed group by all"
    ),
    "order__channel": "select o.channel, {agg} from orders as o where o.is_completed group by all",
}


@pytest.mark.parametrize(
    ("metric", "agg"),
    [
        ("order_count", "count(distinct o.order_id)"),
        ("purchasing_customers", "count(distinct o.customer_id)"),
        ("purchase_frequency", "count(distinct o.order_id) / count(distinct o.customer_id)"),
    ],
)
@pytest.mark.parametrize("group_by", [None, *ORDERS_BY])
def test_order_metrics(layer, marts, metric, agg, group_by):
    if group_by is None:
        check(layer, marts, metric, [], f"select {agg} from orders as o where o.is_completed")
    else:
        check(layer, marts, metric, [group_by], ORDERS_BY[group_by].format(agg=agg))


@pytest.mark.parametrize(
    ("group_by", "spend_sql", "orders_sql"),
    [
        (
            None,
            TOTAL_SPEND,
            "select count(*) from orders where is_completed",
        ),
        (
            "customer__region",
            "select c.region, sum(l.net_revenue) from order_lines as l "
            "join customers as c using (customer_id) group by all",
            "select c.region, count(*) from orders as o join customers as c using (customer_id) "
            "where o.is_completed group by all",
        ),
        (
            "metric_time__month",
            "select date_trunc('month', order_date), sum(net_revenue) from order_lines "
            "group by all",
            "select date_trunc('month', order_date), count(*) from orders where is_completed "
            "group by all",
        ),
    ],
)
def test_average_order_value(layer, marts, group_by, spend_sql, orders_sql):
    spend = _as_dict(marts.execute(spend_sql).fetchall())
    orders = _as_dict(marts.execute(orders_sql).fetchall())
    expected = {key: spend[key] / orders[key] for key in orders}
    result = layer.query(["average_order_value"], [group_by] if group_by else [])
    if group_by is None:
        assert_close(result.rows[0][0], next(iter(expected.values())))
    else:
        assert_same(_metric(result, "average_order_value", [group_by]), expected)


# Customer-level metrics: averages over every customer in the customers mart.


@pytest.mark.parametrize(
    ("metric", "value_sql"),
    [
        ("historical_clv", "avg(lifetime_net_revenue)"),
        ("repeat_purchase_rate", "avg(case when lifetime_order_count >= 2 then 1 else 0 end)"),
        ("first_time_buyers", "count(first_order_date)"),
    ],
)
@pytest.mark.parametrize(
    ("group_by", "key_sql"),
    [
        (None, None),
        ("customer__region", "region"),
        ("customer__rfm_segment", "rfm_segment"),
        ("customer__age_group", "age_group"),
        ("customer__signup_cohort__month", "signup_cohort_month"),
    ],
)
def test_customer_metrics(layer, marts, metric, value_sql, group_by, key_sql):
    if group_by is None:
        check(layer, marts, metric, [], f"select {value_sql} from customers")
        return
    # first_time_buyers counts buyers only: a group without any has no row.
    buyers = " where first_order_date is not null" if metric == "first_time_buyers" else ""
    reference = f"select {key_sql}, {value_sql} from customers{buyers} group by all"
    check(layer, marts, metric, [group_by], reference)


def test_customer_metrics_over_time_group_customers_by_signup_or_first_order(layer, marts):
    check(
        layer,
        marts,
        "historical_clv",
        ["metric_time__year"],
        "select date_trunc('year', signed_up_at), avg(lifetime_net_revenue) "
        "from customers group by all",
    )
    check(
        layer,
        marts,
        "first_time_buyers",
        ["metric_time__month"],
        "select date_trunc('month', first_order_date), count(*) from customers "
        "where first_order_date is not null group by all",
    )


# Conversion: first-time buyers who placed another completed order on a later day, at
# most 90 days after the first one.

SECOND_ORDER = """
    with buyers as (
        select customer_id, region, first_order_date from customers
        where first_order_date is not null
    ),
    returned as (
        select distinct buyers.customer_id
        from buyers
        join orders
            on orders.customer_id = buyers.customer_id
            and orders.is_completed
            and orders.order_date > buyers.first_order_date
            and orders.order_date <= buyers.first_order_date + interval 90 day
    )
    select {key} count(returned.customer_id) / count(*)
    from buyers left join returned using (customer_id)
    group by all
"""


@pytest.mark.parametrize(
    ("group_by", "key"),
    [
        (None, ""),
        ("customer__region", "buyers.region,"),
        ("metric_time__month", "date_trunc('month', buyers.first_order_date),"),
    ],
)
def test_second_order_within_90_days(layer, marts, group_by, key):
    check(
        layer,
        marts,
        "second_order_within_90_days",
        [group_by] if group_by else [],
        SECOND_ORDER.format(key=key),
    )
    rate = layer.query(["second_order_within_90_days"]).rows[0][0]
    assert 0 < rate < 1  # a buyer's first order must never count as their return


# Cumulative metrics, against a calendar of days generated here.

DAYS = (
    "select cast(d as date) as day from generate_series("
    "date '2020-01-01', date '2030-12-31', interval 1 day) as t(d)"
)


def test_running_total_spend(layer, marts):
    check(layer, marts, "running_total_spend", [], TOTAL_SPEND)
    # By month: everything up to the month's last day, history before `start` included.
    check(
        layer,
        marts,
        "running_total_spend",
        ["metric_time__month"],
        f"""
        with months as (
            select distinct date_trunc('month', day) as month from ({DAYS})
            where day between date '2024-01-01' and date '2025-12-31'
        )
        select months.month, sum(order_lines.net_revenue)
        from months join order_lines
            on order_lines.order_date < months.month + interval 1 month
        group by all
        """,
        start="2024-01-01",
        end="2025-12-31",
    )


def test_trailing_90_day_total_spend(layer, marts):
    window = f"""
        with days as (select day from ({DAYS}) where day between date '{FIRST_DAY}'
                      and date '{LAST_DAY}'),
        daily as (
            select days.day, sum(order_lines.net_revenue) as revenue
            from days join order_lines
                on order_lines.order_date <= days.day
                and order_lines.order_date > days.day - interval 90 day
            group by all
        )
    """
    check(
        layer,
        marts,
        "trailing_90_day_total_spend",
        ["metric_time__day"],
        window + "select day, revenue from daily",
        start=FIRST_DAY,
        end=LAST_DAY,
    )
    # By month: the 90 days ending on the month's last day.
    check(
        layer,
        marts,
        "trailing_90_day_total_spend",
        ["metric_time__month"],
        window + "select date_trunc('month', day), arg_max(revenue, day) from daily group by all",
        start=FIRST_DAY,
        end=LAST_DAY,
    )


# Period-over-period growth.


def _growth(totals: dict, previous: Any) -> dict:
    return {
        period: (value - totals[previous(period)]) / totals[previous(period)]
        if previous(period) in totals
        else None
        for period, value in totals.items()
    }


def _previous_month(month: dt.datetime) -> dt.datetime:
    return (month - dt.timedelta(days=1)).replace(day=1)


@pytest.mark.parametrize(
    ("metric", "grain", "previous"),
    [
        ("total_spend_growth_mom", "month", _previous_month),
        ("total_spend_growth_yoy", "month", lambda m: m.replace(year=m.year - 1)),
        ("total_spend_growth_yoy", "quarter", lambda q: q.replace(year=q.year - 1)),
        ("total_spend_growth_yoy", "year", lambda y: y.replace(year=y.year - 1)),
    ],
)
def test_total_spend_growth(layer, marts, metric, grain, previous):
    totals = _as_dict(
        marts.execute(
            f"select date_trunc('{grain}', order_date), sum(net_revenue) "
            "from order_lines group by all"
        ).fetchall()
    )
    group_by = f"metric_time__{grain}"
    result = layer.query([metric], [group_by], start=FIRST_DAY, end=LAST_DAY)
    actual = _metric(result, metric, [group_by])
    expected = _growth(totals, previous)
    assert sum(value is not None for value in expected.values()) >= 2
    assert_same(actual, expected)


def test_executive_saved_query(layer, marts):
    result = layer.query_saved("executive_monthly_kpis")
    assert result.columns == (
        "metric_time__month",
        "total_spend",
        "order_count",
        "purchase_frequency",
        "clv",
    )
    months = [row[0] for row in result.rows]
    assert months == sorted(months)
    expected = marts.execute(
        """
        with spend as (
            select date_trunc('month', order_date) as month, sum(net_revenue) as total_spend
            from order_lines group by all
        ),
        orders as (
            select date_trunc('month', order_date) as month,
                count(distinct order_id) as order_count,
                count(distinct order_id) / count(distinct customer_id) as purchase_frequency
            from orders where is_completed group by all
        ),
        cohorts as (
            select date_trunc('month', first_order_date) as month, avg(clv) as clv
            from customer_value where first_order_date is not null group by all
        )
        select * from spend full join orders using (month) full join cohorts using (month)
        order by month
        """
    ).fetchall()
    assert [_key(row[0]) for row in expected] == months
    for got, want in zip(result.rows, expected, strict=True):
        for column, a, e in zip(result.columns[1:], got[1:], want[1:], strict=True):
            assert_close(a, e, (got[0], column))


# Customer-value metrics: averages over customer_value; grouped by a customer attribute
# they are that group's average; cross-sell potential adds the top offers' revenue.

CUSTOMER_VALUE = "customer_value inner join customers using (customer_id)"


@pytest.mark.parametrize(
    ("metric", "value_sql"),
    [
        ("predicted_clv", "avg(customer_value.predicted_clv)"),
        ("clv", "avg(customer_value.clv)"),
        ("probability_alive", "avg(customer_value.probability_alive)"),
        (
            "cross_sell_rate",
            "avg(case when customer_value.purchased_category_count >= 2 then 1 else 0 end)",
        ),
        ("cross_sell_opportunity_score", "avg(customer_value.cross_sell_opportunity_score)"),
    ],
)
@pytest.mark.parametrize(
    ("group_by", "key_sql"),
    [
        (None, None),
        ("customer__region", "customers.region"),
        ("customer__rfm_segment", "customers.rfm_segment"),
        ("customer__clv_method", "customer_value.clv_method"),
    ],
)
def test_customer_value_metrics(layer, marts, metric, value_sql, group_by, key_sql):
    if group_by is None:
        check(layer, marts, metric, [], f"select {value_sql} from {CUSTOMER_VALUE}")
        return
    reference = f"select {key_sql}, {value_sql} from {CUSTOMER_VALUE} group by all"
    check(layer, marts, metric, [group_by], reference)


def test_clv_is_historical_plus_predicted(layer):
    """The contract: clv = historical_clv + predicted_clv, for the average too."""
    result = layer.query(["clv", "historical_clv", "predicted_clv"], ["customer__region"])
    assert len(result.rows) >= 5
    for _, clv, historical, predicted in result.rows:
        assert_close(clv, float(historical) + float(predicted))


@pytest.mark.parametrize(
    ("group_by", "reference_sql"),
    [
        (
            [],
            "select sum(expected_revenue) from cross_sell_opportunities where opportunity_rank = 1",
        ),
        (
            ["cross_sell_opportunity__offered_category"],
            "select category, sum(expected_revenue) from cross_sell_opportunities"
            " where opportunity_rank = 1 group by all",
        ),
        (
            ["customer__region"],
            "select customers.region, sum(offers.expected_revenue)"
            " from cross_sell_opportunities as offers inner join customers using (customer_id)"
            " where offers.opportunity_rank = 1 group by all",
        ),
    ],
)
def test_cross_sell_potential_revenue(layer, marts, group_by, reference_sql):
    check(layer, marts, "cross_sell_potential_revenue", group_by, reference_sql)


def test_cross_sell_potential_is_the_top_offers_of_customer_value(marts):
    """Two routes to the same total: the marts agree, so the metric has one meaning."""
    (offers,) = marts.execute(
        "select sum(expected_revenue) from cross_sell_opportunities where opportunity_rank = 1"
    ).fetchone()
    (values,) = marts.execute(
        "select sum(top_cross_sell_expected_revenue) from customer_value"
    ).fetchone()
    assert offers == values and offers > 0


def test_marketing_saved_query(layer, marts):
    result = layer.query_saved("marketing_customer_value")
    keys = ("customer__region", "customer__age_group", "customer__rfm_segment")
    assert result.columns == (*keys, "clv", "cross_sell_opportunity_score")
    expected = {
        (region, age, segment): (clv, score)
        for region, age, segment, clv, score in marts.execute(
            f"select customers.region, customers.age_group, customers.rfm_segment,"
            f" avg(customer_value.clv), avg(customer_value.cross_sell_opportunity_score)"
            f" from {CUSTOMER_VALUE} group by all"
        ).fetchall()
    }
    got = {row[:3]: row[3:] for row in result.rows}
    assert set(got) == set(expected)
    for key, (clv, score) in expected.items():
        assert_close(got[key][0], clv, key)
        assert_close(got[key][1], score, key)


def test_sales_saved_query(layer, marts):
    result = layer.query_saved("sales_cross_sell_potential")
    assert result.columns == (
        "cross_sell_opportunity__offered_category",
        "cross_sell_potential_revenue",
    )
    expected = marts.execute(
        "select category, sum(expected_revenue) from cross_sell_opportunities"
        " where opportunity_rank = 1 group by all order by category"
    ).fetchall()
    assert [row[0] for row in result.rows] == [row[0] for row in expected]
    for got, want in zip(result.rows, expected, strict=True):
        assert_close(got[1], want[1], got[0])


def test_query_metrics_opens_a_project(sample_db):
    result = query_metrics(
        ["order_count"],
        project_dir=PROJECT_DIR,
        target_path=sample_db.parent / "target",
        database=sample_db,
    )
    assert result.columns == ("order_count",)
    assert result.rows[0][0] > 0
    assert "orders" in result.sql


# Clear errors that name what is wrong.


def test_unknown_metric_is_named_with_a_suggestion(layer):
    with pytest.raises(UnknownMetricError, match=r"'total_spnd'.*Did you mean 'total_spend'"):
        layer.query(["order_count", "total_spnd"])


def test_private_helper_metric_is_not_queryable(layer):
    with pytest.raises(UnknownMetricError, match="customers_ordering_again"):
        layer.query(["customers_ordering_again"])


def test_unknown_dimension_is_named_with_a_suggestion(layer):
    with pytest.raises(UnknownDimensionError, match=r"'customer__regoin'.*'customer__region'"):
        layer.query(["total_spend"], ["customer__regoin"])


def test_dimension_not_reachable_from_metric_names_both(layer):
    # An order spans several categories, so orders cannot be split by product category.
    with pytest.raises(
        UnreachableDimensionError, match=r"'order_count' cannot be grouped by 'product__category'"
    ):
        layer.query(["total_spend", "order_count"], ["product__category"])
    with pytest.raises(UnreachableDimensionError, match="historical_clv"):
        layer.query(["historical_clv"], ["order__channel"])


def test_reversed_time_range(layer):
    with pytest.raises(InvalidTimeRangeError, match=r"start 2025-01-01.*after end 2024-01-01"):
        layer.query(["total_spend"], ["metric_time__month"], start="2025-01-01", end="2024-01-01")


def test_unreadable_date(layer):
    with pytest.raises(InvalidTimeRangeError, match=r"start '2025-13-01' is not a date"):
        layer.query(["total_spend"], start="2025-13-01")
    with pytest.raises(InvalidTimeRangeError, match="end must be a date"):
        layer.query(["total_spend"], end=20250101)


def test_window_outside_the_calendar(layer):
    # the spine spans the sample's orders (2023-2025) with a whole year either side
    with pytest.raises(InvalidTimeRangeError, match="2022-01-01 to 2026-12-31"):
        layer.query(["total_spend"], end="2021-12-31")
    with pytest.raises(InvalidTimeRangeError, match="outside the calendar"):
        layer.query(["total_spend"], start=dt.datetime(2027, 1, 1))


def test_metricflow_refusals_become_semantic_layer_errors(layer):
    with pytest.raises(SemanticLayerError, match="metric_time"):
        layer.query(["total_spend_growth_mom"], ["customer__region"])
    with pytest.raises(SemanticLayerError, match="signup_cohort"):
        layer.query(["historical_clv"], ["customer__signup_cohort__day"])


def test_unknown_saved_query(layer):
    with pytest.raises(SemanticLayerError, match=r"'executive_kpis'.*executive_monthly_kpis"):
        layer.query_saved("executive_kpis")


def test_missing_manifest_says_to_run_dbt_parse(tmp_path, sample_db):
    with pytest.raises(SemanticLayerError, match="dbt parse"):
        SemanticLayer(tmp_path / "semantic_manifest.json", sample_db)
