"""Synthetic raw data for the retail cross-sell product.

Writes the three raw sources of an online retailer -- ``customer_info``, ``product`` and
``purchase`` -- as all-text tables with documented, counted flaws, driven by a BG/NBD
purchase process, Gamma-Gamma spend and planted category affinities. See
``docs/generator.md``; the command line lives in :mod:`retail_xsell.generator.cli`.
"""

from .config import GENERATOR_VERSION, GeneratorConfig
from .schema import RAW_SCHEMA

__all__ = ["GENERATOR_VERSION", "RAW_SCHEMA", "GeneratorConfig"]
