"""Helpers shared by the governed API's attack, fuzz and PII tests.

Expected values here are worked out from the published files themselves (the DuckDB
file opened read-only, ``catalog.json``, ``semantic_manifest.json``) and from the raw
sample, never from the service's own enforcement code.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import jwt
import yaml

from retail_xsell import pii_scan

from .conftest import POLICIES, SECRET

#: Every principal of policies.yml, as the issue lists them.
PRINCIPALS = ("maria", "erik", "nadia", "lena", "olivia", "sam", "bi_dashboard", "intern")
#: The principals held to a region by a row filter, and that region.
REGION_OF = {"erik": "Europe", "nadia": "North America", "lena": "Europe"}
PROBLEM_JSON = "application/problem+json"

ISSUER = "retail-xsell"
AUDIENCE = "retail-xsell-api"


# --- the publication, read independently of the service


def published_folder(published: Path) -> Path:
    return Path(published).resolve().parent


@contextmanager
def published_sql(published: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The published DuckDB file, attached read-only as ``pub`` to a fresh in-memory
    database (attaching, not connecting, so it coexists with the service's own
    connections to the same file in this process)."""
    connection = duckdb.connect(":memory:")
    path = str(Path(published).resolve()).replace("'", "''")
    connection.execute(f"attach '{path}' as pub (read_only)")
    try:
        yield connection
    finally:
        connection.close()


def catalog_document(published: Path) -> dict[str, Any]:
    return json.loads((published_folder(published) / "catalog.json").read_text())


def semantic_manifest(published: Path) -> dict[str, Any]:
    return json.loads((published_folder(published) / "semantic_manifest.json").read_text())


def policy_document() -> dict[str, Any]:
    return yaml.safe_load(POLICIES.read_text())


def granted_metrics(principal: str, catalog: Mapping[str, Any]) -> set[str]:
    """What policies.yml grants ``principal``, expanded by hand from catalog.json tags."""
    document = policy_document()
    granted: set[str] = set()
    for group in document["principals"][principal].get("groups") or []:
        for entry in document["groups"][group].get("metrics") or []:
            if entry.startswith("tag:"):
                granted |= {
                    name
                    for name, info in catalog["metrics"].items()
                    if entry[4:] in (info.get("tags") or [])
                }
            else:
                granted.add(entry)
    return granted


def group_settings(principal: str) -> list[dict[str, Any]]:
    document = policy_document()
    return [document["groups"][g] for g in document["principals"][principal].get("groups") or []]


def clear_dimensions(principal: str) -> set[str]:
    """Dimensions granted in clear by some group and masked by none."""
    groups = group_settings(principal)
    clear = {d for g in groups for d in g.get("dimensions") or []}
    masked = {d for g in groups for d in g.get("masked_dimensions") or {}}
    return clear - masked


def scopes(principal: str) -> set[str]:
    return {s for g in group_settings(principal) for s in g.get("scopes") or []}


def min_group_size(principal: str) -> int:
    return max((g.get("min_group_size", 1) for g in group_settings(principal)), default=1)


def max_rows(principal: str) -> int:
    return min((g.get("max_rows", 1000) for g in group_settings(principal)), default=0)


# --- tokens


def make_token(
    principal: str = "erik",
    *,
    secret: str | bytes | None = None,
    algorithm: str = "HS256",
    lifetime: dt.timedelta = dt.timedelta(hours=1),
    issued: dt.datetime | None = None,
    **claims: Any,
) -> str:
    """A JWT as the service's issuer writes it, with any claim overridden."""
    issued = issued or dt.datetime.now(dt.UTC)
    body: dict[str, Any] = {
        "sub": principal,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    body = {key: value for key, value in body.items() if value is not None}
    key = SECRET.value if secret is None else secret
    return jwt.encode(body, None if algorithm == "none" else key, algorithm=algorithm)


def unsigned_token(principal: str = "sam") -> str:
    """``alg: none``, written by hand so no library refuses to produce it."""

    def part(value: dict[str, Any]) -> str:
        import base64

        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": principal, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- responses and audit records


def assert_problem(response, status: int) -> dict[str, Any]:
    """A refusal: the status, RFC 9457 problem details, and its request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= set(body)
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 401:
        assert response.headers["www-authenticate"].lower().startswith("bearer")
    return body


def graphql_error(response, status: int) -> dict[str, Any]:
    """The one GraphQL error of a refused operation, with its HTTP-like status."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("data") in (None, {}) or all(v is None for v in body["data"].values()), body
    (error,) = body["errors"]
    assert error["extensions"]["status"] == status, error
    return error


def records_by_request_id(records: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {record["request_id"]: record for record in records}


def audit_records(path: Path) -> list[dict[str, Any]]:
    """Every record of an audit log, split on newline bytes only, as the log is written.

    (``str.splitlines`` would also split inside a record holding U+2028 or U+0085,
    which a fuzzed request can put there; the log escapes only ``\\n``.)
    """
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_bytes().split(b"\n") if line.strip()]


class _AuditIndex:
    """Records by request id, read incrementally (the shared log grows to thousands)."""

    def __init__(self) -> None:
        self.offsets: dict[Path, int] = {}
        self.records: dict[Path, dict[str, dict[str, Any]]] = {}

    def get(self, path: Path, request_id: str) -> dict[str, Any] | None:
        path = Path(path)
        known = self.records.setdefault(path, {})
        if request_id not in known and path.exists():
            with path.open("rb") as handle:
                handle.seek(self.offsets.get(path, 0))
                chunk = handle.read()
            complete, _, _ = chunk.rpartition(b"\n")
            self.offsets[path] = self.offsets.get(path, 0) + len(complete) + (1 if complete else 0)
            for line in complete.split(b"\n"):
                if line.strip():
                    record = json.loads(line)
                    known[record["request_id"]] = record
        return known.get(request_id)


_AUDIT_INDEX = _AuditIndex()


def audited(api, response) -> dict[str, Any]:
    """The audit record of ``response`` (looked up by its x-request-id)."""
    found = _AUDIT_INDEX.get(api.audit_path, response.headers["x-request-id"])
    assert found is not None, f"no audit record for {response.request.url}"
    return found


def body_rows(response) -> list[dict[str, Any]]:
    """The rows of a JSON or CSV answer."""
    if response.headers["content-type"].startswith("text/csv"):
        return list(csv.DictReader(io.StringIO(response.text)))
    return response.json()["rows"]


# --- raw personal data of the sample (the working database, not the publication)


class _Needles:
    """Many literal strings searched in one pass: candidates by their first k
    characters (a plain ``value in text`` per value is too slow for thousands of
    values over large responses)."""

    def __init__(self, needles: Mapping[str, Iterable[str]]) -> None:
        pairs = [(kind, value) for kind, values in needles.items() for value in values if value]
        self.k = min(len(value) for _, value in pairs)
        self.index: dict[str, list[tuple[str, str]]] = {}
        for kind, value in pairs:
            self.index.setdefault(value[: self.k], []).append((kind, value))

    def kinds_in(self, text: str) -> set[str]:
        found: set[str] = set()
        get, k = self.index.get, self.k
        for start in range(len(text) - k + 1):
            candidates = get(text[start : start + k])
            if candidates:
                found |= {kind for kind, value in candidates if text.startswith(value, start)}
        return found


@dataclass(frozen=True)
class RawPersonalData:
    """The raw sample's personal values, as pii_scan defines them (lower-cased)."""

    emails: frozenset[str]
    phones: frozenset[str]
    phone_digits: frozenset[str]
    names: frozenset[str]
    birth_dates: frozenset[str]

    @classmethod
    def load(cls, working: Path, scratch: Path) -> RawPersonalData:
        """Read from a copy of the working database (so that no connection another
        test holds on the file in this process gets in the way)."""
        copy = Path(scratch) / "working-copy.duckdb"
        shutil.copyfile(working, copy)
        connection = duckdb.connect(":memory:")
        try:
            connection.execute(f"attach '{copy}' as raw (read_only)")
            pii_scan._load_raw_values(connection, "raw")
            values: dict[str, set[str]] = {}
            for kind, value in connection.execute("select kind, value from pii_text").fetchall():
                values.setdefault(kind, set()).add(value)
            rows = connection.execute("select digits from pii_phone_digits").fetchall()
            digits = {value for (value,) in rows}
        finally:
            connection.close()
        return cls(
            emails=frozenset(values.get("email", ())),
            phones=frozenset(values.get("phone", ())),
            phone_digits=frozenset(digits),
            names=frozenset(values.get("name", ())),
            birth_dates=frozenset(values.get("birth_date", ())),
        )

    @cached_property
    def _needles(self) -> _Needles:
        return _Needles(
            {
                "email": self.emails,
                "phone": self.phones,
                "name": self.names,
                "birth_date": self.birth_dates,
            }
        )

    def findings(self, body: str) -> set[str]:
        """Which kinds of raw personal value occur in ``body`` (a response body).

        Emails, phones as entered, full names and birth dates are looked for as
        substrings of the body's decoded text (JSON strings unescaped, so
        ``garc\\u00eda`` reads ``garcía``; CSV and other bodies as they are). Birth
        dates lie before the calendar the metrics cover (a test checks it), so no
        legitimate date collides. Phone digits as pii_scan compares them: the digits
        of a whole value, or a whole run of 7 digits or more.
        """
        leaves = json_leaves(body)
        text = ("\n".join(leaves) if leaves is not None else body).lower()
        found = self._needles.kinds_in(text)
        values = leaves if leaves is not None else re.split(r"[,\n]", body)
        digits = {re.sub(r"\D", "", value) for value in values}
        digits |= set(re.findall(r"\d{7,}", text))
        if digits & self.phone_digits:
            found.add("phone_digits")
        return found


def json_leaves(body: str) -> list[str] | None:
    """Every key, string and number of a JSON body; None if it is not JSON."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    leaves: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                leaves.append(str(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            leaves.append(str(value))

    walk(document)
    return leaves
