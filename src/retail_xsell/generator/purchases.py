"""The behavioural simulation: BG/NBD transactions, affinity baskets, Gamma-Gamma spend.

Story per customer (time unit: week, clock starts at the customer's first purchase):

1. The first purchase happens at the acquisition time (the BG/NBD "birth", not a repeat).
2. While active, repeat purchases arrive as a Poisson process with rate
   ``lambda * season(month)``; it is simulated at the constant rate ``lambda * max(season)``
   and each candidate is kept with probability ``season(month) / max(season)`` (thinning).
3. Immediately after each *repeat* purchase the customer drops out with probability ``p``
   (so the number of repeat purchases until dropout is Geometric(p) on 1, 2, ...), exactly
   as in the likelihood of Fader, Hardie & Lee (2005).
4. Observation ends at the window end (right-censoring).

Everything is vectorised over the customers of one chunk; the only Python loop is over
"the s-th order of every customer who has one", which is needed because the category of
a line depends on what the customer bought before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import reference as ref
from .config import GeneratorConfig
from .population import Customers, Products, category_popularity
from .timebase import DAY, WEEK, month_multiplier, parse_ts

STATUS_COMPLETED, STATUS_RETURNED, STATUS_CANCELLED = 0, 1, 2


@dataclass(frozen=True)
class Transactions:
    """Real (non-cancelled) orders of a chunk, sorted by customer then time."""

    customer: np.ndarray  # chunk-local customer index
    time_s: np.ndarray
    n_purchases: np.ndarray  # per customer: 1 + repeat purchases in the window
    dropped_out: np.ndarray  # per customer
    dropout_s: np.ndarray  # per customer; -1 if still alive at the window end


@dataclass
class Lines:
    """Clean purchase lines of a chunk (numeric), sorted by order id then line number."""

    order_id: np.ndarray
    line_number: np.ndarray
    customer: np.ndarray  # chunk-local customer index
    product: np.ndarray  # product position
    quantity: np.ndarray
    unit_price_cents: np.ndarray
    discount_pct: np.ndarray  # hundredths: 10 -> 0.10
    order_at_s: np.ndarray
    loaded_at_s: np.ndarray
    channel: np.ndarray
    status: np.ndarray
    is_return: np.ndarray


@dataclass(frozen=True)
class ChunkResult:
    """Output of the simulation for one chunk of customers."""

    transactions: Transactions
    lines: Lines
    n_orders: int  # real + cancelled orders (order ids used)
    order_value_ratio: np.ndarray  # net order value / Gamma-Gamma target z, per real order
    first_category: np.ndarray  # per category: customers whose first line is in it
    category_lines: np.ndarray  # per category: sale lines (before returns, copies, flaws)
    category_value: np.ndarray  # per category: net value of those lines


def simulate_transactions(
    rng: np.random.Generator, cfg: GeneratorConfig, customers: Customers
) -> Transactions:
    """BG/NBD with seasonal thinning; see the module docstring for the exact story."""
    n = customers.lam.size
    end = parse_ts(cfg.window_end)
    season = np.asarray(cfg.seasonality, dtype=float)
    m_max = season.max()
    first_s = customers.first_purchase_s
    t_weeks = (end - first_s) / WEEK

    n_cand = rng.poisson(customers.lam * m_max * t_weeks)
    cand_cust = np.repeat(np.arange(n, dtype=np.int64), n_cand)
    # Sorted uniforms within each customer: sort (customer + u) once for the whole chunk.
    u = np.sort(cand_cust + rng.random(cand_cust.size)) - cand_cust
    cand_t = first_s[cand_cust] + (u * t_weeks[cand_cust] * WEEK).astype(np.int64)
    accept = rng.random(cand_t.size) * m_max < month_multiplier(cand_t, season)
    acc_c = cand_cust[accept]
    acc_t = cand_t[accept]

    n_acc = np.bincount(acc_c, minlength=n)
    starts = np.cumsum(n_acc) - n_acc
    rank = np.arange(acc_c.size) - starts[acc_c]
    # Repeat purchases until dropout: Geometric(p) on {1, 2, ...}.
    until_dropout = rng.geometric(np.clip(customers.p, 1e-12, 1.0))
    keep = rank < until_dropout[acc_c]
    n_repeat = np.minimum(n_acc, until_dropout)
    dropped = n_acc >= until_dropout
    dropout_s = np.full(n, -1, dtype=np.int64)
    dropout_s[dropped] = acc_t[starts[dropped] + until_dropout[dropped] - 1]

    cust = np.concatenate([np.arange(n, dtype=np.int64), acc_c[keep]])
    times = np.concatenate([first_s, acc_t[keep]])
    order = np.lexsort((times, cust))
    return Transactions(
        customer=cust[order],
        time_s=times[order],
        n_purchases=1 + n_repeat,
        dropped_out=dropped,
        dropout_s=dropout_s,
    )


def _boost_table(cfg: GeneratorConfig) -> np.ndarray:
    """(256, 8) multipliers: row = bitmask of categories bought so far."""
    cats = ref.CATEGORIES
    table = np.ones((256, len(cats)))
    for mask in range(256):
        for pair in cfg.affinity_pairs:
            if mask >> cats.index(pair.antecedent) & 1:
                table[mask, cats.index(pair.consequent)] *= pair.boost
    return table


def _home_table(cfg: GeneratorConfig) -> np.ndarray:
    """(8, 8) base category weights: popularity, home category boosted."""
    n_cat = len(ref.CATEGORIES)
    pop = category_popularity(cfg)
    return pop[None, :] * np.where(np.eye(n_cat, dtype=bool), cfg.behaviour.home_category_boost, 1)


def choose_categories(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    tx: Transactions,
    home: np.ndarray,
    lines_per_order: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category of every line, order by order, with the planted affinity boosts.

    P(category c) for a line is proportional to popularity(c) x home boost (if c is the
    customer's home category) x product of ``boost`` over planted pairs (A -> c) where A was
    bought earlier (an earlier order or an earlier line of the same order). In a
    scenario (skewed), the first line of a customer's first order is the home category
    itself, so first purchases follow the scenario's popularity exactly.

    Returns (order index, line index within order, category) for every line.
    """
    n_cust = home.size
    n_orders_c = tx.n_purchases
    order_start = np.cumsum(n_orders_c) - n_orders_c
    by_activity = np.argsort(-n_orders_c, kind="stable")
    neg_sorted = -n_orders_c[by_activity]
    home_w = _home_table(cfg)
    boost = _boost_table(cfg)
    bought = np.zeros(n_cust, dtype=np.int64)
    first_in_home = cfg.scenario is not None
    out_o: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    max_lines = int(lines_per_order.max()) if lines_per_order.size else 0
    for s in range(int(n_orders_c.max()) if n_cust else 0):
        n_active = int(np.searchsorted(neg_sorted, -s, side="left"))
        cs = by_activity[:n_active]
        oidx = order_start[cs] + s
        k = lines_per_order[oidx]
        for j in range(max_lines):
            sel = k > j
            if not sel.any():
                break
            cj = cs[sel]
            if s == 0 and j == 0 and first_in_home:
                cat = home[cj]
            else:
                w = home_w[home[cj]] * boost[bought[cj]]
                cw = np.cumsum(w, axis=1)
                draw = rng.random(cj.size) * cw[:, -1]
                cat = (draw[:, None] >= cw).sum(axis=1)
            bought[cj] |= 1 << cat
            out_o.append(oidx[sel])
            out_j.append(np.full(cj.size, j, dtype=np.int64))
            out_c.append(cat)
    orders = np.concatenate(out_o)
    lines = np.concatenate(out_j)
    categories = np.concatenate(out_c)
    order = np.lexsort((lines, orders))
    return orders[order], lines[order], categories[order]


def _pick_products(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    products: Products,
    category: np.ndarray,
    target_price: np.ndarray,
) -> np.ndarray:
    """Product of a category whose price is near a (noisy) target price."""
    jitter = np.exp(rng.normal(0.0, cfg.behaviour.product_price_jitter, category.size))
    target_cents = target_price * jitter * 100
    sorted_price = products.price_cents[products.by_price]
    sorted_cat = products.category[products.by_price]
    scale = float(sorted_price.max()) * 1e3 + 1e6
    sorted_key = sorted_cat * scale + sorted_price
    pos = np.searchsorted(sorted_key, category * scale + target_cents)
    pos = pos - (rng.random(category.size) < 0.5)
    pos = np.clip(pos, products.cat_start[category], products.cat_end[category] - 1)
    return products.by_price[pos]


def simulate_chunk(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    customers: Customers,
    products: Products,
    first_order_id: int,
) -> ChunkResult:
    """All clean purchase lines of one chunk of customers."""
    beh = cfg.behaviour
    end = parse_ts(cfg.window_end)
    tx = simulate_transactions(rng, cfg, customers)
    n_orders = tx.customer.size
    kw = np.asarray(beh.lines_per_order_weights)
    k = 1 + rng.choice(kw.size, n_orders, p=kw / kw.sum())
    o, j, cat = choose_categories(rng, cfg, tx, customers.home_category, k)

    # Gamma-Gamma spend: each real order gets a target value z ~ Gamma(p, rate nu).
    z = rng.gamma(cfg.population.p_gg, 1.0 / customers.nu[tx.customer])
    share = z[o] / k[o]
    if cfg.scenario is not None:
        # A high-ticket line costs about `multiple` x the line's share of the order target.
        high = ref.CATEGORIES.index(cfg.scenario.high_ticket_category)
        share = np.where(cat == high, share * cfg.scenario.high_ticket_multiple, share)
    product = _pick_products(rng, cfg, products, cat, share)
    price = products.price_cents[product].astype(np.int64)
    changed = rng.random(o.size) < beh.price_change_probability
    price = np.where(changed, np.round(price * rng.uniform(0.9, 1.1, o.size)), price)
    price = np.maximum(price, 1).astype(np.int64)
    dw = np.asarray(beh.discount_weights)
    levels = np.round(np.asarray(beh.discount_levels) * 100).astype(np.int64)
    discounted = rng.random(o.size) < beh.discount_probability
    discount = np.where(discounted, levels[rng.choice(levels.size, o.size, p=dw / dw.sum())], 0)
    net_unit = price * (100 - discount) / 10_000
    qty = np.clip(np.rint(share / net_unit), 1, beh.max_quantity).astype(np.int64)
    line_value = qty * net_unit
    net_value = np.bincount(o, weights=line_value, minlength=n_orders)
    ratio = net_value / z
    n_cat = len(ref.CATEGORIES)
    first_order = np.r_[True, tx.customer[1:] != tx.customer[:-1]]
    first_category = np.bincount(cat[(j == 0) & first_order[o]], minlength=n_cat)

    cw = np.asarray(ref.CHANNEL_WEIGHTS)
    channel_o = rng.choice(cw.size, n_orders, p=cw / cw.sum())
    lo, hi = np.log(beh.load_delay_seconds[0]), np.log(beh.load_delay_seconds[1])
    delay_o = np.exp(rng.uniform(lo, hi, n_orders)).astype(np.int64)

    # Cancelled orders: copies of real orders, placed again shortly after and cancelled.
    c_share = beh.cancelled_order_share
    copy = rng.random(n_orders) < c_share / (1.0 - c_share)
    copy_t = tx.time_s + rng.integers(600, 2 * 86_400, n_orders)
    copy &= copy_t <= end
    copied = np.flatnonzero(copy)
    copy_delay = np.exp(rng.uniform(lo, hi, copied.size)).astype(np.int64)

    # Order ids follow time (ties: real before copy, then by customer/order position).
    all_t = np.concatenate([tx.time_s, copy_t[copied]])
    kind = np.concatenate([np.zeros(n_orders, np.int64), np.ones(copied.size, np.int64)])
    pos = np.concatenate([np.arange(n_orders), copied])
    rank = np.empty(all_t.size, dtype=np.int64)
    rank[np.lexsort((pos, kind, all_t))] = np.arange(all_t.size)
    order_id = first_order_id + rank
    real_id = order_id[:n_orders]
    copy_id = np.zeros(n_orders, dtype=np.int64)
    copy_id[copied] = order_id[n_orders:]

    # Returns of completed sale lines: same order, next free line number, 1-30 days later.
    ret = rng.random(o.size) < beh.return_probability
    lo_d, hi_d = beh.return_days
    ret_t = tx.time_s[o] + (rng.uniform(lo_d, hi_d, o.size) * DAY).astype(np.int64)
    partial = (qty > 1) & (rng.random(o.size) < beh.partial_return_probability)
    ret_qty = np.where(partial, rng.integers(1, np.maximum(qty, 2)), qty)
    ret &= ret_t <= end
    r = np.flatnonzero(ret)
    r_rank = np.arange(r.size) - np.searchsorted(o[r], o[r], side="left")
    ret_delay = np.exp(rng.uniform(lo, hi, r.size)).astype(np.int64)

    # Lines of cancelled copies.
    cl = np.flatnonzero(copy[o])

    def cat3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b, c])

    lines = Lines(
        order_id=cat3(real_id[o], real_id[o[r]], copy_id[o[cl]]),
        line_number=cat3(j + 1, k[o[r]] + 1 + r_rank, j[cl] + 1),
        customer=cat3(tx.customer[o], tx.customer[o[r]], tx.customer[o[cl]]),
        product=cat3(product, product[r], product[cl]),
        quantity=cat3(qty, -ret_qty[r], qty[cl]),
        unit_price_cents=cat3(price, price[r], price[cl]),
        discount_pct=cat3(discount, discount[r], discount[cl]),
        order_at_s=cat3(tx.time_s[o], ret_t[r], copy_t[o[cl]]),
        loaded_at_s=cat3(
            tx.time_s[o] + delay_o[o],
            ret_t[r] + ret_delay,
            copy_t[o[cl]] + copy_delay[np.searchsorted(copied, o[cl])],
        ),
        channel=cat3(channel_o[o], channel_o[o[r]], channel_o[o[cl]]),
        status=cat3(
            np.full(o.size, STATUS_COMPLETED),
            np.full(r.size, STATUS_RETURNED),
            np.full(cl.size, STATUS_CANCELLED),
        ),
        is_return=cat3(np.zeros(o.size, bool), np.ones(r.size, bool), np.zeros(cl.size, bool)),
    )
    sort = np.lexsort((lines.line_number, lines.order_id))
    for name, value in vars(lines).items():
        setattr(lines, name, value[sort])
    return ChunkResult(
        transactions=tx,
        lines=lines,
        n_orders=int(all_t.size),
        order_value_ratio=ratio,
        first_category=first_category,
        category_lines=np.bincount(cat, minlength=n_cat),
        category_value=np.bincount(cat, weights=line_value, minlength=n_cat),
    )
