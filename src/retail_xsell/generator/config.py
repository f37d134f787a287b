"""Generator configuration: sizes, window, population parameters, flaw rates.

Everything that shapes the output is a frozen dataclass so a configuration can be
hashed, compared and written verbatim into the truth file. Changing a default changes
the committed sample, so the sample must be regenerated (and the docs updated) together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from . import reference as ref

GENERATOR_VERSION: Final[str] = "1.0.0"
"""Bump when the output for a given seed and configuration changes."""

SAMPLE_SEED: Final[int] = 20240601
SAMPLE_CUSTOMERS: Final[int] = 3_000
SAMPLE_PRODUCTS: Final[int] = 400


@dataclass(frozen=True)
class PopulationParams:
    """Heterogeneity of the BG/NBD purchase process and the Gamma-Gamma spend model.

    Time unit is the week: ``lambda ~ Gamma(shape=r, rate=alpha)`` purchases per week,
    dropout ``p ~ Beta(a, b)``, per-customer spend scale ``nu ~ Gamma(shape=q, rate=gamma)``
    and order value ``z ~ Gamma(shape=p_gg, rate=nu)`` in store currency.
    """

    r: float = 1.1
    alpha: float = 10.0
    a: float = 0.8
    b: float = 2.5
    p_gg: float = 6.0
    q: float = 4.0
    gamma: float = 40.0


@dataclass(frozen=True)
class AffinityPair:
    """A planted directed cross-sell: having bought ``antecedent`` boosts ``consequent``."""

    antecedent: str
    consequent: str
    boost: float


@dataclass(frozen=True)
class BehaviourParams:
    """Everything about behaviour that is not a population distribution parameter."""

    acquisition_weeks: float = 130.0
    """First purchases fall in the first ~2.5 years of the window."""
    acquisition_growth: float = 0.5
    """Acquisition density grows linearly to (1 + growth) x its start value."""
    home_category_boost: float = 10.0
    """Weight multiplier of a customer's home category over category popularity."""
    lines_per_order_weights: tuple[float, ...] = (0.62, 0.12, 0.08, 0.18)
    """P(order has 1, 2, 3, 4 lines). Over-dispersed on purpose: with few lines per order,
    a pair's order-level lift sits near 1 only if Var(lines) is close to E(lines)."""
    product_price_jitter: float = 0.5
    """Log-sd of the noise on the per-line price target used to pick a product."""
    max_quantity: int = 12
    discount_probability: float = 0.25
    discount_levels: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
    discount_weights: tuple[float, ...] = (0.2, 0.3, 0.2, 0.15, 0.1, 0.05)
    price_change_probability: float = 0.1
    """Share of lines charged at a historical price (list price x U(0.9, 1.1))."""
    return_probability: float = 0.04
    """Share of completed sale lines that get a later return line."""
    partial_return_probability: float = 0.15
    """Share of returns (of lines with quantity > 1) that return only part of the units."""
    return_days: tuple[float, float] = (1.0, 30.0)
    cancelled_order_share: float = 0.03
    """Share of all orders that are cancelled (re-sent copies of real orders)."""
    load_delay_seconds: tuple[float, float] = (60.0, 172_800.0)
    """loaded_at - order_at is log-uniform between these bounds (1 minute .. 2 days)."""
    spelling_variant_probability: float = 0.05
    """Share of channel/status values written in another case (Web, COMPLETED)."""
    category_variant_probability: float = 0.08
    """Share of products whose category text has a case/whitespace variant."""


DEFAULT_SEASONALITY: Final[tuple[float, ...]] = (
    0.80, 0.80, 0.95, 0.95, 1.00, 0.95, 0.95, 0.95, 1.00, 1.05, 1.25, 1.35,
)  # fmt: skip
"""Monthly purchase-rate multipliers Jan..Dec; they average exactly 1 over the months."""

DEFAULT_AFFINITY_PAIRS: Final[tuple[AffinityPair, ...]] = (
    AffinityPair("Electronics", "Toys & Games", 12.0),
    AffinityPair("Home & Kitchen", "Books", 12.0),
    AffinityPair("Sports & Outdoors", "Beauty", 12.0),
    AffinityPair("Books", "Sports & Outdoors", 12.0),
)
"""Planted pairs. The boost is large because a customer-level lift can never exceed
1 / P(antecedent bought): with ~3 of 8 categories bought per customer a boost of 3-4
only lifts pairs to ~1.3. Pairs avoid the two big-basket categories (Fashion, Grocery)
for the same reason."""

SCENARIOS: Final[tuple[str, ...]] = ("default", "skewed")
"""Named scenarios: ``default`` is the committed sample's world, ``skewed`` the one that
cannot flatter a cross-sell model (:class:`SkewedScenario`)."""

SKEWED_POPULARITY_ORDER: Final[tuple[str, ...]] = (
    "Grocery", "Fashion", "Home & Kitchen", "Beauty", "Books", "Sports & Outdoors",
    "Toys & Games", "Electronics",
)  # fmt: skip
"""Zipf rank 1, 2, ... of the skewed scenario: the default order, with the high-ticket
category moved last so that it is also the rarest."""

SKEWED_AFFINITY_PAIRS: Final[tuple[AffinityPair, ...]] = (
    AffinityPair("Fashion", "Home & Kitchen", 4.0),
    AffinityPair("Home & Kitchen", "Fashion", 1.25),
    AffinityPair("Beauty", "Books", 4.0),
    AffinityPair("Books", "Beauty", 1.25),
    AffinityPair("Sports & Outdoors", "Toys & Games", 4.0),
    AffinityPair("Toys & Games", "Sports & Outdoors", 1.25),
)
"""Weaker (boost 4 instead of 12) and asymmetric pairs (1.25 back): each joins two
neighbouring Zipf ranks with the less popular one as consequent, so popularity alone
would favour the reverse direction. None touches the high-ticket category."""


@dataclass(frozen=True)
class SkewedScenario:
    """A world where popularity and ticket size mislead a cross-sell ranking.

    Category popularity is Zipf (``P(rank k) = k^-s / sum_j j^-s``); every customer's
    first purchase is in their home category, drawn from it. One category (the last
    rank) carries list prices whose median is ``high_ticket_multiple`` x the median of
    the other categories' products, its lines cost about as much more, and it has no
    planted affinity.
    """

    zipf_exponent: float = 1.1
    popularity_order: tuple[str, ...] = SKEWED_POPULARITY_ORDER
    high_ticket_category: str = "Electronics"
    high_ticket_multiple: float = 8.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.zipf_exponent) or self.zipf_exponent <= 0:
            raise ValueError(f"zipf exponent must be positive, got {self.zipf_exponent}")
        if not math.isfinite(self.high_ticket_multiple) or self.high_ticket_multiple <= 1:
            raise ValueError(
                f"high-ticket price multiple must be above 1, got {self.high_ticket_multiple}"
            )
        if sorted(self.popularity_order) != sorted(ref.CATEGORIES):
            raise ValueError("popularity order must list every category once")
        if self.high_ticket_category not in ref.CATEGORIES:
            raise ValueError(f"unknown category: {self.high_ticket_category}")

    @property
    def name(self) -> str:
        return "skewed"

    def popularity(self) -> tuple[float, ...]:
        """Zipf probabilities in ``reference.CATEGORIES`` order."""
        weight = {c: (rank + 1) ** -self.zipf_exponent
                  for rank, c in enumerate(self.popularity_order)}  # fmt: skip
        total = sum(weight.values())
        return tuple(weight[c] / total for c in ref.CATEGORIES)


@dataclass(frozen=True)
class FlawSpec:
    """One kind of data-quality flaw with its default rate and expected treatment."""

    name: str
    table: str
    default_rate: float
    applies_to: str
    description: str
    staging: str


FLAW_SPECS: Final[tuple[FlawSpec, ...]] = (
    # customer_info
    FlawSpec("customer_duplicate_row", "customer_info", 0.005, "customers",
             "an exact copy of a customer's current row is appended",
             "deduplicate exact copies"),
    FlawSpec("customer_resent", "customer_info", 0.05, "customers",
             "an older version of the record with a different email/phone/city and an "
             "earlier updated_at is also present", "keep the newest updated_at per customer"),
    FlawSpec("email_case_whitespace", "customer_info", 0.10, "customers",
             "email has mixed case and surrounding spaces", "trim and lower-case"),
    FlawSpec("invalid_email", "customer_info", 0.02, "customers",
             "email is not an address (anna.smith@, 'anna smith@example.com', not-an-email)",
             "set email to null and flag"),
    FlawSpec("invalid_phone", "customer_info", 0.01, "customers",
             "phone is not a number ('12', 'call me', 'unknown')", "set phone to null and flag"),
    FlawSpec("birth_date_missing", "customer_info", 0.08, "customers",
             "birth_date is empty", "keep null (unknown age)"),
    FlawSpec("birth_date_unparseable", "customer_info", 0.005, "customers",
             "birth_date is not a valid YYYY-MM-DD date ('31/02/1980', 'unknown')",
             "set to null and flag"),
    FlawSpec("country_unknown", "customer_info", 0.015, "customers",
             "country is not a known country ('Atlantis', 'XX', 'N/A', empty)",
             "map to region 'Unknown'"),
    FlawSpec("customer_id_missing", "customer_info", 0.003, "customers",
             "extra junk row: a copy of a real row with an empty customer_id",
             "quarantine the row"),
    FlawSpec("customer_id_unparseable", "customer_info", 0.003, "customers",
             "extra junk row: a copy of a real row with customer_id like 'C-10042' or '#N/A'",
             "quarantine the row"),
    # product
    FlawSpec("product_id_missing", "product", 0.01, "products",
             "extra junk row: a copy of a real product with an empty product_id",
             "quarantine the row"),
    FlawSpec("product_id_unparseable", "product", 0.01, "products",
             "extra junk row: a copy of a real product with product_id like 'P-1042' or 'unknown'",
             "quarantine the row"),
    FlawSpec("list_price_unparseable", "product", 0.01, "products",
             "list_price is text ('#N/A', '12,99')", "null list price; product stays usable"),
    FlawSpec("list_price_zero", "product", 0.005, "products", "list_price is 0.00",
             "null list price; product stays usable"),
    FlawSpec("list_price_negative", "product", 0.005, "products",
             "list_price is the negative of the real price",
             "null list price; product stays usable"),
    # purchase
    FlawSpec("purchase_duplicate_row", "purchase", 0.01, "purchase lines",
             "an exact copy of a line is appended (loaded twice)", "deduplicate exact copies"),
    FlawSpec("return_positive_quantity", "purchase", 0.10, "return lines",
             "return line has status returned but a positive quantity",
             "treat status returned as a return; quantity = -abs(quantity)"),
    FlawSpec("return_completed_status", "purchase", 0.10, "return lines",
             "return line has status completed but a negative quantity",
             "treat negative quantity as a return"),
    FlawSpec("unit_price_zero", "purchase", 0.002, "purchase lines", "unit_price is 0.00",
             "keep: a free item is a valid sale worth 0 (not a flaw to quarantine)"),
    FlawSpec("unit_price_negative", "purchase", 0.002, "purchase lines",
             "unit_price is negative", "quarantine the line"),
    FlawSpec("unit_price_absurd", "purchase", 0.001, "purchase lines",
             "unit_price is 1000 x the real price", "quarantine (price far above list price)"),
    FlawSpec("purchase_unknown_product", "purchase", 0.003, "purchase lines",
             "product_id exists in no table", "quarantine (orphan product)"),
    FlawSpec("purchase_unknown_customer", "purchase", 0.003, "purchase lines",
             "customer_id exists in no table", "quarantine (orphan customer)"),
    FlawSpec("order_at_after_loaded_at", "purchase", 0.002, "purchase lines",
             "order_at lies 1-10 years after loaded_at", "quarantine (event in the future)"),
    FlawSpec("purchase_order_id_missing", "purchase", 0.002, "purchase lines",
             "order_id is empty", "quarantine the line"),
    FlawSpec("purchase_customer_id_missing", "purchase", 0.002, "purchase lines",
             "customer_id is empty", "quarantine the line"),
    FlawSpec("purchase_product_id_missing", "purchase", 0.002, "purchase lines",
             "product_id is empty", "quarantine the line"),
    FlawSpec("quantity_unparseable", "purchase", 0.002, "purchase lines",
             "quantity is a word ('two', 'minus one')", "quarantine the line"),
    FlawSpec("unit_price_unparseable", "purchase", 0.002, "purchase lines",
             "unit_price is text ('12,99', '#N/A')", "quarantine the line"),
    FlawSpec("discount_unparseable", "purchase", 0.002, "purchase lines",
             "discount is a percentage string ('10%')", "quarantine the line"),
    FlawSpec("order_at_unparseable", "purchase", 0.001, "purchase lines",
             "order_at is not a timestamp ('2024-13-45 10:00:00')", "quarantine the line"),
)  # fmt: skip

FLAWS: Final[dict[str, FlawSpec]] = {spec.name: spec for spec in FLAW_SPECS}
DEFAULT_FLAW_RATES: Final[dict[str, float]] = {s.name: s.default_rate for s in FLAW_SPECS}

# Row-level purchase flaws, in the order of their categorical draw (changing the order
# changes the generated data).
PURCHASE_ROW_FLAWS: Final[tuple[str, ...]] = (
    "unit_price_zero",
    "unit_price_negative",
    "unit_price_absurd",
    "purchase_unknown_product",
    "purchase_unknown_customer",
    "order_at_after_loaded_at",
    "purchase_order_id_missing",
    "purchase_customer_id_missing",
    "purchase_product_id_missing",
    "quantity_unparseable",
    "unit_price_unparseable",
    "discount_unparseable",
    "order_at_unparseable",
)

# Flaws drawn from one categorical per row (at most one per row), so every one stays
# observable in the output; their rates must sum to at most 1 within a group.
EXCLUSIVE_FLAW_GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    ("invalid_email", "email_case_whitespace"),
    ("birth_date_missing", "birth_date_unparseable"),
    ("list_price_unparseable", "list_price_zero", "list_price_negative"),
    ("return_positive_quantity", "return_completed_status"),
    PURCHASE_ROW_FLAWS,
)


@dataclass(frozen=True)
class GeneratorConfig:
    """A complete, reproducible description of one generated data set."""

    seed: int = SAMPLE_SEED
    n_customers: int = SAMPLE_CUSTOMERS
    n_products: int = SAMPLE_PRODUCTS
    window_start: str = "2023-01-01 00:00:00"
    window_end: str = "2025-12-31 23:59:59"
    time_unit: str = "week"
    population: PopulationParams = field(default_factory=PopulationParams)
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)
    seasonality: tuple[float, ...] = DEFAULT_SEASONALITY
    affinity_pairs: tuple[AffinityPair, ...] = DEFAULT_AFFINITY_PAIRS
    flaw_rates: tuple[tuple[str, float], ...] = tuple(sorted(DEFAULT_FLAW_RATES.items()))
    chunk_customers: int = 150_000
    """Customers simulated per chunk: bounds memory; one purchase file per chunk."""
    scenario: SkewedScenario | None = None
    """None: the default scenario. Set it with :meth:`with_scenario`, which also plants
    the scenario's affinity pairs."""

    def __post_init__(self) -> None:
        if self.n_customers <= 0 or self.n_products <= 0 or self.chunk_customers <= 0:
            raise ValueError("sizes must be positive")
        if len(self.seasonality) != 12 or min(self.seasonality) <= 0:
            raise ValueError("seasonality needs 12 positive monthly multipliers")
        rates = dict(self.flaw_rates)
        unknown = sorted(set(rates) - set(FLAWS))
        if unknown:
            raise ValueError(f"unknown flaw name: {unknown[0]}")
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"flaw rate for {name} must be within [0, 1], got {rate}")
        for group in EXCLUSIVE_FLAW_GROUPS:
            if sum(rates.get(n, 0.0) for n in group) > 1.0:
                raise ValueError(f"flaw rates of {', '.join(group)} sum to more than 1")
        if self.scenario is not None:
            high = self.scenario.high_ticket_category
            if any(high in (p.antecedent, p.consequent) for p in self.affinity_pairs):
                raise ValueError(f"the high-ticket category {high} must have no planted pair")

    def rate(self, name: str) -> float:
        """Configured rate of one flaw (0 when switched off)."""
        return dict(self.flaw_rates).get(name, 0.0)

    def with_flaw_rates(self, overrides: dict[str, float]) -> GeneratorConfig:
        """A copy with some flaw rates replaced (validated like the constructor)."""
        rates = dict(self.flaw_rates)
        rates.update(overrides)
        return replace(self, flaw_rates=tuple(sorted(rates.items())))

    def with_scenario(self, scenario: SkewedScenario | None) -> GeneratorConfig:
        """A copy in another scenario, with that scenario's planted pairs."""
        pairs = DEFAULT_AFFINITY_PAIRS if scenario is None else SKEWED_AFFINITY_PAIRS
        return replace(self, scenario=scenario, affinity_pairs=pairs)

    def to_json(self) -> dict[str, Any]:
        """Plain-data view for the truth file (no ``scenario`` key in the default one,
        so the committed sample's truth file is what it was before scenarios)."""
        data = asdict(self)
        if self.scenario is None:
            del data["scenario"]
        data["flaw_rates"] = dict(self.flaw_rates)
        data["seasonality"] = list(self.seasonality)
        return data
