"""Tests of the generator's skewed scenario (``--scenario skewed``, docs/generator.md).

The scenario exists so that a cross-sell backtest is judged on data where popularity
and ticket size mislead. Each test checks one planted property on the files the
generator writes, against the truth file, on a run of a few thousand customers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from retail_xsell.generator import reference as ref
from retail_xsell.generator.cli import main
from retail_xsell.generator.config import DEFAULT_AFFINITY_PAIRS
from test_generator import ID, INT, MONEY, SAMPLE_FILES, Sample, generate_sample

CUSTOMERS = 4_000


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    folder = tmp_path_factory.mktemp("skewed")
    return generate_sample(folder, "--scenario", "skewed", "--customers", str(CUSTOMERS))


def _categories(sample: Sample) -> dict[str, str]:
    """product_id -> category (its canonical spelling), for rows with a valid id."""
    canonical = {c.lower(): c for c in ref.CATEGORIES}
    return {
        p["product_id"]: canonical[p["category"].strip().lower()]
        for p in sample.rows("product")
        if ID.match(p["product_id"])
    }


def _sale_lines(sample: Sample) -> list[dict[str, str]]:
    """Completed sale lines whose keys and quantity parse and whose product and customer
    exist: what a staging model keeps."""
    products = _categories(sample)
    customers = {r["customer_id"] for r in sample.rows("customer_info")}
    return [
        r
        for r in sample.rows("purchase")
        if r["status"].lower() == "completed"
        and INT.match(r["quantity"])
        and int(r["quantity"]) > 0
        and r["product_id"] in products
        and r["customer_id"] in customers
        and ID.match(r["order_id"])
    ]


def _first_and_repeat(sample: Sample) -> tuple[list[str], list[str]]:
    """Categories of first purchases (line 1 of each customer's first order; order ids
    ascend with order time) and of every line of the later orders."""
    category = _categories(sample)
    lines = _sale_lines(sample)
    first: dict[str, int] = {}
    for r in lines:
        order = int(r["order_id"])
        first[r["customer_id"]] = min(order, first.get(r["customer_id"], order))
    firsts: list[str] = []
    repeats: list[str] = []
    for r in lines:
        if first[r["customer_id"]] != int(r["order_id"]):
            repeats.append(category[r["product_id"]])
        elif r["line_number"] == "1":
            firsts.append(category[r["product_id"]])
    return firsts, repeats


def _first_bought(sample: Sample) -> list[dict[str, int]]:
    """Per customer: category -> position of the first order that contains it."""
    category = _categories(sample)
    orders: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in _sale_lines(sample):
        orders[r["customer_id"]][int(r["order_id"])].add(category[r["product_id"]])
    firsts = []
    for by_order in orders.values():
        first: dict[str, int] = {}
        for position, order in enumerate(sorted(by_order)):
            for cat in by_order[order]:
                first.setdefault(cat, position)
        firsts.append(first)
    return firsts


def _later(firsts: list[dict[str, int]], a: str, b: str) -> tuple[float, int]:
    """P(b bought in a later order | a bought, b not yet), and the customers at risk."""
    at_risk = [f for f in firsts if a in f and f[a] < f.get(b, math.inf)]
    return sum(b in f for f in at_risk) / len(at_risk), len(at_risk)


def _net_values(sample: Sample) -> dict[str, list[float]]:
    """Category -> net value of each sale line with a plausible price (above 0, at most
    twice the list price: staging quarantines the rest, e.g. 1000 x absurd prices)."""
    category = _categories(sample)
    list_price = {
        p["product_id"]: float(p["list_price"])
        for p in sample.rows("product")
        if ID.match(p["product_id"]) and MONEY.match(p["list_price"])
    }
    values: dict[str, list[float]] = defaultdict(list)
    for r in _sale_lines(sample):
        product = r["product_id"]
        if not (MONEY.match(r["unit_price"]) and MONEY.match(r["discount"])):
            continue
        price = float(r["unit_price"])
        if product in list_price and 0 < price <= 2 * list_price[product]:
            net = int(r["quantity"]) * price * (1 - float(r["discount"]))
            values[category[product]].append(net)
    return values


def _zipf(exponent: float, ranked: list[str]) -> dict[str, float]:
    weights = {c: (k + 1) ** -exponent for k, c in enumerate(ranked)}
    return {c: w / sum(weights.values()) for c, w in weights.items()}


# --- planted properties ----------------------------------------------------------------


def test_first_purchases_follow_the_zipf_popularity(skewed: Sample) -> None:
    """The category of each customer's first purchase (line 1 of the first order) has
    the Zipf probability 1/rank^s (normalised), within 4 binomial standard errors."""
    scenario = skewed.truth["scenario"]
    zipf = _zipf(scenario["zipf_exponent"], scenario["popularity_rank"])
    for cat, p in zipf.items():
        assert skewed.truth["category_popularity"][cat] == pytest.approx(p, rel=1e-5)
    cats, _repeats = _first_and_repeat(skewed)
    assert len(cats) > 0.95 * CUSTOMERS
    top = scenario["popularity_rank"][0]
    assert zipf[top] > 0.35  # a few categories dominate: rank 1 alone has ~40%
    for cat, p in zipf.items():
        share = cats.count(cat) / len(cats)
        assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / len(cats)), (cat, share, p)


def test_repeat_baskets_are_dominated_by_the_top_categories(skewed: Sample) -> None:
    _firsts, repeat = _first_and_repeat(skewed)
    rank = skewed.truth["scenario"]["popularity_rank"]
    top_two = sum(c in rank[:2] for c in repeat) / len(repeat)
    assert top_two > 0.5, top_two
    assert repeat.count(rank[0]) / len(repeat) > 0.35


def test_planted_affinities_are_asymmetric_and_weaker_than_the_default(skewed: Sample) -> None:
    """Owning A raises a later B far more than owning B raises a later A, although B is
    the less popular category (popularity alone favours the reverse direction)."""
    directions = skewed.truth["scenario"]["affinity_directions"]
    assert len(directions) >= 3
    firsts = _first_bought(skewed)
    popularity = skewed.truth["category_popularity"]
    strongest_default = min(p.boost for p in DEFAULT_AFFINITY_PAIRS)
    for d in directions:
        a, b = d["a"], d["b"]
        assert 1 < d["boost_b_to_a"] < d["boost_a_to_b"] < strongest_default
        assert popularity[b] < popularity[a]
        forward, n_forward = _later(firsts, a, b)
        reverse, n_reverse = _later(firsts, b, a)
        se = math.sqrt(forward * (1 - forward) / n_forward + reverse * (1 - reverse) / n_reverse)
        assert forward - reverse > 3 * se, (a, b, forward, reverse)
        assert forward / reverse > 1.15, (a, b, forward, reverse)


def test_high_ticket_category_is_expensive_rare_and_unpaired(skewed: Sample) -> None:
    """Its median list price is the stated multiple of the other products' median, a
    line of it costs several times a typical line, it is bought rarely, and no planted
    pair touches it."""
    high = skewed.truth["scenario"]["high_ticket"]
    cat, multiple = high["category"], high["price_multiple"]
    assert 5 <= multiple <= 10
    category = _categories(skewed)
    prices: dict[bool, list[float]] = {True: [], False: []}
    for p in skewed.rows("product"):
        price = p["list_price"]
        if p["product_id"] in category and MONEY.match(price) and float(price) > 0:
            prices[category[p["product_id"]] == cat].append(float(price))
    catalogue = statistics.median(prices[True]) / statistics.median(prices[False])
    assert catalogue == pytest.approx(multiple, rel=0.1)
    assert high["list_price_median_multiple"] == pytest.approx(multiple, rel=0.1)

    values = _net_values(skewed)
    others = [v for c, vs in values.items() if c != cat for v in vs]
    ticket = statistics.fmean(values[cat]) / statistics.fmean(others)
    assert 0.7 * multiple <= ticket <= 1.5 * multiple, ticket
    assert high["line_value_multiple"] == pytest.approx(ticket, rel=0.15)
    line_share = len(values[cat]) / (len(values[cat]) + len(others))
    assert line_share < 0.05, line_share
    assert all(cat not in (p["antecedent"], p["consequent"])
               for p in skewed.truth["planted_affinity_pairs"])  # fmt: skip


def test_truth_records_the_scenario(skewed: Sample) -> None:
    truth = skewed.truth
    scenario = truth["scenario"]
    assert scenario["name"] == "skewed" and scenario["zipf_exponent"] == 1.1
    assert set(scenario) == {"name", "zipf_exponent", "popularity_rank",
                             "affinity_directions", "high_ticket", "realised"}  # fmt: skip
    assert set(scenario["high_ticket"]) == {
        "category", "price_multiple", "list_price_median_multiple", "line_value_multiple"
    }  # fmt: skip
    assert truth["config"]["scenario"]["high_ticket_multiple"] == 8.0
    planted = {(p["antecedent"], p["consequent"]): p["boost"]
               for p in truth["planted_affinity_pairs"]}  # fmt: skip
    for d in scenario["affinity_directions"]:
        assert planted[(d["a"], d["b"])] == d["boost_a_to_b"]
        assert planted[(d["b"], d["a"])] == d["boost_b_to_a"]
    realised = scenario["realised"]["first_purchase_share"]
    assert sum(realised.values()) == pytest.approx(1.0, abs=1e-4)


# --- determinism, default unchanged, both modes -----------------------------------------


def test_skewed_is_deterministic_and_default_is_unchanged(tmp_path: Path) -> None:
    small = ("--customers", "300")
    a = generate_sample(tmp_path / "a", *small, "--scenario", "skewed")
    b = generate_sample(tmp_path / "b", *small, "--scenario", "skewed")
    plain = generate_sample(tmp_path / "plain", *small)
    default = generate_sample(tmp_path / "default", *small, "--scenario", "default")
    for name in SAMPLE_FILES:
        assert (a.folder / name).read_bytes() == (b.folder / name).read_bytes(), name
        assert (plain.folder / name).read_bytes() == (default.folder / name).read_bytes(), name
    assert (a.folder / "purchase.csv").read_bytes() != (plain.folder / "purchase.csv").read_bytes()
    assert "scenario" not in plain.truth and "scenario" not in plain.truth["config"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_scale_mode_runs_the_skewed_scenario_with_its_parameters(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "data"
    args = ["scale", "--purchase-lines", "4000", "--format", fmt, "--out", str(out), "--quiet"]
    tuning = ["--zipf-exponent", "1.5", "--high-ticket-multiple", "6"]
    assert main([*args, "--scenario", "skewed", *tuning]) == 0
    truth = json.loads((out / "truth.json").read_text())
    scenario = truth["scenario"]
    assert scenario["zipf_exponent"] == 1.5 and scenario["high_ticket"]["price_multiple"] == 6
    zipf = _zipf(1.5, scenario["popularity_rank"])
    assert truth["category_popularity"] == pytest.approx(zipf, rel=1e-5)
    assert list((out / "purchase").glob(f"part-*.{fmt}"))
    assert abs(truth["row_counts"]["purchase"] - 4000) <= 0.25 * 4000


# --- command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--scenario", "zipf"], "--scenario"),
        (["--scenario", "skewed", "--zipf-exponent", "0"], "--zipf-exponent"),
        (["--scenario", "skewed", "--zipf-exponent", "-1.1"], "--zipf-exponent"),
        (["--scenario", "skewed", "--zipf-exponent", "steep"], "--zipf-exponent"),
        (["--scenario", "skewed", "--zipf-exponent", "nan"], "--zipf-exponent"),
        (["--scenario", "skewed", "--high-ticket-multiple", "1"], "--high-ticket-multiple"),
        (["--scenario", "skewed", "--high-ticket-multiple", "inf"], "--high-ticket-multiple"),
        (["--zipf-exponent", "1.2"], "--zipf-exponent"),
        (["--scenario", "default", "--high-ticket-multiple", "6"], "--high-ticket-multiple"),
    ],
)
@pytest.mark.parametrize("mode", [["sample"], ["scale", "--purchase-lines", "1000"]])
def test_bad_scenario_options_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mode: list[str],
    args: list[str],
    option: str,
) -> None:
    assert main([*mode, "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and option in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
