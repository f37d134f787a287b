"""The raw input contract: table names and their columns, in file order.

Every column is text in the raw layer (CSV strings, Parquet ``string``) so that bad
values survive loading and reach the dbt staging layer, where they are parsed and
quarantined. The dbt sources YAML must list exactly these columns; the project's tests
compare the two, so change both together.
"""

from __future__ import annotations

from typing import Final

CUSTOMER_INFO_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "gender",
    "city",
    "country",
    "signup_at",
    "marketing_consent",
    "updated_at",
)

PRODUCT_COLUMNS: Final[tuple[str, ...]] = (
    "product_id",
    "product_name",
    "category",
    "subcategory",
    "brand",
    "list_price",
    "unit_cost",
)

PURCHASE_COLUMNS: Final[tuple[str, ...]] = (
    "order_id",
    "line_number",
    "customer_id",
    "product_id",
    "quantity",
    "unit_price",
    "discount",
    "order_at",
    "channel",
    "status",
    "loaded_at",
)

RAW_SCHEMA: Final[dict[str, tuple[str, ...]]] = {
    "customer_info": CUSTOMER_INFO_COLUMNS,
    "product": PRODUCT_COLUMNS,
    "purchase": PURCHASE_COLUMNS,
}
"""Table name -> column names in file order. All columns are text."""

TABLES: Final[tuple[str, ...]] = tuple(RAW_SCHEMA)
