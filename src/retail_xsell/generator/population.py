"""Who and what: the product catalogue and the customer population.

Products are generated once per data set; customers are generated chunk by chunk (their
raw attributes and their latent behavioural parameters together), so memory stays bounded
at any scale. Functions return clean values; flaws are injected later by ``flaws``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import reference as ref
from .config import BehaviourParams, GeneratorConfig, SkewedScenario
from .formatting import cents_text, dates_text, ints_text, pick_text, timestamps_text
from .timebase import WEEK, month_multiplier, parse_ts

FIRST_PRODUCT_ID = 1001
FIRST_CUSTOMER_ID = 10001


@dataclass(frozen=True)
class Products:
    """The clean catalogue plus a price index used to pick products for an order line."""

    product_id: np.ndarray
    category: np.ndarray  # index into reference.CATEGORIES
    subcategory: list[str]
    brand: list[str]
    name: list[str]
    price_cents: np.ndarray  # true list price (what purchases are charged)
    cost_cents: np.ndarray
    category_text: list[str]  # raw spelling of the category (may be a case/space variant)
    by_price: np.ndarray  # product positions sorted by (category, price)
    cat_start: np.ndarray  # first position in by_price of each category
    cat_end: np.ndarray


def _category_variant(rng: np.random.Generator, name: str) -> str:
    """A legal but sloppy spelling of a category ('electronics ', 'HOME & KITCHEN')."""
    forms = (name.lower(), name.upper(), f"{name} ", f" {name.lower()}", name.title())
    return forms[int(rng.integers(len(forms)))]


def make_products(rng: np.random.Generator, cfg: GeneratorConfig) -> Products:
    """Catalogue of ``cfg.n_products`` products; every subcategory gets at least one."""
    subcats: list[tuple[int, str, float, tuple[str, ...]]] = []
    weights: list[float] = []
    for ci, (cat, (pop, _brands, subs)) in enumerate(ref.CATALOGUE.items()):
        for sub, (median, nouns) in subs.items():
            subcats.append((ci, sub, median, nouns))
            weights.append(pop / len(subs) + 0.02)
        del cat
    if cfg.n_products < len(subcats):
        raise ValueError(f"need at least {len(subcats)} products (one per subcategory)")
    w = np.asarray(weights) / np.sum(weights)
    extra = rng.choice(len(subcats), size=cfg.n_products - len(subcats), p=w)
    sub_of = np.sort(np.concatenate([np.arange(len(subcats)), extra]))
    n = sub_of.size
    medians = np.array([subcats[s][2] for s in sub_of])
    category = np.array([subcats[s][0] for s in sub_of], dtype=np.int64)
    price = medians * np.exp(rng.normal(0.0, 0.35, n))
    if cfg.scenario is not None:
        price = _high_ticket_prices(price, category, cfg.scenario)
    # Shelf prices end in .49 or .99.
    price_cents = np.maximum(99, np.round(price * 2) * 50 - 1).astype(np.int64)
    cost_cents = np.round(price_cents * rng.uniform(0.40, 0.75, n)).astype(np.int64)
    brand_pick = rng.random(n)
    adj_pick = rng.integers(0, len(ref.PRODUCT_ADJECTIVES), n)
    has_adj = rng.random(n) < 0.6
    noun_pick = rng.random(n)
    variant = rng.random(n) < cfg.behaviour.category_variant_probability
    names, brands, subs_out, cat_text = [], [], [], []
    for i in range(n):
        ci, sub, _median, nouns = subcats[sub_of[i]]
        cat = ref.CATEGORIES[ci]
        cat_brands = ref.CATALOGUE[cat][1]
        brand = cat_brands[int(brand_pick[i] * len(cat_brands))]
        noun = nouns[int(noun_pick[i] * len(nouns))]
        adj = f"{ref.PRODUCT_ADJECTIVES[adj_pick[i]]} " if has_adj[i] else ""
        names.append(f"{brand} {adj}{noun}")
        brands.append(brand)
        subs_out.append(sub)
        cat_text.append(_category_variant(rng, cat) if variant[i] else cat)
    by_price = np.lexsort((price_cents, category))
    cats_sorted = category[by_price]
    n_cat = len(ref.CATEGORIES)
    cat_start = np.searchsorted(cats_sorted, np.arange(n_cat), side="left")
    cat_end = np.searchsorted(cats_sorted, np.arange(n_cat), side="right")
    return Products(
        product_id=FIRST_PRODUCT_ID + np.arange(n, dtype=np.int64),
        category=category,
        subcategory=subs_out,
        brand=brands,
        name=names,
        price_cents=price_cents,
        cost_cents=cost_cents,
        category_text=cat_text,
        by_price=by_price,
        cat_start=cat_start,
        cat_end=cat_end,
    )


def _high_ticket_prices(
    price: np.ndarray, category: np.ndarray, scenario: SkewedScenario
) -> np.ndarray:
    """Scale one category's prices so that their median is the scenario's multiple of
    the other products' median (before shelf rounding): a price level, not a few
    outliers, so every product of the category is expensive."""
    high = category == ref.CATEGORIES.index(scenario.high_ticket_category)
    factor = scenario.high_ticket_multiple * np.median(price[~high]) / np.median(price[high])
    return np.where(high, price * factor, price)


def products_clean_table(products: Products) -> dict[str, pa.Array]:
    """Raw product columns before flaws."""
    return {
        "product_id": ints_text(products.product_id),
        "product_name": pa.array(products.name, type=pa.string()),
        "category": pa.array(products.category_text, type=pa.string()),
        "subcategory": pa.array(products.subcategory, type=pa.string()),
        "brand": pa.array(products.brand, type=pa.string()),
        "list_price": cents_text(products.price_cents),
        "unit_cost": cents_text(products.cost_cents),
    }


def category_popularity(cfg: GeneratorConfig) -> np.ndarray:
    """Normalised category popularity, in reference.CATEGORIES order: the catalogue's
    weights, or the scenario's Zipf probabilities."""
    if cfg.scenario is not None:
        return np.asarray(cfg.scenario.popularity())
    pop = np.array([ref.CATALOGUE[c][0] for c in ref.CATEGORIES])
    return pop / pop.sum()


@dataclass(frozen=True)
class Customers:
    """One chunk of customers: latent behaviour and clean raw attributes."""

    customer_id: np.ndarray
    lam: np.ndarray  # purchases per week
    p: np.ndarray  # dropout probability after each repeat purchase
    nu: np.ndarray  # Gamma-Gamma spend rate
    home_category: np.ndarray
    first_purchase_s: np.ndarray  # epoch seconds of the first purchase (BG/NBD birth)
    signup_s: np.ndarray
    updated_s: np.ndarray
    columns: dict[str, pa.Array]  # clean raw columns (one row per customer)
    alt_email: pa.Array  # stale values used by the 'customer_resent' flaw
    alt_phone: pa.Array
    alt_city: pa.Array


def _ascii_local(name: str) -> str:
    """Email-safe lower-case form of a name ('O'Brien' -> 'obrien', 'Zoë' -> 'zoe')."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum() or ch == "-")


def acquisition_times(rng: np.random.Generator, n: int, cfg: GeneratorConfig) -> np.ndarray:
    """First-purchase times: density ~ (1 + growth * u) * season(month) over the period.

    Rejection sampling keeps it vectorised and exact for any density shape.
    """
    beh: BehaviourParams = cfg.behaviour
    start = parse_ts(cfg.window_start)
    span = beh.acquisition_weeks * WEEK
    season = np.asarray(cfg.seasonality)
    bound = (1.0 + beh.acquisition_growth) * season.max()
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = max(2 * (n - have), 64)
        u = rng.random(m)
        t = start + (u * span).astype(np.int64)
        dens = (1.0 + beh.acquisition_growth * u) * month_multiplier(t, season)
        keep = t[rng.random(m) * bound < dens]
        out.append(keep)
        have += keep.size
    return np.concatenate(out)[:n]


def _phones(rng: np.random.Generator, n: int) -> tuple[pa.Array, np.ndarray]:
    """Fictional UK numbers (Ofcom drama ranges) in six formats; returns text, format."""
    mobile = rng.random(n) < 0.6
    last_digits = rng.integers(0, 1000, n)
    area = pick_text(("20", "7700"), mobile.astype(np.int64))
    mid = pick_text(("7946", "900"), mobile.astype(np.int64))
    # Landline: 020 7946 0xxx; mobile: 07700 900xxx.
    last = pc.binary_join_element_wise(
        pick_text(("0", ""), mobile.astype(np.int64)),
        pc.utf8_lpad(ints_text(last_digits), 3, "0"),
        "",
    )
    head = pc.utf8_slice_codeunits(last, 0, -2)
    tail = pc.utf8_slice_codeunits(last, -2)
    j = pc.binary_join_element_wise
    formats = [
        j("+44 ", area, " ", mid, " ", last, ""),
        j("(0", area, ") ", mid, "-", last, ""),
        j("0", area, "-", mid, "-", last, ""),
        j("0044 ", area, " ", mid, " ", last, ""),
        j("+44", area, mid, head, " ", tail, ""),
        j("0", area, mid, last, ""),
    ]
    fmt = rng.choice(6, size=n, p=[0.3, 0.15, 0.15, 0.1, 0.1, 0.2])
    return pc.choose(pa.array(fmt.astype(np.int8)), *formats), fmt


def make_customers(
    rng: np.random.Generator, cfg: GeneratorConfig, first_index: int, n: int
) -> Customers:
    """``n`` customers with ids starting at FIRST_CUSTOMER_ID + first_index."""
    pop = cfg.population
    lam = rng.gamma(pop.r, 1.0 / pop.alpha, n)
    p = rng.beta(pop.a, pop.b, n)
    nu = rng.gamma(pop.q, 1.0 / pop.gamma, n)
    home = rng.choice(len(ref.CATEGORIES), size=n, p=category_popularity(cfg))
    first_s = acquisition_times(rng, n, cfg)
    start = parse_ts(cfg.window_start)
    end = parse_ts(cfg.window_end)

    # Account created at checkout (40%) or some days before the first purchase.
    at_checkout = rng.random(n) < 0.4
    lead = np.where(
        at_checkout,
        rng.integers(0, 600, n),
        np.minimum(rng.exponential(3 * 86_400, n), 30 * 86_400).astype(np.int64),
    )
    signup_s = np.maximum(start, first_s - lead)
    edited = rng.random(n) < 0.5
    updated_s = signup_s + np.where(edited, (rng.random(n) * (end - signup_s)), 0).astype(np.int64)

    # Gender: 0 female, 1 male, 2 non-binary, 3 not given.
    gender = rng.choice(4, size=n, p=[0.48, 0.46, 0.02, 0.04])
    fem, mal, neu = ref.FEMALE_FIRST_NAMES, ref.MALE_FIRST_NAMES, ref.NEUTRAL_FIRST_NAMES
    first_table = fem + mal + neu
    neutral_pick = len(fem) + len(mal) + rng.integers(0, len(neu), n)
    any_pick = rng.integers(0, len(first_table), n)
    first_idx = np.select(
        [gender == 0, gender == 1, rng.random(n) < 0.6],
        [rng.integers(0, len(fem), n), len(fem) + rng.integers(0, len(mal), n), neutral_pick],
        any_pick,
    )
    last_idx = rng.integers(0, len(ref.LAST_NAMES), n)
    spell_offsets = {"female": 0, "male": 3, "non_binary": 6}
    spellings = ref.GENDER_SPELLINGS
    gender_table = (*spellings["female"], *spellings["male"], *spellings["non_binary"], None)
    variant = rng.random(n)
    gender_idx = np.select(
        [gender == 0, gender == 1, gender == 2],
        [
            spell_offsets["female"] + (variant * 3).astype(np.int64),
            spell_offsets["male"] + (variant * 3).astype(np.int64),
            spell_offsets["non_binary"] + (variant * 2).astype(np.int64),
        ],
        len(gender_table) - 1,
    )

    email, alt_email = (_emails(rng, first_idx, last_idx, first_table) for _ in range(2))
    phone, _fmt = _phones(rng, n)
    alt_phone, _ = _phones(rng, n)

    codes = tuple(ref.COUNTRIES)
    cw = np.array([ref.COUNTRIES[c][1] for c in codes])
    country = rng.choice(len(codes), size=n, p=cw / cw.sum())
    city_tables = [ref.COUNTRIES[c][3] for c in codes]
    max_cities = max(len(t) for t in city_tables)
    city_flat = tuple(t[i % len(t)] for t in city_tables for i in range(max_cities))
    city = pick_text(city_flat, country * max_cities + rng.integers(0, max_cities, n))
    alt_city = pick_text(city_flat, country * max_cities + rng.integers(0, max_cities, n))
    country_text = _country_text(rng, country)

    age_years = 18 + rng.beta(2.0, 3.0, n) * 67
    ref_day = parse_ts("2024-01-01 00:00:00") // 86_400
    birth_day = ref_day - (age_years * 365.25).astype(np.int64)

    consent = rng.random(n) < 0.55
    consent_table = (*ref.CONSENT_SPELLINGS[True], *ref.CONSENT_SPELLINGS[False])
    consent_idx = np.where(consent, 0, 4) + rng.integers(0, 4, n)

    ids = FIRST_CUSTOMER_ID + first_index + np.arange(n, dtype=np.int64)
    columns = {
        "customer_id": ints_text(ids),
        "first_name": pick_text(first_table, first_idx),
        "last_name": pick_text(ref.LAST_NAMES, last_idx),
        "email": email,
        "phone": phone,
        "birth_date": dates_text(birth_day),
        "gender": pick_text(gender_table, gender_idx),
        "city": city,
        "country": country_text,
        "signup_at": timestamps_text(signup_s),
        "marketing_consent": pick_text(consent_table, consent_idx),
        "updated_at": timestamps_text(updated_s),
    }
    return Customers(
        customer_id=ids,
        lam=lam,
        p=p,
        nu=nu,
        home_category=home,
        first_purchase_s=first_s,
        signup_s=signup_s,
        updated_s=updated_s,
        columns=columns,
        alt_email=alt_email,
        alt_phone=alt_phone,
        alt_city=alt_city,
    )


def _emails(
    rng: np.random.Generator, first_idx: np.ndarray, last_idx: np.ndarray, first_table: tuple
) -> pa.Array:
    """first.last[NN]@domain with fictional domains."""
    n = first_idx.size
    firsts = tuple(_ascii_local(x) for x in first_table)
    lasts = tuple(_ascii_local(x) for x in ref.LAST_NAMES)
    with_number = rng.random(n) < 0.5
    number = pc.if_else(pa.array(with_number), ints_text(rng.integers(1, 100, n)), "")
    dw = np.asarray(ref.EMAIL_DOMAIN_WEIGHTS)
    domain = pick_text(ref.EMAIL_DOMAINS, rng.choice(len(dw), size=n, p=dw / dw.sum()))
    return pc.binary_join_element_wise(
        pick_text(firsts, first_idx), ".", pick_text(lasts, last_idx), number, "@", domain, ""
    )


_COUNTRY_STYLE_WEIGHTS = (0.40, 0.25, 0.08, 0.04, 0.04, 0.04, 0.03, 0.06, 0.06)


def _country_text(rng: np.random.Generator, country: np.ndarray) -> pa.Array:
    """Name, code, case/space variants or an alias (UK, USA, Holland, ...)."""
    flat: list[str] = []
    for code, (name, _w, aliases, _cities) in ref.COUNTRIES.items():
        a1 = aliases[0] if aliases else name
        a2 = aliases[-1] if aliases else code
        flat += [name, code, name.lower(), code.lower(), name.upper(), f" {name} ", f"{code} "]
        flat += [a1, a2]
    k = len(_COUNTRY_STYLE_WEIGHTS)
    w = np.asarray(_COUNTRY_STYLE_WEIGHTS)
    style = rng.choice(k, size=country.size, p=w / w.sum())
    return pick_text(tuple(flat), country * k + style)
