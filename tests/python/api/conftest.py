"""Fixtures of the API tests: the committed sample, built, gated and published once per
session, and a service over that publication with its own audit log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retail_xsell.delivery.app import create_app
from retail_xsell.delivery.auth import DEVELOPMENT_SECRET, ApiSecret, issue_token

PROJECT_DIR = Path(__file__).resolve().parents[3]
POLICIES = PROJECT_DIR / "policies.yml"
CLI = Path(sys.executable).parent / "retail-xsell"
SECRET = ApiSecret(DEVELOPMENT_SECRET.encode(), is_development=True)


@dataclass
class SamplePublication:
    working: Path
    target: Path
    published: Path
    report_dir: Path

    def publish_again(self) -> None:
        """Publish the same build once more: a new publication folder, switched in."""
        _retail_xsell("publish", *self._args(), "--target-path", str(self.report_dir / "artifacts"))

    def _args(self) -> list[str]:
        return [
            "--database",
            str(self.working),
            "--published",
            str(self.published),
            "--report-dir",
            str(self.report_dir),
        ]


def _retail_xsell(*args: str) -> None:
    env = {**os.environ, "RETAIL_XSELL_TARGET": "dev"}
    completed = subprocess.run(
        [str(CLI), *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


@pytest.fixture(scope="session")
def sample_publication(sample_db: Path, tmp_path_factory) -> SamplePublication:
    """The sample build (shared with the other tests), gated and published."""
    root = tmp_path_factory.mktemp("api-publication")
    sample = SamplePublication(
        working=sample_db,
        target=sample_db.parent / "target",
        published=root / "published" / "retail_xsell.duckdb",
        report_dir=root / "slo",
    )
    _retail_xsell("gate", *sample._args(), "--target-path", str(sample.target))
    _retail_xsell("publish", *sample._args())
    return sample


@dataclass
class Api:
    """A TestClient over the sample publication, and helpers to act as a principal."""

    client: TestClient
    audit_path: Path

    def headers(self, principal: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(SECRET, principal)}"}

    def get(self, path: str, principal: str | None = None, **kwargs):
        headers = self.headers(principal) if principal else {}
        return self.client.get(path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, principal: str | None = None, **kwargs):
        headers = self.headers(principal) if principal else {}
        return self.client.post(path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def graphql(self, query: str, principal: str | None = None, variables: dict | None = None):
        return self.post("/graphql", principal, json={"query": query, "variables": variables or {}})

    def audit_records(self) -> list[dict]:
        import json

        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().split("\n") if line]


@pytest.fixture(scope="session")
def api_app(sample_publication: SamplePublication, tmp_path_factory):
    audit_path = tmp_path_factory.mktemp("api-audit") / "access.jsonl"
    app = create_app(sample_publication.published, POLICIES, audit_path, SECRET)
    return app, audit_path


@pytest.fixture(scope="session")
def api(api_app) -> Iterator[Api]:
    """The service over the sample publication (one per session; shares its audit log)."""
    app, audit_path = api_app
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, audit_path=audit_path)


@pytest.fixture()
def fresh_api(sample_publication: SamplePublication, tmp_path: Path) -> Iterator[Api]:
    """A service of its own with an empty audit log, for tests that count records."""
    audit_path = tmp_path / "access.jsonl"
    app = create_app(sample_publication.published, POLICIES, audit_path, SECRET)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, audit_path=audit_path)
    shutil.rmtree(tmp_path, ignore_errors=True)
