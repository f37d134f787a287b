"""The governed HTTP service: REST (FastAPI) and GraphQL (Strawberry) over one path.

``make serve`` runs it with uvicorn on 127.0.0.1 over the current publication. Every
route authenticates the bearer token, builds a structured request and hands it to
:class:`~retail_xsell.delivery.governed.Governor`; the audit middleware writes one
record per HTTP request to the audit trail *before* the response starts, and answers
503 instead if the record cannot be written (fail closed). Errors are RFC 9457 problem
details; a bad input is a 4xx that names the field, never a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retail_xsell.delivery.audit import AuditLog, AuditWriteError
from retail_xsell.delivery.auth import ApiSecret, InvalidTokenError, load_secret, verify_token
from retail_xsell.delivery.governed import (
    AuditDetails,
    CustomerRequest,
    GovernedError,
    Governor,
    MetaRequest,
    MetricRequest,
    PublicationRequest,
    SavedQueryRequest,
    UnauthenticatedError,
    parse_request,
)
from retail_xsell.delivery.policies import Principal
from retail_xsell.delivery.serving import Publications

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://retail-xsell.example/problems/"
MAX_BODY_BYTES = 64 * 1024


@dataclass
class RequestAudit:
    """What the audit middleware records for one HTTP request."""

    request_id: str
    started: float
    method: str
    path: str
    client: str | None
    principal: str | None = None
    groups: list[str] = field(default_factory=list)
    details: AuditDetails = field(default_factory=AuditDetails)
    outcome: str | None = None
    reason: str | None = None

    def record(self, status: int, endpoint: str) -> dict[str, Any]:
        if self.outcome:
            outcome = self.outcome
        else:
            outcome = "allowed" if status < 400 else "denied" if status < 500 else "error"
        return {
            "request_id": self.request_id,
            "principal": self.principal,
            "groups": self.groups,
            "endpoint": endpoint,
            **self.details.as_record(),
            "status": status,
            "outcome": outcome,
            "reason": self.reason,
            "denials": self.details.denials,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "client": self.client,
        }


def problem(
    status: int, title: str, detail: str, kind: str, request_id: str | None
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="retail-xsell"'} if status == 401 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


class _BodyTooLargeError(Exception):
    """A chunked body grew past MAX_BODY_BYTES."""


class AuditMiddleware:
    """One audit record per HTTP request, written before the response starts."""

    def __init__(self, app: ASGIApp, audit_log: AuditLog) -> None:
        self.app = app
        self.audit_log = audit_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        context = RequestAudit(
            request_id=uuid.uuid4().hex,
            started=time.perf_counter(),
            method=scope["method"],
            path=scope["path"][:300],
            client=f"{client[0]}" if client else None,
        )
        scope.setdefault("state", {})["audit"] = context
        replaced = False
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            context.reason = f"body over {MAX_BODY_BYTES} bytes"
            response = problem(
                413,
                "Content too large",
                f"request bodies are limited to {MAX_BODY_BYTES} bytes",
                "too-large",
                context.request_id,
            )
            context.outcome = "denied"
            try:
                await _send_audited(self.audit_log, response, scope, receive, send, context)
            except AuditWriteError:
                await problem(
                    503,
                    "Service unavailable",
                    "the access could not be audited",
                    "audit-unavailable",
                    context.request_id,
                )(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _BodyTooLargeError
            return message

        async def audited_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                route = scope.get("route")
                template = getattr(route, "path", None) or context.path
                endpoint = f"{context.method} {template}"
                record = context.record(message["status"], endpoint)
                try:
                    await anyio.to_thread.run_sync(self.audit_log.append, record)
                except AuditWriteError as error:
                    log.error("audit write failed, answering 503: %s", error)
                    replaced = True
                    response = problem(
                        503,
                        "Service unavailable",
                        "the access could not be audited, so it is refused",
                        "audit-unavailable",
                        context.request_id,
                    )
                    await response(scope, receive, send)
                    return
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", context.request_id.encode()))
                message = {**message, "headers": headers}
            elif replaced:
                return
            await send(message)

        started = False
        original_send = audited_send

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await original_send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if started:
                raise
            context.outcome, context.reason = "denied", f"body over {MAX_BODY_BYTES} bytes"
            response = problem(
                413,
                "Content too large",
                f"request bodies are limited to {MAX_BODY_BYTES} bytes",
                "too-large",
                context.request_id,
            )
            await response(scope, receive, tracking_send)
        except Exception as error:  # a bug, not bad input: audited, answered, logged
            log.exception("unexpected error in request %s", context.request_id)
            if started:
                raise
            context.outcome = "error"
            context.reason = f"internal error: {type(error).__name__}"
            response = problem(
                500,
                "Internal error",
                "the request failed; quote the request id to the product team",
                "internal-error",
                context.request_id,
            )
            await response(scope, receive, tracking_send)


async def _send_audited(
    audit_log: AuditLog,
    response: JSONResponse,
    scope: Scope,
    receive: Receive,
    send: Send,
    context: RequestAudit,
) -> None:
    record = context.record(response.status_code, f"{context.method} {context.path}")
    await anyio.to_thread.run_sync(audit_log.append, record)
    response.headers["x-request-id"] = context.request_id
    await response(scope, receive, send)


def _audit(request: Request) -> RequestAudit:
    return request.scope["state"]["audit"]


class Service:
    """What every route needs: the governor, the token secret and the policies."""

    def __init__(self, publications: Publications, secret: ApiSecret) -> None:
        self.publications = publications
        self.secret = secret
        self.governor = Governor(publications, mask_key=b"mask\x00" + secret.value)

    def authenticate(self, authorization: str | None, context: RequestAudit) -> Principal:
        try:
            name = verify_token(self.secret, authorization)
        except InvalidTokenError as error:
            raise UnauthenticatedError(str(error)) from None
        principal = self.publications.current.policies.principal(name)
        context.principal = name
        if principal is None:
            raise UnauthenticatedError(
                "the token's principal is not in the policy file",
                reason=f"unknown principal {name!r}",
            )
        context.groups = list(principal.groups)
        return principal

    async def run(self, request: Request, governed: Any) -> dict[str, Any]:
        """Authenticate, then execute in a worker thread (DuckDB work blocks)."""
        context = _audit(request)
        principal = self.authenticate(request.headers.get("authorization"), context)
        return await anyio.to_thread.run_sync(
            self.governor.execute, principal, governed, context.details
        )


def _csv(answer: dict[str, Any]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=answer["columns"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(answer["rows"])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


def _api_description(publications: Publications) -> str:
    catalog = publications.current.catalog
    metrics = "\n".join(
        f"- `{name}` ({info.label}): {info.description}"
        for name, info in sorted(catalog.metrics.items())
    )
    saved = "\n".join(
        f"- `{name}` ({info.label}): {info.description}"
        for name, info in sorted(catalog.saved_queries.items())
    )
    return (
        "Governed access to the retail cross-sell data product: metrics of the MetricFlow "
        "semantic layer, saved queries and one customer's cross-sell offers, over the "
        "current publication. Send `Authorization: Bearer <token>`; what you may read is "
        "set by policies.yml (docs/governance.md) and listed for you by `GET /v1/meta`. "
        "Every request is audited.\n\n"
        "Definitions (as on the docs site; your grants decide which you may query):\n\n"
        f"Metrics:\n{metrics}\n\nSaved queries:\n{saved}\n"
    )


def create_app(
    published: Path,
    policy_path: Path,
    audit_path: Path | None = None,
    secret: ApiSecret | None = None,
) -> FastAPI:
    """The service over the publication at ``published`` (see module docstring)."""
    secret = secret or load_secret()
    publications = Publications(published, policy_path)
    service = Service(publications, secret)
    audit_log = AuditLog(audit_path)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        publications.close()  # release the read-only file when the server stops

    app = FastAPI(
        lifespan=lifespan,
        title="Retail cross-sell data product API",
        version="1",
        description=_api_description(publications),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service

    @app.exception_handler(GovernedError)
    async def governed_error(request: Request, error: GovernedError) -> JSONResponse:
        context = _audit(request)
        context.reason = error.reason
        return problem(error.status, error.title, error.detail, error.problem, context.request_id)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        context = _audit(request)
        # Who asks comes first: no token is a 401 whatever the body, and a bad request of
        # a known principal is audited under its name.
        try:
            service.authenticate(request.headers.get("authorization"), context)
        except UnauthenticatedError as refused:
            context.reason = refused.reason
            return problem(401, refused.title, refused.detail, refused.problem, context.request_id)
        parts = []
        for item in error.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {item.get('msg')}")
        detail = "; ".join(parts)[:2000]
        context.reason = detail
        return problem(400, "Invalid request", detail, "invalid-request", context.request_id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        context = _audit(request)
        detail = str(error.detail) if error.status_code != 404 else "no such endpoint"
        context.reason = detail
        return problem(error.status_code, "Error", detail, "http-error", context.request_id)

    bearer: dict[str, Any] = {"security": [{"bearer": []}]}

    @app.get("/health", summary="Is the service up, and what does it serve?")
    def health(request: Request) -> dict[str, Any]:
        _audit(request).outcome = "allowed"
        with publications.lease() as current:  # follows a publish, as requests do
            return {
                "status": "degraded" if publications.problem else "ok",
                "publication_id": current.id,
                "problem": publications.problem,
            }

    @app.get(
        "/v1/meta",
        summary="The metrics, dimensions and saved queries you may use",
        openapi_extra=bearer,
    )
    async def meta(request: Request) -> dict[str, Any]:
        return await service.run(request, MetaRequest())

    @app.get(
        "/v1/publication",
        summary="Which publication is served, since when, with what SLO status",
        openapi_extra=bearer,
    )
    async def publication(request: Request) -> dict[str, Any]:
        return await service.run(request, PublicationRequest())

    @app.post(
        "/v1/query",
        summary="Query metrics grouped by dimensions, narrowed by structured filters",
        description="Body: metrics, group_by, where (list of {dimension, operator, values}; "
        "operators eq, ne, in, not_in, gt, gte, lt, lte, between, is_null, is_not_null), "
        "start and end (dates, metric_time), order_by (names, - for descending), limit. "
        "`format: csv` returns CSV and needs the export scope.",
        openapi_extra=bearer,
        response_model=None,
    )
    async def query(request: Request, body: Annotated[MetricRequest, Body()]) -> Any:
        answer = await service.run(request, body)
        return _csv(answer) if body.format == "csv" else answer

    @app.get(
        "/v1/saved-queries/{name}",
        summary="Run a saved query",
        openapi_extra=bearer,
        response_model=None,
    )
    async def saved_query(
        request: Request,
        name: str = PathParam(max_length=200),
        limit: int | None = Query(default=None, ge=1, le=10_000),
        start: str | None = Query(default=None, max_length=40),
        end: str | None = Query(default=None, max_length=40),
        format: str = Query(default="json", pattern="^(json|csv)$"),
    ) -> Any:
        governed = parse_request(
            SavedQueryRequest,
            {"name": name, "limit": limit, "start": start, "end": end, "format": format},
        )
        answer = await service.run(request, governed)
        return _csv(answer) if governed.format == "csv" else answer

    @app.post(
        "/v1/saved-queries/{name}",
        summary="Run a saved query narrowed by filters",
        openapi_extra=bearer,
        response_model=None,
    )
    async def saved_query_filtered(
        request: Request,
        name: str = PathParam(max_length=200),
        body: Annotated[dict[str, Any] | None, Body()] = None,
    ) -> Any:
        governed = parse_request(SavedQueryRequest, {**(body or {}), "name": name})
        answer = await service.run(request, governed)
        return _csv(answer) if governed.format == "csv" else answer

    @app.get(
        "/v1/customers/{customer_id}/cross-sell",
        summary="One customer's top cross-sell offers, with their evidence and expected value",
        openapi_extra=bearer,
    )
    async def customer(
        request: Request,
        customer_id: int = PathParam(ge=1, le=2**62),
        limit: int = Query(default=3, ge=1, le=10),
    ) -> dict[str, Any]:
        return await service.run(request, CustomerRequest(customer_id=customer_id, limit=limit))

    from retail_xsell.delivery.graphql import graphql_router

    app.include_router(graphql_router(service), prefix="/graphql")

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(AuditMiddleware, audit_log=audit_log)
    return app


def app_from_environment() -> FastAPI:
    """The app uvicorn serves (``make serve``): paths from the environment."""
    from retail_xsell import settings

    return create_app(
        published=settings.published_path(),
        policy_path=settings.policies_path(),
        audit_path=settings.audit_log_path(),
    )
