"""Tests of the raw data generator (src/retail_xsell/generator).

Everything is checked on files the generator writes, parsed with the standard library,
so the tests see what dbt staging will see.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from retail_xsell.generator import reference as ref
from retail_xsell.generator.cli import main
from retail_xsell.generator.config import FLAWS, SAMPLE_CUSTOMERS, SAMPLE_SEED
from retail_xsell.generator.schema import RAW_SCHEMA, TABLES

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "generate_raw_data.py"
SAMPLE_FILES = ("customer_info.csv", "product.csv", "purchase.csv", "sample_truth.json")
INT = re.compile(r"^-?\d+$")
ID = re.compile(r"^\d+$")
MONEY = re.compile(r"^-?\d+\.\d{2}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- helpers ---------------------------------------------------------------------------


def read_csv(path: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [tuple(row) for row in reader]


def as_dicts(header: list[str], rows: list[tuple[str, ...]]) -> list[dict[str, str]]:
    return [dict(zip(header, row, strict=True)) for row in rows]


def ts(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def known_countries() -> set[str]:
    names = set()
    for code, (name, _w, aliases, _cities) in ref.COUNTRIES.items():
        names |= {code.lower(), name.lower(), *(a.lower() for a in aliases)}
    return names


class Sample:
    """A generated sample folder, parsed once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.truth = json.loads((folder / "sample_truth.json").read_text())
        self.raw = {t: read_csv(folder / f"{t}.csv") for t in TABLES}

    def rows(self, table: str) -> list[dict[str, str]]:
        return as_dicts(*self.raw[table])

    def count(self, flaw: str) -> int:
        return self.truth["flaws"][flaw]["count"]


def generate_sample(folder: Path, *extra: str) -> Sample:
    folder.mkdir(parents=True, exist_ok=True)
    assert main(["sample", "--out", str(folder), *extra]) == 0
    return Sample(folder)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return generate_sample(tmp_path_factory.mktemp("sample"))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


# --- reproducibility -------------------------------------------------------------------


def test_committed_sample_reproduces_byte_for_byte(sample: Sample) -> None:
    for name in SAMPLE_FILES:
        committed = REPO / "seeds" / name
        assert committed.exists(), f"missing committed sample file seeds/{name}"
        assert (sample.folder / name).read_bytes() == committed.read_bytes(), name


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a = generate_sample(tmp_path / "a", "--customers", "300")
    b = generate_sample(tmp_path / "b", "--customers", "300")
    c = generate_sample(tmp_path / "c", "--customers", "300", "--seed", str(SAMPLE_SEED + 1))
    for name in SAMPLE_FILES:
        assert (a.folder / name).read_bytes() == (b.folder / name).read_bytes()
    for name in ("customer_info.csv", "purchase.csv"):
        assert (a.folder / name).read_bytes() != (c.folder / name).read_bytes()


def test_sample_is_small(sample: Sample) -> None:
    total = sum((sample.folder / name).stat().st_size for name in SAMPLE_FILES)
    assert total < 10 * 1024 * 1024


# --- schema and format -----------------------------------------------------------------


def test_csv_headers_follow_raw_schema(sample: Sample) -> None:
    assert set(RAW_SCHEMA) == {"customer_info", "product", "purchase"}
    for table, columns in RAW_SCHEMA.items():
        header, rows = sample.raw[table]
        assert tuple(header) == columns
        assert rows and all(len(row) == len(columns) for row in rows)


def test_csv_uses_minimal_quoting_and_newlines(sample: Sample) -> None:
    for table in TABLES:
        data = (sample.folder / f"{table}.csv").read_bytes()
        assert b"\r" not in data and data.endswith(b"\n")
        header, rows = sample.raw[table]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)
        assert buf.getvalue().encode() == data, table
    assert b'"' in (sample.folder / "product.csv").read_bytes()  # quoting is exercised


def test_clean_value_domains(sample: Sample) -> None:
    genders = {r["gender"] for r in sample.rows("customer_info")}
    assert genders <= {"female", "male", "non_binary", "F", "M", "Female", "MALE", "X", ""}
    consent = {r["marketing_consent"] for r in sample.rows("customer_info")}
    assert consent == {"true", "false", "yes", "no", "1", "0", "Y", "N"}
    purchases = sample.rows("purchase")
    assert {r["channel"].lower() for r in purchases} == set(ref.CHANNELS)
    assert {r["status"].lower() for r in purchases} == set(ref.STATUSES)
    assert any(r["channel"] not in ref.CHANNELS for r in purchases)  # case variants exist
    cats = {r["category"].strip().lower() for r in sample.rows("product")}
    assert cats == {c.lower() for c in ref.CATEGORIES}
    subcats = {r["subcategory"] for r in sample.rows("product")}
    assert 30 <= len(subcats) <= 50
    discounts = [r["discount"] for r in purchases if MONEY.match(r["discount"])]
    assert sum(d == "0.00" for d in discounts) / len(discounts) > 0.6
    assert all(0 <= float(d) <= 0.30 for d in discounts)


# --- flaws -----------------------------------------------------------------------------


def test_flaw_counts_within_binomial_tolerance(sample: Sample) -> None:
    assert set(sample.truth["flaws"]) == set(FLAWS)
    for name, info in sample.truth["flaws"].items():
        n, rate, count = info["eligible"], info["rate"], info["count"]
        assert n > 0, name
        sigma = math.sqrt(n * rate * (1 - rate))
        assert abs(count - n * rate) <= 4 * sigma + 1, (name, count, n * rate)


def test_row_counts_match_files(sample: Sample) -> None:
    for table in TABLES:
        assert sample.truth["row_counts"][table] == len(sample.raw[table][1])


def test_customer_flaws_are_observable(sample: Sample) -> None:
    header, rows = sample.raw["customer_info"]
    assert len(rows) - len(set(rows)) == sample.count("customer_duplicate_row")
    records = as_dicts(header, list(dict.fromkeys(rows)))
    ids = [r["customer_id"] for r in records]
    assert sum(i == "" for i in ids) == sample.count("customer_id_missing")
    assert sum(i != "" and not ID.match(i) for i in ids) == sample.count("customer_id_unparseable")
    valid = [r for r in records if ID.match(r["customer_id"])]
    assert len({r["customer_id"] for r in valid}) == SAMPLE_CUSTOMERS
    assert len(valid) - SAMPLE_CUSTOMERS == sample.count("customer_resent")

    newest: dict[str, dict[str, str]] = {}
    for r in valid:
        old = newest.get(r["customer_id"])
        if old is None or r["updated_at"] > old["updated_at"]:
            newest[r["customer_id"]] = r
    current = list(newest.values())
    emails = [r["email"] for r in current]
    assert sum(not EMAIL.match(e.strip().lower()) for e in emails) == sample.count("invalid_email")
    messy = sum(
        EMAIL.match(e.strip().lower()) is not None and e != e.strip().lower() for e in emails
    )
    assert messy == sample.count("email_case_whitespace")
    bad_phone = sum(len(re.sub(r"\D", "", r["phone"])) < 7 for r in current)
    assert bad_phone == sample.count("invalid_phone")
    births = [r["birth_date"] for r in current]
    assert births.count("") == sample.count("birth_date_missing")
    assert sum(b != "" and not is_date(b) for b in births) == sample.count("birth_date_unparseable")
    known = known_countries()
    unknown = sum(r["country"].strip().lower() not in known for r in current)
    assert unknown == sample.count("country_unknown")


def test_product_flaws_are_observable(sample: Sample) -> None:
    products = sample.rows("product")
    ids = [p["product_id"] for p in products]
    assert ids.count("") == sample.count("product_id_missing")
    assert sum(i != "" and not ID.match(i) for i in ids) == sample.count("product_id_unparseable")
    valid = [p for p in products if ID.match(p["product_id"])]
    assert len(valid) == len({p["product_id"] for p in valid}) == 400
    prices = [p["list_price"] for p in valid]
    assert sum(not MONEY.match(x) for x in prices) == sample.count("list_price_unparseable")
    assert prices.count("0.00") == sample.count("list_price_zero")
    assert sum(x.startswith("-") for x in prices) == sample.count("list_price_negative")
    for p in valid:
        price, cost = p["list_price"], float(p["unit_cost"])
        if MONEY.match(price) and float(price) > 0:
            assert 0.39 <= cost / float(price) <= 0.76


def test_purchase_flaws_are_observable(sample: Sample) -> None:
    header, rows = sample.raw["purchase"]
    assert len(rows) - len(set(rows)) == sample.count("purchase_duplicate_row")
    lines = as_dicts(header, list(dict.fromkeys(rows)))
    customers = {r["customer_id"] for r in sample.rows("customer_info")}
    products = {r["product_id"] for r in sample.rows("product")}

    def n(pred) -> int:
        return sum(1 for r in lines if pred(r))

    assert n(lambda r: r["order_id"] == "") == sample.count("purchase_order_id_missing")
    assert n(lambda r: r["customer_id"] == "") == sample.count("purchase_customer_id_missing")
    assert n(lambda r: r["product_id"] == "") == sample.count("purchase_product_id_missing")
    assert n(lambda r: ID.match(r["customer_id"]) and r["customer_id"] not in customers) == (
        sample.count("purchase_unknown_customer")
    )
    assert n(lambda r: ID.match(r["product_id"]) and r["product_id"] not in products) == (
        sample.count("purchase_unknown_product")
    )
    assert n(lambda r: not INT.match(r["quantity"])) == sample.count("quantity_unparseable")
    assert n(lambda r: not MONEY.match(r["unit_price"])) == sample.count("unit_price_unparseable")
    assert n(lambda r: r["unit_price"] == "0.00") == sample.count("unit_price_zero")
    assert n(lambda r: r["unit_price"].startswith("-")) == sample.count("unit_price_negative")
    assert n(lambda r: not re.match(r"^[01]\.\d{2}$", r["discount"])) == sample.count(
        "discount_unparseable"
    )
    assert n(lambda r: ts(r["order_at"]) is None) == sample.count("order_at_unparseable")
    assert n(lambda r: (t := ts(r["order_at"])) is not None and t > ts(r["loaded_at"])) == (
        sample.count("order_at_after_loaded_at")
    )
    # Return encodings; a word quantity ('minus two') hides the sign of a few.
    returned = [r for r in lines if r["status"].lower() == "returned"]
    completed = [r for r in lines if r["status"].lower() == "completed"]
    hidden_r = sum(not INT.match(r["quantity"]) for r in returned)
    positive = sum(
        INT.match(r["quantity"]) is not None and int(r["quantity"]) > 0 for r in returned
    )
    assert positive <= sample.count("return_positive_quantity") <= positive + hidden_r
    negative = sum(
        INT.match(r["quantity"]) is not None and int(r["quantity"]) < 0 for r in completed
    )
    hidden_c = sum(r["quantity"].startswith("minus") for r in completed)
    assert negative <= sample.count("return_completed_status") <= negative + hidden_c
    # loaded_at is after order_at and usually within two days.
    delays = [
        (ts(r["loaded_at"]) - t).total_seconds()
        for r in lines
        if (t := ts(r["order_at"])) is not None and t <= ts(r["loaded_at"])
    ]
    assert min(delays) >= 60 and max(delays) <= 2 * 86_400 + 1


def test_flaw_rate_overrides(tmp_path: Path) -> None:
    off = generate_sample(tmp_path / "off", "--customers", "300", "--flaw-rate", "invalid_email=0")
    assert off.count("invalid_email") == 0
    assert off.truth["flaws"]["invalid_email"]["rate"] == 0
    high = generate_sample(
        tmp_path / "hi", "--customers", "300", "--flaw-rate", "invalid_email=0.5"
    )
    assert 100 <= high.count("invalid_email") <= 200


# --- truth and behaviour ---------------------------------------------------------------


def test_truth_file_contents(sample: Sample) -> None:
    truth = sample.truth
    for key in ("generator_version", "seed", "config", "time_unit", "observation_window",
                "population_parameters", "seasonality", "planted_affinity_pairs",
                "category_popularity", "flaws", "row_counts", "customers"):  # fmt: skip
        assert key in truth, key
    assert truth["seed"] == SAMPLE_SEED and truth["time_unit"] == "week"
    assert set(truth["population_parameters"]) == {"r", "alpha", "a", "b", "p_gg", "q", "gamma"}
    assert len(truth["seasonality"]) == 12
    assert len(truth["planted_affinity_pairs"]) >= 4
    for pair in truth["planted_affinity_pairs"]:
        assert set(pair) == {"antecedent", "consequent", "boost"} and pair["boost"] > 1
    cust = truth["customers"]
    expected = {"customer_id", "lambda", "p", "nu", "home_category", "first_purchase_at",
                "dropped_out", "dropout_at", "n_purchases"}  # fmt: skip
    assert set(cust) == expected
    assert all(len(v) == SAMPLE_CUSTOMERS for v in cust.values())
    assert sum(cust["n_purchases"]) == truth["simulation"]["true_purchases"]
    for dropped, at in zip(cust["dropped_out"], cust["dropout_at"], strict=True):
        assert (at is not None) == dropped
    text = (sample.folder / "sample_truth.json").read_text()
    assert text.endswith("}\n")
    assert json.dumps(truth, sort_keys=True, indent=1, ensure_ascii=False) + "\n" == text


def test_true_purchases_are_visible_as_orders(sample: Sample) -> None:
    """Distinct completed, non-return orders per customer match the simulated counts."""
    orders: dict[str, set[str]] = defaultdict(set)
    for r in sample.rows("purchase"):
        qty = r["quantity"]
        if r["status"].lower() == "completed" and INT.match(qty) and int(qty) > 0:
            orders[r["customer_id"]].add(r["order_id"])
    truth = sample.truth["customers"]
    seen = sum(len(orders.get(str(c), ())) for c in truth["customer_id"])
    assert abs(seen - sum(truth["n_purchases"])) <= 0.01 * sum(truth["n_purchases"])
    assert sample.truth["simulation"]["cancelled_orders"] > 0
    assert 25_000 <= sample.truth["row_counts"]["purchase"] <= 35_000


def _baskets(sample: Sample) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Category sets per customer and per order, from valid completed sale lines only."""
    category = {}
    for p in sample.rows("product"):
        if ID.match(p["product_id"]):
            category[p["product_id"]] = p["category"].strip().lower()
    customers = {r["customer_id"] for r in sample.rows("customer_info")}
    by_customer: dict[str, set[str]] = defaultdict(set)
    by_order: dict[str, set[str]] = defaultdict(set)
    for r in sample.rows("purchase"):
        if (
            r["status"].lower() == "completed"
            and INT.match(r["quantity"])
            and int(r["quantity"]) > 0
            and r["product_id"] in category
            and r["customer_id"] in customers
            and ID.match(r["order_id"])
        ):
            by_customer[r["customer_id"]].add(category[r["product_id"]])
            by_order[r["order_id"]].add(category[r["product_id"]])
    return by_customer, by_order


def _lift(baskets: dict[str, set[str]], a: str, b: str) -> float:
    n = len(baskets)
    na = sum(a in s for s in baskets.values())
    nb = sum(b in s for s in baskets.values())
    nab = sum(a in s and b in s for s in baskets.values())
    return nab * n / (na * nb)


def test_planted_affinity_pairs_have_lift(sample: Sample) -> None:
    by_customer, by_order = _baskets(sample)
    planted = {
        frozenset((p["antecedent"].lower(), p["consequent"].lower()))
        for p in sample.truth["planted_affinity_pairs"]
    }
    cats = [c.lower() for c in ref.CATEGORIES]
    unplanted = []
    for a, b in combinations(cats, 2):
        lift = _lift(by_customer, a, b)
        if frozenset((a, b)) in planted:
            assert lift > 1.5, (a, b, lift)
            assert _lift(by_order, a, b) > 1.1, (a, b)
        else:
            unplanted.append(lift)
    near_one = sum(0.75 <= x <= 1.33 for x in unplanted)
    assert near_one > len(unplanted) / 2, sorted(unplanted)


# --- command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["sample", "--bogus"],
        ["sample", "--customers", "0"],
        ["sample", "--customers", "-5"],
        ["sample", "--products", "10"],
        ["scale", "--purchase-lines", "0"],
        ["scale", "--purchase-lines", "many"],
        ["scale"],
        ["scale", "--purchase-lines", "100", "--format", "xlsx"],
        ["sample", "--flaw-rate", "no_such_flaw=0.1"],
        ["sample", "--flaw-rate", "invalid_email=1.5"],
        ["sample", "--flaw-rate", "invalid_email"],
        ["sample", "--flaw-rate", "invalid_email=0.6", "--flaw-rate", "email_case_whitespace=0.6"],
    ],
)
def test_invalid_arguments_exit_2(args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_bad_output_paths_exit_2(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out in (tmp_path / "missing" / "deeper", a_file):
        for args in (["sample"], ["scale", "--purchase-lines", "1000"]):
            proc = run_cli(*args, "--out", str(out))
            assert proc.returncode == 2 and proc.stderr.startswith("error:"), proc.stderr
            assert "Traceback" not in proc.stderr


def test_help_documents_modes_and_flaws() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for word in ("sample", "scale", *FLAWS):
        assert word in proc.stdout, word
    proc = run_cli("scale", "--help")
    for option in ("--purchase-lines", "--format", "--out", "--seed", "--flaw-rate"):
        assert option in proc.stdout


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_scale_mode_layout(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "data"
    target = 20_000
    args = ["scale", "--purchase-lines", str(target), "--format", fmt, "--out", str(out)]
    assert main([*args, "--quiet", "--chunk-customers", "800"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert (out / "truth_customers.parquet").exists()
    assert (
        pq.read_table(out / "truth_customers.parquet").num_rows == truth["simulation"]["customers"]
    )
    for table, columns in RAW_SCHEMA.items():
        parts = sorted((out / table).glob(f"part-*.{fmt}"))
        assert parts and parts[0].name == f"part-00000.{fmt}"
        if table != "purchase":
            assert len(parts) == 1
        rows = 0
        for part in parts:
            if fmt == "parquet":
                data = pq.read_table(part)
                assert tuple(data.column_names) == columns
                assert all(str(t) == "string" for t in data.schema.types)
                rows += data.num_rows
            else:
                header, body = read_csv(part)
                assert tuple(header) == columns
                rows += len(body)
        assert rows == truth["row_counts"][table]
    assert len(list((out / "purchase").glob("part-*"))) > 1
    assert abs(truth["row_counts"]["purchase"] - target) <= 0.25 * target


def test_latent_parameters_follow_the_stated_distributions(sample: Sample) -> None:
    """Per-customer draws agree with the population parameters in the truth file:
    sample means within 4 standard errors of the distributions' means
    (lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b), nu ~ Gamma(q, rate gamma))."""
    params = sample.truth["population_parameters"]
    customers = sample.truth["customers"]
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    q, gamma = params["q"], params["gamma"]
    beta_var = a * b / ((a + b) ** 2 * (a + b + 1))
    for name, mean, variance in (
        ("lambda", r / alpha, r / alpha**2),
        ("p", a / (a + b), beta_var),
        ("nu", q / gamma, q / gamma**2),
    ):
        draws = np.asarray(customers[name], dtype=float)
        standard_error = (variance / draws.size) ** 0.5
        assert abs(draws.mean() - mean) < 4 * standard_error, name


def test_scale_mode_window_end_moves_the_three_years_of_trade(tmp_path: Path) -> None:
    """--window-end shifts the simulated window (same length), so generated data can
    be as fresh as a real export; orders never fall after the last day."""
    out = tmp_path / "data"
    args = ["scale", "--purchase-lines", "3000", "--out", str(out), "--quiet"]
    assert main([*args, "--window-end", "2026-06-30"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["config"]["window_start"] == "2023-07-01 00:00:00"
    assert truth["config"]["window_end"] == "2026-06-30 23:59:59"
    orders = [
        value
        for part in sorted((out / "purchase").glob("part-*.parquet"))
        for value in pq.read_table(part).column("order_at").to_pylist()
        if value and len(value) == 19 and value[:4].isdigit()
    ]
    # Flawed rows carry unparseable or shifted timestamps; the typical ones lie inside.
    inside = [o for o in orders if "2023-07-01" <= o[:10] <= "2026-06-30"]
    assert len(inside) > 0.95 * len(orders)
    assert max(inside)[:7] == "2026-06"
    proc = run_cli("scale", "--window-end", "30/06/2026", "--purchase-lines", "10")
    assert proc.returncode != 0 and "not a date (YYYY-MM-DD): '30/06/2026'" in proc.stderr
