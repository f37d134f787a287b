"""The docs site serves the catalogue, never the build's internals (issue 10, item 5).

`dbt docs serve` serves all of target/: compiled SQL, run/, run_results.json and the
partial-parse cache, where a secret written into SQL used to sit. These tests plant a
secret in each of those places of a dbt-shaped target folder, stage the site, and
attack it over HTTP.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from retail_xsell.docs_site import DocsSiteError, make_server, stage_docs_site

SECRET = b"docs-site-test-secret-0123456789abcdef"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A target folder as `dbt build`, `dbt docs generate` and `make gate` leave it."""
    target = tmp_path / "target"
    files = {
        "index.html": b"<html>dbt docs</html>",
        "manifest.json": b'{"nodes": {"model.x": {"compiled_code": "select pii_hmac(e)"}}}',
        "catalog.json": b'{"nodes": {}}',
        "slo_report.html": b"<html>SLO report</html>",
        "data-product/dataproduct.yaml": b"name: retail_xsell\n",
        "data-product/contracts/duckdb.odcs.yaml": b"kind: DataContract\n",
        "compiled/retail_xsell/models/stg.sql": b"select sha256('" + SECRET + b"' || e)",
        "run/retail_xsell/models/stg.sql": b"create table t as select '" + SECRET + b"'",
        "run_results.json": b'{"results": ["' + SECRET + b'"]}',
        "partial_parse.msgpack": b"\x81\xa3env" + SECRET,
        "graph.gpickle": SECRET,
    }
    for name, content in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(content)
    return target


@pytest.fixture
def site(target: Path, tmp_path: Path):
    """The staged site, served on a free loopback port; yields its base URL."""
    out = tmp_path / "site"
    stage_docs_site(target, out, secrets=[SECRET])
    server = make_server(out, port=0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield out, f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_staged_site_holds_only_the_catalogue_and_linked_pages(site):
    out, _ = site
    staged = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert staged - {".retail-xsell-docs-site"} == {
        "index.html",
        "manifest.json",
        "catalog.json",
        "slo_report.html",
        "data-product/dataproduct.yaml",
        "data-product/contracts/duckdb.odcs.yaml",
    }
    assert not (out / "compiled").exists() and not (out / "run").exists()
    assert not (out / "run_results.json").exists()
    assert [p for p in out.rglob("*") if p.is_file() and SECRET in p.read_bytes()] == []


def test_build_internals_are_not_served(site):
    _, base = site
    for path in (
        "/compiled/retail_xsell/models/stg.sql",
        "/run/retail_xsell/models/stg.sql",
        "/run_results.json",
        "/partial_parse.msgpack",
        "/graph.gpickle",
        "/../target/run_results.json",
        "/%2e%2e/target/run_results.json",
        "/data-product/",  # no directory listings
    ):
        status, body = _get(base + path)
        assert status == 404, path
        assert SECRET not in body


def test_catalogue_and_linked_pages_are_served(site):
    _, base = site
    assert _get(base + "/") == (200, b"<html>dbt docs</html>")
    for path in (
        "/manifest.json",
        "/catalog.json",
        "/slo_report.html",
        "/data-product/dataproduct.yaml",
    ):
        assert _get(base + path)[0] == 200, path


def test_server_binds_loopback_by_default(tmp_path):
    with make_server(tmp_path, port=0) as server:
        assert server.server_address[0] == "127.0.0.1"


def test_staging_refuses_a_catalogue_that_holds_the_key(target, tmp_path):
    manifest = target / "manifest.json"
    manifest.write_bytes(
        manifest.read_bytes().replace(b"pii_hmac(e)", b"sha256('" + SECRET + b"')")
    )
    with pytest.raises(DocsSiteError, match=r"manifest\.json"):
        stage_docs_site(target, tmp_path / "site", secrets=[SECRET])
    assert not (tmp_path / "site").exists()


def test_staging_needs_docs_generate_and_never_empties_a_foreign_folder(target, tmp_path):
    (target / "catalog.json").unlink()
    with pytest.raises(DocsSiteError, match="dbt docs generate"):
        stage_docs_site(target, tmp_path / "site", secrets=[])
    (target / "catalog.json").write_text("{}")
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(DocsSiteError, match="not empty"):
        stage_docs_site(target, foreign, secrets=[])
    assert (foreign / "precious.txt").read_text() == "keep me"
    # A folder it staged before is emptied and staged again.
    out = tmp_path / "site"
    stage_docs_site(target, out, secrets=[])
    (out / "stale.html").write_text("old")
    stage_docs_site(target, out, secrets=[])
    assert not (out / "stale.html").exists()
