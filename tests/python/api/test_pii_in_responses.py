"""No raw personal value of the sample reaches a consumer through the API.

The raw values (emails as entered and normalised, phones as entered and as digits, full
names, birth dates) are pii_scan's own definition, read from the working database of
the sample build; the bodies are those of a broad set of requests: every endpoint,
every principal, the data steward grouping by customer, CSV exports and GraphQL.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from .attack_support import (
    PRINCIPALS,
    RawPersonalData,
    catalog_document,
    clear_dimensions,
    granted_metrics,
    published_sql,
    scopes,
)

#: The principals customer__gender is masked for (hash or redact), per policies.yml.
MASKED_FOR = {"maria", "lena", "bi_dashboard"}


@pytest.fixture(scope="module")
def raw(sample_publication, tmp_path_factory) -> RawPersonalData:
    data = RawPersonalData.load(sample_publication.working, tmp_path_factory.mktemp("raw-pii"))
    for kind in ("emails", "phones", "phone_digits", "names", "birth_dates"):
        assert len(getattr(data, kind)) > 100, kind  # the sample does hold personal data
    return data


@pytest.fixture(scope="module")
def customers(sample_publication) -> dict[str, list[int]]:
    """A few customers with offers per region, from the published file."""
    with published_sql(sample_publication.published) as pub:
        rows = pub.execute(
            """
            select region, list(customer_id order by customer_id)[1:4]
            from pub.main.customers c
            where exists (
                select 1 from pub.main.cross_sell_opportunities o
                where o.customer_id = c.customer_id
            )
            group by 1
            """
        ).fetchall()
    assert rows
    return dict(rows)


def test_birth_dates_lie_before_every_date_an_answer_can_carry(raw, sample_publication):
    """What makes a plain substring search for birth dates sound: no legitimate date of
    an answer (metric time, sign-up, first order, as-of date) can be one."""
    with published_sql(sample_publication.published) as pub:
        (earliest,) = pub.execute(
            """
            select least(
                (select min(date_day) from pub.main.time_spine_daily),
                (select min(cast(signed_up_at as date)) from pub.main.customers),
                (select min(first_order_date) from pub.main.customers),
                (select min(as_of_date) from pub.main.cross_sell_opportunities)
            )
            """
        ).fetchone()
    assert max(raw.birth_dates) < earliest.isoformat()


def test_the_scanner_finds_each_kind_of_raw_value(raw):
    """The scanner itself can fail: each kind planted in a body is found, in JSON
    (escaped or not), in CSV and in a message."""
    email = sorted(raw.emails)[0]
    phone = sorted(raw.phones)[0]
    digits = sorted(raw.phone_digits)[0]
    name = sorted(raw.names, key=lambda n: (n.isascii(), n))[0]  # one with an accent
    birth = sorted(raw.birth_dates)[0]
    assert raw.findings(json.dumps({"rows": [{"x": email.upper()}]})) >= {"email"}
    assert raw.findings(json.dumps({"detail": f"call {phone} now"})) >= {"phone"}
    spaced = " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))
    assert "phone_digits" in raw.findings(json.dumps({"value": f"+({spaced})"}))
    assert "phone_digits" in raw.findings(f"a,b\n1,{digits}\n")
    assert "name" in raw.findings(json.dumps({"who": name.title()}, ensure_ascii=True))
    assert "birth_date" in raw.findings(f"customer,born\n1,{birth}\n")
    assert (
        raw.findings(json.dumps({"rows": [{"clv": 530.1331989724175, "day": "2024-01-01"}]}))
        == set()
    )


def requests_to_scan(
    api, customers: dict[str, list[int]], catalog: dict
) -> list[tuple[str, object]]:
    """(label, response) for a broad set of requests of every principal."""
    sent: list[tuple[str, object]] = []

    def add(label: str, response) -> None:
        sent.append((label, response))

    add("health", api.get("/health"))
    add("openapi", api.get("/openapi.json"))
    add("docs", api.get("/docs"))
    every_customer = [c for ids in customers.values() for c in ids]
    for principal in PRINCIPALS:
        granted = sorted(granted_metrics(principal, catalog)) or ["clv"]
        dims = sorted(clear_dimensions(principal))
        add(f"{principal} meta", api.get("/v1/meta", principal))
        add(f"{principal} publication", api.get("/v1/publication", principal))
        add(f"{principal} query", api.post("/v1/query", principal, json={"metrics": granted[:3]}))
        for metric in ("clv", "total_spend"):
            if metric in granted and principal != "sam":  # sam's come below, by customer
                group_by = [d for d in dims if d.startswith("customer__")][:6]
                add(
                    f"{principal} {metric} by customer dimensions",
                    api.post(
                        "/v1/query", principal, json={"metrics": [metric], "group_by": group_by}
                    ),
                )
        if principal in MASKED_FOR:
            by_gender = {"metrics": ["clv"], "group_by": ["customer__gender", "customer__region"]}
            add(f"{principal} by masked", api.post("/v1/query", principal, json=by_gender))
            add(
                f"{principal} graphql by masked",
                api.graphql(
                    '{ query(metrics: ["clv"], groupBy: ["customer__gender"]) { rows } }',
                    principal,
                ),
            )
            if "export" in scopes(principal):
                csv_body = {**by_gender, "format": "csv"}
                add(f"{principal} csv by masked", api.post("/v1/query", principal, json=csv_body))
        if "export" in scopes(principal):
            body = {
                "metrics": ["clv"],
                "group_by": ["customer__country", "customer__age_group"],
                "format": "csv",
            }
            add(f"{principal} csv", api.post("/v1/query", principal, json=body))
        for name in sorted(catalog["saved_queries"]):
            add(f"{principal} saved {name}", api.get(f"/v1/saved-queries/{name}", principal))
        narrowed = {"where": [{"dimension": "metric_time", "operator": "is_not_null"}]}
        add(
            f"{principal} saved narrowed",
            api.post("/v1/saved-queries/sales_cross_sell_potential", principal, json=narrowed),
        )
        for customer in every_customer[:: 3 if principal != "sam" else 1]:
            add(
                f"{principal} customer {customer}",
                api.get(f"/v1/customers/{customer}/cross-sell?limit=10", principal),
            )
        add(
            f"{principal} graphql",
            api.graphql(
                "{ metrics { name label description tags dimensions }"
                " dimensions { name label description masked }"
                " savedQueries { name description }"
                " publication { publicationId publishedAt sloStatus } }",
                principal,
            ),
        )
    # the data steward down to single customers: every customer dimension, JSON and CSV
    steward = {
        "metrics": ["clv", "probability_alive", "cross_sell_opportunity_score"],
        "group_by": [
            "customer",
            "customer__region",
            "customer__country",
            "customer__gender",
            "customer__age_group",
            "customer__rfm_segment",
            "customer__signup_date",
            "customer__first_order_date",
            "customer__clv_method",
            "customer__top_cross_sell_category",
        ],
        "limit": 10_000,
    }
    add("sam by customer", api.post("/v1/query", "sam", json=steward))
    add("sam by customer csv", api.post("/v1/query", "sam", json={**steward, "format": "csv"}))
    orders = {"metrics": ["total_spend", "order_count"], "group_by": ["customer", "order__channel"]}
    add("sam orders by customer", api.post("/v1/query", "sam", json=orders))
    add(
        "sam graphql by customer",
        api.graphql(
            '{ query(metrics: ["clv"], groupBy: ["customer", "customer__signup_date", '
            '"customer__country"], limit: 10000) { rows } customerCrossSell(customerId: '
            f"{every_customer[0]}, limit: 10) {{ customerId clv offers {{ rank category }} }} }}",
            "sam",
        ),
    )
    # refusals too: their messages must not quote data
    add(
        "erik other region",
        api.get(f"/v1/customers/{customers['North America'][0]}/cross-sell", "erik"),
    )
    add(
        "maria masked filter",
        api.post(
            "/v1/query",
            "maria",
            json={
                "metrics": ["clv"],
                "where": [
                    {"dimension": "customer__gender", "operator": "eq", "values": ["female"]}
                ],
            },
        ),
    )
    add(
        "bad filter type",
        api.post(
            "/v1/query",
            "sam",
            json={
                "metrics": ["clv"],
                "where": [
                    {"dimension": "customer__signup_date", "operator": "gt", "values": ["x"]}
                ],
            },
        ),
    )
    return sent


@pytest.fixture(scope="module")
def sent(api, customers, sample_publication) -> list[tuple[str, object]]:
    return requests_to_scan(api, customers, catalog_document(sample_publication.published))


def test_no_response_body_carries_raw_personal_data(raw, sent):
    assert len(sent) > 100
    ok = [label for label, response in sent if response.status_code == 200]
    assert (
        "sam by customer" in ok and "sam by customer csv" in ok and "sam graphql by customer" in ok
    )
    by_customer = next(r for label, r in sent if label == "sam by customer").json()
    assert len(by_customer["rows"]) > 1000  # the steward's answer does go down to customers
    findings = {
        label: sorted(found) for label, response in sent if (found := raw.findings(response.text))
    }
    assert findings == {}


def test_no_answer_shows_a_masked_dimension_in_clear(sent, sample_publication):
    """Every answer of a principal customer__gender is masked for, including those
    grouped by it (JSON, CSV, GraphQL): no clear gender among its values."""
    sent = [(label, response) for label, response in sent if label.split()[0] in MASKED_FOR]
    with published_sql(sample_publication.published) as pub:
        genders = {
            g for (g,) in pub.execute("select distinct gender from pub.main.customers").fetchall()
        }
    assert len(genders) >= 3
    shown = {
        label: values & genders
        for label, response in sent
        if (values := gender_values(response)) & genders
    }
    assert shown == {}
    grouped = [label for label, response in sent if gender_values(response)]
    assert len(grouped) >= len(MASKED_FOR)  # the masked dimension was asked for


def gender_values(response) -> set:
    """Every value of a customer__gender column in a JSON (REST or GraphQL) or CSV answer."""
    if response.headers.get("content-type", "").startswith("text/csv"):
        rows = csv.DictReader(io.StringIO(response.text))
        return {row["customer__gender"] for row in rows if row.get("customer__gender")}
    try:
        document = response.json()
    except ValueError:
        return set()
    found: set = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            if "customer__gender" in value:
                found.add(value["customer__gender"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    return found - {None}
