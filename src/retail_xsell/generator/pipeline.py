"""Orchestration shared by sample and scale mode: chunks in, tables and truth out.

Sample mode is scale mode with small sizes, CSV output into one folder and the
per-customer truth inlined in the JSON; both run exactly this code, so a property checked
on the sample holds for the scale data.

Random streams: products use ``default_rng([seed, 0])``, customer chunk ``i`` uses
``default_rng([seed, 1, i])`` -- chunks are independent, so the output for a given seed
and chunk size does not depend on anything else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import reference as ref
from .config import FLAWS, GENERATOR_VERSION, GeneratorConfig, SkewedScenario
from .flaws import FlawLedger, flaw_customers, flaw_products, flaw_purchases
from .formatting import timestamps_text
from .population import Products, category_popularity, make_customers, make_products
from .purchases import STATUS_CANCELLED, simulate_chunk
from .writers import TableSink

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FIRST_ORDER_ID = 1_000_001


def sig6(x: float) -> float:
    """Round to 6 significant digits (keeps the sample truth file small)."""
    return float(f"{x:.6g}")


@dataclass
class RunStats:
    """Counts accumulated over chunks."""

    rows: dict[str, int] = field(
        default_factory=lambda: {"customer_info": 0, "product": 0, "purchase": 0}
    )
    real_orders: int = 0
    all_orders: int = 0
    sale_lines: int = 0
    return_lines: int = 0
    cancelled_lines: int = 0
    true_purchases: int = 0
    dropped_out: int = 0
    ratios: list[np.ndarray] = field(default_factory=list)
    first_category: np.ndarray = field(default_factory=lambda: np.zeros(len(ref.CATEGORIES)))
    category_lines: np.ndarray = field(default_factory=lambda: np.zeros(len(ref.CATEGORIES)))
    category_value: np.ndarray = field(default_factory=lambda: np.zeros(len(ref.CATEGORIES)))
    list_price_multiple: float = 0.0
    """Median list price of the high-ticket category over that of the other products."""


def customer_truth(chunk_customers: Any, tx: Any) -> pa.Table:
    """Per-customer latent truth of one chunk."""
    dropout = tx.dropout_s
    dropout_text = timestamps_text(np.maximum(dropout, 0))
    dropout_text = pa.array(
        [v if d >= 0 else None for v, d in zip(dropout_text.to_pylist(), dropout, strict=True)],
        pa.string(),
    )
    return pa.table(
        {
            "customer_id": pa.array(chunk_customers.customer_id, pa.int64()),
            "lambda": chunk_customers.lam,
            "p": chunk_customers.p,
            "nu": chunk_customers.nu,
            "home_category": pa.array(
                [ref.CATEGORIES[i] for i in chunk_customers.home_category], pa.string()
            ),
            "first_purchase_at": timestamps_text(chunk_customers.first_purchase_s),
            "dropped_out": pa.array(tx.dropped_out, pa.bool_()),
            "dropout_at": dropout_text,
            "n_purchases": pa.array(tx.n_purchases, pa.int64()),
        }
    )


def generate(
    cfg: GeneratorConfig,
    sink: TableSink,
    *,
    mode: str,
    truth_customers_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Generate all tables into ``sink`` and return the truth document.

    With ``truth_customers_path`` the per-customer truth goes to that Parquet file;
    otherwise it is inlined (as columns) in the returned document.
    """
    ledger = FlawLedger()
    stats = RunStats()
    products = make_products(np.random.default_rng([cfg.seed, 0]), cfg)
    product_table = flaw_products(np.random.default_rng([cfg.seed, 0, 1]), cfg, products, ledger)
    sink.write("product", product_table)
    stats.rows["product"] = product_table.num_rows
    if cfg.scenario is not None:
        stats.list_price_multiple = high_ticket_list_price_multiple(cfg.scenario, products)

    truth_tables: list[pa.Table] = []
    truth_writer: pq.ParquetWriter | None = None
    next_order_id = FIRST_ORDER_ID
    n_chunks = math.ceil(cfg.n_customers / cfg.chunk_customers)
    try:
        for chunk in range(n_chunks):
            start = chunk * cfg.chunk_customers
            size = min(cfg.chunk_customers, cfg.n_customers - start)
            rng = np.random.default_rng([cfg.seed, 1, chunk])
            customers = make_customers(rng, cfg, start, size)
            result = simulate_chunk(rng, cfg, customers, products, next_order_id)
            next_order_id += result.n_orders
            cust_table = flaw_customers(rng, cfg, customers, ledger)
            sink.write("customer_info", cust_table)
            purchase_table = flaw_purchases(rng, cfg, result.lines, customers, products, ledger)
            sink.write("purchase", purchase_table)

            lines, tx = result.lines, result.transactions
            stats.rows["customer_info"] += cust_table.num_rows
            stats.rows["purchase"] += purchase_table.num_rows
            stats.real_orders += tx.customer.size
            stats.all_orders += result.n_orders
            stats.return_lines += int(lines.is_return.sum())
            stats.cancelled_lines += int((lines.status == STATUS_CANCELLED).sum())
            stats.sale_lines += int((~lines.is_return & (lines.status != STATUS_CANCELLED)).sum())
            stats.true_purchases += int(tx.n_purchases.sum())
            stats.dropped_out += int(tx.dropped_out.sum())
            stats.ratios.append(result.order_value_ratio)
            stats.first_category += result.first_category
            stats.category_lines += result.category_lines
            stats.category_value += result.category_value

            truth = customer_truth(customers, tx)
            if truth_customers_path is not None:
                if truth_writer is None:
                    truth_writer = pq.ParquetWriter(truth_customers_path, truth.schema)
                truth_writer.write_table(truth)
            else:
                truth_tables.append(truth)
            if progress is not None:
                progress(size)
    finally:
        sink.close()
        if truth_writer is not None:
            truth_writer.close()

    doc = truth_document(cfg, ledger, stats, mode)
    if truth_customers_path is None:
        table = pa.concat_tables(truth_tables)
        doc["customers"] = {
            name: [sig6(v) if isinstance(v, float) else v for v in table.column(name).to_pylist()]
            for name in table.column_names
        }
    else:
        doc["customers_file"] = truth_customers_path.name
    return doc


def high_ticket_list_price_multiple(scenario: SkewedScenario, products: Products) -> float:
    """Median list price of the high-ticket category over that of the other products."""
    high = products.category == ref.CATEGORIES.index(scenario.high_ticket_category)
    price = products.price_cents
    return float(np.median(price[high]) / np.median(price[~high]))


def scenario_truth(scenario: SkewedScenario, cfg: GeneratorConfig, stats: RunStats) -> dict:
    """What the skewed scenario planted, and what the simulation realised of it."""
    cats = ref.CATEGORIES
    boosts = {(p.antecedent, p.consequent): p.boost for p in cfg.affinity_pairs}
    directions = [
        {"a": a, "b": b, "boost_a_to_b": boost, "boost_b_to_a": boosts.get((b, a), 1.0)}
        for (a, b), boost in boosts.items()
        if boost > boosts.get((b, a), 1.0)
    ]
    high = cats.index(scenario.high_ticket_category)
    per_line = stats.category_value / np.maximum(stats.category_lines, 1)
    others = np.arange(len(cats)) != high
    other_per_line = stats.category_value[others].sum() / max(stats.category_lines[others].sum(), 1)

    def shares(counts: np.ndarray) -> dict[str, float]:
        total = max(float(counts.sum()), 1.0)
        return {c: sig6(float(v) / total) for c, v in zip(cats, counts, strict=True)}

    return {
        "name": scenario.name,
        "zipf_exponent": scenario.zipf_exponent,
        "popularity_rank": list(scenario.popularity_order),
        "affinity_directions": directions,
        "high_ticket": {
            "category": scenario.high_ticket_category,
            "price_multiple": scenario.high_ticket_multiple,
            "list_price_median_multiple": sig6(stats.list_price_multiple),
            "line_value_multiple": sig6(float(per_line[high] / max(other_per_line, 1e-12))),
        },
        "realised": {
            "first_purchase_share": shares(stats.first_category),
            "sale_line_share": shares(stats.category_lines),
            "net_value_per_sale_line": {
                c: sig6(float(v)) for c, v in zip(cats, per_line, strict=True)
            },
        },
    }


def truth_document(
    cfg: GeneratorConfig, ledger: FlawLedger, stats: RunStats, mode: str
) -> dict[str, Any]:
    """Everything a later model or test needs to know about the generated data (a
    ``scenario`` block only outside the default scenario)."""
    ratio = np.concatenate(stats.ratios) if stats.ratios else np.zeros(1)
    pop = category_popularity(cfg)
    doc: dict[str, Any] = {
        "generator": "retail_xsell.generator",
        "generator_version": GENERATOR_VERSION,
        "mode": mode,
        "seed": cfg.seed,
        "config": cfg.to_json(),
        "time_unit": cfg.time_unit,
        "observation_window": {"start": cfg.window_start, "end": cfg.window_end},
        "population_parameters": asdict(cfg.population),
        "seasonality": dict(zip(MONTHS, cfg.seasonality, strict=True)),
        "planted_affinity_pairs": [asdict(p) for p in cfg.affinity_pairs],
        "category_popularity": {
            c: sig6(float(v)) for c, v in zip(ref.CATEGORIES, pop, strict=True)
        },
        "flaws": {
            name: {
                "table": spec.table,
                "applies_to": spec.applies_to,
                "rate": cfg.rate(name),
                "count": ledger.counts[name],
                "eligible": ledger.eligible[name],
            }
            for name, spec in FLAWS.items()
        },
        "row_counts": dict(stats.rows),
        "simulation": {
            "customers": cfg.n_customers,
            "products": cfg.n_products,
            "true_purchases": stats.true_purchases,
            "customers_dropped_out": stats.dropped_out,
            "real_orders": stats.real_orders,
            "cancelled_orders": stats.all_orders - stats.real_orders,
            "sale_lines": stats.sale_lines,
            "return_lines": stats.return_lines,
            "cancelled_lines": stats.cancelled_lines,
            "order_value_over_target": {
                "median": sig6(float(np.median(ratio))),
                "p10": sig6(float(np.quantile(ratio, 0.1))),
                "p90": sig6(float(np.quantile(ratio, 0.9))),
            },
        },
    }
    if cfg.scenario is not None:
        doc["scenario"] = scenario_truth(cfg.scenario, cfg, stats)
    return doc


def write_truth(doc: dict[str, Any], path: Path) -> None:
    """Deterministic JSON: sorted keys, 1-space indent, trailing newline."""
    path.write_text(json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


def estimate_lines_per_customer(cfg: GeneratorConfig, pilot_customers: int = 20_000) -> float:
    """Raw purchase rows per customer, from a pilot simulation on a separate stream."""
    rng = np.random.default_rng([cfg.seed, 2])
    products = make_products(np.random.default_rng([cfg.seed, 0]), cfg)
    customers = make_customers(rng, cfg, 0, pilot_customers)
    result = simulate_chunk(rng, cfg, customers, products, FIRST_ORDER_ID)
    per_customer = result.lines.order_id.size / pilot_customers
    return per_customer * (1.0 + cfg.rate("purchase_duplicate_row"))
