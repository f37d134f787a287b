"""``retail-xsell serve``, ``retail-xsell token`` and ``retail-xsell audit``.

Each ``register_*`` function adds one subcommand to the package's argument parser and
sets ``handler`` to the function that runs it, so :mod:`retail_xsell.cli` registers
them with one call each.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from retail_xsell import settings
from retail_xsell.commandline import Subcommands, add_command


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {port}")
    return port


def register_serve(commands: Subcommands) -> None:
    serve = add_command(
        commands,
        "serve",
        run_serve,
        help="run the governed REST and GraphQL API over the current publication",
        description="Serve /v1 (REST), /graphql and /openapi.json with uvicorn. Every "
        "request is authenticated (retail-xsell token), governed by policies.yml and "
        "audited (docs/governance.md).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=_port,
        default=settings.api_port(),
        help="port (default: $PORT or 8000)",
    )
    serve.add_argument(
        "--published",
        help="published DuckDB file (default: RETAIL_XSELL_PUBLISHED_PATH or "
        "build/published/retail_xsell.duckdb)",
    )
    serve.add_argument(
        "--policies", help="policy file (default: RETAIL_XSELL_POLICIES or policies.yml)"
    )
    serve.add_argument(
        "--audit-log",
        help="audit trail (default: RETAIL_XSELL_AUDIT_LOG or build/audit/access.jsonl)",
    )
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")


def _paths(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    published = Path(args.published) if args.published else settings.published_path()
    policies = Path(args.policies) if args.policies else settings.policies_path()
    audit = Path(args.audit_log) if args.audit_log else settings.audit_log_path()
    return published, policies, audit


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from retail_xsell.delivery.app import create_app
    from retail_xsell.delivery.audit import default_audit_path
    from retail_xsell.delivery.auth import AuthConfigError, load_secret
    from retail_xsell.delivery.serving import ServingError

    published, policies, audit = _paths(args)
    audit = audit or default_audit_path()
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        secret = load_secret()
        app = create_app(published, policies, audit, secret)
    except (AuthConfigError, ServingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if secret.is_development:
        print(
            "warning: signing tokens with the public development secret; set "
            "RETAIL_XSELL_API_SECRET (and RETAIL_XSELL_ENV=production) for real use",
            file=sys.stderr,
        )
    served = app.state.service.publications.current
    print(
        f"Serving publication {served.id[:8]} ({served.folder}) on http://{args.host}:{args.port}"
        f"\n  policies {policies}\n  audit    {audit}\n  OpenAPI  http://{args.host}:{args.port}"
        "/openapi.json",
        flush=True,
    )
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    # Several processes: each builds its own app from the environment (checked above).
    os.environ[settings.PUBLISHED_ENV] = str(published.absolute())
    os.environ[settings.POLICIES_ENV] = str(policies.absolute())
    os.environ[settings.AUDIT_LOG_ENV] = str(audit.absolute())
    app.state.service.publications.close()
    uvicorn.run(
        "retail_xsell.delivery.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0


def register_token(commands: Subcommands) -> None:
    token = add_command(
        commands,
        "token",
        run_token,
        help="issue a bearer token for a principal of policies.yml",
        description="Print a signed token (JWT) for PRINCIPAL, signed with "
        "RETAIL_XSELL_API_SECRET (or the development default). Use it as "
        "'Authorization: Bearer <token>'.",
    )
    token.add_argument("principal", help="a principal named in the policy file")
    token.add_argument(
        "--hours", type=float, default=8.0, help="validity in hours (default 8, at most 720)"
    )
    token.add_argument("--policies", help="policy file (default: policies.yml)")


def run_token(args: argparse.Namespace) -> int:
    from retail_xsell.delivery.auth import AuthConfigError, issue_token, load_secret

    policies = Path(args.policies) if args.policies else settings.policies_path()
    try:
        document = yaml.safe_load(policies.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        print(f"error: cannot read the policy file {policies}: {error}", file=sys.stderr)
        return 2
    principals = sorted((document.get("principals") or {}) if isinstance(document, dict) else {})
    if args.principal not in principals:
        print(
            f"error: no principal {args.principal!r} in {policies}; principals: "
            f"{', '.join(principals) or 'none'}",
            file=sys.stderr,
        )
        return 2
    try:
        print(issue_token(load_secret(), args.principal, hours=args.hours))
    except (AuthConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def register_audit(commands: Subcommands) -> None:
    from retail_xsell.delivery.audit import add_audit_arguments

    audit = add_command(
        commands,
        "audit",
        _run_audit,
        help="who accessed what: list, verify (tamper check) or review the API audit trail",
    )
    add_audit_arguments(audit)


def _run_audit(args: argparse.Namespace) -> int:
    from retail_xsell.delivery.audit import run_audit_command

    return run_audit_command(args)


def register_query(commands: Subcommands) -> None:
    query = add_command(
        commands,
        "query",
        run_query,
        help="a governed metric query as a principal (the API's rules, from the shell)",
        description="Answer a metric query through the same enforcement path and audit "
        "trail as the API. Authenticate with --token or RETAIL_XSELL_TOKEN "
        "(retail-xsell token NAME).",
    )
    query.add_argument("--metrics", required=True, help="comma-separated metric names")
    query.add_argument("--group-by", default="", help="comma-separated dimensions")
    query.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="JSON",
        help='a filter, e.g. \'{"dimension": "customer__region", "operator": "eq", '
        '"values": ["Europe"]}\' (repeatable; all must hold)',
    )
    query.add_argument("--start", help="first day of metric_time (YYYY-MM-DD)")
    query.add_argument("--end", help="last day of metric_time (YYYY-MM-DD)")
    query.add_argument("--order-by", default="", help="comma-separated, - for descending")
    query.add_argument("--limit", type=int)
    query.add_argument("--token", help="bearer token (default: RETAIL_XSELL_TOKEN)")
    query.add_argument("--published", help="published DuckDB file")
    query.add_argument("--policies", help="policy file (default: policies.yml)")
    query.add_argument("--audit-log", help="audit trail (default: build/audit/access.jsonl)")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def run_query(args: argparse.Namespace) -> int:
    import json
    import time
    import uuid

    from retail_xsell.delivery.app import RequestAudit, Service
    from retail_xsell.delivery.audit import AuditLog, AuditWriteError
    from retail_xsell.delivery.auth import AuthConfigError, load_secret
    from retail_xsell.delivery.governed import GovernedError, MetricRequest, parse_request
    from retail_xsell.delivery.serving import Publications, ServingError

    published, policies, audit = _paths(args)
    try:
        where = [json.loads(text) for text in args.where]
    except json.JSONDecodeError as error:
        print(f"error: --where is not JSON: {error}", file=sys.stderr)
        return 2
    try:
        service = Service(Publications(published, policies), load_secret())
    except (AuthConfigError, ServingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    context = RequestAudit(
        request_id=uuid.uuid4().hex,
        started=time.perf_counter(),
        method="CLI",
        path="query",
        client="cli",
    )
    token = args.token or settings.api_token()
    status, answer = 200, None
    try:
        request = parse_request(
            MetricRequest,
            {
                "metrics": _names(args.metrics),
                "group_by": _names(args.group_by),
                "where": where,
                "start": args.start,
                "end": args.end,
                "order_by": _names(args.order_by),
                "limit": args.limit,
            },
        )
        principal = service.authenticate(f"Bearer {token}" if token else None, context)
        answer = service.governor.execute(principal, request, context.details)
    except GovernedError as error:
        status, context.reason = error.status, error.reason
        print(f"refused ({error.status}): {error.detail}", file=sys.stderr)
    finally:
        service.publications.close()
    try:
        AuditLog(audit).append(context.record(status, "CLI query"))
    except AuditWriteError as error:
        print(f"error: the access could not be audited, so it is refused: {error}", file=sys.stderr)
        return 1
    if answer is None:
        return 1
    print(json.dumps(answer, indent=2))
    return 0


def register(commands: Subcommands) -> None:
    """The delivery subcommands: serve, token, query, audit."""
    register_serve(commands)
    register_token(commands)
    register_query(commands)
    register_audit(commands)
