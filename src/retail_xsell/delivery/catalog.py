"""What a publication offers consumers: metrics, dimensions and saved queries, described.

The policy file names these, the API lists them (filtered by the principal's grants) and
its OpenAPI and GraphQL descriptions come from them. Labels and descriptions come from
the semantic manifest; metric tags (``use_case:cross_sell``) only live in dbt's
``manifest.json``, so the publication carries a ``catalog.json`` written at publish time
(:func:`catalog_document`), and the service never needs the dbt project.

Which dimensions a metric reaches is MetricFlow's answer (the join graph), asked once per
publication through :meth:`SemanticLayer.group_bys`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from retail_xsell.metric_exports import TIME_GRAINS, saved_query_item

CATALOG_FILE = "catalog.json"


class CatalogError(ValueError):
    """The publication's catalog is missing or does not describe its semantic manifest."""


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    description: str
    type: str
    tags: tuple[str, ...]
    dimensions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DimensionInfo:
    name: str
    label: str
    description: str
    is_time: bool


@dataclass(frozen=True)
class SavedQueryInfo:
    name: str
    label: str
    description: str
    tags: tuple[str, ...]
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    order_by: tuple[str, ...]
    where: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    metrics: Mapping[str, MetricInfo]
    dimensions: Mapping[str, DimensionInfo]
    saved_queries: Mapping[str, SavedQueryInfo]
    tags: frozenset[str] = field(default_factory=frozenset)

    def metrics_tagged(self, tag: str) -> set[str]:
        return {name for name, metric in self.metrics.items() if tag in metric.tags}

    def base_dimension(self, name: str) -> str | None:
        """``metric_time__month`` -> ``metric_time``; an unknown name -> None."""
        name = name.strip().lower()
        if name in self.dimensions:
            return name
        stem, _, grain = name.rpartition("__")
        if grain in TIME_GRAINS and stem in self.dimensions and self.dimensions[stem].is_time:
            return stem
        return None


def _saved_group_by(text: str) -> str:
    """MetricFlow's object syntax in saved queries, as the dunder name a consumer uses."""
    try:
        return saved_query_item(text)
    except ValueError as error:
        raise CatalogError(str(error)) from None


def catalog_document(manifest: Mapping[str, Any], semantic_manifest: Mapping[str, Any]) -> dict:
    """The JSON the publication carries: metrics with their tags, saved queries, and
    every dimension's label and description by dunder name."""
    tags_by_metric = {
        node["name"]: sorted(set(node.get("tags") or []))
        for node in manifest.get("metrics", {}).values()
    }
    metrics = {
        metric["name"]: {
            "label": metric.get("label") or metric["name"],
            "description": (metric.get("description") or "").strip(),
            "type": metric.get("type"),
            "tags": tags_by_metric.get(metric["name"], []),
        }
        for metric in semantic_manifest["metrics"]
    }
    dimensions: dict[str, dict[str, Any]] = {
        "metric_time": {
            "label": "Metric time",
            "description": "The time each metric is aggregated by (its own date: order date "
            "for order metrics, acquisition date for customer value); takes a grain: "
            "metric_time__day, __week, __month, __quarter, __year.",
            "is_time": True,
        }
    }
    for model in semantic_manifest["semantic_models"]:
        primary = [e for e in model.get("entities", []) if e.get("type") == "primary"]
        for entity in model.get("entities", []):
            if entity.get("type") in ("primary", "unique") or entity["name"] not in dimensions:
                dimensions.setdefault(
                    entity["name"],
                    {
                        "label": entity.get("label") or entity["name"].replace("_", " "),
                        "description": (entity.get("description") or "").strip()
                        or f"The {entity['name'].replace('_', ' ')} key.",
                        "is_time": False,
                    },
                )
        for entity in primary:
            for dimension in model.get("dimensions", []):
                dimensions[f"{entity['name']}__{dimension['name']}"] = {
                    "label": dimension.get("label") or dimension["name"].replace("_", " "),
                    "description": (dimension.get("description") or "").strip(),
                    "is_time": dimension.get("type") == "time",
                }
    saved = {}
    for query in semantic_manifest.get("saved_queries", []):
        params = query["query_params"]
        where = (params.get("where") or {}).get("where_filters") or []
        saved[query["name"]] = {
            "label": query.get("label") or query["name"],
            "description": (query.get("description") or "").strip(),
            "tags": sorted(query.get("tags") or []),
            "metrics": list(params["metrics"]),
            "group_by": [_saved_group_by(item) for item in params.get("group_by") or []],
            "order_by": [_saved_group_by(item) for item in params.get("order_by") or []],
            "where": [item["where_sql_template"] for item in where],
        }
    return {"metrics": metrics, "dimensions": dimensions, "saved_queries": saved}


def _long_name(name: str, dimensions: Mapping[str, Any]) -> str | None:
    """``order__customer__region`` is described as ``customer__region`` is."""
    parts = name.split("__")
    for start in range(len(parts) - 1):
        candidate = "__".join(parts[start:])
        if candidate in dimensions:
            return candidate
    return None


def load_catalog(document: Mapping[str, Any], group_bys: Mapping[str, Iterable[str]]) -> Catalog:
    """The catalog of a publication: ``document`` (catalog.json) and, per metric, what
    MetricFlow says it can be grouped by (grain-free names)."""
    try:
        described = document["dimensions"]
        dimensions: dict[str, DimensionInfo] = {}
        metrics: dict[str, MetricInfo] = {}
        for name, info in document["metrics"].items():
            if name not in group_bys:
                continue  # MetricFlow's private helper metrics are not offered
            reachable = frozenset(group_bys[name])
            for dimension in reachable:
                if dimension in dimensions:
                    continue
                source = described.get(dimension) or described.get(
                    _long_name(dimension, described) or "", {}
                )
                dimensions[dimension] = DimensionInfo(
                    name=dimension,
                    label=source.get("label", dimension),
                    description=source.get("description", ""),
                    is_time=bool(source.get("is_time", False)),
                )
            metrics[name] = MetricInfo(
                name=name,
                label=info["label"],
                description=info["description"],
                type=info.get("type") or "",
                tags=tuple(info.get("tags") or ()),
                dimensions=reachable,
            )
        saved = {
            name: SavedQueryInfo(
                name=name,
                label=info["label"],
                description=info["description"],
                tags=tuple(info.get("tags") or ()),
                metrics=tuple(info["metrics"]),
                group_by=tuple(info["group_by"]),
                order_by=tuple(info["order_by"]),
                where=tuple(info["where"]),
            )
            for name, info in document["saved_queries"].items()
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise CatalogError(f"catalog.json is malformed: missing or wrong {error}") from None
    tags = frozenset(tag for metric in metrics.values() for tag in metric.tags)
    return Catalog(metrics=metrics, dimensions=dimensions, saved_queries=saved, tags=tags)
