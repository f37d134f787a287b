"""GraphQL at /graphql: the REST operations, shaped like the dbt Semantic Layer's API.

``metrics``, ``dimensions``, ``savedQueries``, ``query``, ``savedQuery``,
``customerCrossSell`` and ``publication`` resolve through the same
:class:`~retail_xsell.delivery.governed.Governor` as REST, with the same token. One
request cannot fan out: depth, alias and token limits apply at validation, and at most
:data:`MAX_OPERATIONS` governed operations run per request. A refusal is a GraphQL error
whose ``extensions`` carry the HTTP-like ``status`` and problem ``type``; the audit record
of the request lists every operation and is marked denied. GraphiQL is off: it would
load its JavaScript from a CDN, and the service ships nothing it does not serve itself.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import strawberry
from fastapi import Request
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.fastapi import GraphQLRouter
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext, Info

from retail_xsell.delivery.governed import (
    CustomerRequest,
    GovernedError,
    MetaRequest,
    MetricRequest,
    PublicationRequest,
    SavedQueryRequest,
    parse_request,
)

if TYPE_CHECKING:
    from retail_xsell.delivery.app import RequestAudit, Service

log = logging.getLogger(__name__)

#: Governed operations (root fields that read data) one GraphQL request may run.
MAX_OPERATIONS = 5


@strawberry.type(description="A metric you may query.")
class Metric:
    name: str
    label: str
    description: str
    type: str
    tags: list[str]
    dimensions: list[str] = strawberry.field(description="What you may group it by.")


@strawberry.type(description="A dimension you may group by (and filter on, unless masked).")
class Dimension:
    name: str
    label: str
    description: str
    is_time: bool
    masked: str | None = strawberry.field(description="hash or redact, if masked for you.")
    filterable: bool


@strawberry.type(description="A saved query you may run.")
class SavedQuery:
    name: str
    label: str
    description: str
    metrics: list[str]
    group_by: list[str]


@strawberry.input(description="One condition: dimension operator values (no SQL).")
class FilterInput:
    dimension: str
    operator: str
    values: list[JSON] = strawberry.field(default_factory=list)


@strawberry.type(description="Rows of a governed metric query.")
class QueryResult:
    columns: list[str]
    rows: JSON = strawberry.field(description="One object per row, keyed by column.")
    governance: JSON = strawberry.field(
        description="Row filters applied, masked dimensions, suppressed rows, limit."
    )
    publication_id: str


@strawberry.type
class Offer:
    rank: int
    category: str
    opportunity_score: float | None
    take_up_probability: float | None
    take_up_horizon_days: int | None
    expected_revenue: float | None
    evidence_category: str | None
    evidence_confidence: float | None
    evidence_lift: float | None


@strawberry.type(description="One customer's top cross-sell offers.")
class CustomerCrossSell:
    customer_id: int
    as_of_date: str | None
    probability_alive: float | None
    clv: float | None
    offers: list[Offer]


@strawberry.type(description="The publication being served.")
class Publication:
    publication_id: str
    published_at: str | None
    slo_status: str | None


def _service(info: Info) -> Service:
    return info.context["service"]


async def _run(info: Info, governed: Any) -> dict[str, Any]:
    context: RequestAudit = info.context["audit"]
    info.context["operations"] = info.context.get("operations", 0) + 1
    if info.context["operations"] > MAX_OPERATIONS:
        context.outcome = "denied"
        context.reason = f"more than {MAX_OPERATIONS} operations in one request"
        raise GraphQLError(
            f"at most {MAX_OPERATIONS} data operations per request",
            extensions={"status": 400, "type": "too-many-operations"},
        )
    service = _service(info)
    try:
        return await anyio.to_thread.run_sync(
            service.governor.execute, info.context["principal"], governed, context.details
        )
    except GovernedError as error:
        context.outcome = "denied" if error.status < 500 else "error"
        context.reason = error.reason
        raise GraphQLError(
            error.detail, extensions={"status": error.status, "type": error.problem}
        ) from None


def _filters(where: list[FilterInput] | None) -> list[dict[str, Any]]:
    return [
        {"dimension": item.dimension, "operator": item.operator, "values": list(item.values)}
        for item in where or []
    ]


def _parse(model: type, payload: dict[str, Any], info: Info) -> Any:
    try:
        return parse_request(model, payload)
    except GovernedError as error:
        context: RequestAudit = info.context["audit"]
        context.outcome, context.reason = "denied", error.reason
        raise GraphQLError(
            error.detail, extensions={"status": error.status, "type": error.problem}
        ) from None


def _result(answer: dict[str, Any]) -> QueryResult:
    return QueryResult(
        columns=answer["columns"],
        rows=answer["rows"],
        governance=answer["governance"],
        publication_id=answer["publication_id"],
    )


@strawberry.type
class Query:
    @strawberry.field(description="The metrics you may query.")
    async def metrics(self, info: Info) -> list[Metric]:
        meta = await _run(info, MetaRequest())
        return [
            Metric(
                name=m["name"],
                label=m["label"],
                description=m["description"],
                type=m["type"],
                tags=m["tags"],
                dimensions=m["dimensions"],
            )
            for m in meta["metrics"]
        ]

    @strawberry.field(description="The dimensions you may use (with every metric named, if given).")
    async def dimensions(self, info: Info, metrics: list[str] | None = None) -> list[Dimension]:
        meta = await _run(info, MetaRequest())
        names: set[str] | None = None
        if metrics:
            by_name = {m["name"]: set(m["dimensions"]) for m in meta["metrics"]}
            for metric in metrics:
                if metric not in by_name:
                    context: RequestAudit = info.context["audit"]
                    context.outcome = "denied"
                    context.reason = f"dimensions of metric {metric!r}: unknown or not granted"
                    context.details.denials.append(f"metric {metric}")
                    raise GraphQLError(
                        f"Unknown metric {metric!r}.",
                        extensions={"status": 400, "type": "invalid-request"},
                    )
            names = set.intersection(*(by_name[m] for m in metrics))
        return [
            Dimension(
                name=d["name"],
                label=d["label"],
                description=d["description"],
                is_time=d["is_time"],
                masked=d["masked"],
                filterable=d["filterable"],
            )
            for d in meta["dimensions"]
            if names is None or d["name"] in names
        ]

    @strawberry.field(description="The saved queries you may run.")
    async def saved_queries(self, info: Info) -> list[SavedQuery]:
        meta = await _run(info, MetaRequest())
        return [
            SavedQuery(
                name=q["name"],
                label=q["label"],
                description=q["description"],
                metrics=q["metrics"],
                group_by=q["group_by"],
            )
            for q in meta["saved_queries"]
        ]

    @strawberry.field(description="Metrics grouped by dimensions, narrowed by filters.")
    async def query(
        self,
        info: Info,
        metrics: list[str],
        group_by: list[str] | None = None,
        where: list[FilterInput] | None = None,
        start: str | None = None,
        end: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        governed = _parse(
            MetricRequest,
            {
                "metrics": metrics,
                "group_by": group_by or [],
                "where": _filters(where),
                "start": start,
                "end": end,
                "order_by": order_by or [],
                "limit": limit,
            },
            info,
        )
        return _result(await _run(info, governed))

    @strawberry.field(description="Run a saved query, optionally narrowed by filters.")
    async def saved_query(
        self,
        info: Info,
        name: str,
        where: list[FilterInput] | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        governed = _parse(
            SavedQueryRequest,
            {"name": name, "where": _filters(where), "start": start, "end": end, "limit": limit},
            info,
        )
        return _result(await _run(info, governed))

    @strawberry.field(description="One customer's top cross-sell offers.")
    async def customer_cross_sell(
        self, info: Info, customer_id: int, limit: int = 3
    ) -> CustomerCrossSell:
        governed = _parse(CustomerRequest, {"customer_id": customer_id, "limit": limit}, info)
        answer = await _run(info, governed)
        return CustomerCrossSell(
            customer_id=answer["customer_id"],
            as_of_date=answer["as_of_date"],
            probability_alive=answer["probability_alive"],
            clv=answer["clv"],
            offers=[Offer(**offer) for offer in answer["offers"]],
        )

    @strawberry.field(description="The publication being served.")
    async def publication(self, info: Info) -> Publication:
        answer = await _run(info, PublicationRequest())
        return Publication(
            publication_id=answer["publication_id"],
            published_at=answer["published_at"],
            slo_status=answer["slo_status"],
        )


class _Schema(strawberry.Schema):
    """Refusals are expected answers: one log line each, not a traceback."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        unexpected = []
        for error in errors:
            if error.extensions and "status" in error.extensions:
                log.info("graphql refusal: %s", error.message)
            else:
                unexpected.append(error)
        if unexpected:
            super().process_errors(unexpected, execution_context)


schema = _Schema(
    query=Query,
    extensions=[
        partial(QueryDepthLimiter, max_depth=5),
        partial(MaxAliasesLimiter, max_alias_count=5),
        partial(MaxTokensLimiter, max_token_count=2000),
    ],
)


def graphql_router(service: Service) -> GraphQLRouter:
    async def context(request: Request) -> dict[str, Any]:
        audit = request.scope["state"]["audit"]
        audit.details.operations.append("graphql")
        principal = service.authenticate(request.headers.get("authorization"), audit)
        return {"service": service, "principal": principal, "audit": audit}

    return _AuditedRouter(
        schema,
        context_getter=context,
        graphql_ide=None,
        allow_queries_via_get=False,
    )


class _AuditedRouter(GraphQLRouter):
    """Errors raised before any resolver (syntax, unknown fields, the depth, alias and
    token limits) get the same extensions as refusals, and mark the request denied."""

    async def process_result(self, request: Request, result: Any) -> Any:
        response = await super().process_result(request, result)
        errors: list[dict[str, Any]] = list(response.get("errors") or [])  # type: ignore[arg-type]
        for error in errors:
            extensions = error.setdefault("extensions", {})
            if "status" not in extensions:
                extensions.update(status=400, type="invalid-query")
        if errors:
            audit = request.scope["state"]["audit"]
            if audit.outcome is None:
                audit.outcome = "denied"
                audit.reason = str(errors[0].get("message"))[:500]
        return response
