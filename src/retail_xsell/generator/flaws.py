"""Flaw injection: turn clean raw tables into realistic, countable messes.

Every injection is recorded in a :class:`FlawLedger` (rows affected and rows eligible),
so the truth file states exactly how many rows carry each flaw. Flaws touching the same
column are drawn from one categorical per row (``EXCLUSIVE_FLAW_GROUPS``), so at most one
applies and each stays observable. Junk and duplicate rows are *added*; real keys are
never corrupted.

Flaw values avoid the tokens dbt's CSV seed loader reads as NULL ('n/a', 'na', 'none',
'null', '.') where that would change the kind of flaw, except the brief's 'N/A' country,
which staging treats as unknown either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import reference as ref
from .config import FLAWS, PURCHASE_ROW_FLAWS, GeneratorConfig
from .formatting import (
    cents_text,
    ints_text,
    pick_text,
    replace_where,
    set_null,
    timestamps_text,
)
from .population import Customers, Products
from .purchases import STATUS_COMPLETED, Lines
from .schema import RAW_SCHEMA
from .timebase import DAY, parse_ts

UNKNOWN_CUSTOMER_BASE = 900_000_000
UNKNOWN_PRODUCT_BASE = 800_000_000


@dataclass
class FlawLedger:
    """Exact rows affected per flaw, and rows that were eligible for it."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLAWS, 0))
    eligible: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLAWS, 0))

    def add(self, name: str, affected: int, eligible: int) -> None:
        self.counts[name] += int(affected)
        self.eligible[name] += int(eligible)


def draw_exclusive(
    rng: np.random.Generator, cfg: GeneratorConfig, names: tuple[str, ...], n: int
) -> np.ndarray:
    """Per row: index into ``names`` of the flaw it gets, or -1 for none."""
    cum = np.cumsum([cfg.rate(name) for name in names])
    code = np.searchsorted(cum, rng.random(n), side="right")
    return np.where(code >= len(names), -1, code)


def _bernoulli(rng: np.random.Generator, cfg: GeneratorConfig, name: str, n: int) -> np.ndarray:
    return rng.random(n) < cfg.rate(name)


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    cols = RAW_SCHEMA[name]
    return pa.table([columns[c] for c in cols], names=list(cols))


def _invalid_email(email: str, kind: int) -> str:
    local, _, domain = email.partition("@")
    forms = (
        f"{local}@",
        f"{local.replace('.', ' ', 1)}@{domain}",
        "not-an-email",
        f"{local}{domain}",
        f"{local}@@{domain}",
    )
    return forms[kind % len(forms)]


def flaw_customers(
    rng: np.random.Generator, cfg: GeneratorConfig, cust: Customers, ledger: FlawLedger
) -> pa.Table:
    """customer_info rows for one chunk: current rows (flawed), stale versions, copies."""
    n = cust.customer_id.size
    cols = dict(cust.columns)
    end = parse_ts(cfg.window_end)

    group = ("invalid_email", "email_case_whitespace")
    code = draw_exclusive(rng, cfg, group, n)
    invalid, messy = code == 0, code == 1
    kinds = rng.integers(0, 5, n)
    bad = [
        _invalid_email(e, int(k))
        for e, k in zip(cols["email"].filter(invalid).to_pylist(), kinds[invalid], strict=True)
    ]
    pads = ("  ", " ", "\t", " ")
    lead = pick_text(pads, rng.integers(0, 2, n))
    trail = pick_text(pads, rng.integers(0, 4, n))
    messy_values = pc.binary_join_element_wise(lead, pc.utf8_title(cols["email"]), trail, "")
    email = replace_where(cols["email"], invalid, pa.array(bad, pa.string()))
    cols["email"] = replace_where(email, messy, messy_values.filter(pa.array(messy)))
    ledger.add("invalid_email", invalid.sum(), n)
    ledger.add("email_case_whitespace", messy.sum(), n)

    phone_bad = _bernoulli(rng, cfg, "invalid_phone", n)
    cols["phone"] = replace_where(
        cols["phone"], phone_bad, pick_text(ref.INVALID_PHONES, rng.integers(0, 6, phone_bad.sum()))
    )
    ledger.add("invalid_phone", phone_bad.sum(), n)

    code = draw_exclusive(rng, cfg, ("birth_date_missing", "birth_date_unparseable"), n)
    cols["birth_date"] = set_null(cols["birth_date"], code == 0)
    junk_dates = pick_text(
        ref.UNPARSEABLE_BIRTH_DATES,
        rng.integers(0, len(ref.UNPARSEABLE_BIRTH_DATES), int((code == 1).sum())),
    )
    cols["birth_date"] = replace_where(cols["birth_date"], code == 1, junk_dates)
    ledger.add("birth_date_missing", (code == 0).sum(), n)
    ledger.add("birth_date_unparseable", (code == 1).sum(), n)

    unknown = _bernoulli(rng, cfg, "country_unknown", n)
    values = pick_text(ref.UNKNOWN_COUNTRIES, rng.integers(0, 4, unknown.sum()))
    cols["country"] = replace_where(cols["country"], unknown, values)
    ledger.add("country_unknown", unknown.sum(), n)

    # Re-sent records: the current row gets a later updated_at; an older version with a
    # different email/phone/city (clean values) is kept too.
    resent = _bernoulli(rng, cfg, "customer_resent", n)
    updated = cust.updated_s.copy()
    room = np.maximum(end - cust.signup_s - DAY, 1)
    bump = resent & (updated < cust.signup_s + DAY)
    updated[bump] = cust.signup_s[bump] + DAY + (rng.random(bump.sum()) * room[bump]).astype(int)
    cols["updated_at"] = timestamps_text(updated)
    current = _table("customer_info", cols)
    idx = np.flatnonzero(resent)
    stale = dict(zip(current.column_names, current.take(pa.array(idx)).columns, strict=True))
    stale_s = cust.signup_s[idx] + (rng.random(idx.size) * (updated[idx] - cust.signup_s[idx]))
    stale["updated_at"] = timestamps_text(stale_s.astype(np.int64))
    city_now, alt_city = cust.columns["city"].take(idx), cust.alt_city.take(idx)
    phone_now, alt_phone = cols["phone"].take(idx), cust.alt_phone.take(idx)
    change_city = (rng.random(idx.size) < 0.5) & ~pc.equal(city_now, alt_city).to_numpy(False)
    change_phone = (rng.random(idx.size) < 0.5) & ~pc.equal(phone_now, alt_phone).to_numpy(False)
    change_email = (rng.random(idx.size) < 0.5) | ~(change_city | change_phone)
    stale["city"] = pc.if_else(pa.array(change_city), alt_city, stale["city"])
    stale["phone"] = pc.if_else(pa.array(change_phone), alt_phone, stale["phone"])
    stale["email"] = pc.if_else(pa.array(change_email), cust.alt_email.take(idx), stale["email"])
    ledger.add("customer_resent", idx.size, n)

    dup = np.flatnonzero(_bernoulli(rng, cfg, "customer_duplicate_row", n))
    ledger.add("customer_duplicate_row", dup.size, n)
    missing = np.flatnonzero(_bernoulli(rng, cfg, "customer_id_missing", n))
    ledger.add("customer_id_missing", missing.size, n)
    broken = np.flatnonzero(_bernoulli(rng, cfg, "customer_id_unparseable", n))
    ledger.add("customer_id_unparseable", broken.size, n)

    missing_rows = current.take(pa.array(missing))
    missing_rows = missing_rows.set_column(
        0, "customer_id", pa.nulls(missing.size, type=pa.string())
    )
    broken_rows = current.take(pa.array(broken))
    prefixed = pc.binary_join_element_wise("C-", broken_rows.column(0), "")
    as_junk = pa.array(rng.random(broken.size) < 0.3)
    broken_ids = pc.if_else(as_junk, pa.scalar("#N/A"), prefixed.combine_chunks())
    broken_rows = broken_rows.set_column(0, "customer_id", broken_ids)

    parts = [
        _table("customer_info", stale),
        current,
        current.take(pa.array(dup)),
        missing_rows,
        broken_rows,
    ]
    src = np.concatenate([idx, np.arange(n), dup, missing, broken])
    kind = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    order = np.lexsort((kind, src))
    return pa.concat_tables(parts).combine_chunks().take(pa.array(order))


def flaw_products(
    rng: np.random.Generator, cfg: GeneratorConfig, products: Products, ledger: FlawLedger
) -> pa.Table:
    """product rows: bad list prices on real products, plus junk-key copies."""
    from .population import products_clean_table

    cols = products_clean_table(products)
    n = products.product_id.size
    group = ("list_price_unparseable", "list_price_zero", "list_price_negative")
    code = draw_exclusive(rng, cfg, group, n)
    comma = cents_text(products.price_cents, decimal_mark=",")
    text_bad = pc.if_else(pa.array(rng.random(n) < 0.5), pa.scalar("#N/A"), comma)
    price = cols["list_price"]
    price = replace_where(price, code == 0, text_bad.filter(pa.array(code == 0)))
    price = replace_where(price, code == 1, pa.array(["0.00"] * int((code == 1).sum())))
    negative = cents_text(-products.price_cents)
    price = replace_where(price, code == 2, negative.filter(pa.array(code == 2)))
    cols["list_price"] = price
    for i, name in enumerate(group):
        ledger.add(name, (code == i).sum(), n)

    table = _table("product", cols)
    missing = np.flatnonzero(_bernoulli(rng, cfg, "product_id_missing", n))
    broken = np.flatnonzero(_bernoulli(rng, cfg, "product_id_unparseable", n))
    ledger.add("product_id_missing", missing.size, n)
    ledger.add("product_id_unparseable", broken.size, n)
    missing_rows = table.take(pa.array(missing)).set_column(
        0, "product_id", pa.nulls(missing.size, type=pa.string())
    )
    broken_rows = table.take(pa.array(broken))
    ids = pc.binary_join_element_wise("P-", broken_rows.column(0), "").combine_chunks()
    ids = pc.if_else(pa.array(rng.random(broken.size) < 0.3), pa.scalar("unknown"), ids)
    broken_rows = broken_rows.set_column(0, "product_id", ids)
    parts = [table, missing_rows, broken_rows]
    src = np.concatenate([np.arange(n), missing, broken])
    kind = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    order = np.lexsort((kind, src))
    return pa.concat_tables(parts).combine_chunks().take(pa.array(order))


def _cased(rng: np.random.Generator, values: pa.Array, p: float) -> pa.Array:
    """Write a share ``p`` of values as 'Web' or 'MOBILE_APP' instead of lower case."""
    u = rng.random(len(values))
    out = pc.if_else(pa.array(u < p / 2), pc.utf8_capitalize(values), values)
    return pc.if_else(pa.array((u >= p / 2) & (u < p)), pc.utf8_upper(values), out)


def flaw_purchases(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    lines: Lines,
    customers: Customers,
    products: Products,
    ledger: FlawLedger,
) -> pa.Table:
    """purchase rows for one chunk: encoding/row flaws, then appended exact duplicates."""
    n = lines.order_id.size
    quantity = lines.quantity.copy()
    status = lines.status.copy()
    price = lines.unit_price_cents.copy()
    order_at = lines.order_at_s.copy()
    customer_id = customers.customer_id[lines.customer]
    product_id = products.product_id[lines.product]

    ret = np.flatnonzero(lines.is_return)
    rcode = draw_exclusive(rng, cfg, ("return_positive_quantity", "return_completed_status"),
                           ret.size)  # fmt: skip
    quantity[ret[rcode == 0]] *= -1
    status[ret[rcode == 1]] = STATUS_COMPLETED
    ledger.add("return_positive_quantity", (rcode == 0).sum(), ret.size)
    ledger.add("return_completed_status", (rcode == 1).sum(), ret.size)

    code = draw_exclusive(rng, cfg, PURCHASE_ROW_FLAWS, n)
    hit = {name: code == i for i, name in enumerate(PURCHASE_ROW_FLAWS)}
    for name in PURCHASE_ROW_FLAWS:
        ledger.add(name, hit[name].sum(), n)
    price[hit["unit_price_zero"]] = 0
    price[hit["unit_price_negative"]] *= -1
    price[hit["unit_price_absurd"]] *= 1000
    m = hit["purchase_unknown_product"]
    product_id = np.where(m, UNKNOWN_PRODUCT_BASE + rng.integers(0, 10**6, n), product_id)
    m = hit["purchase_unknown_customer"]
    customer_id = np.where(m, UNKNOWN_CUSTOMER_BASE + rng.integers(0, 10**6, n), customer_id)
    m = hit["order_at_after_loaded_at"]
    ahead = (rng.uniform(1.0, 10.0, n) * 365.25 * DAY).astype(np.int64)
    order_at = np.where(m, lines.loaded_at_s + ahead, order_at)

    channel = _cased(
        rng,
        pick_text(ref.CHANNELS, lines.channel),
        cfg.behaviour.spelling_variant_probability,
    )
    status_text = _cased(
        rng, pick_text(ref.STATUSES, status), cfg.behaviour.spelling_variant_probability
    )
    cols: dict[str, pa.Array] = {
        "order_id": set_null(ints_text(lines.order_id), hit["purchase_order_id_missing"]),
        "line_number": ints_text(lines.line_number),
        "customer_id": set_null(ints_text(customer_id), hit["purchase_customer_id_missing"]),
        "product_id": set_null(ints_text(product_id), hit["purchase_product_id_missing"]),
        "quantity": ints_text(quantity),
        "unit_price": cents_text(price),
        "discount": cents_text(lines.discount_pct),
        "order_at": timestamps_text(order_at),
        "channel": channel,
        "status": status_text,
        "loaded_at": timestamps_text(lines.loaded_at_s),
    }
    m = hit["quantity_unparseable"]
    q = quantity[m]
    words = pick_text(ref.QUANTITY_WORDS, np.minimum(np.abs(q), 12))
    words = pc.binary_join_element_wise(pick_text(("", "minus "), (q < 0).astype(int)), words, "")
    cols["quantity"] = replace_where(cols["quantity"], m, words)
    m = hit["unit_price_unparseable"]
    comma = cents_text(price[m], decimal_mark=",")
    text = pc.if_else(pa.array(rng.random(int(m.sum())) < 0.5), pa.scalar("#N/A"), comma)
    cols["unit_price"] = replace_where(cols["unit_price"], m, text)
    m = hit["discount_unparseable"]
    pct = pc.binary_join_element_wise(ints_text(lines.discount_pct[m]), "%", "")
    cols["discount"] = replace_where(cols["discount"], m, pct)
    m = hit["order_at_unparseable"]
    bad_at = pick_text(ref.UNPARSEABLE_ORDER_ATS, rng.integers(0, 4, int(m.sum())))
    cols["order_at"] = replace_where(cols["order_at"], m, bad_at)

    table = _table("purchase", cols)
    dup = np.flatnonzero(_bernoulli(rng, cfg, "purchase_duplicate_row", n))
    ledger.add("purchase_duplicate_row", dup.size, n)
    return pa.concat_tables([table, table.take(pa.array(dup))]).combine_chunks()
