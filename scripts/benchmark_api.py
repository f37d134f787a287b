#!/usr/bin/env python
"""Load benchmark of the governed API: python scripts/benchmark_api.py --help

Starts a real uvicorn server over a publication (default: the current one,
``build/published/retail_xsell.duckdb``), then has ``--clients`` threads (default 8)
send ``--requests`` requests (default 3000) across the endpoints as several principals
of ``policies.yml``: metric queries (``POST /v1/query``), saved queries, the customer
look-up, ``/v1/meta`` and GraphQL. Every request goes over HTTP with keep-alive; the
latency is the client's, from sending the request to having read the whole body.

Two modes, each after a warm-up pass that sends every distinct request once (so
MetricFlow's planning caches and the DuckDB buffers are warm in both):

* ``warm``: the measured requests repeat the warm-up's, so metric queries are answered
  from the Governor's result cache (keyed by publication and effective query);
* ``cold``: every cacheable request carries a ``limit`` no other request used, so its
  cache key is new and the Governor plans and runs it (the rows, and so the work, are
  the same as the warm request's: the sample's answers are far below every limit).

The share of cache hits per kind is read back from the audit trail (each response's
``x-request-id`` names its record, which counts the cache hits). Output: a markdown
table per mode (median over ``--repeats`` runs of p50, p95, p99; errors summed) and,
with ``--json PATH``, every run in full. Nothing here asserts a time.

``--in-process`` runs the server in a thread of this process instead of a child
process (for the tests); the clients then share the GIL with the server, so its
latencies are not the ones to quote. ``--profile [PATH]`` puts no load on anything: it
times ``Governor.execute`` alone for each metric and saved query of the workload, cache
missed and hit, split into MetricFlow planning, SQL and the Governor's own work, plus
one audit-trail append (and writes cProfile statistics of one more, untimed miss of each to PATH).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import itertools
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from retail_xsell.benchmark_metrics import percentile

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_PUBLISHED = PROJECT_DIR / "build" / "published" / "retail_xsell.duckdb"
DEFAULT_POLICIES = PROJECT_DIR / "policies.yml"

#: The endpoint kinds, in report order, and their share of the requests.
KIND_WEIGHTS: dict[str, float] = {
    "query": 0.5,
    "saved_query": 0.15,
    "customer": 0.15,
    "meta": 0.1,
    "graphql": 0.1,
}
MODES = ("cold", "warm")


# --- the workload


@dataclass(frozen=True)
class Call:
    """One distinct request: which endpoint, as whom, with what input.

    ``cacheable`` calls are answered through the Governor's result cache; for those,
    :meth:`distinct` gives a copy whose cache key no other request has (a new limit).
    """

    kind: str
    label: str
    principal: str
    method: str
    path: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, Any] | None = None
    cacheable: bool = False

    def distinct(self, limit: int) -> Call:
        if not self.cacheable:
            return self
        if self.kind == "graphql":
            body = dict(self.body or {})
            body["variables"] = {**body.get("variables", {}), "limit": limit}
            return replace(self, body=body)
        if self.method == "GET":
            return replace(self, params={**(self.params or {}), "limit": limit})
        return replace(self, body={**(self.body or {}), "limit": limit})


#: The metric queries: (label, principal, metrics, group_by, consumer filters). They
#: cover every group of policies.yml (row filter, masking, each minimum group size) and
#: the query shapes of docs/benchmarks.md (customer-level, joins, time series, ratios).
QuerySpec = tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[Mapping[str, Any], ...]]
# fmt: off
METRIC_QUERIES: tuple[QuerySpec, ...] = (
    # marketing analyst: segments, a masked dimension, a consumer filter
    ("clv by region", "maria", ("clv",), ("customer__region",), ()),
    ("spend, orders by month", "maria", ("total_spend", "order_count"),
     ("metric_time__month",), ()),
    ("cross-sell score by RFM segment", "maria", ("cross_sell_opportunity_score",),
     ("customer__rfm_segment",), ()),
    ("spend by category, two regions", "maria", ("total_spend",), ("product__category",),
     ({"dimension": "customer__region", "operator": "in",
       "values": ["Europe", "North America"]},)),
    ("clv by gender (masked)", "maria", ("clv",), ("customer__gender",), ()),
    # sales reps: their region's customers only (row filter)
    ("cross-sell revenue by category", "erik", ("cross_sell_potential_revenue",),
     ("cross_sell_opportunity__offered_category",), ()),
    ("clv, p(alive) by RFM segment", "erik", ("clv", "probability_alive"),
     ("customer__rfm_segment",), ()),
    ("cross-sell rate by country", "nadia", ("cross_sell_rate",), ("customer__country",), ()),
    # executive
    ("spend, orders by month", "olivia", ("total_spend", "order_count"),
     ("metric_time__month",), ()),
    ("order value by channel", "olivia", ("average_order_value",), ("order__channel",), ()),
    ("spend by category and year", "olivia", ("total_spend",),
     ("product__category", "metric_time__year"), ()),
    # data steward: no minimum group size (one MetricFlow query per request, not two)
    ("purchase frequency by RFM segment", "sam", ("purchase_frequency",),
     ("customer__rfm_segment",), ()),
    ("spend by brand", "sam", ("total_spend",), ("product__brand",), ()),
    ("repeat purchase rate", "sam", ("repeat_purchase_rate",), (), ()),
    # BI service account: the largest minimum group size
    ("spend by channel and month", "bi_dashboard", ("total_spend",),
     ("order__channel", "metric_time__month"), ()),
    ("clv by age group", "bi_dashboard", ("clv",), ("customer__age_group",), ()),
)
# fmt: on
#: Saved queries: (principal, name).
SAVED_QUERIES = (
    ("maria", "marketing_customer_value"),
    ("olivia", "executive_monthly_kpis"),
    ("erik", "sales_cross_sell_potential"),
    ("bi_dashboard", "executive_monthly_kpis"),
)
META_PRINCIPALS = ("maria", "erik", "olivia", "sam", "bi_dashboard")
GRAPHQL_QUERY = """query Q($limit: Int) {
  query(metrics: %s, groupBy: %s, limit: $limit) { columns rows publicationId }
}"""
GRAPHQL_META = "{ metrics { name dimensions } savedQueries { name } }"


def _graphql(label: str, principal: str, document: str, cacheable: bool) -> Call:
    body = {"query": document, "variables": {}}
    return Call("graphql", label, principal, "POST", "/graphql", body=body, cacheable=cacheable)


def _graphql_query(label: str, principal: str, metrics: list[str], group_by: list[str]) -> Call:
    document = GRAPHQL_QUERY % (json.dumps(metrics), json.dumps(group_by))
    return _graphql(label, principal, document, cacheable=True)


def representative_calls(customers: Mapping[str, Sequence[int]]) -> list[Call]:
    """The distinct requests of the benchmark: several per principal and endpoint kind.

    ``customers`` gives, per principal, customer ids it may look up (its own region's).
    """
    calls = []
    for label, principal, metrics, group_by, where in METRIC_QUERIES:
        body: dict[str, Any] = {"metrics": list(metrics), "group_by": list(group_by)}
        if where:
            body["where"] = [dict(item) for item in where]
        calls.append(Call("query", label, principal, "POST", "/v1/query", body, cacheable=True))
    for principal, name in SAVED_QUERIES:
        path = f"/v1/saved-queries/{name}"
        calls.append(Call("saved_query", name, principal, "GET", path, cacheable=True))
    for principal, ids in customers.items():
        for customer_id in ids:
            path = f"/v1/customers/{customer_id}/cross-sell"
            calls.append(Call("customer", "cross-sell offers", principal, "GET", path))
    calls += [Call("meta", "meta", principal, "GET", "/v1/meta") for principal in META_PRINCIPALS]
    calls += [
        _graphql_query("query clv by age group", "maria", ["clv"], ["customer__age_group"]),
        _graphql_query("query spend by month", "olivia", ["total_spend"], ["metric_time__month"]),
        _graphql("metrics and saved queries", "sam", GRAPHQL_META, cacheable=False),
    ]
    return calls


def sample_customers(published: Path, per_principal: int = 20) -> dict[str, list[int]]:
    """Customers with offers that erik (Europe), nadia (North America) and sam (any)
    may look up, read from the publication (read-only).

    The file is attached to an in-memory database rather than opened: in a process
    that serves it (``--in-process``), DuckDB refuses a second ``connect`` to the same
    file with another configuration than the service's look-up connection."""
    import duckdb

    connection = duckdb.connect(":memory:")
    try:
        connection.execute("attach ? as publication (read_only)", [str(Path(published).resolve())])

        def ids(condition: str) -> list[int]:
            rows = connection.execute(
                "select customer_id from publication.customers where customer_id in "
                "(select customer_id from publication.cross_sell_opportunities) and "
                f"{condition} "
                "order by hash(customer_id) limit ?",
                [per_principal],
            ).fetchall()
            return [row[0] for row in rows]

        return {
            "erik": ids("region = 'Europe'"),
            "nadia": ids("region = 'North America'"),
            "sam": ids("true"),
        }
    finally:
        connection.close()


def workload(calls: Sequence[Call], requests: int, seed: int = 11) -> list[Call]:
    """``requests`` calls, kinds drawn by :data:`KIND_WEIGHTS`, each kind's calls in turn."""
    by_kind = {kind: [c for c in calls if c.kind == kind] for kind in KIND_WEIGHTS}
    kinds = [kind for kind in KIND_WEIGHTS if by_kind[kind]]
    cycles = {kind: itertools.cycle(by_kind[kind]) for kind in kinds}
    rng = random.Random(seed)
    drawn = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds], k=requests)
    return [next(cycles[kind]) for kind in drawn]


def call_key(call: Call) -> tuple[str, str, str, str]:
    return (call.kind, call.label, call.principal, call.path)


def make_distinct(
    calls: Sequence[Call], ceilings: Mapping[str, int], round_: int = 0
) -> list[Call]:
    """Every cacheable call with a limit of its own: ceiling - 1, ceiling - 2, ... per
    distinct call (never the ceiling itself, which is what the warm-up's calls use);
    round ``r`` starts below the limits of rounds 0 .. r-1, so repeated runs miss too."""
    per_call: dict[tuple[str, str, str, str], int] = {}
    for call in calls:
        if call.cacheable:
            per_call[call_key(call)] = per_call.get(call_key(call), 0) + 1
    offset = round_ * max(per_call.values(), default=0)
    counters: dict[tuple[str, str, str, str], int] = {}
    out = []
    for call in calls:
        if not call.cacheable:
            out.append(call)
            continue
        n = counters[call_key(call)] = counters.get(call_key(call), 0) + 1
        limit = ceilings[call.principal] - offset - n
        if limit < 1:
            raise ValueError(
                f"too many requests for distinct limits of {call.label!r} as {call.principal}"
            )
        out.append(call.distinct(limit))
    return out


# --- the clients


@dataclass(frozen=True)
class Sample:
    """One response as the client saw it."""

    call: Call
    seconds: float
    status: int
    error: str | None
    request_id: str | None
    publication_id: str | None = None

    @property
    def kind(self) -> str:
        return self.call.kind


def _plain(value: Mapping[str, Any] | None) -> Any:
    """A JSON-able copy (httpx wants dicts, not mappings)."""
    return json.loads(json.dumps(value)) if value is not None else None


def send(client: httpx.Client, call: Call, token: str) -> Sample:
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    error: str | None = None
    request_id = publication_id = None
    status = 0
    try:
        response = client.request(
            call.method,
            call.path,
            headers=headers,
            json=_plain(call.body),
            params=_plain(call.params),
        )
        response.read()
        seconds = time.perf_counter() - started
        status = response.status_code
        request_id = response.headers.get("x-request-id")
        if status != 200:
            error = f"{status}: {response.text[:300]}"
        else:
            document = response.json()
            if call.kind == "graphql" and document.get("errors"):
                error = f"graphql: {json.dumps(document['errors'])[:300]}"
            publication_id = _publication_id(document)
    except httpx.HTTPError as failure:
        seconds = time.perf_counter() - started
        error = f"{type(failure).__name__}: {failure}"
    return Sample(call, seconds, status, error, request_id, publication_id)


def _publication_id(document: Any) -> str | None:
    if isinstance(document, dict):
        if isinstance(document.get("publication_id"), str):
            return document["publication_id"]
        data = document.get("data")
        if isinstance(data, dict):
            for value in data.values():
                if isinstance(value, dict) and isinstance(value.get("publicationId"), str):
                    return value["publicationId"]
    return None


def run_clients(
    base_url: str, calls: Sequence[Call], clients: int, tokens: Mapping[str, str]
) -> tuple[list[Sample], float]:
    """Send ``calls`` from ``clients`` threads (each takes the next call in turn);
    the samples in completion order and the wall time."""
    queue = iter(range(len(calls)))
    lock = threading.Lock()
    samples: list[Sample] = []

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=60.0) as client:
            while True:
                with lock:
                    index = next(queue, None)
                if index is None:
                    return
                sample = send(client, calls[index], tokens[calls[index].principal])
                with lock:
                    samples.append(sample)

    threads = [threading.Thread(target=worker, name=f"client-{i}") for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, time.perf_counter() - started


# --- the server


@dataclass(frozen=True)
class Server:
    base_url: str
    audit_path: Path
    in_process: bool


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    return sock


def _uvicorn_server(app: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def _wait_healthy(base_url: str, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the API server exited during start-up (see its output above)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the API server did not answer /health within {timeout:.0f} s")


@contextlib.contextmanager
def serve(
    published: Path, policies: Path, workdir: Path, *, in_process: bool = False
) -> Iterator[Server]:
    """A uvicorn server over ``published`` on a free local port, its audit log in
    ``workdir``: in a child process (default) or in a thread of this one."""
    audit_path = workdir / "access.jsonl"
    sock = _listening_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        if in_process:
            from retail_xsell.delivery.app import create_app
            from retail_xsell.delivery.auth import load_secret

            app = create_app(published, policies, audit_path, load_secret())
            server = _uvicorn_server(app)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
            )
            thread.start()
            try:
                _wait_healthy(base_url, 120.0, thread.is_alive)
                yield Server(base_url, audit_path, True)
            finally:
                server.should_exit = True
                thread.join(30)
                # the app has no shutdown hook: close its DuckDB connections here
                app.state.service.publications.close()
            return
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-fd",
            str(sock.fileno()),
            "--published",
            str(published),
            "--policies",
            str(policies),
            "--audit-log",
            str(audit_path),
        ]
        process = subprocess.Popen(command, pass_fds=[sock.fileno()], env=env, cwd=PROJECT_DIR)
        try:
            _wait_healthy(base_url, 120.0, lambda: process.poll() is None)
            yield Server(base_url, audit_path, False)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        sock.close()


def serve_fd(fd: int, published: Path, policies: Path, audit_log: Path) -> int:
    """The child process: serve the app on the inherited listening socket ``fd``."""
    from retail_xsell.delivery.app import create_app
    from retail_xsell.delivery.auth import load_secret

    sock = socket.socket(fileno=fd)
    server = _uvicorn_server(create_app(published, policies, audit_log, load_secret()))
    server.run(sockets=[sock])
    return 0


# --- measuring


def tokens_for(principals: Sequence[str], hours: float = 4.0) -> dict[str, str]:
    from retail_xsell.delivery.auth import issue_token, load_secret

    secret = load_secret()
    return {name: issue_token(secret, name, hours=hours) for name in sorted(set(principals))}


def ceilings_for(base_url: str, tokens: Mapping[str, str]) -> dict[str, int]:
    """Each principal's row ceiling (max_rows), as /v1/meta states it."""
    out = {}
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        for name, token in tokens.items():
            response = client.get("/v1/meta", headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            out[name] = int(response.json()["access"]["max_rows"])
    return out


def audit_cache_hits(audit_path: Path) -> dict[str, int]:
    """request_id -> cache hits, from the audit trail."""
    if not audit_path.exists():
        return {}
    hits = {}
    for line in audit_path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            hits[record["request_id"]] = int(record.get("cache_hits") or 0)
    return hits


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _describe(sample: Sample) -> str:
    return f"{sample.kind} {sample.call.label} as {sample.call.principal}: {sample.error}"


def summarize(
    samples: Sequence[Sample], calls: Sequence[Call], hits: Mapping[str, int], wall_seconds: float
) -> dict[str, Any]:
    """Latency percentiles, errors and cache-hit share per endpoint kind and overall."""
    cacheable = {call_key(c) for c in calls if c.cacheable}

    def stats(group: Sequence[Sample]) -> dict[str, Any]:
        seconds = [s.seconds for s in group]
        candidates = [s for s in group if call_key(s.call) in cacheable]
        hit = sum(1 for s in candidates if hits.get(s.request_id or "", 0) > 0)
        return {
            "requests": len(group),
            "errors": sum(1 for s in group if s.error),
            "p50_ms": _ms(percentile(seconds, 50)) if seconds else None,
            "p95_ms": _ms(percentile(seconds, 95)) if seconds else None,
            "p99_ms": _ms(percentile(seconds, 99)) if seconds else None,
            "max_ms": _ms(max(seconds)) if seconds else None,
            "cacheable": len(candidates),
            "cache_hit_share": round(hit / len(candidates), 4) if candidates else None,
        }

    kinds = {
        kind: stats([s for s in samples if s.kind == kind])
        for kind in KIND_WEIGHTS
        if any(s.kind == kind for s in samples)
    }
    return {
        "wall_seconds": round(wall_seconds, 3),
        "throughput_rps": round(len(samples) / wall_seconds, 1) if wall_seconds else None,
        "kinds": kinds,
        "overall": stats(samples),
        "errors": [_describe(s) for s in samples if s.error][:20],
        "publication_ids": sorted({s.publication_id for s in samples if s.publication_id}),
    }


def run_mode(
    server: Server,
    mode: str,
    distinct_calls: Sequence[Call],
    measured: Sequence[Call],
    clients: int,
    tokens: Mapping[str, str],
) -> dict[str, Any]:
    """A warm-up pass (every distinct call once, sequentially), then the measured pass."""
    warmup, _ = run_clients(server.base_url, distinct_calls, 1, tokens)
    if any(s.error for s in warmup):
        failed = [_describe(s) for s in warmup if s.error]
        raise RuntimeError("the warm-up failed:\n" + "\n".join(failed[:10]))
    samples, wall = run_clients(server.base_url, measured, clients, tokens)
    result = summarize(samples, measured, audit_cache_hits(server.audit_path), wall)
    result["mode"] = mode
    return result


@dataclass
class Settings:
    published: Path = DEFAULT_PUBLISHED
    policies: Path = DEFAULT_POLICIES
    clients: int = 8
    requests: int = 3000
    repeats: int = 1
    modes: tuple[str, ...] = MODES
    in_process: bool = False
    seed: int = 11
    customers_per_principal: int = 20
    #: where the server's audit trail goes (a new folder inside); None: the system's temp
    audit_dir: Path | None = None


def machine_facts() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
    }


def benchmark(settings: Settings) -> dict[str, Any]:
    """Serve the publication and measure every mode ``settings.repeats`` times."""
    published = Path(settings.published)
    calls = representative_calls(sample_customers(published, settings.customers_per_principal))
    tokens = tokens_for([c.principal for c in calls])
    measured = workload(calls, settings.requests, settings.seed)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in settings.modes}
    load_before = machine_facts()["load_average"]
    with (
        tempfile.TemporaryDirectory(prefix="benchmark-api-", dir=settings.audit_dir) as workdir,
        serve(
            published, Path(settings.policies), Path(workdir), in_process=settings.in_process
        ) as server,
    ):
        ceilings = ceilings_for(server.base_url, tokens)
        health = httpx.get(f"{server.base_url}/health", timeout=10.0).json()
        for round_ in range(settings.repeats):
            for mode in settings.modes:
                batch = make_distinct(measured, ceilings, round_) if mode == "cold" else measured
                runs[mode].append(run_mode(server, mode, calls, batch, settings.clients, tokens))
    machine = machine_facts()
    machine["load_average_before"] = load_before
    return {
        "machine": machine,
        "publication": {"path": str(published), "publication_id": health.get("publication_id")},
        "settings": {
            "clients": settings.clients,
            "requests": settings.requests,
            "repeats": settings.repeats,
            "server": "in-process thread" if settings.in_process else "uvicorn child process",
            "audit_dir": str(settings.audit_dir or tempfile.gettempdir()),
            "distinct_calls": len(calls),
            "kind_weights": KIND_WEIGHTS,
            "seed": settings.seed,
        },
        "runs": runs,
        "summary": {mode: median_of_runs(mode_runs) for mode, mode_runs in runs.items()},
    }


def median_of_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per kind and overall: the median over runs of each percentile; errors summed."""

    def combine(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": sum(r["requests"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
        }
        for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "cache_hit_share"):
            values = [r[key] for r in rows if r[key] is not None]
            out[key] = round(statistics.median(values), 4) if values else None
        out["p95_ms_runs"] = [r["p95_ms"] for r in rows]
        return out

    kinds = sorted({k for r in runs for k in r["kinds"]}, key=list(KIND_WEIGHTS).index)
    return {
        "runs": len(runs),
        "throughput_rps": statistics.median(r["throughput_rps"] for r in runs) if runs else None,
        "kinds": {k: combine([r["kinds"][k] for r in runs if k in r["kinds"]]) for k in kinds},
        "overall": combine([r["overall"] for r in runs]),
    }


# --- where a request's time goes (no server, no concurrency)


def _governed_request(call: Call) -> Any:
    from retail_xsell.delivery.governed import (
        MetricRequest,
        SavedQueryRequest,
        parse_request,
    )

    if call.kind == "query":
        return parse_request(MetricRequest, dict(call.body or {}))
    if call.kind == "saved_query":
        return SavedQueryRequest(name=call.path.rsplit("/", 1)[1], **(call.params or {}))
    raise ValueError(f"no governed request for {call.kind}")


class _Stopwatch:
    """Wraps a callable and adds up the seconds spent in it (on one thread)."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def profile_requests(
    published: Path,
    policies: Path,
    repeats: int = 20,
    profile_path: Path | None = None,
    max_calls: int | None = None,
    audit_dir: Path | None = None,
) -> dict[str, Any]:
    """Time ``Governor.execute`` alone, one request at a time, for every metric and saved
    query of the workload: with the result cache missed (a new limit each time) and hit,
    split into MetricFlow planning (``explain``), SQL on DuckDB and the rest (policy,
    min-group-size check, masking, JSON values), and time one audit-trail append. With
    ``profile_path``, one more cache-missed call of each runs under cProfile (untimed)."""
    from retail_xsell.delivery.audit import AuditLog
    from retail_xsell.delivery.auth import load_secret
    from retail_xsell.delivery.governed import AuditDetails, Governor
    from retail_xsell.delivery.serving import Publications

    calls = [c for c in representative_calls({}) if c.kind in ("query", "saved_query")]
    calls = calls[:max_calls] if max_calls is not None else calls
    publications = Publications(published, policies)
    governor = Governor(publications, mask_key=b"mask\x00" + load_secret().value, cache_size=10_000)
    served = publications.current
    # Instrument the layer's three steps in place (a profiling run only, never served).
    explain = _Stopwatch(served.layer._engine.explain)
    execute_sql = _Stopwatch(served.layer._execute)
    check_sql = _Stopwatch(served.layer._checked_statement)
    setattr(served.layer._engine, "explain", explain)  # noqa: B010
    setattr(served.layer, "_execute", execute_sql)  # noqa: B010
    setattr(served.layer, "_checked_statement", check_sql)  # noqa: B010
    profiler = cProfile.Profile() if profile_path else None
    rows = []
    try:
        for call in calls:
            principal = served.policies.principal(call.principal)
            if principal is None:
                raise SystemExit(f"error: no principal {call.principal!r} in {policies}")
            ceiling = governor.policy_for(principal).max_rows
            request = _governed_request(call)
            governor.execute(principal, request, AuditDetails())  # first call: plans caches
            cold, planning, sql, check = [], [], [], []
            for n in range(1, repeats + 1):
                distinct = _governed_request(call.distinct(ceiling - n))
                explain.seconds = execute_sql.seconds = check_sql.seconds = 0.0
                started = time.perf_counter()
                governor.execute(principal, distinct, AuditDetails())
                cold.append(time.perf_counter() - started)
                planning.append(explain.seconds)
                sql.append(execute_sql.seconds)
                check.append(check_sql.seconds)
            if profiler is not None:  # apart from the timed calls: cProfile slows them down
                distinct = _governed_request(call.distinct(ceiling - repeats - 1))
                profiler.runcall(governor.execute, principal, distinct, AuditDetails())
            warm = []
            for _ in range(repeats):
                started = time.perf_counter()
                governor.execute(principal, request, AuditDetails())
                warm.append(time.perf_counter() - started)
            rows.append(
                {
                    "call": f"{call.kind} {call.label} as {call.principal}",
                    "miss_ms": _ms(statistics.median(cold)),
                    "planning_ms": _ms(statistics.median(planning)),
                    "sql_ms": _ms(statistics.median(sql)),
                    "sql_check_ms": _ms(statistics.median(check)),
                    "other_ms": _ms(
                        statistics.median(
                            c - p - q for c, p, q in zip(cold, planning, sql, strict=True)
                        )
                    ),
                    "hit_ms": _ms(statistics.median(warm)),
                    "queries_per_request": 1
                    if governor.policy_for(principal).min_group_size <= 1
                    else 2,
                }
            )
    finally:
        publications.close()
    from retail_xsell.delivery.auth import issue_token, verify_token

    secret = load_secret()
    header = f"Bearer {issue_token(secret, 'maria')}"
    verifications = []
    for _ in range(repeats * 5):
        started = time.perf_counter()
        verify_token(secret, header)
        verifications.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory(prefix="benchmark-api-audit-", dir=audit_dir) as workdir:
        log = AuditLog(Path(workdir) / "access.jsonl")
        appends = []
        for n in range(repeats * 5):
            record = {
                "request_id": f"r{n}",
                "principal": "maria",
                "endpoint": "POST /v1/query",
                "status": 200,
            }
            started = time.perf_counter()
            log.append(record)
            appends.append(time.perf_counter() - started)
    if profiler is not None and profile_path is not None:
        profiler.dump_stats(str(profile_path))
    return {
        "repeats": repeats,
        "calls": rows,
        "audit_append_ms": {
            "p50": _ms(percentile(appends, 50)),
            "p95": _ms(percentile(appends, 95)),
        },
        "token_verify_ms": {"p50": _ms(percentile(verifications, 50))},
    }


def render_profile(profile: Mapping[str, Any]) -> str:
    lines = [
        f"`Governor.execute` alone, one request at a time, median of {profile['repeats']} "
        "calls each (cache missed: a new limit per call). Planning is MetricFlow's "
        "`explain`, SQL is the checked statement run on DuckDB and fetched (the check "
        "is the refusal of anything but a SELECT of the semantic models), the rest is "
        "the Governor's own work (policy, minimum group size, masking, JSON values):",
        "",
        "| request | MetricFlow queries | cache missed (ms) | planning (ms) "
        "| SQL (ms) | of which SQL check (ms) | rest (ms) | cache hit (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in profile["calls"]:
        lines.append(
            f"| {row['call']} | {row['queries_per_request']} | {row['miss_ms']:.1f} "
            f"| {row['planning_ms']:.1f} | {row['sql_ms']:.1f} | {row['sql_check_ms']:.1f} "
            f"| {row['other_ms']:.1f} | {row['hit_ms']:.2f} |"
        )
    audit = profile["audit_append_ms"]
    lines += [
        "",
        f"One audit-trail append (fsync'd): p50 {audit['p50']:.2f} ms, p95 {audit['p95']:.2f} ms;"
        f" one token verification: p50 {profile['token_verify_ms']['p50']:.3f} ms.",
        "",
    ]
    return "\n".join(lines)


# --- output


def render_markdown(report: Mapping[str, Any]) -> str:
    settings, machine = report["settings"], report["machine"]
    lines = [
        f"{settings['clients']} clients, {settings['requests']} requests per run, "
        f"{settings['repeats']} run(s) per mode, server: {settings['server']}; "
        f"{machine['nproc']} cores, load average {machine['load_average']}, "
        f"{machine['date']}; publication {report['publication']['publication_id']}.",
        "",
    ]
    for mode, summary in report["summary"].items():
        lines += [
            f"**{mode}** (result cache {'hit' if mode == 'warm' else 'missed'} by design; "
            f"median of {summary['runs']} run(s); {summary['throughput_rps']} requests/s)",
            "",
            "| endpoint | requests | errors | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) "
            "| cache hits | p95 per run (ms) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        rows = [*summary["kinds"].items(), ("overall", summary["overall"])]
        for kind, row in rows:
            share = row["cache_hit_share"]
            lines.append(
                f"| {kind} | {row['requests']} | {row['errors']} | {row['p50_ms']:.1f} "
                f"| {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {row['max_ms']:.1f} "
                f"| {'-' if share is None else f'{share:.0%}'} "
                f"| {', '.join(f'{v:.1f}' for v in row['p95_ms_runs'])} |"
            )
        lines.append("")
    errors = [e for runs in report["runs"].values() for run in runs for e in run["errors"]]
    if errors:
        lines += ["Errors (first of them):", "", *[f"- {e}" for e in errors[:10]], ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--published",
        type=Path,
        default=DEFAULT_PUBLISHED,
        help="the consumer path of the publication (default: %(default)s)",
    )
    parser.add_argument("--policies", type=Path, default=DEFAULT_POLICIES)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--requests",
        type=int,
        default=3000,
        help="measured requests per run and mode (default 3000)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode (default 1)")
    parser.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="cold: a new cache key per request; warm: cache hits (default both)",
    )
    parser.add_argument("--no-cache", action="store_true", help="the same as --mode cold")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the server in a thread of this process (not for quoting)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        nargs="?",
        const=Path("-"),
        help="no load: time Governor.execute per metric and saved query "
        "(planning, SQL, cache hit; audit append); with PATH, also write "
        "cProfile statistics of one more, untimed miss of each request there",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the full report here")
    parser.add_argument(
        "--audit-dir",
        type=Path,
        help="where the server writes its audit trail (default: the system's temp folder; "
        "/dev/shm shows what the fsync'd appends cost)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--audit-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.repeats < 1:
        parser.error("--clients, --requests and --repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_fd is not None:
        return serve_fd(args.serve_fd, args.published, args.policies, args.audit_log)
    if args.profile is not None:
        path = None if str(args.profile) == "-" else args.profile
        profile = profile_requests(
            args.published, args.policies, profile_path=path, audit_dir=args.audit_dir
        )
        print(render_profile(profile))
        if args.json:
            args.json.write_text(json.dumps(profile, indent=2) + "\n")
        return 0
    modes = ("cold",) if args.no_cache else MODES if args.mode == "both" else (args.mode,)
    report = benchmark(
        Settings(
            published=args.published,
            policies=args.policies,
            clients=args.clients,
            requests=args.requests,
            repeats=args.repeats,
            modes=modes,
            in_process=args.in_process,
            seed=args.seed,
            audit_dir=args.audit_dir,
        )
    )
    print(render_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    errors = sum(run["overall"]["errors"] for runs in report["runs"].values() for run in runs)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
