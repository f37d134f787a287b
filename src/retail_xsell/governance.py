"""What "governed" means for this product, defined once over dbt's manifest.

A public model is governed when it has an enforced contract, an owner, a description and
a description on every column. Personal data is in clear when a column is classified as
personal data (``meta.pii``) without saying how it was made safe
(``meta.pii_treatment``), and it may be in clear only in private models. The quality
gate (``public_models_governed``, ``pii_masked_outside_private``), the publication's
personal-data scan (:mod:`retail_xsell.pii_scan`) and the docs-site tests all ask these
functions, so the rule cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def entry_meta(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The meta of a manifest entry (model, column): dbt keeps it in two places, the
    top level and config.meta; config wins."""
    return {**(entry.get("meta") or {}), **((entry.get("config") or {}).get("meta") or {})}


def is_pii_in_clear(meta: Mapping[str, Any]) -> bool:
    """A column classified as personal data (meta.pii) with no masking treatment
    (meta.pii_treatment: hashed, masked, generalised)."""
    return bool(meta.get("pii")) and not meta.get("pii_treatment")


def public_models(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every model with ``access: public``, sorted by name: the consumer-aligned marts."""
    return sorted(
        (
            node
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node.get("access") == "public"
        ),
        key=lambda node: node["name"],
    )


def _has_owner(node: Mapping[str, Any], groups: Mapping[str, Mapping[str, Any]]) -> bool:
    """A dbt group whose owner has a name or an email, or meta.owner on the model."""
    owner = (groups.get(node.get("group") or "") or {}).get("owner") or {}
    return bool(owner.get("email") or owner.get("name") or entry_meta(node).get("owner"))


def governance_gaps(manifest: Mapping[str, Any]) -> list[str]:
    """One line per governance gap of a public model: no enforced contract, no owner,
    no description, or an undescribed column. Empty when every public model is governed."""
    groups = {group["name"]: group for group in manifest.get("groups", {}).values()}
    gaps = []
    for node in public_models(manifest):
        name = node["name"]
        if not (node.get("config") or {}).get("contract", {}).get("enforced"):
            gaps.append(f"{name}: contract not enforced")
        if not _has_owner(node, groups):
            gaps.append(f"{name}: no owner (group or meta.owner)")
        if not (node.get("description") or "").strip():
            gaps.append(f"{name}: no description")
        gaps += [
            f"{name}.{column['name']}: no description"
            for column in node["columns"].values()
            if not (column.get("description") or "").strip()
        ]
    return gaps


def pii_in_clear_outside_private(manifest: Mapping[str, Any]) -> list[str]:
    """Columns of protected and public models holding personal data in clear, sorted;
    private models (the data stewards' staging) may hold it."""
    found = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node.get("access") == "private":
            continue
        for column in node["columns"].values():
            meta = entry_meta(column)
            if is_pii_in_clear(meta):
                found.append(
                    f"{node['name']}.{column['name']} ({node.get('access')}): "
                    f"pii {meta['pii']} without pii_treatment"
                )
    return sorted(found)
