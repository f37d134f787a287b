"""Governed delivery: access policies, the one enforcement path, the API and its audit trail.

Every way out of the product to a consumer (REST, GraphQL, the CLI) goes through
:func:`retail_xsell.delivery.governed.execute`; docs/governance.md describes the rules.
"""
