"""Retail cross-sell data product: the Python side (data generator, tooling)."""

__version__ = "0.1.0"
