"""category_affinities on the committed sample: the measures agree with a reference
computation written here from the definitions, and the affinities the generator
planted (seeds/sample_truth.json) are recovered."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from itertools import permutations

import duckdb
import pytest

from conftest import PROJECT_DIR, run_dbt

pytestmark = pytest.mark.dbt


def _rows(database, sql):
    with duckdb.connect(str(database), read_only=True) as con:
        return con.sql(sql).fetchall()


def _reference(baskets: dict[object, set[str]]) -> dict[tuple[str, str], dict[str, float]]:
    """Support, confidence, lift, leverage and conviction from their definitions."""
    n = len(baskets)
    count = defaultdict(int)
    pair = defaultdict(int)
    for items in baskets.values():
        for a in items:
            count[a] += 1
        for a, b in permutations(items, 2):
            pair[a, b] += 1
    measures = {}
    for a, b in permutations(sorted(count), 2):
        s_a, s_b, s_ab = count[a] / n, count[b] / n, pair[a, b] / n
        confidence = s_ab / s_a
        measures[a, b] = {
            "support": s_ab,
            "confidence": confidence,
            "lift": confidence / s_b,
            "leverage": s_ab - s_a * s_b,
            "conviction": math.inf if confidence == 1 else (1 - s_b) / (1 - confidence),
        }
    return measures


@pytest.mark.parametrize(("level", "key"), [("order", "order_id"), ("customer", "customer_id")])
def test_measures_match_reference_implementation(sample_db, level, key):
    items = _rows(
        sample_db,
        f"select lines.{key}, products.category from order_lines as lines"
        " inner join products on lines.product_id = products.product_id"
        " where lines.line_type = 'sale'",
    )
    baskets: dict[object, set[str]] = defaultdict(set)
    for basket, category in items:
        baskets[basket].add(category)
    expected = _reference(baskets)
    actual = _rows(
        sample_db,
        "select antecedent_category, consequent_category, basket_count, support,"
        " confidence, lift, leverage, conviction from category_affinities"
        f" where basket_level = '{level}'",
    )
    assert len(actual) == len(expected) == 8 * 7
    for a, b, basket_count, *values in actual:
        assert basket_count == len(baskets)
        reference = expected[a, b]
        for name, value in zip(
            ("support", "confidence", "lift", "leverage", "conviction"), values, strict=True
        ):
            if math.isinf(reference[name]):
                assert value == math.inf, (a, b, name)
            else:
                assert value == pytest.approx(reference[name], rel=1e-9, abs=1e-12), (a, b, name)


def test_planted_affinities_are_recovered(sample_db):
    truth = json.loads((PROJECT_DIR / "seeds" / "sample_truth.json").read_text())
    planted = {
        (p["antecedent"].lower(), p["consequent"].lower()) for p in truth["planted_affinity_pairs"]
    }
    rows = _rows(
        sample_db,
        "select antecedent_category, consequent_category, lift from category_affinities"
        " where basket_level = 'customer' order by lift desc",
    )
    rank = {(a, b): i for i, (a, b, _) in enumerate(rows, start=1)}
    lift = {(a, b): value for a, b, value in rows}
    # Lift is symmetric, so a planted A -> B shows in both directions: 2 rows per pair.
    for pair in planted:
        assert lift[pair] > 1.5, pair
        assert rank[pair] <= 2 * len(planted), (pair, rank[pair])
    unplanted = [
        value for (a, b), value in lift.items() if (a, b) not in planted and (b, a) not in planted
    ]
    near_one = [value for value in unplanted if 0.75 <= value <= 1.33]
    assert len(near_one) >= 0.75 * len(unplanted)


def test_the_self_join_for_many_categories_gives_the_bitmask_rows(sample_db, tmp_path):
    """Up to 64 categories, baskets are counted by category bitmask; beyond, by a
    self-join of basket items. Forcing the self-join on the sample (at most 1 category
    for the mask) must rebuild exactly the rows the bitmask gave."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copyfile(sample_db, workdir / "test.duckdb")
    shutil.copytree(sample_db.parent / "target", workdir / "target")
    result = run_dbt(
        ["run", "--select", "category_affinities"],
        workdir,
        dbt_vars={"category_mask_max_categories": 1},
    )
    assert result.returncode == 0, result.output[-3000:]
    compiled = workdir / "target" / "compiled" / "retail_xsell" / "models" / "marts"
    assert "when count(*) over () <= 1\n" in (compiled / "category_affinities.sql").read_text()
    query = "select * from main.category_affinities order by all"
    self_joined = _rows(workdir / "test.duckdb", query)
    assert self_joined == _rows(sample_db, query)
    assert len(self_joined) > 100


def test_a_mask_wider_than_64_bits_is_refused(tmp_path):
    result = run_dbt(
        ["compile", "--select", "category_affinities"],
        tmp_path / "work",
        dbt_vars={"category_mask_max_categories": 65},
    )
    assert result.returncode != 0
    assert "category_mask_max_categories is at most 64" in result.output
