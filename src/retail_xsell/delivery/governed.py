"""The one enforcement path: every consumer request is answered here, or refused here.

REST, GraphQL and the CLI build a request object and call :meth:`Governor.execute`
with the authenticated principal; nothing else in the package reaches MetricFlow or the
published DuckDB file on a consumer's behalf. The steps, in this order:

1. authentication result (no principal, or one without a group: refused);
2. scope (metadata, metrics, saved queries, customer look-up);
3. metric and dimension grants: a metric or dimension the principal may not use is
   answered exactly as an unknown name is (no existence leak), and audited as a denial;
4. the principal's row filters, added to every query (they are never optional);
5. the consumer's structured filters, ANDed after them (so they can only narrow);
6. masking of masked dimensions (grouping allowed, filtering refused);
7. minimum group size: a result row resting on fewer than k customers is dropped;
8. limits (the group's max_rows, never above :data:`HARD_MAX_ROWS`).

Every call fills an :class:`AuditDetails` the caller writes to the audit trail, whether
the request was answered or refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retail_xsell.delivery.policies import (
    HARD_MAX_ROWS,
    EffectivePolicy,
    Mask,
    Principal,
    Scope,
)
from retail_xsell.delivery.serving import LOOKUP_CATALOG, Publications, ServedPublication
from retail_xsell.filters import Filter
from retail_xsell.semantic import (
    InvalidFilterError,
    InvalidTimeRangeError,
    MetricQueryResult,
    SemanticLayerError,
)

#: Offers the customer look-up returns at most.
MAX_OFFERS = 10
#: The entity whose distinct members a row must rest on (minimum group size).
SUPPORT_ENTITY = "customer"


# --- errors: each carries what the problem-details response and the audit record need


class GovernedError(Exception):
    """A refused or failed request: HTTP status, a short title, a detail for the
    consumer, and the reason for the audit trail (which may say more than the detail)."""

    status = 400
    title = "Bad request"
    problem = "invalid-request"

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or detail


class UnauthenticatedError(GovernedError):
    status, title, problem = 401, "Unauthorized", "unauthenticated"


class ForbiddenError(GovernedError):
    status, title, problem = 403, "Forbidden", "forbidden"


class NotFoundError(GovernedError):
    status, title, problem = 404, "Not found", "not-found"


class InvalidRequestError(GovernedError):
    status, title, problem = 400, "Invalid request", "invalid-request"


class UnavailableError(GovernedError):
    status, title, problem = 503, "Service unavailable", "unavailable"


# --- requests: structured, validated; no SQL or Jinja anywhere


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricRequest(_Request):
    """Metrics grouped by dimensions, narrowed by filters: what ``mf query`` takes."""

    metrics: tuple[str, ...] = Field(min_length=1, max_length=20)
    group_by: tuple[str, ...] = Field(default=(), max_length=10)
    where: tuple[Filter, ...] = Field(default=(), max_length=20)
    start: dt.date | None = None
    end: dt.date | None = None
    order_by: tuple[str, ...] = Field(default=(), max_length=10)
    limit: int | None = None
    #: ``csv`` needs the export scope as well; the rows are the same.
    format: Literal["json", "csv"] = "json"

    @field_validator("metrics", "group_by", "order_by", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class SavedQueryRequest(_Request):
    name: str = Field(max_length=200)
    where: tuple[Filter, ...] = Field(default=(), max_length=20)
    start: dt.date | None = None
    end: dt.date | None = None
    limit: int | None = None
    format: Literal["json", "csv"] = "json"


class CustomerRequest(_Request):
    customer_id: int = Field(ge=1, le=2**62)
    limit: int = Field(default=3, ge=1, le=MAX_OFFERS)


class MetaRequest(_Request):
    pass


class PublicationRequest(_Request):
    pass


GovernedRequest = (
    MetricRequest | SavedQueryRequest | CustomerRequest | MetaRequest | PublicationRequest
)


@dataclass
class AuditDetails:
    """What one request asked and what enforcement made of it (one audit record)."""

    operations: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    filters_requested: list[dict[str, Any]] = field(default_factory=list)
    filters_enforced: list[dict[str, Any]] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    suppressed_rows: int = 0
    rows_returned: int = 0
    publication_id: str | None = None
    sql: list[str] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)
    cache_hits: int = 0

    def sql_hash(self) -> str | None:
        if not self.sql:
            return None
        return hashlib.sha256("\n;\n".join(self.sql).encode()).hexdigest()

    def as_record(self) -> dict[str, Any]:
        return {
            "operation": ",".join(self.operations) or None,
            "metrics": sorted(set(self.metrics)),
            "dimensions": sorted(set(self.dimensions)),
            "filters_requested": self.filters_requested,
            "filters_enforced": self.filters_enforced,
            "masked": sorted(set(self.masked)),
            "suppressed_rows": self.suppressed_rows,
            "rows_returned": self.rows_returned,
            "publication_id": self.publication_id,
            "sql_hash": self.sql_hash(),
            "cache_hits": self.cache_hits,
        }


# --- values as JSON


def json_value(value: Any) -> Any:
    """DuckDB values as JSON values: money as numbers, time as ISO text, NaN as null."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _filter_json(condition: Filter) -> dict[str, Any]:
    return condition.model_dump(mode="json")


# --- the governor


def _unknown_metric(name: str, policy: EffectivePolicy) -> str:
    granted = ", ".join(sorted(policy.metrics)) or "none"
    return f"Unknown metric {name!r}. Metrics you may query: {granted}."


def _unknown_dimension(name: str, usable: Sequence[str]) -> str:
    usable_text = ", ".join(usable) or "none"
    return f"Unknown dimension {name!r}. Dimensions you may use here: {usable_text}."


class Governor:
    """Answers governed requests over the served publication (see module docstring)."""

    def __init__(self, publications: Publications, mask_key: bytes, cache_size: int = 512) -> None:
        self.publications = publications
        self._mask_key = mask_key
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    # -- entry point

    def execute(
        self, principal: Principal | None, request: GovernedRequest, audit: AuditDetails
    ) -> dict[str, Any]:
        operation = type(request).__name__.removesuffix("Request").lower()
        audit.operations.append(operation)
        with self.publications.lease() as served:
            audit.publication_id = served.id
            policy = self._policy(principal, served)
            if isinstance(request, MetaRequest):
                self._need(policy, Scope.METADATA)
                return self._meta(served, policy)
            if isinstance(request, PublicationRequest):
                self._need(policy, Scope.METADATA)
                return self._publication(served)
            if isinstance(request, MetricRequest):
                self._need(policy, Scope.METRICS)
                if request.format == "csv":
                    self._need(policy, Scope.EXPORT)
                return self._metric_query(served, policy, request, audit)
            if isinstance(request, SavedQueryRequest):
                self._need(policy, Scope.SAVED_QUERIES)
                if request.format == "csv":
                    self._need(policy, Scope.EXPORT)
                return self._saved_query(served, policy, request, audit)
            if isinstance(request, CustomerRequest):
                self._need(policy, Scope.CUSTOMER_LOOKUP)
                return self._customer(served, policy, request, audit)
        raise InvalidRequestError(f"unsupported request {type(request).__name__}")

    def policy_for(self, principal: Principal) -> EffectivePolicy:
        with self.publications.lease() as served:
            return self._policy(principal, served)

    # -- steps 1-2

    @staticmethod
    def _policy(principal: Principal | None, served: ServedPublication) -> EffectivePolicy:
        if principal is None:
            raise UnauthenticatedError("a valid bearer token is required")
        if served.policies.principal(principal.name) is None:
            raise UnauthenticatedError(
                "the token's principal is not in the policy file",
                reason=f"unknown principal {principal.name!r}",
            )
        if not principal.groups:
            raise ForbiddenError(
                "you are not in any group, so you may not read anything",
                reason="principal without a group",
            )
        return served.policies.effective(principal, served.catalog)

    @staticmethod
    def _need(policy: EffectivePolicy, scope: Scope) -> None:
        if scope not in policy.scopes:
            raise ForbiddenError(
                f"your groups do not grant the {scope.value!r} scope",
                reason=f"scope {scope.value} not granted",
            )

    # -- metadata

    def _usable_dimensions(
        self, served: ServedPublication, policy: EffectivePolicy, metrics: Sequence[str]
    ) -> list[str]:
        reachable = (
            set.intersection(*(set(served.catalog.metrics[m].dimensions) for m in metrics))
            if metrics
            else set()
        )
        return sorted(name for name in reachable if policy.may_group_by(name))

    def _meta(self, served: ServedPublication, policy: EffectivePolicy) -> dict[str, Any]:
        catalog = served.catalog
        metrics = []
        used: set[str] = set()
        for name in sorted(policy.metrics):
            info = catalog.metrics[name]
            dims = self._usable_dimensions(served, policy, [name])
            used |= set(dims)
            metrics.append(
                {
                    "name": name,
                    "label": info.label,
                    "description": info.description,
                    "type": info.type,
                    "tags": list(info.tags),
                    "dimensions": dims,
                }
            )
        dimensions = [
            {
                "name": name,
                "label": catalog.dimensions[name].label,
                "description": catalog.dimensions[name].description,
                "is_time": catalog.dimensions[name].is_time,
                "masked": policy.masks[name].value if name in policy.masks else None,
                "filterable": name not in policy.masks,
            }
            for name in sorted(used)
        ]
        saved = [
            {
                "name": query.name,
                "label": query.label,
                "description": query.description,
                "metrics": list(query.metrics),
                "group_by": list(query.group_by),
            }
            for query in catalog.saved_queries.values()
            if Scope.SAVED_QUERIES in policy.scopes
            and self._saved_query_granted(served, policy, query.name)
        ]
        return {
            "publication_id": served.id,
            "access": policy.describe(),
            "metrics": metrics,
            "dimensions": dimensions,
            "saved_queries": sorted(saved, key=lambda item: item["name"]),
        }

    @staticmethod
    def _publication(served: ServedPublication) -> dict[str, Any]:
        record = served.record
        return {
            "publication_id": served.id,
            "published_at": record.get("published_at"),
            "slo_status": record.get("slo_status"),
            "slo_warnings": record.get("slo_warnings", []),
            "slos": record.get("slos", {}),
            "git_commit": record.get("git_commit"),
            "output_ports": record.get("output_ports"),
        }

    # -- metric queries

    @staticmethod
    def _check_metrics(
        served: ServedPublication,
        policy: EffectivePolicy,
        metrics: Sequence[str],
        audit: AuditDetails,
    ) -> None:
        for name in metrics:
            if name not in policy.metrics:
                audit.denials.append(f"metric {name}")
                known = name in served.catalog.metrics
                raise InvalidRequestError(
                    _unknown_metric(name, policy),
                    reason=f"metric {name!r} " + ("not granted" if known else "unknown"),
                )

    def _check_dimension(
        self,
        served: ServedPublication,
        policy: EffectivePolicy,
        metrics: Sequence[str],
        name: str,
        audit: AuditDetails,
        *,
        filtering: bool,
    ) -> str:
        base = served.catalog.base_dimension(name)
        usable = self._usable_dimensions(served, policy, metrics)
        if base is None or not policy.may_group_by(base):
            audit.denials.append(f"dimension {name}")
            raise InvalidRequestError(
                _unknown_dimension(name, usable),
                reason=f"dimension {name!r} " + ("not granted" if base else "unknown"),
            )
        if base not in usable:
            raise InvalidRequestError(
                f"{name!r} cannot be used with {', '.join(metrics)}: their data has no link "
                f"to it. Dimensions you may use here: {', '.join(usable) or 'none'}."
            )
        if filtering and base in policy.masks:
            audit.denials.append(f"filter on masked {name}")
            raise ForbiddenError(
                f"{name!r} is masked for you: you may group by it, not filter on it",
                reason=f"filter on masked dimension {name!r}",
            )
        return base

    def _enforced_filters(
        self, served: ServedPublication, policy: EffectivePolicy, metrics: Sequence[str]
    ) -> list[Filter]:
        for row_filter in policy.row_filters:
            for metric in metrics:
                if row_filter.dimension not in served.catalog.metrics[metric].dimensions:
                    raise ForbiddenError(
                        f"your access is limited to rows by {row_filter.dimension!r}, and "
                        f"{metric!r} cannot be limited that way, so it is not available to you",
                        reason=f"row filter {row_filter.dimension} not enforceable on {metric}",
                    )
        return list(policy.row_filters)

    def _limit(self, policy: EffectivePolicy, limit: int | None) -> int:
        ceiling = min(policy.max_rows, HARD_MAX_ROWS)
        if limit is None:
            return ceiling
        if not 1 <= limit <= ceiling:
            raise InvalidRequestError(f"limit must be between 1 and {ceiling} for you; got {limit}")
        return limit

    def _metric_query(
        self,
        served: ServedPublication,
        policy: EffectivePolicy,
        request: MetricRequest,
        audit: AuditDetails,
        trusted_where: Sequence[str] = (),
    ) -> dict[str, Any]:
        metrics = list(dict.fromkeys(m.strip().lower() for m in request.metrics))
        audit.metrics += metrics
        audit.filters_requested += [_filter_json(f) for f in request.where]
        self._check_metrics(served, policy, metrics, audit)
        group_by = [name.strip().lower() for name in request.group_by]
        if len(set(group_by)) != len(group_by):
            raise InvalidRequestError("group_by names a dimension twice")
        audit.dimensions += group_by
        bases = {
            name: self._check_dimension(served, policy, metrics, name, audit, filtering=False)
            for name in group_by
        }
        for condition in request.where:
            audit.dimensions.append(condition.dimension)
            self._check_dimension(
                served, policy, metrics, condition.dimension, audit, filtering=True
            )
        for name in request.order_by:
            column = name.removeprefix("-").strip().lower()
            if column not in metrics and column not in group_by:
                raise InvalidRequestError(
                    f"order_by {name!r} must name a queried metric or group-by "
                    f"(with - in front for descending)"
                )
            if column in bases and bases[column] in policy.masks:
                # Sorting by the clear values would decode the mask row by row.
                audit.denials.append(f"order by masked {column}")
                raise ForbiddenError(
                    f"{column!r} is masked for you: you may group by it, not order by it",
                    reason=f"order by masked dimension {column!r}",
                )
        enforced = self._enforced_filters(served, policy, metrics) + list(request.where)
        audit.filters_enforced += [_filter_json(f) for f in enforced]
        limit = self._limit(policy, request.limit)
        masked = {name: policy.masks[base] for name, base in bases.items() if base in policy.masks}
        audit.masked += list(masked)
        if policy.min_group_size > 1:
            for metric in metrics:
                if SUPPORT_ENTITY not in served.catalog.metrics[metric].dimensions:
                    raise ForbiddenError(
                        f"{metric!r} cannot be checked for your minimum group size, so it is "
                        "not available to you",
                        reason=f"min group size not checkable on {metric}",
                    )
        key = json.dumps(
            {
                "publication": served.id,
                "metrics": metrics,
                "group_by": group_by,
                "where": [_filter_json(f) for f in enforced],
                "trusted": list(trusted_where),
                "start": request.start and request.start.isoformat(),
                "end": request.end and request.end.isoformat(),
                "order_by": list(request.order_by),
                "min_group_size": policy.min_group_size,
                "masks": {name: mask.value for name, mask in sorted(masked.items())},
                "limit": limit,
            },
            sort_keys=True,
        )
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is not None:
            audit.cache_hits += 1
            audit.sql += cached["_sql"]
        else:
            cached = self._answer(
                served, policy, metrics, group_by, enforced, request, limit, masked, trusted_where
            )
            with self._cache_lock:
                self._cache[key] = cached
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            audit.sql += cached["_sql"]
        audit.suppressed_rows += cached["governance"]["suppressed_rows"]
        audit.rows_returned += len(cached["rows"])
        return {key: value for key, value in cached.items() if not key.startswith("_")}

    def _run(self, served: ServedPublication, **query: Any) -> MetricQueryResult:
        try:
            return served.layer.query(**query)
        except (InvalidFilterError, InvalidTimeRangeError) as error:
            raise InvalidRequestError(str(error)) from None
        except SemanticLayerError as error:
            raise InvalidRequestError(
                "the query cannot be answered as asked (check the grain of time dimensions "
                "and that offset metrics are grouped by metric_time)",
                reason=f"semantic layer: {str(error).splitlines()[0][:500]}",
            ) from None

    def _answer(
        self,
        served: ServedPublication,
        policy: EffectivePolicy,
        metrics: list[str],
        group_by: list[str],
        enforced: list[Filter],
        request: MetricRequest,
        limit: int,
        masked: Mapping[str, Mask],
        trusted_where: Sequence[str],
    ) -> dict[str, Any]:
        common = {
            "where": enforced or None,
            "start": request.start,
            "end": request.end,
            "trusted_where": list(trusted_where) or None,
        }
        result = self._run(
            served,
            metrics=metrics,
            group_by=group_by,
            order_by=list(request.order_by) or None,
            limit=HARD_MAX_ROWS + 1,
            **common,
        )
        sql = [result.sql]
        rows = result.to_dicts()
        key_columns = [c for c in result.columns if c not in metrics]
        suppressed = 0
        if policy.min_group_size > 1:
            support = self._run(
                served, metrics=metrics, group_by=[*group_by, SUPPORT_ENTITY], **common
            )
            sql.append(support.sql)
            counts: dict[tuple[Any, ...], dict[str, int]] = {}
            support_keys = [c for c in support.columns if c in key_columns]
            for row in support.to_dicts():
                per_metric = counts.setdefault(tuple(row[c] for c in support_keys), {})
                for metric in metrics:
                    if row.get(metric) is not None:
                        per_metric[metric] = per_metric.get(metric, 0) + 1
            kept = []
            for row in rows:
                per_metric = counts.get(tuple(row[c] for c in support_keys), {})
                if all(per_metric.get(m, 0) >= policy.min_group_size for m in metrics):
                    kept.append(row)
                else:
                    suppressed += 1
            rows = kept
        truncated = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            for column in key_columns:
                base = column
                if base in masked or (base := self._masked_base(column, masked)):
                    row[column] = self._mask(masked[base], base, row[column])
        return {
            "columns": list(result.columns),
            "rows": [{k: json_value(v) for k, v in row.items()} for row in rows],
            "governance": {
                "row_filters": [_filter_json(f) for f in policy.row_filters],
                "masked": sorted(masked),
                "min_group_size": policy.min_group_size,
                "suppressed_rows": suppressed,
                "truncated": truncated,
                "limit": limit,
            },
            "publication_id": served.id,
            "_sql": sql,
        }

    @staticmethod
    def _masked_base(column: str, masked: Mapping[str, Mask]) -> str:
        stem = column.rpartition("__")[0]
        return stem if stem in masked else ""

    def _mask(self, mask: Mask, dimension: str, value: Any) -> Any:
        if value is None or mask is Mask.REDACT:
            return None
        digest = hmac.new(
            self._mask_key, f"{dimension}\x00{json_value(value)}".encode(), hashlib.sha256
        ).hexdigest()
        return f"h:{digest[:16]}"

    # -- saved queries

    @staticmethod
    def _saved_query_granted(served: ServedPublication, policy: EffectivePolicy, name: str) -> bool:
        query = served.catalog.saved_queries.get(name)
        if query is None:
            return False
        if not set(query.metrics) <= policy.metrics:
            return False
        bases = [served.catalog.base_dimension(item) for item in query.group_by]
        return all(base is not None and policy.may_group_by(base) for base in bases)

    def _saved_query(
        self,
        served: ServedPublication,
        policy: EffectivePolicy,
        request: SavedQueryRequest,
        audit: AuditDetails,
    ) -> dict[str, Any]:
        name = request.name.strip().lower()
        if not self._saved_query_granted(served, policy, name):
            audit.denials.append(f"saved query {name}")
            raise NotFoundError(
                f"Unknown saved query {request.name!r}.",
                reason=f"saved query {name!r} "
                + ("not granted" if name in served.catalog.saved_queries else "unknown"),
            )
        query = served.catalog.saved_queries[name]
        answer = self._metric_query(
            served,
            policy,
            MetricRequest(
                metrics=query.metrics,
                group_by=query.group_by,
                where=request.where,
                start=request.start,
                end=request.end,
                order_by=query.order_by,
                limit=request.limit,
            ),
            audit,
            trusted_where=query.where,
        )
        return {"saved_query": name, **answer}

    # -- the customer look-up

    @staticmethod
    def _customer_columns(served: ServedPublication, dimensions: Sequence[str]) -> dict[str, str]:
        """customer__region -> the customers relation's column, from the semantic manifest."""
        for model in served.semantic_manifest["semantic_models"]:
            entities = model["entities"]
            if any(e["name"] == SUPPORT_ENTITY and e["type"] == "primary" for e in entities):
                columns = {}
                by_name = {d["name"]: d for d in model["dimensions"]}
                for name in dimensions:
                    dimension = by_name.get(name.removeprefix(f"{SUPPORT_ENTITY}__"))
                    expr = (dimension or {}).get("expr") or (dimension or {}).get("name")
                    if not expr or not expr.isidentifier():
                        raise ForbiddenError(
                            f"your row filter on {name!r} cannot be checked for one customer",
                            reason=f"row filter {name} has no plain column",
                        )
                    columns[name] = expr
                relation = model["node_relation"]
                columns["__schema__"] = relation["schema_name"]
                columns["__relation__"] = relation["alias"]
                return columns
        raise UnavailableError("the publication has no customers model")

    def _customer(
        self,
        served: ServedPublication,
        policy: EffectivePolicy,
        request: CustomerRequest,
        audit: AuditDetails,
    ) -> dict[str, Any]:
        audit.metrics.append("cross_sell_opportunities")
        filters = list(policy.row_filters)
        audit.filters_enforced += [_filter_json(f) for f in filters]
        columns = self._customer_columns(served, [f.dimension for f in filters])
        schema = f'"{LOOKUP_CATALOG}"."{columns.pop("__schema__")}"'
        relation = f'{schema}."{columns.pop("__relation__")}"'
        offers_relation = f'{schema}."cross_sell_opportunities"'
        value_relation = f'{schema}."customer_value"'
        conditions: list[str] = ["customer_id = ?"]
        parameters: list[Any] = [request.customer_id]
        for condition in filters:
            column = columns[condition.dimension]
            marks = ", ".join("?" for _ in condition.values)
            negate = "not " if condition.operator.value in ("ne", "not_in") else ""
            conditions.append(f'{negate}("{column}" in ({marks}))')
            parameters += list(condition.values)
        customer_sql = f"select customer_id from {relation} where {' and '.join(conditions)}"
        offers_sql = (
            f"select o.opportunity_rank, o.category, o.opportunity_score, o.take_up_probability,"
            f" o.take_up_horizon_days, o.expected_revenue, o.evidence_category,"
            f" o.evidence_confidence, o.evidence_lift, o.as_of_date, v.probability_alive, v.clv"
            f" from {offers_relation} o left join {value_relation} v using (customer_id)"
            f" where o.customer_id = ? order by o.opportunity_rank limit ?"
        )
        audit.sql += [customer_sql, offers_sql]
        with served.lookup_lock:
            connection = served.lookup_connection()
            found = connection.execute(customer_sql, parameters).fetchone()
            offers = (
                connection.execute(offers_sql, [request.customer_id, request.limit]).fetchall()
                if found
                else []
            )
        if not found:
            audit.denials.append(f"customer {request.customer_id}")
            raise NotFoundError(
                f"No customer {request.customer_id}.",
                reason="customer unknown or outside the principal's row filters",
            )
        names = (
            "rank",
            "category",
            "opportunity_score",
            "take_up_probability",
            "take_up_horizon_days",
            "expected_revenue",
            "evidence_category",
            "evidence_confidence",
            "evidence_lift",
        )
        audit.rows_returned += len(offers)
        return {
            "customer_id": request.customer_id,
            "as_of_date": json_value(offers[0][9]) if offers else None,
            "probability_alive": json_value(offers[0][10]) if offers else None,
            "clv": json_value(offers[0][11]) if offers else None,
            "offers": [
                {name: json_value(value) for name, value in zip(names, row[:9], strict=True)}
                for row in offers
            ],
            "publication_id": served.id,
        }


def parse_request(model: type[_Request], payload: Any) -> Any:
    """Validate a consumer payload into a request, or raise InvalidRequestError naming the
    field and the problem (never pydantic's internals)."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "body"
            problems.append(f"{where}: {item['msg']}")
        raise InvalidRequestError("; ".join(problems)) from None
