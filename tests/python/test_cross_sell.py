"""cross_sell_opportunities on the committed sample, recomputed here from the public marts
(order_lines, products, orders) and the published take-up fit, rather than from the
models' own SQL: ownership, rule evidence, popularity, the model's features, the
probability, the value, the score and the ranking of every offer."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from datetime import timedelta

import duckdb
import pytest

from conftest import run_dbt

pytestmark = pytest.mark.dbt

MONEY = 1e-4  # decimal(18, 4) columns are rounded to 4 places


def _query(database, sql):
    with duckdb.connect(str(database), read_only=True) as con:
        relation = con.sql(sql)
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


@pytest.fixture(scope="module")
def reference(sample_db):
    offers = _query(sample_db, "select * from cross_sell_opportunities")
    as_of = offers[0]["as_of_date"]
    lines = _query(
        sample_db,
        "select lines.customer_id, lines.order_date, lines.net_revenue, products.category"
        " from order_lines as lines inner join products using (product_id)"
        f" where lines.line_type = 'sale' and lines.order_date <= date '{as_of}'"
        " and products.category != 'uncategorised'",
    )
    first_day: dict[tuple[int, str], object] = {}
    day_revenue: dict[tuple[int, str, object], float] = defaultdict(float)
    for line in lines:
        key = (line["customer_id"], line["category"])
        first_day[key] = min(first_day.get(key, line["order_date"]), line["order_date"])
        day_revenue[(*key, line["order_date"])] += float(line["net_revenue"])
    owned: dict[int, set[str]] = defaultdict(set)
    for customer, category in first_day:
        owned[customer].add(category)
    first_values: dict[str, list[float]] = defaultdict(list)
    for (customer, category), day in first_day.items():
        first_values[category].append(day_revenue[(customer, category, day)])
    occasions: dict[int, dict[object, float]] = defaultdict(lambda: defaultdict(float))
    for order in _query(
        sample_db,
        "select customer_id, order_date, sales_revenue from orders"
        f" where is_completed and order_date <= date '{as_of}'",
    ):
        occasions[order["customer_id"]][order["order_date"]] += float(order["sales_revenue"])
    fit = {
        row["term"]: row
        for row in _query(
            sample_db, "select * from cross_sell_take_up_models where fit_name = 'production'"
        )
    }
    return {
        "as_of": as_of,
        "offers": offers,
        "owned": owned,
        "first_values": {c: sum(v) / len(v) for c, v in first_values.items()},
        "occasions": occasions,
        "fit": fit,
    }


def _rules(owned):
    n = len(owned)
    count: dict[str, int] = defaultdict(int)
    pair: dict[tuple[str, str], int] = defaultdict(int)
    for items in owned.values():
        for a in items:
            count[a] += 1
            for b in items - {a}:
                pair[a, b] += 1
    return n, count, pair


def test_every_offer_is_an_unowned_category_with_the_best_rule_as_evidence(reference):
    owned = reference["owned"]
    n, count, pair = _rules(owned)
    for offer in reference["offers"]:
        customer, target = offer["customer_id"], offer["category"]
        assert target not in owned[customer], offer
        assert target != "uncategorised"
        rules = [
            (pair[a, target] / count[a], pair[a, target] * n / (count[a] * count[target]), a)
            for a in owned[customer]
            if pair[a, target] > 0
        ]
        best = sorted(rules, key=lambda r: (-r[0], -r[1], r[2]))[0] if rules else None
        assert offer["evidence_category"] == (best[2] if best else None), offer
        assert offer["evidence_confidence"] == pytest.approx(best[0] if best else 0, rel=1e-12)
        assert offer["evidence_lift"] == pytest.approx(best[1] if best else 0, rel=1e-9)
        assert offer["category_customer_share"] == pytest.approx(count[target] / n, rel=1e-12)


def _features(reference, customer, target, alive, rules):
    n, count, pair = rules
    days = reference["occasions"][customer]
    spend = sum(days.values()) / len(days)
    first, last = min(days), max(days)
    as_of = reference["as_of"]
    candidates = [
        (pair[a, target] / count[a], pair[a, target] * n / (count[a] * count[target]), a)
        for a in reference["owned"][customer]
        if pair[a, target] > 0
    ]
    best = sorted(candidates, key=lambda r: (-r[0], -r[1], r[2]))[0] if candidates else None
    return {
        "feature_log_popularity": math.log(count[target] / n),
        "feature_evidence_confidence": best[0] if best else 0.0,
        "feature_log_lift": math.log(best[1]) if best else 0.0,
        "feature_has_evidence": 1.0 if best else 0.0,
        "feature_owned_category_count": float(len(reference["owned"][customer])),
        "feature_log_occasions": math.log(len(days)),
        "feature_years_since_last_purchase": (as_of - last).days / 365.25,
        "feature_years_since_first_purchase": (as_of - first).days / 365.25,
        "feature_probability_alive": alive,
        "feature_log_spend": math.log(1 + spend),
    }


def _probability(fit, features, owned, target):
    """sigma(intercept + sum of coefficient x (term - center) / scale); a pair term is 1
    when the customer owns its owned_category and the offer is its offered_category."""
    eta = fit["intercept"]["coefficient"]
    for term, row in fit.items():
        if term == "intercept":
            continue
        if row["owned_category"] is None:
            value = features[term]
        else:
            value = float(row["owned_category"] in owned and row["offered_category"] == target)
        eta += row["coefficient"] * (value - row["center"]) / row["scale"]
    return 1 / (1 + math.exp(-eta))


def test_probabilities_values_scores_and_ranks_follow_from_the_published_fit(reference):
    owned, fit = reference["owned"], reference["fit"]
    assert fit["intercept"]["fit_status"] == "fitted"
    # The sample's 8 categories give 56 ordered pairs, and every one is well supported.
    assert sum(row["owned_category"] is not None for row in fit.values()) == 56
    assert fit["intercept"]["horizon_days"] == 91
    assert fit["intercept"]["applied_snapshot_date"] == reference["as_of"]
    assert fit["intercept"]["training_snapshot_date"] == reference["as_of"] - timedelta(days=91)
    rules = _rules(owned)
    categories = set(rules[1])
    occasions = reference["occasions"]
    population_spend = sum(sum(d.values()) for d in occasions.values()) / sum(
        len(d) for d in occasions.values()
    )
    top_value = max(reference["first_values"].values())
    by_customer = defaultdict(list)
    for offer in reference["offers"]:
        by_customer[offer["customer_id"]].append(offer)
    assert set(by_customer) == {c for c, items in owned.items() if categories - items}
    for customer, offers in by_customer.items():
        alive = offers[0]["probability_alive"]
        assert all(o["probability_alive"] == alive for o in offers) and 0 <= alive <= 1
        days = occasions[customer]
        spend = sum(days.values()) / len(days)
        multiplier = (len(days) * spend + population_spend) / (len(days) + 1) / population_spend
        expected = []
        for target in sorted(categories - owned[customer]):
            features = _features(reference, customer, target, alive, rules)
            p = _probability(fit, features, owned[customer], target)
            value = reference["first_values"][target] * multiplier
            expected.append((p, p * value, value, target))
        expected.sort(key=lambda e: (-e[0], -e[1], e[3]))
        offers.sort(key=lambda o: o["opportunity_rank"])
        assert [o["category"] for o in offers] == [e[3] for e in expected[:3]], customer
        for offer, (p, revenue, value, _) in zip(offers, expected, strict=False):
            assert offer["take_up_probability"] == pytest.approx(p, rel=1e-9)
            assert float(offer["expected_first_purchase_value"]) == pytest.approx(value, abs=MONEY)
            assert float(offer["expected_revenue"]) == pytest.approx(revenue, abs=MONEY)
            score = 100 * math.sqrt(p * min(1.0, value / top_value))
            assert offer["opportunity_score"] == pytest.approx(score, rel=1e-9)
            assert offer["ranked_by"] == "probability"
            assert offer["take_up_horizon_days"] == 91


def test_customer_value_carries_the_top_offer(sample_db):
    offers = {
        row["customer_id"]: row
        for row in _query(
            sample_db, "select * from cross_sell_opportunities where opportunity_rank = 1"
        )
    }
    for row in _query(sample_db, "select * from customer_value where order_count > 0"):
        top = offers.get(row["customer_id"])
        assert row["cross_sell_opportunity_score"] == (top["opportunity_score"] if top else 0)
        assert row["top_cross_sell_category"] == (top["category"] if top else None)


def test_backtest_meets_its_goals_on_the_sample(sample_db):
    rows = {
        row["strategy"]: row
        for row in _query(sample_db, "select * from cross_sell_backtest where k = 3")
    }
    default = rows["take_up_probability"]
    assert default["is_default_ranking"]
    assert default["hit_rate"] > rows["popularity"]["hit_rate"]
    assert default["revenue_captured"] >= rows["popularity"]["revenue_captured"]
    assert default["calibration_error"] < 0.05
    # The baselines are judged on the same customers and horizon.
    assert len({(r["customer_count"], r["cutoff_date"]) for r in rows.values()}) == 1


def test_history_is_every_buyer_under_the_cap_and_a_sample_of_the_cap_above_it(sample_db, tmp_path):
    """int_cross_sell_history_customers: on the sample (under the 100,000 default) every
    customer with a completed order on or before snapshot 1 (one horizon before the
    as_of_date of the offers); with the cap below the number of those buyers, exactly that
    many distinct buyers (dbt show with the var lowered, on a copy of the build: a dbt
    command writes its own run_results.json and build record, which must not replace the
    shared build's)."""
    buyers = {
        row["customer_id"]
        for row in _query(
            sample_db,
            "select distinct customer_id from orders where is_completed"
            " and order_date <= (select max(as_of_date) from cross_sell_opportunities)"
            " - interval 91 days",
        )
    }
    everyone = {
        row["customer_id"]
        for row in _query(sample_db, "select distinct customer_id from orders where is_completed")
    }
    assert len(everyone) > len(buyers)  # some customers first bought in the last horizon
    history = {
        row["customer_id"]
        for row in _query(sample_db, "select customer_id from int_cross_sell_history_customers")
    }
    assert history == buyers and len(buyers) > 500
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copyfile(sample_db, workdir / "test.duckdb")
    shown = run_dbt(
        [
            *("--quiet", "show", "--select", "int_cross_sell_history_customers"),
            *("--limit", "-1", "--output", "json"),
        ],
        workdir,
        {"cross_sell_history_customers": 500},
    )
    assert shown.returncode == 0, shown.output[-2000:]
    sampled = [row["customer_id"] for row in json.loads(shown.output)["show"]]
    assert len(sampled) == len(set(sampled)) == 500
    assert set(sampled) <= buyers
