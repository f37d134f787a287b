"""A publish while the service runs: no restart, no client errors, in-flight requests
finish on the publication they started on, and a publication the policies cannot serve
is refused while the previous one stays served (retail_xsell.delivery.serving).

Every test works on its own copy of the session's published folder tree (links kept),
so publishing or switching ``current`` here never changes what the other API tests
see. The server is a real uvicorn in a thread, so requests really run concurrently.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from retail_xsell.delivery.app import create_app
from retail_xsell.delivery.auth import issue_token
from retail_xsell.delivery.serving import Publications
from retail_xsell.semantic import SemanticLayerError

from .conftest import POLICIES, SECRET, SamplePublication


@pytest.fixture()
def own_publication(sample_publication: SamplePublication, tmp_path: Path) -> SamplePublication:
    """A copy of the published tree; ``publish_again`` publishes into the copy."""
    source = sample_publication.published.parent
    shutil.copytree(source, tmp_path / "published", symlinks=True)
    return SamplePublication(
        working=sample_publication.working,
        target=sample_publication.target,
        published=tmp_path / "published" / sample_publication.published.name,
        report_dir=sample_publication.report_dir,
    )


@pytest.fixture()
def make_app(tmp_path: Path) -> Iterator[Callable[[Path], Any]]:
    """create_app over a publication; its DuckDB connections are closed afterwards (the
    app has no shutdown hook of its own)."""
    apps = []

    def make(published: Path) -> Any:
        apps.append(create_app(published, POLICIES, tmp_path / "access.jsonl", SECRET))
        return apps[-1]

    yield make
    for app in apps:
        app.state.service.publications.close()


def current_id(sample: SamplePublication) -> str:
    record = sample.published.resolve().parent / "publication.json"
    return json.loads(record.read_text())["publication_id"]


def clone_current(
    sample: SamplePublication,
    name: str,
    edit_catalog: Callable[[dict], None] | None = None,
    source: Path | None = None,
) -> Path:
    """A copy of the current publication folder (or ``source``) under a new id (``name``)."""
    folder = source or sample.published.resolve().parent
    clone = folder.parent / name
    shutil.copytree(folder, clone)
    record = json.loads((clone / "publication.json").read_text())
    record["publication_id"] = name
    (clone / "publication.json").write_text(json.dumps(record))
    if edit_catalog is not None:
        catalog = json.loads((clone / "catalog.json").read_text())
        edit_catalog(catalog)
        (clone / "catalog.json").write_text(json.dumps(catalog))
    return clone


def switch_current(sample: SamplePublication, folder: Path) -> None:
    """Point ``current`` at ``folder`` atomically, as a publish or rollback does."""
    link = sample.published.parent / "current"
    temporary = link.with_name(".current.test.tmp")
    os.symlink(os.path.relpath(folder, link.parent), temporary)
    os.replace(temporary, link)


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """A real uvicorn server for ``app`` in a thread, on a free port; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def bearer(principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, principal)}"}


@dataclass(frozen=True)
class Response:
    path: str
    started: float
    status: int
    publication_id: str | None
    error: str | None


@dataclass
class Hammer:
    """Client threads sending a mix of requests until stopped."""

    base_url: str
    threads: int = 3
    responses: list[Response] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _requests(self, worker: int) -> Iterator[tuple[str, str, dict[str, str], Any]]:
        maria, erik = bearer("maria"), bearer("erik")
        n = 0
        while True:
            n += 1
            # a new limit each time: a cache miss, so real MetricFlow work is in flight
            body = {"metrics": ["total_spend"], "group_by": ["order__channel"]}
            yield "POST", "/v1/query", maria, {**body, "limit": 2000 - 100 * worker - n % 100}
            yield "POST", "/v1/query", maria, {"metrics": ["clv"], "group_by": ["customer__region"]}
            yield "GET", "/v1/meta", erik, None
            yield "GET", "/v1/customers/10001/cross-sell", erik, None
            yield "GET", "/health", {}, None

    def _work(self, worker: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            for method, path, headers, body in self._requests(worker):
                if self._stop.is_set():
                    return
                started = time.monotonic()
                try:
                    reply = client.request(method, path, headers=headers, json=body)
                    document = reply.json()
                    error = None if reply.status_code == 200 else reply.text[:500]
                    response = Response(
                        path, started, reply.status_code, document.get("publication_id"), error
                    )
                except (httpx.HTTPError, ValueError) as failure:
                    response = Response(path, started, 0, None, repr(failure))
                with self._lock:
                    self.responses.append(response)

    def start(self) -> None:
        for worker in range(self.threads):
            thread = threading.Thread(target=self._work, args=(worker,), daemon=True)
            thread.start()
            self._workers.append(thread)

    def wait_for(self, predicate: Callable[[list[Response]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.responses)):
                    return
            assert all(t.is_alive() for t in self._workers), "a client thread died"
            time.sleep(0.05)
        raise AssertionError(f"timed out; {len(self.responses)} responses so far")

    def stop(self) -> list[Response]:
        self._stop.set()
        for thread in self._workers:
            thread.join(60)
        return list(self.responses)


def test_publishing_while_clients_run_has_no_errors_and_switches(own_publication, make_app):
    ids = [current_id(own_publication)]
    app = make_app(own_publication.published)
    with uvicorn_server(app) as base_url:
        hammer = Hammer(base_url)
        hammer.start()
        try:
            hammer.wait_for(lambda seen: len(seen) >= 15, timeout=60)
            published_at = []
            for _ in range(2):
                own_publication.publish_again()  # a real `retail-xsell publish`, subprocess
                published_at.append(time.monotonic())
                ids.append(current_id(own_publication))
                after = published_at[-1]
                hammer.wait_for(
                    lambda seen, after=after: sum(r.started > after for r in seen) >= 10,
                    timeout=60,
                )
        finally:
            responses = hammer.stop()
        health = httpx.get(f"{base_url}/health").json()

    assert len(set(ids)) == 3, ids
    errors = [r for r in responses if r.status != 200 or r.error]
    assert not errors, errors[:5]
    assert {r.publication_id for r in responses} <= set(ids)
    # Every request that started after a publish had returned got that publication
    # (or, after the second, the newest), /health included.
    for response in responses:
        if response.started > published_at[1]:
            assert response.publication_id == ids[2], response
        elif response.started > published_at[0]:
            assert response.publication_id in ids[1:], response
    assert any(r.publication_id == ids[0] for r in responses)
    assert any(r.publication_id == ids[1] for r in responses)
    by_path = {r.path for r in responses if r.started > published_at[1]}
    assert by_path >= {"/v1/query", "/v1/meta", "/health", "/v1/customers/10001/cross-sell"}
    assert health == {"status": "ok", "publication_id": ids[2], "problem": None}


def test_a_request_in_flight_during_a_switch_finishes_on_the_old_publication(
    own_publication, make_app
):
    old_id = current_id(own_publication)
    app = make_app(own_publication.published)
    governor = app.state.service.governor
    entered, release = threading.Event(), threading.Event()
    answer = governor._answer

    def held_answer(served, *args, **kwargs):
        if served.id == old_id:  # hold the request that leased the old publication
            entered.set()
            assert release.wait(30)
        return answer(served, *args, **kwargs)

    governor._answer = held_answer
    query = {"metrics": ["clv"], "group_by": ["customer__region"]}
    with uvicorn_server(app) as base_url:
        in_flight: dict[str, Any] = {}

        def slow_request() -> None:
            reply = httpx.post(
                f"{base_url}/v1/query", json=query, headers=bearer("maria"), timeout=60
            )
            in_flight["status"], in_flight["body"] = reply.status_code, reply.json()

        thread = threading.Thread(target=slow_request)
        thread.start()
        assert entered.wait(30)
        switch_current(own_publication, clone_current(own_publication, "switched-in"))
        # While the old request is still running, a new one is answered by the new one
        # (the same query: the result cache is keyed by publication, so no stale hit).
        reply = httpx.post(f"{base_url}/v1/query", json=query, headers=bearer("maria"))
        assert reply.status_code == 200, reply.text
        assert reply.json()["publication_id"] == "switched-in"
        release.set()
        thread.join(30)
    assert in_flight["status"] == 200, in_flight
    assert in_flight["body"]["publication_id"] == old_id

    # No order_by: compare the rows as sets (DuckDB may return groups in any order).
    def by_region(rows: list[dict]) -> list[dict]:
        return sorted(rows, key=lambda row: str(row["customer__region"]))

    assert by_region(in_flight["body"]["rows"]) == by_region(reply.json()["rows"])


def test_a_held_lease_keeps_the_old_publication_open_even_when_pruned(own_publication):
    publications = Publications(own_publication.published, POLICIES)
    try:
        with publications.lease() as old:
            old_id = old.id
            switch_current(own_publication, clone_current(own_publication, "after-switch"))
            with publications.lease() as new:
                assert (new.id, old.id) == ("after-switch", old_id)
            assert old.retired and old.leases == 1
            # on Linux the open file outlives its folder: a pruned publication still answers
            shutil.rmtree(old.folder)
            result = old.layer.query(["clv"], ["customer__region"])
            assert result.rows
        assert old.leases == 0
        with pytest.raises(SemanticLayerError):  # closed once its last lease ended
            old.layer.query(["clv"])
        assert publications.current.id == "after-switch"
        assert publications.problem is None
    finally:
        publications.close()


def _drop_predicted_clv(catalog: dict) -> None:
    del catalog["metrics"]["predicted_clv"]  # policies.yml grants it to executives by name


def test_a_publication_the_policies_cannot_serve_is_refused_and_the_old_one_served(
    own_publication, make_app
):
    old_id = current_id(own_publication)
    served = own_publication.published.resolve().parent
    app = make_app(own_publication.published)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health").json()["status"] == "ok"
        switch_current(
            own_publication,
            clone_current(own_publication, "lacks-predicted-clv", _drop_predicted_clv),
        )
        for _ in range(2):  # refused once, and not reopened on every request after that
            reply = client.post(
                "/v1/query", json={"metrics": ["predicted_clv"]}, headers=bearer("olivia")
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["publication_id"] == old_id
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["publication_id"] == old_id
        assert "lacks-predicted-clv" in health["problem"]
        assert "predicted_clv" in health["problem"]

        # The next good publication is served, and the problem is gone.
        good = clone_current(own_publication, "good-again", source=served)
        switch_current(own_publication, good)
        reply = client.get("/v1/meta", headers=bearer("olivia"))
        assert reply.status_code == 200 and reply.json()["publication_id"] == "good-again"
        assert client.get("/health").json() == {
            "status": "ok",
            "publication_id": "good-again",
            "problem": None,
        }


def test_refused_publication_at_start_up_is_an_error(own_publication):
    switch_current(
        own_publication, clone_current(own_publication, "refused-at-start", _drop_predicted_clv)
    )
    from retail_xsell.delivery.serving import ServingError

    with pytest.raises(ServingError, match="predicted_clv"):
        Publications(own_publication.published, POLICIES)


def test_health_alone_reports_a_new_publication(own_publication, make_app):
    app = make_app(own_publication.published)
    with TestClient(app, raise_server_exceptions=False) as client:
        switch_current(own_publication, clone_current(own_publication, "health-only"))
        assert client.get("/health").json()["publication_id"] == "health-only"


def test_rolling_back_after_a_refusal_clears_the_problem(own_publication, make_app):
    served = own_publication.published.resolve().parent
    app = make_app(own_publication.published)
    with TestClient(app, raise_server_exceptions=False) as client:
        switch_current(
            own_publication, clone_current(own_publication, "refused", _drop_predicted_clv)
        )
        assert client.get("/v1/meta", headers=bearer("olivia")).status_code == 200
        assert client.get("/health").json()["status"] == "degraded"
        switch_current(own_publication, served)  # `retail-xsell rollback` to the served one
        assert client.get("/v1/meta", headers=bearer("olivia")).status_code == 200
        assert client.get("/health").json()["status"] == "ok"


def test_a_missing_current_link_is_reported_and_cleared_when_restored(own_publication, make_app):
    served = own_publication.published.resolve().parent
    old_id = current_id(own_publication)
    app = make_app(own_publication.published)
    with TestClient(app, raise_server_exceptions=False) as client:
        (own_publication.published.parent / "current").unlink()  # a botched manual rollback
        reply = client.get("/v1/meta", headers=bearer("olivia"))
        assert reply.status_code == 200 and reply.json()["publication_id"] == old_id
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "no publication" in health["problem"]
        switch_current(own_publication, served)
        assert client.get("/v1/meta", headers=bearer("olivia")).status_code == 200
        assert client.get("/health").json() == {
            "status": "ok",
            "publication_id": old_id,
            "problem": None,
        }
