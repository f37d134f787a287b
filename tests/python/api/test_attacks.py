"""Attacks on the governed API, as each sample principal: every attempt is refused with
the right status, leaks nothing, and is audited.

Expected answers come from direct SQL over the published DuckDB file (attached
read-only) and from policies.yml and catalog.json read by hand, never from the
service's enforcement code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import duckdb
import pytest

from retail_xsell.delivery.audit import verify
from retail_xsell.semantic import SemanticLayer

from .attack_support import (
    PRINCIPALS,
    REGION_OF,
    assert_problem,
    audit_records,
    audited,
    bearer,
    body_rows,
    catalog_document,
    clear_dimensions,
    granted_metrics,
    graphql_error,
    group_settings,
    make_token,
    max_rows,
    min_group_size,
    published_sql,
    records_by_request_id,
    scopes,
    unsigned_token,
)

#: Principals that may query metrics at all (intern has no group).
QUERYING = [p for p in PRINCIPALS if p != "intern"]
GENDERS = ("female", "male", "non_binary", "unknown")
HASH_TOKEN = re.compile(r"^h:[0-9a-f]{16}$")
NO_METRIC = "zz_no_such_metric"
NO_DIMENSION = "customer__zz_no_such_dimension"
NO_SAVED_QUERY = "zz_no_such_saved_query"


@pytest.fixture(scope="module")
def pub(sample_publication) -> Iterator[duckdb.DuckDBPyConnection]:
    with published_sql(sample_publication.published) as connection:
        yield connection


@pytest.fixture(scope="module")
def catalog_json(sample_publication) -> dict[str, Any]:
    return catalog_document(sample_publication.published)


@pytest.fixture(scope="module")
def customer_in(pub) -> dict[str, int]:
    """One customer with cross-sell offers per region, from the published customers."""
    rows = pub.execute(
        """
        select c.region, min(c.customer_id) from pub.main.customers c
        where exists (
            select 1 from pub.main.cross_sell_opportunities o where o.customer_id = c.customer_id
        )
        group by 1
        """
    ).fetchall()
    found = dict(rows)
    assert {"Europe", "North America", "Asia Pacific"} <= set(found)
    return found


@pytest.fixture(scope="module")
def no_customer(pub) -> int:
    (largest,) = pub.execute("select max(customer_id) from pub.main.customers").fetchone()
    return int(largest) + 1000


def sql_clv_by(pub, column: str, region: str | None = None) -> dict[Any, tuple[float, int]]:
    """clv (the average of customer_value.clv) and its customer support by a customers
    column, optionally for one region."""
    where = "where c.region = ?" if region else ""
    rows = pub.execute(
        f"""
        select c.{column}, avg(v.clv), count(v.clv)
        from pub.main.customer_value v left join pub.main.customers c using (customer_id)
        {where} group by 1
        """,
        [region] if region else [],
    ).fetchall()
    return {key: (float(value), support) for key, value, support in rows}


def sql_potential_by_category(pub, region: str) -> dict[str, tuple[float, int]]:
    rows = pub.execute(
        """
        select o.category,
               sum(case when o.opportunity_rank = 1 then o.expected_revenue else 0 end),
               count(distinct o.customer_id)
        from pub.main.cross_sell_opportunities o
        join pub.main.customers c on c.customer_id = o.customer_id
        where c.region = ? group by 1
        """,
        [region],
    ).fetchall()
    return {key: (float(value), support) for key, value, support in rows}


def assert_denied(api, response, principal: str | None, endpoint: str, status: int) -> dict:
    record = audited(api, response)
    assert record["outcome"] == "denied", record
    assert record["principal"] == principal, record
    assert record["endpoint"] == endpoint, record
    assert record["status"] == status, record
    return record


def same_apart_from(refused, unknown, refused_literal: str, unknown_literal: str) -> None:
    """Two refusals byte-identical once the one literal naming what was asked (and the
    request ids) are blanked."""

    def blank(response, literal: str) -> bytes:
        content = response.content.replace(response.headers["x-request-id"].encode(), b"<ID>")
        assert content.count(literal.encode()) == 1, (literal, content)
        return content.replace(literal.encode(), b"<NAME>")

    assert refused.status_code == unknown.status_code
    assert refused.headers["content-type"] == unknown.headers["content-type"]
    assert blank(refused, refused_literal) == blank(unknown, unknown_literal)


# --- ungranted metrics, dimensions and saved queries read as nonexistent ones


@pytest.mark.parametrize("principal", QUERYING)
def test_an_ungranted_metric_is_answered_as_a_nonexistent_one(api, catalog_json, principal):
    ungranted = sorted(set(catalog_json["metrics"]) - granted_metrics(principal, catalog_json))
    # policies.yml grants the data steward and marketing every metric of the sample
    assert bool(ungranted) == (principal not in {"sam", "maria", "lena"})
    unknown = api.post("/v1/query", principal, json={"metrics": [NO_METRIC]})
    assert NO_METRIC in assert_problem(unknown, 400)["detail"]
    assert "unknown" in assert_denied(api, unknown, principal, "POST /v1/query", 400)["reason"]
    for name in ungranted:
        response = api.post("/v1/query", principal, json={"metrics": [name]})
        detail = assert_problem(response, 400)["detail"]
        assert detail.startswith(f"Unknown metric '{name}'.")
        same_apart_from(response, unknown, f"'{name}'", f"'{NO_METRIC}'")
        record = assert_denied(api, response, principal, "POST /v1/query", 400)
        assert record["reason"] == f"metric '{name}' not granted"
    if ungranted:  # hidden behind a granted one, too
        granted = sorted(granted_metrics(principal, catalog_json))[0]
        mixed = api.post("/v1/query", principal, json={"metrics": [granted, ungranted[0]]})
        assert assert_problem(mixed, 400)["detail"].startswith(f"Unknown metric '{ungranted[0]}'")


@pytest.mark.parametrize("principal", ["erik", "olivia", "bi_dashboard"])
def test_an_ungranted_metric_over_graphql_is_answered_as_a_nonexistent_one(
    api, catalog_json, principal
):
    (name, *_) = sorted(set(catalog_json["metrics"]) - granted_metrics(principal, catalog_json))
    document = "query($m: [String!]!) { query(metrics: $m) { rows } }"
    refused = graphql_error(api.graphql(document, principal, {"m": [name]}), 400)
    unknown = graphql_error(api.graphql(document, principal, {"m": [NO_METRIC]}), 400)
    assert refused["message"].replace(f"'{name}'", "'<N>'") == unknown["message"].replace(
        f"'{NO_METRIC}'", "'<N>'"
    )
    assert refused["extensions"] == unknown["extensions"]


def ungranted_dimensions(principal: str, catalog_json: dict[str, Any]) -> list[str]:
    groupable = clear_dimensions(principal) | {
        d for g in group_settings(principal) for d in g.get("masked_dimensions") or {}
    }
    # catalog.json's names, and the join paths MetricFlow also accepts
    candidates = set(catalog_json["dimensions"]) | {
        "order__customer__gender",
        "order__customer__region",
        "order__customer__country",
    }
    return sorted(candidates - groupable)


@pytest.mark.parametrize("principal", QUERYING)
def test_an_ungranted_dimension_is_answered_as_a_nonexistent_one(api, catalog_json, principal):
    metric = "clv"
    assert metric in granted_metrics(principal, catalog_json)
    ungranted = ungranted_dimensions(principal, catalog_json)
    assert ungranted
    unknown = api.post(
        "/v1/query", principal, json={"metrics": [metric], "group_by": [NO_DIMENSION]}
    )
    assert_problem(unknown, 400)
    record = assert_denied(api, unknown, principal, "POST /v1/query", 400)
    assert record["reason"] == f"dimension '{NO_DIMENSION}' unknown"
    for name in ungranted:
        response = api.post("/v1/query", principal, json={"metrics": [metric], "group_by": [name]})
        assert_problem(response, 400)
        same_apart_from(response, unknown, f"'{name}'", f"'{NO_DIMENSION}'")
        record = assert_denied(api, response, principal, "POST /v1/query", 400)
        assert record["reason"] == f"dimension '{name}' not granted"
    # filtering on one is the same refusal
    name = ungranted[0]
    where = [{"dimension": name, "operator": "is_not_null"}]
    response = api.post("/v1/query", principal, json={"metrics": [metric], "where": where})
    same_apart_from(response, unknown, f"'{name}'", f"'{NO_DIMENSION}'")


def saved_query_granted(principal: str, query: dict[str, Any], catalog_json) -> bool:
    groupable = clear_dimensions(principal) | {
        d for g in group_settings(principal) for d in g.get("masked_dimensions") or {}
    }
    bases = {re.sub(r"__(day|week|month|quarter|year)$", "", name) for name in query["group_by"]}
    return set(query["metrics"]) <= granted_metrics(principal, catalog_json) and bases <= groupable


@pytest.mark.parametrize("principal", QUERYING)
def test_an_ungranted_saved_query_is_answered_as_a_nonexistent_one(api, catalog_json, principal):
    unknown = api.get(f"/v1/saved-queries/{NO_SAVED_QUERY}", principal)
    assert_problem(unknown, 404)
    granted = 0
    for name, query in sorted(catalog_json["saved_queries"].items()):
        response = api.get(f"/v1/saved-queries/{name}", principal)
        if saved_query_granted(principal, query, catalog_json):
            granted += 1
            assert response.status_code == 200, response.text
            continue
        assert_problem(response, 404)
        same_apart_from(response, unknown, f"'{name}'", f"'{NO_SAVED_QUERY}'")
        record = assert_denied(api, response, principal, "GET /v1/saved-queries/{name}", 404)
        assert record["reason"] == f"saved query '{name}' not granted"
        over_graphql = api.graphql(f'{{ savedQuery(name: "{name}") {{ rows }} }}', principal)
        assert graphql_error(over_graphql, 404)["message"] == f"Unknown saved query '{name}'."
    assert granted >= 1  # every querying principal has a saved query to run


# --- scopes


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_each_scope_not_granted_is_a_403(api, principal, customer_in):
    granted = scopes(principal)
    attempts = {
        "metadata": lambda: api.get("/v1/meta", principal),
        "metrics": lambda: api.post("/v1/query", principal, json={"metrics": ["clv"]}),
        "saved_queries": lambda: api.get("/v1/saved-queries/sales_cross_sell_potential", principal),
        "customer_lookup": lambda: api.get(
            f"/v1/customers/{customer_in['Europe']}/cross-sell", principal
        ),
        "export": lambda: api.post(
            "/v1/query", principal, json={"metrics": ["clv"], "format": "csv"}
        ),
    }
    refused = 0
    for scope, attempt in attempts.items():
        response = attempt()
        if scope in granted:
            assert response.status_code in (200, 404), (scope, response.text)
            continue
        refused += 1
        body = assert_problem(response, 403)
        record = audited(api, response)
        assert (record["outcome"], record["principal"], record["status"]) == (
            "denied",
            principal,
            403,
        )
        if principal == "intern":
            assert "not in any group" in body["detail"]
        else:
            assert f"'{scope}'" in body["detail"]
            assert record["reason"] == f"scope {scope} not granted"
    assert refused == len(attempts) - len(granted & set(attempts))
    assert (principal == "intern") == (refused == len(attempts))


# --- masked dimensions: grouped by, never filtered on, never in clear


MASKED = {"maria": "hash", "lena": "hash", "bi_dashboard": "redact"}


@pytest.mark.parametrize("principal", sorted(MASKED))
def test_a_masked_dimension_cannot_be_filtered_on(api, principal):
    for dimension in ("customer__gender", "CUSTOMER__GENDER"):
        for where in (
            {"dimension": dimension, "operator": "eq", "values": ["female"]},
            {"dimension": dimension, "operator": "is_null"},
            {"dimension": dimension, "operator": "not_in", "values": ["male"]},
        ):
            body = {"metrics": ["clv"], "group_by": ["customer__gender"], "where": [where]}
            response = api.post("/v1/query", principal, json=body)
            assert "masked" in assert_problem(response, 403)["detail"]
            assert_denied(api, response, principal, "POST /v1/query", 403)
    document = (
        '{ query(metrics: ["clv"], where: [{dimension: "customer__gender", operator: "eq", '
        'values: ["female"]}]) { rows } }'
    )
    graphql_error(api.graphql(document, principal), 403)
    if "saved_queries" in scopes(principal):
        name = (
            "executive_monthly_kpis" if principal == "bi_dashboard" else "marketing_customer_value"
        )
        where = [{"dimension": "customer__gender", "operator": "eq", "values": ["male"]}]
        response = api.post(f"/v1/saved-queries/{name}", principal, json={"where": where})
        assert_problem(response, 403)


@pytest.mark.parametrize("principal", sorted(MASKED))
def test_a_masked_dimension_is_never_shown_in_clear(api, pub, principal):
    """Grouped by gender: as many rows as genders, values tokens (hash) or null (redact),
    and no clear gender anywhere in the body, whichever interface is used."""
    (genders,) = pub.execute(
        "select count(distinct gender) from pub.main.customers where gender is not null"
    ).fetchone()
    body = {"metrics": ["clv"], "group_by": ["customer__gender"]}
    responses = [api.post("/v1/query", principal, json=body)]
    if "export" in scopes(principal):
        responses.append(api.post("/v1/query", principal, json={**body, "format": "csv"}))
    graphql = api.graphql(
        '{ a: query(metrics: ["clv"], groupBy: ["customer__gender"]) { rows governance }'
        ' b: query(metrics: ["clv"], groupBy: ["customer__gender", "customer__region"])'
        " { rows } }",
        principal,
    )
    assert graphql.status_code == 200 and "errors" not in graphql.json(), graphql.text
    for response in responses:
        assert response.status_code == 200, response.text
        values = [row["customer__gender"] for row in body_rows(response)]
        if MASKED[principal] == "hash":
            assert len(set(values)) == len(values) == genders
            assert all(HASH_TOKEN.match(value) for value in values), values
        else:
            assert len(values) == genders
            assert set(values) <= {None, ""}
    for response in [*responses, graphql]:
        for gender in GENDERS[:3]:  # "unknown" is also an order channel, so not here
            assert gender not in response.text, (gender, response.text[:500])
        assert '"unknown"' not in response.text and ",unknown" not in response.text
    rows = graphql.json()["data"]["a"]["rows"] + graphql.json()["data"]["b"]["rows"]
    assert all(row["customer__gender"] not in GENDERS for row in rows)


@pytest.mark.parametrize("principal", ["bi_dashboard", "maria"])
def test_ordering_by_a_masked_dimension_is_refused(api, pub, principal):
    clear_order = [
        round(value, 6)
        for _, value in pub.execute(
            """
            select c.gender, avg(v.clv) from pub.main.customer_value v
            join pub.main.customers c using (customer_id) group by 1 order by 1
            """
        ).fetchall()
    ]
    body = {"metrics": ["clv"], "group_by": ["customer__gender"], "order_by": ["customer__gender"]}
    response = api.post("/v1/query", principal, json=body)
    if response.status_code == 200:  # what the answer gives away today
        assert [round(row["clv"], 6) for row in response.json()["rows"]] != clear_order
    assert response.status_code in (400, 403), response.text


def test_hashed_values_are_keyed_tokens_not_plain_digests(api):
    import hashlib

    tokens = {
        row["customer__gender"]
        for row in body_rows(
            api.post(
                "/v1/query", "maria", json={"metrics": ["clv"], "group_by": ["customer__gender"]}
            )
        )
    }
    for gender in GENDERS:
        for digest in (hashlib.sha256, hashlib.md5, hashlib.sha1):
            assert f"h:{digest(gender.encode()).hexdigest()[:16]}" not in tokens


# --- another region's rows


@pytest.mark.parametrize("principal", sorted(REGION_OF))
def test_a_regional_principal_sees_only_its_region(api, pub, principal):
    region = REGION_OF[principal]
    k = min_group_size(principal)
    expected_total = sql_clv_by(pub, "region", region)[region][0]
    by_region = api.post(
        "/v1/query", principal, json={"metrics": ["clv"], "group_by": ["customer__region"]}
    )
    assert by_region.status_code == 200, by_region.text
    assert by_region.json()["rows"] == [
        {"customer__region": region, "clv": pytest.approx(expected_total, rel=1e-9)}
    ]
    by_country = api.post(
        "/v1/query", principal, json={"metrics": ["clv"], "group_by": ["customer__country"]}
    )
    expected = {
        country: pytest.approx(value, rel=1e-9)
        for country, (value, support) in sql_clv_by(pub, "country_name", region).items()
        if support >= k
    }
    assert expected
    assert {r["customer__country"]: r["clv"] for r in by_country.json()["rows"]} == expected
    ungrouped = api.post("/v1/query", principal, json={"metrics": ["clv"]})
    assert ungrouped.json()["rows"] == [{"clv": pytest.approx(expected_total, rel=1e-9)}]


@pytest.mark.parametrize("principal", sorted(REGION_OF))
def test_filters_only_narrow_a_row_filter(api, pub, principal):
    region = REGION_OF[principal]
    other = "Asia Pacific"
    group_by = ["customer__region"]
    for where in (
        [{"dimension": "customer__region", "operator": "eq", "values": [other]}],
        [{"dimension": "customer__region", "operator": "ne", "values": [region]}],
        [{"dimension": "customer__region", "operator": "not_in", "values": [region]}],
        [{"dimension": "customer__region", "operator": "is_null"}],
        [{"dimension": "customer__country", "operator": "eq", "values": ["Japan"]}],
    ):
        response = api.post(
            "/v1/query", principal, json={"metrics": ["clv"], "group_by": group_by, "where": where}
        )
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == [], where
    both = [{"dimension": "customer__region", "operator": "in", "values": [other, region]}]
    response = api.post(
        "/v1/query", principal, json={"metrics": ["clv"], "group_by": group_by, "where": both}
    )
    assert [row["customer__region"] for row in response.json()["rows"]] == [region]
    # the sanity of the above: Asia Pacific and Japan do have customers with clv
    assert sql_clv_by(pub, "region")[other][1] > 0
    assert sql_clv_by(pub, "country_name")["Japan"][1] > 0


@pytest.mark.parametrize("principal", sorted(REGION_OF))
def test_saved_queries_keep_the_row_filter(api, pub, principal):
    region = REGION_OF[principal]
    k = min_group_size(principal)
    response = api.get("/v1/saved-queries/sales_cross_sell_potential", principal)
    assert response.status_code == 200, response.text
    expected = {
        category: pytest.approx(value, rel=1e-9)
        for category, (value, support) in sql_potential_by_category(pub, region).items()
        if support >= k
    }
    column = "cross_sell_opportunity__offered_category"
    got = {row[column]: row["cross_sell_potential_revenue"] for row in response.json()["rows"]}
    assert got == expected
    other = api.post(
        "/v1/saved-queries/sales_cross_sell_potential",
        principal,
        json={"where": [{"dimension": "customer__region", "operator": "ne", "values": [region]}]},
    )
    assert other.status_code == 200 and other.json()["rows"] == []


def test_a_sales_rep_who_markets_stays_in_her_region(api, pub):
    """lena: marketing's metrics and saved query, still only Europe's rows."""
    (expected,) = pub.execute(
        """
        select sum(ol.net_revenue) from pub.main.order_lines ol
        join pub.main.customers c using (customer_id) where c.region = 'Europe'
        """
    ).fetchone()
    response = api.post(
        "/v1/query", "lena", json={"metrics": ["total_spend"], "group_by": ["customer__region"]}
    )
    assert response.json()["rows"] == [
        {"customer__region": "Europe", "total_spend": pytest.approx(float(expected), rel=1e-9)}
    ]
    # derived (offset) and conversion metrics keep the row filter too; values as SQL has
    # them. A year without a previous one has no growth, so its row rests on no customer
    # for that metric and is suppressed.
    yearly = dict(
        pub.execute(
            """
            select year(ol.order_date), sum(ol.net_revenue) from pub.main.order_lines ol
            join pub.main.customers c using (customer_id) where c.region = 'Europe'
            group by 1
            """
        ).fetchall()
    )
    expected_years = {
        f"{year}-01-01": (
            pytest.approx(float(spend), rel=1e-9),
            pytest.approx(float(spend / yearly[year - 1] - 1), rel=1e-9),
        )
        for year, spend in yearly.items()
        if year - 1 in yearly
    }
    assert expected_years
    metrics = ["total_spend", "total_spend_growth_yoy", "second_order_within_90_days"]
    body = {"metrics": metrics, "group_by": ["customer__region", "metric_time__year"]}
    by_year = api.post("/v1/query", "lena", json=body)
    assert by_year.status_code == 200, by_year.text
    rows = by_year.json()["rows"]
    assert {row["customer__region"] for row in rows} == {"Europe"}
    assert {
        row["metric_time__year"]: (row["total_spend"], row["total_spend_growth_yoy"])
        for row in rows
    } == expected_years
    saved = api.get("/v1/saved-queries/marketing_customer_value", "lena")
    assert saved.status_code == 200, saved.text
    assert {row["customer__region"] for row in saved.json()["rows"]} == {"Europe"}
    # maria, with the same marketing grants and no row filter, sees every region
    everyone = api.get("/v1/saved-queries/marketing_customer_value", "maria")
    assert len({row["customer__region"] for row in everyone.json()["rows"]}) > 1


@pytest.mark.parametrize("principal", sorted(REGION_OF))
def test_graphql_aliases_and_fragments_keep_the_row_filter(api, pub, principal):
    region = REGION_OF[principal]
    document = """
    query Leak {
      ...Mine
      other: query(metrics: ["clv"], groupBy: ["customer__region"],
                   where: [{dimension: "customer__region", operator: "ne", values: [$region]}]) {
        rows
      }
      saved: savedQuery(name: "sales_cross_sell_potential") { rows }
      countries: query(metrics: ["clv"], groupBy: ["customer__country"]) { rows }
    }
    fragment Mine on Query { mine: query(metrics: ["clv"], groupBy: ["customer__region"]) { rows } }
    """.replace("$region", json.dumps(region))
    response = api.graphql(document, principal)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    data = response.json()["data"]
    assert [row["customer__region"] for row in data["mine"]["rows"]] == [region]
    assert data["other"]["rows"] == []
    rest = api.get("/v1/saved-queries/sales_cross_sell_potential", principal).json()["rows"]
    assert data["saved"]["rows"] == rest
    countries = {row["customer__country"] for row in data["countries"]["rows"]}
    (in_region,) = pub.execute(
        "select list(distinct country_name) from pub.main.customers where region = ?", [region]
    ).fetchone()
    assert countries and countries <= set(in_region)


@pytest.mark.parametrize("principal", sorted(REGION_OF))
def test_the_customer_lookup_hides_other_regions(api, pub, principal, customer_in, no_customer):
    region = REGION_OF[principal]
    own = customer_in[region]
    response = api.get(f"/v1/customers/{own}/cross-sell", principal)
    assert response.status_code == 200, response.text
    expected = pub.execute(
        """
        select opportunity_rank, category from pub.main.cross_sell_opportunities
        where customer_id = ? order by opportunity_rank limit 3
        """,
        [own],
    ).fetchall()
    offers = response.json()["offers"]
    assert [(o["rank"], o["category"]) for o in offers] == [tuple(row) for row in expected]
    unknown = api.get(f"/v1/customers/{no_customer}/cross-sell", principal)
    assert_problem(unknown, 404)
    for other_region, customer in customer_in.items():
        if other_region == region:
            continue
        refused = api.get(f"/v1/customers/{customer}/cross-sell", principal)
        assert_problem(refused, 404)
        same_apart_from(refused, unknown, f"customer {customer}.", f"customer {no_customer}.")
        record = assert_denied(
            api, refused, principal, "GET /v1/customers/{customer_id}/cross-sell", 404
        )
        assert record["rows_returned"] == 0
        over_graphql = api.graphql(
            f"{{ customerCrossSell(customerId: {customer}) {{ customerId offers {{ rank }} }} }}",
            principal,
        )
        assert graphql_error(over_graphql, 404)["message"] == f"No customer {customer}."


def test_graphql_runs_at_most_five_data_operations(api):
    fields = [
        "metrics { name }",
        "dimensions { name }",
        "savedQueries { name }",
        "publication { publicationId }",
        'a: query(metrics: ["clv"]) { rows }',
        'b: query(metrics: ["clv"], groupBy: ["customer__region"]) { rows }',
    ]
    response = api.graphql("{ " + " ".join(fields) + " }", "erik")
    errors = response.json()["errors"]
    assert [e["extensions"] for e in errors] == [{"status": 400, "type": "too-many-operations"}]
    record = audited(api, response)
    assert record["outcome"] == "denied" and record["principal"] == "erik"
    five = api.graphql("{ " + " ".join(fields[:5]) + " }", "erik")
    assert "errors" not in five.json(), five.text


def test_graphql_dimensions_of_an_ungranted_metric_is_audited_as_a_denial(api):
    response = api.graphql('{ dimensions(metrics: ["total_spend"]) { name } }', "erik")
    unknown = api.graphql('{ dimensions(metrics: ["zz_no_such_metric"]) { name } }', "erik")
    assert graphql_error(response, 400)["message"] == "Unknown metric 'total_spend'."
    assert graphql_error(unknown, 400)["message"] == "Unknown metric 'zz_no_such_metric'."
    record = audited(api, response)
    assert record["outcome"] == "denied", record
    assert "total_spend" in (record["reason"] or "")


@pytest.mark.parametrize(
    "document",
    [
        "{ " + " ".join(f"a{i}: publication {{ publicationId }}" for i in range(6)) + " }",
        "{ metrics { " + "name " * 2500 + "} }",
    ],
    ids=["aliases", "tokens"],
)
def test_a_graphql_limit_refusal_is_a_refusal(api, document):
    response = api.graphql(document, "erik")
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert errors and all("status" in (e.get("extensions") or {}) for e in errors), errors
    assert audited(api, response)["outcome"] == "denied"


def test_a_malformed_body_without_a_token_is_a_401(api):
    response = api.post("/v1/query", json={"metrics": "clv", "sql": "select 1"})
    assert_problem(response, 401)


def test_a_malformed_body_is_audited_under_its_principal(api):
    response = api.post("/v1/query", "erik", json={"metrics": ["clv"], "sql": "select 1"})
    assert_problem(response, 400)
    assert audited(api, response)["principal"] == "erik"


def test_the_data_steward_may_look_up_any_region(api, customer_in):
    for customer in customer_in.values():
        response = api.get(f"/v1/customers/{customer}/cross-sell", "sam")
        assert response.status_code == 200 and response.json()["customer_id"] == customer


# --- injection: values are literals, names are names


INJECTIONS = [
    "customer__region' or 1=1 --",
    "Europe' or '1'='1",
    "{{ Dimension('customer__gender') }}",
    "{% for x in range(3) %}x{% endfor %}",
    "region; drop table x",
    "x'); select * from pub.main.customers; --",
    "Europe\u0000' or 1=1",
]


@pytest.mark.parametrize("principal", ["sam", "erik"])
def test_injection_in_filter_values_matches_nothing(api, pub, principal):
    """sam has no row filter: a value that became SQL would return rows. A NUL byte is
    refused outright (400); every other value is a literal that no region equals."""
    (customers_before,) = pub.execute("select count(*) from pub.main.customers").fetchone()
    allowed = {REGION_OF[principal]} if principal in REGION_OF else None
    document = (
        'query($v: JSON!) { query(metrics: ["clv"], groupBy: ["customer__region"],'
        ' where: [{dimension: "customer__region", operator: "eq", values: [$v]}]) { rows } }'
    )
    for value in INJECTIONS:
        status = 400 if "\x00" in value else 200
        for operator in ("eq", "gte"):
            where = [{"dimension": "customer__region", "operator": operator, "values": [value]}]
            body = {"metrics": ["clv"], "group_by": ["customer__region"], "where": where}
            response = api.post("/v1/query", principal, json=body)
            assert response.status_code == status, response.text
            if status == 400:
                assert audited(api, response)["outcome"] == "denied"
                continue
            rows = response.json()["rows"]
            if operator != "gte":
                assert rows == [], (value, rows)
                continue
            # a real string comparison: the regions SQL finds, within the row filter
            (expected,) = pub.execute(
                "select coalesce(list(distinct region), []) from pub.main.customers"
                " where region >= ?",
                [value],
            ).fetchone()
            got = {row["customer__region"] for row in rows}
            assert got == (set(expected) & allowed if allowed else set(expected))
        over_graphql = api.graphql(document, principal, {"v": value})
        if status == 400:
            graphql_error(over_graphql, 400)
        else:
            assert over_graphql.json()["data"]["query"]["rows"] == [], over_graphql.text
    (customers_after,) = pub.execute("select count(*) from pub.main.customers").fetchone()
    assert customers_after == customers_before


@pytest.mark.parametrize("principal", ["sam", "erik"])
def test_injection_in_names_is_an_unknown_name(api, principal):
    for value in INJECTIONS:
        for body in (
            {"metrics": [value]},
            {"metrics": ["clv"], "group_by": [value]},
            {"metrics": ["clv"], "order_by": [value]},
            {"metrics": ["clv", value]},
        ):
            response = api.post("/v1/query", principal, json=body)
            assert_problem(response, 400)
            record = audited(api, response)
            assert record["outcome"] == "denied" and record["status"] == 400
        where = [{"dimension": value, "operator": "eq", "values": ["Europe"]}]
        response = api.post("/v1/query", principal, json={"metrics": ["clv"], "where": where})
        assert_problem(response, 400)
        saved = api.get(f"/v1/saved-queries/{quote(value, safe='')}", principal)
        assert saved.status_code in (400, 404), saved.text
    time_value = [
        {"dimension": "metric_time", "operator": "gt", "values": ["2024-01-01' or 1=1 --"]}
    ]
    response = api.post("/v1/query", principal, json={"metrics": ["clv"], "where": time_value})
    assert "not a date" in assert_problem(response, 400)["detail"]


def test_a_request_cannot_carry_sql(api):
    for body in (
        {"metrics": ["clv"], "sql": "select * from customers"},
        {"metrics": ["clv"], "where": "customer__region = 'Europe' or 1=1"},
        {"metrics": ["clv"], "trusted_where": ["1=1"]},
        {
            "metrics": ["clv"],
            "where": [
                {
                    "dimension": "customer__region",
                    "operator": "eq",
                    "values": ["Europe"],
                    "sql": "1=1",
                }
            ],
        },
        {
            "metrics": ["clv"],
            "where": [{"dimension": "customer__region", "operator": "like", "values": ["%"]}],
        },
    ):
        response = api.post("/v1/query", "sam", json=body)
        assert_problem(response, 400)
        assert audited(api, response)["outcome"] == "denied"


# --- oversized limits and time ranges


@pytest.mark.parametrize("principal", QUERYING)
def test_limits_stay_within_the_groups_max_rows(api, principal):
    ceiling = max_rows(principal)
    for limit in (ceiling + 1, 10_001, 10**20, 0, -1):
        response = api.post("/v1/query", principal, json={"metrics": ["clv"], "limit": limit})
        detail = assert_problem(response, 400)["detail"]
        assert f"between 1 and {ceiling}" in detail
        assert_denied(api, response, principal, "POST /v1/query", 400)
    ok = api.post("/v1/query", principal, json={"metrics": ["clv"], "limit": ceiling})
    assert ok.status_code == 200 and ok.json()["governance"]["limit"] == ceiling
    default = api.post("/v1/query", principal, json={"metrics": ["clv"]})
    assert default.json()["governance"]["limit"] == ceiling


def test_saved_query_limits_are_bounded_too(api):
    for limit, status in (("0", 400), ("10001", 400), ("501", 400), ("abc", 400), ("-3", 400)):
        response = api.get(f"/v1/saved-queries/sales_cross_sell_potential?limit={limit}", "erik")
        assert_problem(response, status)


def test_a_truncated_answer_says_so(api, pub):
    (customers,) = pub.execute("select count(clv) from pub.main.customer_value").fetchone()
    assert customers > 10
    response = api.post(
        "/v1/query", "sam", json={"metrics": ["clv"], "group_by": ["customer"], "limit": 10}
    )
    assert len(response.json()["rows"]) == 10
    assert response.json()["governance"]["truncated"] is True


@pytest.fixture(scope="module")
def calendar(pub) -> tuple[dt.date, dt.date]:
    first, last = pub.execute(
        "select min(date_day), max(date_day) from pub.main.time_spine_daily"
    ).fetchone()
    return first, last


@pytest.mark.parametrize("principal", ["erik", "maria", "sam"])
def test_time_ranges_must_be_ordered_and_inside_the_calendar(api, principal, calendar):
    first, last = calendar
    day = dt.timedelta(days=1)
    for start, end in (
        ("2024-05-01", "2024-01-01"),
        ((first - 400 * day).isoformat(), (first - day).isoformat()),
        ((last + day).isoformat(), None),
        (None, (first - day).isoformat()),
        ("2024-13-45", None),
        ("not a date", None),
        ("2024-01-01'; drop table x; --", None),
    ):
        body = {"metrics": ["clv"], "group_by": ["metric_time__month"], "start": start, "end": end}
        response = api.post("/v1/query", principal, json=body)
        assert_problem(response, 400)
        assert audited(api, response)["outcome"] == "denied"
    ok = api.post(
        "/v1/query",
        principal,
        json={"metrics": ["clv"], "start": first.isoformat(), "end": last.isoformat()},
    )
    assert ok.status_code == 200, ok.text
    saved = api.get(
        "/v1/saved-queries/sales_cross_sell_potential?start=2024-05-01&end=2024-01-01", "erik"
    )
    assert_problem(saved, 400)


# --- tokens


def token_attacks() -> dict[str, dict[str, str]]:
    now = dt.datetime.now(dt.UTC)
    return {
        "none": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic c2FtOnNhbQ=="},
        "bearer-without-token": {"Authorization": "Bearer "},
        "garbage": bearer("not.a.jwt"),
        "forged": bearer(make_token("sam", secret="another-secret-of-at-least-32-bytes!!")),
        "expired": bearer(
            make_token("sam", issued=now - dt.timedelta(hours=9), lifetime=dt.timedelta(hours=8))
        ),
        "alg-none": bearer(unsigned_token("sam")),
        "alg-hs512": bearer(make_token("sam", algorithm="HS512")),
        "wrong-audience": bearer(make_token("sam", aud="another-api")),
        "wrong-issuer": bearer(make_token("sam", iss="someone-else")),
        "no-expiry": bearer(make_token("sam", exp=None)),
        "issued-in-the-future": bearer(make_token("sam", issued=now + dt.timedelta(hours=2))),
        "unknown-principal": bearer(make_token("mallory")),
        "empty-subject": bearer(make_token("")),
    }


def test_every_bad_token_is_a_401_and_audited(fresh_api):
    attempts = []
    for name, headers in token_attacks().items():
        for method, path, kwargs in (
            ("GET", "/v1/meta", {}),
            ("POST", "/v1/query", {"json": {"metrics": ["clv"]}}),
            ("GET", "/v1/customers/{customer_id}/cross-sell", {}),
            ("POST", "/graphql", {"json": {"query": "{ metrics { name } }"}}),
        ):
            url = path.replace("{customer_id}", "10001")
            response = fresh_api.client.request(method, url, headers=headers, **kwargs)
            body = assert_problem(response, 401)
            assert "sam" not in body["detail"]
            attempts.append((name, method, path, response))
    records = audit_records(fresh_api.audit_path)
    assert len(records) == len(attempts)
    by_id = records_by_request_id(records)
    for name, method, path, response in attempts:
        record = by_id[response.headers["x-request-id"]]
        assert record["status"] == 401 and record["outcome"] == "denied"
        assert record["endpoint"] == f"{method} {path}"
        if name == "unknown-principal":
            assert record["principal"] in (None, "mallory")
            assert "unknown principal" in record["reason"]
        else:
            assert record["principal"] is None, (name, record)
        assert record["rows_returned"] == 0 and record["sql_hash"] is None
    assert verify(fresh_api.audit_path).ok


def test_a_valid_token_for_each_principal_is_accepted(api):
    for principal in PRINCIPALS:
        response = api.get("/v1/meta", principal)
        assert response.status_code == (403 if principal == "intern" else 200), response.text


# --- minimum group size


#: group-by names and the customers column (SQL expression) each reads
CUSTOMER_COLUMNS = {
    "customer__country": "c.country_name",
    "customer__age_group": "c.age_group",
    "customer__rfm_segment": "c.rfm_segment",
    "customer__signup_date": "cast(c.signed_up_at as date)",
    "customer__gender": "c.gender",
}


def sql_clv_support(pub, group_by: list[str], region: str | None) -> dict[tuple, tuple[float, int]]:
    """clv and the number of customers behind it, per group, straight from the file."""
    columns = ", ".join(CUSTOMER_COLUMNS[name] for name in group_by)
    where = "where c.region = ?" if region else ""
    rows = pub.execute(
        f"""
        select {columns}, avg(v.clv), count(v.clv)
        from pub.main.customer_value v left join pub.main.customers c using (customer_id)
        {where} group by all
        """,
        [region] if region else [],
    ).fetchall()
    return {
        tuple(v.isoformat() if isinstance(v, dt.date) else v for v in row[:-2]): (
            float(row[-2]),
            row[-1],
        )
        for row in rows
    }


@pytest.mark.parametrize(
    ("principal", "group_by"),
    [
        ("maria", ["customer__country", "customer__age_group", "customer__rfm_segment"]),
        ("bi_dashboard", ["customer__country", "customer__age_group"]),
        ("lena", ["customer__country", "customer__age_group", "customer__rfm_segment"]),
        ("maria", ["customer__country", "customer__signup_date"]),
        ("maria", ["customer__country", "customer__age_group", "customer__gender"]),
        ("bi_dashboard", ["customer__country", "customer__rfm_segment", "customer__gender"]),
    ],
    ids=["maria-3", "bi-2", "lena-3", "maria-signup-day", "maria-masked", "bi-redacted"],
)
def test_no_row_rests_on_fewer_than_k_customers(api, pub, principal, group_by):
    """The support of each group counted independently with SQL: rows under k are
    gone, every other row is there with its value, and the dropped ones are counted."""
    k = min_group_size(principal)
    support = sql_clv_support(pub, group_by, REGION_OF.get(principal))
    kept = {key: pytest.approx(value, rel=1e-9) for key, (value, n) in support.items() if n >= k}
    small = sum(1 for _, n in support.values() if n < k)
    singles = sum(1 for _, n in support.values() if n == 1)
    assert small > 0 and singles > 0  # the query would single customers out
    response = api.post("/v1/query", principal, json={"metrics": ["clv"], "group_by": group_by})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["governance"]["min_group_size"] == k
    assert answer["governance"]["suppressed_rows"] == small
    assert audited(api, response)["suppressed_rows"] == small
    assert len(answer["rows"]) == len(kept)
    if "customer__gender" not in group_by:  # masked values cannot be matched to SQL
        got = {tuple(row[name] for name in group_by): row["clv"] for row in answer["rows"]}
        assert got == kept
    else:
        expected = sorted(value for value, n in support.values() if n >= k)
        assert sorted(row["clv"] for row in answer["rows"]) == pytest.approx(expected, rel=1e-9)


def test_an_answer_read_from_a_metric_export_keeps_the_minimum_group_size(
    api, pub, sample_publication
):
    """clv by RFM segment is a metric export of the publication, so the service reads the
    answer from it; the support behind each row is still counted, and the segments of
    fewer than k customers are still dropped."""
    with SemanticLayer.from_publication(sample_publication.published) as layer:
        assert layer.query(["clv"], ["customer__rfm_segment"]).export is not None
    k = min_group_size("bi_dashboard")
    support = sql_clv_support(pub, ["customer__rfm_segment"], None)
    kept = {key: pytest.approx(value, rel=1e-9) for key, (value, n) in support.items() if n >= k}
    small = sum(1 for _, n in support.values() if n < k)
    assert small > 0 and kept  # a segment of a handful of customers
    response = api.post(
        "/v1/query",
        "bi_dashboard",
        json={"metrics": ["clv"], "group_by": ["customer__rfm_segment"]},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["governance"]["suppressed_rows"] == small
    assert {(row["customer__rfm_segment"],): row["clv"] for row in answer["rows"]} == kept


def test_without_a_minimum_the_same_query_does_single_customers_out(api, pub):
    """The contrast: the data steward (k = 1) gets the one-customer rows."""
    group_by = ["customer__country", "customer__signup_date"]
    support = sql_clv_support(pub, group_by, None)
    response = api.post("/v1/query", "sam", json={"metrics": ["clv"], "group_by": group_by})
    assert response.json()["governance"]["suppressed_rows"] == 0
    assert len(response.json()["rows"]) == len(support)
    assert any(n == 1 for _, n in support.values())


def send(api, principal: str | None, method: str, path: str, body: Any = None, headers=None):
    """A request as ``principal`` (None: no token), JSON body if any."""
    headers = {**(api.headers(principal) if principal else {}), **(headers or {})}
    kwargs = {"json": body} if body is not None else {}
    return api.client.request(method, path, headers=headers, **kwargs)


def test_each_kind_of_refusal_writes_one_denied_record(fresh_api, customer_in):
    """One attempt of each kind, counted on a log of its own: one record each, denied,
    with the principal, endpoint and status of the attempt."""
    europe, america = customer_in["Europe"], customer_in["North America"]
    lookup = "/v1/customers/{customer_id}/cross-sell"
    masked = [{"dimension": "customer__gender", "operator": "eq", "values": ["female"]}]
    query = "/v1/query"
    # principal, method, path (template), path values, body, status
    attempts = [
        ("erik", "POST", query, {}, {"metrics": ["total_spend"]}, 400),
        ("erik", "POST", query, {}, {"metrics": ["clv"], "group_by": ["customer__gender"]}, 400),
        ("maria", "POST", query, {}, {"metrics": ["clv"], "where": masked}, 403),
        ("olivia", "POST", query, {}, {"metrics": ["clv"], "format": "csv"}, 403),
        ("sam", "POST", query, {}, {"metrics": ["clv"], "group_by": ["region; drop table x"]}, 400),
        ("sam", "POST", query, {}, {"metrics": ["clv"], "limit": 10_001}, 400),
        (
            "sam",
            "POST",
            query,
            {},
            {"metrics": ["clv"], "start": "2024-02-01", "end": "2024-01-01"},
            400,
        ),
        (
            "erik",
            "GET",
            "/v1/saved-queries/{name}",
            {"name": "marketing_customer_value"},
            None,
            404,
        ),
        ("nadia", "GET", lookup, {"customer_id": europe}, None, 404),
        ("maria", "GET", lookup, {"customer_id": europe}, None, 403),
        ("intern", "GET", "/v1/meta", {}, None, 403),
        (None, "GET", "/v1/meta", {}, None, 401),
        (
            "erik",
            "POST",
            "/graphql",
            {},
            {"query": '{ query(metrics: ["total_spend"]) { rows } }'},
            200,
        ),
        (
            "erik",
            "POST",
            "/graphql",
            {},
            {"query": f"{{ customerCrossSell(customerId: {america}) {{ customerId }} }}"},
            200,
        ),
    ]
    responses = [
        send(fresh_api, who, method, path.format(**values), body)
        for who, method, path, values, body, _ in attempts
    ]
    responses.append(send(fresh_api, None, "GET", "/v1/meta", headers=bearer(unsigned_token())))
    attempts.append((None, "GET", "/v1/meta", {}, None, 401))
    records = audit_records(fresh_api.audit_path)
    assert len(records) == len(attempts)
    for attempt, response, record in zip(attempts, responses, records, strict=True):
        principal, method, path, _, _, status = attempt
        assert response.status_code == status, (attempt, response.text)
        assert record["request_id"] == response.headers["x-request-id"]
        assert (record["principal"], record["endpoint"], record["status"]) == (
            principal,
            f"{method} {path}",
            status,
        ), record
        assert record["outcome"] == "denied" and record["rows_returned"] == 0, record
    assert verify(fresh_api.audit_path).ok


# --- audit completeness


def test_every_request_writes_exactly_one_audit_record(fresh_api):
    """N requests of every kind (REST and GraphQL, allowed and denied, 401s, unknown
    routes and methods, the OpenAPI document): exactly N records, in order, each with
    the request id its response carries, and an intact chain."""
    forged = bearer(make_token("sam", secret="x" * 40))
    graphql = "/graphql"
    # principal, method, path, body, status, outcome
    requests = [
        (None, "GET", "/health", None, 200, "allowed"),
        ("sam", "GET", "/v1/meta", None, 200, "allowed"),
        ("olivia", "GET", "/v1/publication", None, 200, "allowed"),
        (
            "erik",
            "POST",
            "/v1/query",
            {"metrics": ["clv"], "group_by": ["customer__region"]},
            200,
            "allowed",
        ),
        ("erik", "POST", "/v1/query", {"metrics": ["total_spend"]}, 400, "denied"),
        ("maria", "POST", "/v1/query", {"metrics": ["clv"], "format": "csv"}, 200, "allowed"),
        ("sam", "POST", "/v1/query", {"metrics": "not a list", "limit": "x"}, 400, "denied"),
        (None, "POST", "/v1/query", {"metrics": ["clv"]}, 401, "denied"),
        ("nadia", "GET", "/v1/saved-queries/sales_cross_sell_potential", None, 200, "allowed"),
        ("erik", "GET", "/v1/saved-queries/marketing_customer_value", None, 404, "denied"),
        ("maria", "GET", "/v1/customers/10001/cross-sell", None, 403, "denied"),
        ("sam", "GET", "/v1/customers/999999/cross-sell", None, 404, "denied"),
        ("sam", "GET", "/v1/no-such-route", None, 404, "denied"),
        ("sam", "GET", "/v1/query", None, 405, "denied"),
        ("erik", "POST", graphql, {"query": "{ metrics { name } }"}, 200, "allowed"),
        (
            "erik",
            "POST",
            graphql,
            {"query": '{ query(metrics: ["total_spend"]) { rows } }'},
            200,
            "denied",
        ),
        (None, "POST", graphql, {"query": "{ metrics { name } }"}, 401, "denied"),
        ("sam", "POST", graphql, {"query": "{ nope }"}, 200, None),  # see test_fuzz.py
        (None, "GET", "/openapi.json", None, 200, "allowed"),
        ("intern", "GET", "/v1/meta", None, 403, "denied"),
    ]
    responses = [send(fresh_api, *request[:4]) for request in requests]
    responses.append(send(fresh_api, None, "GET", "/v1/meta", headers=forged))
    requests.append((None, "GET", "/v1/meta", None, 401, "denied"))
    assert [r.status_code for r in responses] == [request[4] for request in requests]
    records = audit_records(fresh_api.audit_path)
    assert len(records) == len(requests)
    assert [r["request_id"] for r in records] == [r.headers["x-request-id"] for r in responses]
    assert [r["status"] for r in records] == [request[4] for request in requests]
    assert [r["seq"] for r in records] == list(range(1, len(requests) + 1))
    for request, record in zip(requests, records, strict=True):
        if request[5] is not None:
            assert record["outcome"] == request[5], (request, record)
    result = verify(fresh_api.audit_path)
    assert result.ok and result.records == len(requests), result.problems
