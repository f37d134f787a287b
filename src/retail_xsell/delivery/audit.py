"""The governed API's audit trail: one tamper-evident JSON Lines record per request.

Every request the API answers, allowed or denied, is written here *before* the
response is sent; if the record cannot be written the API fails closed (503). That
is why :meth:`AuditLog.append` raises :class:`AuditWriteError` for every failure,
validation included: the caller has one exception to turn into "no audit, no answer".

Record fields
-------------
The log requires only ``request_id`` (str), ``principal`` (str, or null for an
unauthenticated caller), ``endpoint`` (str, e.g. ``"GET /v1/meta"`` or
``"graphql:query"``) and ``status`` (HTTP status, int). The API writes these as well,
and the log checks their types when they are present, so that an access review can
trust them:

=====================  ===============================================================
``groups``             list of the principal's groups
``operation``          str: the REST operation or GraphQL operation name
``metrics``            list of metric names requested
``dimensions``         list of dimension names requested
``filters_requested``  list of ``{dimension, operator, values}`` the caller asked for
``filters_enforced``   list of filters the policy added (row-level security)
``masked``             list of dimension names whose values were masked
``suppressed_rows``    int: rows removed by small-cell suppression
``rows_returned``      int
``outcome``            ``"allowed"`` | ``"denied"`` | ``"error"``
``reason``             str or null: why a request was denied or failed
``latency_ms``         float
``publication_id``     str or null: the publication the answer came from
``sql_hash``           sha256 hex of the SQL run, or null
``client``             str or null: the client address or user agent
=====================  ===============================================================

Other fields are kept as given (JSON-serialisable values only; ``date``/``datetime``
become ISO-8601 strings and ``Decimal`` becomes a number). The log adds ``seq``
(1, 2, 3, ...), ``recorded_at`` (UTC, ``2024-05-01T12:00:00.123456Z``), ``prev_hash``
(the previous record's ``hash``; 64 zeros for the first) and ``hash``: the sha256 hex of
the record's canonical JSON (sorted keys, no spaces, UTF-8) without its ``hash``.

Concurrency and durability
--------------------------
Several worker processes, each with several threads, append to one file. An append
holds a process-local :class:`threading.Lock` and an exclusive :func:`fcntl.flock` on
the sidecar ``<log>.lock`` while it reads the last record (from the end of the file,
so an append costs the same on day 1 and day 1000), writes one line, ``fsync``\\ s it and
updates the head. Strings are JSON-escaped, so a value containing a newline cannot
forge a second record; files are split on ``\\n`` bytes only.

What the chain does and does not prove
--------------------------------------
:func:`verify` recomputes every hash and follows the chain, so an edited, removed,
inserted or reordered record, or a garbled line, is reported with its line number.
A chain alone cannot reveal records removed from the *end* of the file: what remains
is still a valid chain. Every append therefore also writes the head (last ``seq`` and
``hash``) to ``<log>.head``, atomically, inside the lock; :func:`verify` compares the
log's last record with it, and :meth:`AuditLog.append` refuses to extend a log that
does not match its head (so the next request cannot paper over a truncation). The head
may lag the log by exactly one record (a crash between the two writes); both accept
that. The hashes are not keyed: someone who can rewrite the log *and* the head can
forge a consistent history. Copy the head elsewhere (the SLO report, a ticket) when
the evidence must hold against the file's owner.

When an append refuses because the log and head disagree (or the last line is
incomplete after a crash), recovery is deliberate: move both files aside, keeping them
as evidence, and the next append starts a new chain.

A missing log is a *problem* for :func:`verify` (``ok`` is false, ``log_exists`` false):
a mistyped path must not read as "trail intact". An existing empty log is a problem
too, since the log only creates the file to write a record into it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "GENESIS_HASH",
    "AuditIntegrityError",
    "AuditLog",
    "AuditRecordError",
    "AuditWriteError",
    "VerifyResult",
    "access_review",
    "add_audit_arguments",
    "default_audit_path",
    "read_records",
    "record_hash",
    "render_access_review_markdown",
    "run_audit_command",
    "verify",
]

AUDIT_LOG_ENV = "RETAIL_XSELL_AUDIT_LOG"
DEFAULT_AUDIT_PATH = Path("build/audit/access.jsonl")
GENESIS_HASH = "0" * 64
OUTCOMES = ("allowed", "denied", "error")
# Fields the log sets itself; a caller supplying them would be forging the chain.
LOG_FIELDS = ("seq", "prev_hash", "hash", "recorded_at")
_TAIL_CHUNK = 8192
_MAX_DEPTH = 32


class AuditWriteError(Exception):
    """The audit record was not written: the API must not send its answer (fail closed)."""


class AuditRecordError(AuditWriteError):
    """The record itself is unacceptable (a missing field or a value JSON cannot hold).

    A subclass so tests and logs can tell a caller's bug from an outage; the API
    treats both the same way.
    """


class AuditIntegrityError(AuditWriteError):
    """The log on disk does not match its head: appending would hide the damage."""


@dataclass
class VerifyResult:
    """What :func:`verify` found. ``log_exists`` tells a missing log from a damaged one."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    log_exists: bool = True


def default_audit_path() -> Path:
    """Where the API writes its audit log: ``$RETAIL_XSELL_AUDIT_LOG``, else
    ``build/audit/access.jsonl`` under the current directory.

    Made absolute at call time, so a later ``chdir`` cannot split one log into two.
    """
    from retail_xsell import settings

    return settings.audit_log_path().absolute()


def canonical_json(value: Any) -> str:
    """The one serialisation hashes are computed over (and lines are written in)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the record's canonical JSON without its ``hash`` field."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


# --- validation ---------------------------------------------------------------------


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as plain JSON types; raises naming ``where`` for anything else.

    Written out rather than left to ``json.dumps(default=...)`` because the error must
    name the field (``filters_requested[0].values[2]``), which a default hook never sees.
    """
    if depth > _MAX_DEPTH:
        raise AuditRecordError(f"audit record field {where!r} is nested too deeply")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AuditRecordError(
                f"audit record field {where!r} is not valid UTF-8 text: {exc.reason}"
            ) from None
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        if not math.isfinite(number):
            raise AuditRecordError(
                f"audit record field {where!r} is {value!r}; JSON has no NaN or infinity"
            )
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        return number
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditRecordError(f"audit record field {where!r} has a non-string key {key!r}")
            out[key] = _plain(item, f"{where}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise AuditRecordError(
        f"audit record field {where!r} has a value of type {type(value).__name__}, "
        "which JSON cannot hold (use str, number, bool, null, list, dict, date or Decimal)"
    )


def _check_fields(record: Mapping[str, Any]) -> None:
    """Type-check the fields an access review relies on, so it can trust them later."""
    for name in ("request_id", "principal", "endpoint", "status"):
        if name not in record:
            raise AuditRecordError(f"audit record is missing the required field {name!r}")
    for name in LOG_FIELDS:
        if name in record:
            raise AuditRecordError(f"audit record field {name!r} is set by the log, not the caller")

    def fail(name: str, expected: str) -> None:
        raise AuditRecordError(
            f"audit record field {name!r} must be {expected}, got {record[name]!r}"
        )

    for name in ("request_id", "endpoint"):
        if not isinstance(record[name], str) or not record[name]:
            fail(name, "a non-empty string")
    for name in ("principal", "operation", "reason", "publication_id", "client"):
        if name in record and record[name] is not None and not isinstance(record[name], str):
            fail(name, "a string or null")
    status = record["status"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        fail("status", "an HTTP status code (int 100-599)")
    lists = ("groups", "metrics", "dimensions", "filters_requested", "filters_enforced", "masked")
    for name in lists:
        if name in record and not isinstance(record[name], list | tuple):
            fail(name, "a list")
    for name in ("suppressed_rows", "rows_returned"):
        value = record.get(name)
        if name in record and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            fail(name, "a non-negative int")
    if "outcome" in record and record["outcome"] not in OUTCOMES:
        fail("outcome", " or ".join(repr(o) for o in OUTCOMES))
    if "latency_ms" in record:
        latency = record["latency_ms"]
        if isinstance(latency, bool) or not isinstance(latency, int | float | Decimal):
            fail("latency_ms", "a number")
    sql_hash = record.get("sql_hash")
    if sql_hash is not None and not (
        isinstance(sql_hash, str)
        and len(sql_hash) == 64
        and all(c in "0123456789abcdef" for c in sql_hash)
    ):
        fail("sql_hash", "a lowercase sha256 hex digest or null")


# --- locking ------------------------------------------------------------------------

_registry_lock = threading.Lock()
_path_locks: dict[str, threading.Lock] = {}


def _thread_lock(path: Path) -> threading.Lock:
    """One lock per log file per process, shared by every AuditLog on that file (the REST
    and GraphQL routers may each hold one)."""
    with _registry_lock:
        return _path_locks.setdefault(str(path), threading.Lock())


def _reset_locks_after_fork() -> None:
    # A fork while another thread held a lock would leave the child's copy locked forever.
    global _registry_lock
    _registry_lock = threading.Lock()
    _path_locks.clear()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


@contextlib.contextmanager
def _shared_snapshot_lock(path: Path) -> Iterator[None]:
    """Hold a shared flock while a reader notes the log size and head.

    Readers never create the lock file (a steward may read a copied log in a read-only
    place); without one there is no writer to wait for.
    """
    try:
        fd = os.open(_sidecar(path, ".lock"), os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


# --- the writer ---------------------------------------------------------------------


@dataclass(frozen=True)
class _ChainPoint:
    seq: int
    hash: str
    prev_hash: str = GENESIS_HASH


_START = _ChainPoint(0, GENESIS_HASH)


def _head_matches(last: _ChainPoint, head: _ChainPoint) -> bool:
    """The log's last record is the head, or one past it (crash between the two writes)."""
    if (last.seq, last.hash) == (head.seq, head.hash):
        return True
    return last.seq == head.seq + 1 and last.prev_hash == head.hash


def _parse_head(raw: bytes, head_path: Path) -> _ChainPoint:
    try:
        data = json.loads(raw)
        seq, digest = data["seq"], data["hash"]
    except (ValueError, TypeError, KeyError):
        raise ValueError(f"head file {head_path} is not a valid head record") from None
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
        raise ValueError(f"head file {head_path} is not a valid head record")
    return _ChainPoint(seq, digest)


class AuditLog:
    """Appends audit records to one JSON Lines file, safely across processes and threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = (Path(path) if path is not None else default_audit_path()).absolute()
        self.lock_path = _sidecar(self.path, ".lock")
        self.head_path = _sidecar(self.path, ".head")

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``record`` durably and return it as stored (with seq, hashes, time).

        Returns only after the line is fsync'd, so the caller may then send its response.
        """
        if not isinstance(record, Mapping):
            raise AuditRecordError(f"audit record must be a mapping, got {type(record).__name__}")
        _check_fields(record)
        body = {key: _plain(value, key) for key, value in _plain_keys(record).items()}
        # Looked up on every call, not kept: after a fork the child has fresh locks.
        with _thread_lock(self.path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o640)
            except OSError as exc:
                raise AuditWriteError(f"cannot open audit log {self.path}: {exc}") from exc
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                return self._append_locked(body)
            except OSError as exc:
                raise AuditWriteError(f"cannot write audit log {self.path}: {exc}") from exc
            finally:
                os.close(lock_fd)  # closing releases the flock

    def _append_locked(self, body: dict[str, Any]) -> dict[str, Any]:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            if created:
                _fsync_dir(self.path.parent)
            size = os.fstat(fd).st_size
            last = self._last_point(fd, size)
            head = self._read_head()
            if not _head_matches(last, head):
                raise AuditIntegrityError(
                    f"audit log {self.path} ends at seq {last.seq} but its head "
                    f"{self.head_path} records seq {head.seq} (hash {head.hash[:12]}...): "
                    "the log was truncated, replaced or edited; run `retail-xsell audit "
                    "verify` and move both files aside to start a new chain"
                )
            stored = dict(body)
            stored["seq"] = last.seq + 1
            stored["prev_hash"] = last.hash
            stored["recorded_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            stored["hash"] = record_hash(stored)
            line = (canonical_json(stored) + "\n").encode("utf-8")
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                # Leave no half line behind: it would make every later append refuse.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        try:
            self._write_head(stored)
        except OSError as exc:
            raise AuditWriteError(
                f"audit record seq {stored['seq']} was written to {self.path} but its head "
                f"file {self.head_path} could not be updated: {exc}"
            ) from exc
        return json.loads(line)

    def _last_point(self, fd: int, size: int) -> _ChainPoint:
        """The last record's seq and hashes, read backwards from the end of the file."""
        if size == 0:
            return _START
        if os.pread(fd, 1, size - 1) != b"\n":
            raise AuditIntegrityError(
                f"the last line of audit log {self.path} is incomplete (an interrupted "
                "write); run `retail-xsell audit verify` and move the log aside"
            )
        end = size - 1
        chunks: list[bytes] = []
        position = end
        while position > 0:
            start = max(0, position - _TAIL_CHUNK)
            chunk = os.pread(fd, position - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                chunks.append(chunk[newline + 1 :])
                break
            chunks.append(chunk)
            position = start
        raw = b"".join(reversed(chunks))
        try:
            last = json.loads(raw)
            point = _ChainPoint(last["seq"], last["hash"], last["prev_hash"])
        except (ValueError, TypeError, KeyError):
            raise AuditIntegrityError(
                f"the last line of audit log {self.path} is not an audit record; "
                "run `retail-xsell audit verify`"
            ) from None
        if record_hash(last) != point.hash:
            raise AuditIntegrityError(
                f"the last record of audit log {self.path} (seq {point.seq}) does not match "
                "its hash: it was edited; run `retail-xsell audit verify`"
            )
        return point

    def _read_head(self) -> _ChainPoint:
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return _START
        try:
            return _parse_head(raw, self.head_path)
        except ValueError as exc:
            raise AuditIntegrityError(str(exc)) from None

    def _write_head(self, stored: Mapping[str, Any]) -> None:
        """Replace the head atomically: a reader sees the old head or the new, never half."""
        head = {"seq": stored["seq"], "hash": stored["hash"], "recorded_at": stored["recorded_at"]}
        temporary = _sidecar(self.head_path, f".tmp{os.getpid()}.{threading.get_ident()}")
        try:
            with open(temporary, "wb") as handle:
                handle.write((canonical_json(head) + "\n").encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.head_path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _fsync_dir(self.head_path.parent)


def _plain_keys(record: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in record:
        if not isinstance(key, str):
            raise AuditRecordError(f"audit record has a non-string field name {key!r}")
    return record


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a created or renamed file's directory entry durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading and verifying ----------------------------------------------------------


def _snapshot(path: Path) -> tuple[int, bytes | None]:
    """The log's size and head bytes at one instant, between two appends.

    Taken under a shared lock and then released, so a long verify never stalls the API:
    appends only add bytes past the noted size.
    """
    head_path = _sidecar(path, ".head")
    with _shared_snapshot_lock(path):
        size = path.stat().st_size
        try:
            head = head_path.read_bytes()
        except FileNotFoundError:
            head = None
    return size, head


def _lines(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for the first ``size`` bytes, split on ``\\n`` only."""
    consumed = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if consumed >= size:
                return
            line = line[: size - consumed]
            consumed += len(line)
            yield number, line


def verify(path: Path) -> VerifyResult:
    """Recompute every hash, follow the chain and compare the end with the head file."""
    path = Path(path)
    head_path = _sidecar(path, ".head")
    try:
        size, head_raw = _snapshot(path)
    except FileNotFoundError:
        absent = [f"no audit log at {path}"]
        if head_path.exists():
            absent.append(f"head file {head_path} exists, so the log was deleted or moved")
        return VerifyResult(ok=False, records=0, problems=absent, log_exists=False)
    except OSError as exc:
        return VerifyResult(ok=False, records=0, problems=[f"cannot read audit log {path}: {exc}"])

    problems: list[str] = []
    records = unreadable = 0
    previous: _ChainPoint | None = _START
    previous_line = 0
    seen: dict[int, int] = {}  # seq -> first line it appeared on
    last: _ChainPoint = _START
    try:
        for number, raw in _lines(path, size):
            where = f"line {number}"
            if not raw.endswith(b"\n"):
                problems.append(f"{where}: incomplete last line (no newline): a truncated write")
            try:
                record = json.loads(raw)
            except ValueError as exc:
                detail = (
                    f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
                    if isinstance(exc, json.JSONDecodeError)
                    else "not UTF-8"
                )
                problems.append(f"{where}: not valid JSON ({detail}): a garbled or cut line")
                unreadable += 1
                previous = None  # the chain cannot be followed across an unreadable line
                continue
            if not isinstance(record, dict):
                problems.append(f"{where}: not a JSON object")
                unreadable += 1
                previous = None
                continue
            records += 1
            seq, digest, prev_hash = record.get("seq"), record.get("hash"), record.get("prev_hash")
            if (
                not isinstance(seq, int)
                or isinstance(seq, bool)
                or not isinstance(digest, str)
                or not isinstance(prev_hash, str)
            ):
                problems.append(f"{where}: not an audit record (no seq, hash or prev_hash)")
                unreadable += 1
                previous = None
                continue
            where = f"line {number} (seq {seq})"
            if record_hash(record) != digest:
                problems.append(f"{where}: hash mismatch: the record was edited after writing")
            if seq in seen:
                problems.append(f"{where}: seq {seq} already appeared on line {seen[seq]}")
            else:
                seen[seq] = number
            if previous is not None:
                problems.extend(_link_problems(where, seq, prev_hash, previous, previous_line))
            previous = last = _ChainPoint(seq, digest, prev_hash)
            previous_line = number
    except OSError as exc:
        problems.append(f"cannot read audit log {path}: {exc}")
        return VerifyResult(ok=False, records=records, problems=problems)

    if seen:
        missing = sorted(set(range(1, max(seen) + 1)) - set(seen))
        if missing:
            why = "removed, or on the unreadable lines above" if unreadable else "removed"
            problems.append(f"records missing ({why}): {_ranges(missing)}")
    if records == 0 and not problems:
        problems.append(f"audit log {path} is empty")
    problems.extend(_head_problems(path, head_path, head_raw, last))
    return VerifyResult(ok=not problems, records=records, problems=problems)


def _link_problems(
    where: str, seq: int, prev_hash: str, previous: _ChainPoint, previous_line: int
) -> list[str]:
    if previous.seq == 0:
        if seq != 1:
            return [f"{where}: the log starts at seq {seq}, not 1: earlier records removed"]
        if prev_hash != GENESIS_HASH:
            return [f"{where}: the first record's prev_hash is not the genesis hash"]
        return []
    after = f"after line {previous_line} (seq {previous.seq})"
    if seq <= previous.seq:
        return [f"{where}: comes {after}: records reordered or duplicated"]
    if seq > previous.seq + 1:
        return [f"{where}: comes {after}: seq jumps, records removed or reordered"]
    if prev_hash != previous.hash:
        return [
            f"{where}: prev_hash does not match the hash of the record {after}: "
            "a record was replaced, removed or reordered"
        ]
    return []


def _head_problems(
    path: Path, head_path: Path, head_raw: bytes | None, last: _ChainPoint
) -> list[str]:
    if head_raw is None:
        if last.seq > 1:
            return [f"head file {head_path} is missing: cannot check {path} for truncation"]
        return []
    try:
        head = _parse_head(head_raw, head_path)
    except ValueError as exc:
        return [str(exc)]
    if _head_matches(last, head):
        return []
    if head.seq > last.seq:
        return [
            f"the log ends at seq {last.seq} but its head records seq {head.seq}: "
            f"records {_ranges(list(range(last.seq + 1, head.seq + 1)))} were removed "
            "from the end (truncated)"
        ]
    return [
        f"the log's last record (seq {last.seq}) does not match the head "
        f"(seq {head.seq}, hash {head.hash[:12]}...): the end of the log was rewritten"
    ]


def _ranges(numbers: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``seq 3-5, 9``: short even when a thousand records are gone."""
    parts: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if number is not None:
            start = prev = number
    return "seq " + ", ".join(parts)


def _as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC, the zone every record is written in."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _recorded_at(record: Mapping[str, Any]) -> datetime | None:
    value = record.get("recorded_at")
    if not isinstance(value, str):
        return None
    try:
        return _as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def read_records(
    path: Path,
    *,
    principal: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    metric: str | None = None,
    endpoint: str | None = None,
) -> list[dict[str, Any]]:
    """The records matching every given filter, in log order: "who accessed what".

    ``since`` is inclusive and ``until`` exclusive (so consecutive windows do not
    overlap); naive times are UTC. ``metric`` matches records whose ``metrics`` list
    contains it; the other filters are exact. This is the question-answering view, not
    the integrity check: lines that are not JSON objects are skipped (``verify`` reports
    them). Raises ``FileNotFoundError`` when there is no log at ``path``.
    """
    path = Path(path)
    size, _ = _snapshot(path)
    low = _as_utc(since) if since is not None else None
    high = _as_utc(until) if until is not None else None
    found: list[dict[str, Any]] = []
    for _, raw in _lines(path, size):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if principal is not None and record.get("principal") != principal:
            continue
        if outcome is not None and record.get("outcome") != outcome:
            continue
        if endpoint is not None and record.get("endpoint") != endpoint:
            continue
        if metric is not None:
            metrics = record.get("metrics")
            if not isinstance(metrics, list) or metric not in metrics:
                continue
        if low is not None or high is not None:
            moment = _recorded_at(record)
            if moment is None or (low is not None and moment < low):
                continue
            if high is not None and moment >= high:
                continue
        found.append(record)
    return found


# --- access review ------------------------------------------------------------------

UNAUTHENTICATED = "(unauthenticated)"


def _count_names(counter: Counter[str], key: str) -> list[dict[str, Any]]:
    """Most used first, then by name, so the review reads the same on every run."""
    return [
        {key: name, "count": count}
        for name, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    ]


def access_review(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per principal: what they asked for, what they got and what was refused.

    ``metrics_used`` and ``dimensions_used`` count *allowed* requests only (what the
    principal actually received; a name counts once per request); refused attempts are
    in ``denials``, grouped by endpoint and reason. UnauthenticatedError requests are one
    entry with ``principal`` null, listed last.
    """
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for record in records:
        name = record.get("principal")
        groups.setdefault(name if isinstance(name, str) else None, []).append(record)

    review: list[dict[str, Any]] = []
    for name in sorted(groups, key=lambda n: (n is None, n or "")):
        mine = groups[name]
        outcomes = Counter(record.get("outcome") for record in mine)
        metrics: Counter[str] = Counter()
        dimensions: Counter[str] = Counter()
        denials: Counter[tuple[str, str]] = Counter()
        times: list[tuple[datetime, str]] = []
        rows = suppressed = 0
        for record in mine:
            moment = _recorded_at(record)
            if moment is not None:
                times.append((moment, str(record["recorded_at"])))
            if record.get("outcome") == "allowed":
                metrics.update(set(_names(record.get("metrics"))))
                dimensions.update(set(_names(record.get("dimensions"))))
            elif record.get("outcome") == "denied":
                reason = record.get("reason")
                denial = (str(record.get("endpoint")), reason if isinstance(reason, str) else "")
                denials[denial] += 1
            rows += _count(record.get("rows_returned"))
            suppressed += _count(record.get("suppressed_rows"))
        times.sort()
        review.append(
            {
                "principal": name,
                "requests": len(mine),
                "allowed": outcomes["allowed"],
                "denied": outcomes["denied"],
                "errors": outcomes["error"],
                "first_access": times[0][1] if times else None,
                "last_access": times[-1][1] if times else None,
                "metrics_used": _count_names(metrics, "metric"),
                "dimensions_used": _count_names(dimensions, "dimension"),
                "denials": [
                    {"endpoint": endpoint, "reason": reason or None, "count": count}
                    for (endpoint, reason), count in sorted(
                        denials.items(), key=lambda item: (-item[1], item[0])
                    )
                ],
                "rows_returned": rows,
                "suppressed_rows": suppressed,
            }
        )
    return review


def _names(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, newlines flattened."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _uses(entries: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{entry[key]} ({entry['count']})" for entry in entries) or "-"


def render_access_review_markdown(review: Sequence[Mapping[str, Any]]) -> str:
    """The review as two markdown tables (access per principal, then denials), for the
    SLO report or a steward's ticket."""
    if not review:
        return "## Access review\n\nNo requests in the audit log.\n"
    lines = [
        "## Access review",
        "",
        "| Principal | Requests | Allowed | Denied | Errors | First access | Last access "
        "| Rows returned | Suppressed rows | Metrics used | Dimensions used |",
        "|---|--:|--:|--:|--:|---|---|--:|--:|---|---|",
    ]
    for entry in review:
        cells = [
            entry["principal"] or UNAUTHENTICATED,
            entry["requests"],
            entry["allowed"],
            entry["denied"],
            entry["errors"],
            entry["first_access"] or "-",
            entry["last_access"] or "-",
            entry["rows_returned"],
            entry["suppressed_rows"],
            _uses(entry["metrics_used"], "metric"),
            _uses(entry["dimensions_used"], "dimension"),
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    denials = [(entry["principal"], denial) for entry in review for denial in entry["denials"]]
    lines += ["", "### Denials", ""]
    if not denials:
        lines.append("No denied requests.")
    else:
        lines += ["| Principal | Endpoint | Reason | Count |", "|---|---|---|--:|"]
        for name, denial in denials:
            cells = [name or UNAUTHENTICATED, denial["endpoint"], denial["reason"] or "-"]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + f" | {denial['count']} |")
    return "\n".join(lines) + "\n"


# --- command line -------------------------------------------------------------------


def _add_list_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The list filters, on `audit` itself (list is the default) and on `audit list`.

    The subparser's copies default to SUPPRESS: argparse copies a subparser's defaults
    over the parent's values, which would drop `audit --principal P list`'s filter.
    """
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--principal", default=default, help="only this principal's requests")
    parser.add_argument(
        "--since", default=default, metavar="ISO", help="from this UTC time on (inclusive)"
    )
    parser.add_argument(
        "--until", default=default, metavar="ISO", help="before this UTC time (exclusive)"
    )
    parser.add_argument("--outcome", default=default, choices=OUTCOMES)
    parser.add_argument("--metric", default=default, help="only requests for this metric")
    parser.add_argument("--endpoint", default=default, help='e.g. "GET /v1/meta"')


def _add_common_options(
    parser: argparse.ArgumentParser, *, suppress: bool, json_flag: bool
) -> None:
    parser.add_argument(
        "--log",
        default=argparse.SUPPRESS if suppress else None,
        metavar="PATH",
        help=f"audit log (default: ${AUDIT_LOG_ENV} or {DEFAULT_AUDIT_PATH})",
    )
    if json_flag:
        parser.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS if suppress else False,
            help="print JSON instead of a table",
        )


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `list` (the default), `verify` and `review` to the `retail-xsell audit` parser."""
    _add_common_options(parser, suppress=False, json_flag=True)
    _add_list_options(parser, suppress=False)
    parser.set_defaults(audit_action="list")
    actions = parser.add_subparsers(dest="audit_action", required=False, metavar="ACTION")
    listing = actions.add_parser("list", help="list audit records (the default)")
    _add_common_options(listing, suppress=True, json_flag=True)
    _add_list_options(listing, suppress=True)
    checking = actions.add_parser("verify", help="check the chain and the head; exit 1 if broken")
    _add_common_options(checking, suppress=True, json_flag=False)
    reviewing = actions.add_parser("review", help="access review per principal (markdown)")
    _add_common_options(reviewing, suppress=True, json_flag=True)


class _UsageError(Exception):
    pass


def _parse_time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return _as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise _UsageError(
            f"{option}: cannot read {value!r} as an ISO-8601 date or time "
            "(e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None


def _short_time(value: Any) -> str:
    text = str(value) if value is not None else "-"
    return text.replace("T", " ")[:19] if len(text) >= 19 else text


def _render_list(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no matching audit records"
    header = ("time (UTC)", "principal", "endpoint", "status", "outcome", "metrics", "rows")
    rows = [
        (
            _short_time(record.get("recorded_at")),
            str(record.get("principal") or "-"),
            str(record.get("endpoint", "-")),
            str(record.get("status", "-")),
            str(record.get("outcome") or "-"),
            ",".join(_names(record.get("metrics"))) or "-",
            str(record["rows_returned"]) if "rows_returned" in record else "-",
        )
        for record in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def run_audit_command(args: argparse.Namespace) -> int:
    """Run `retail-xsell audit ...`: 0 done, 1 the log failed verification, 2 bad input."""
    path = Path(args.log).absolute() if getattr(args, "log", None) else default_audit_path()
    action = getattr(args, "audit_action", None) or "list"
    try:
        if action == "verify":
            result = verify(path)
            if result.ok:
                print(f"audit log {path}: {result.records} records, chain intact")
                return 0
            print(f"audit log {path}: {result.records} records, {len(result.problems)} problems:")
            for problem in result.problems:
                print(f"  - {problem}")
            return 1
        if action == "review":
            review = access_review(read_records(path))
            if getattr(args, "json", False):
                print(json.dumps(review, indent=2, ensure_ascii=False))
            else:
                print(render_access_review_markdown(review), end="")
            return 0
        if action != "list":
            raise _UsageError(f"unknown audit action {action!r}")
        since = _parse_time("--since", getattr(args, "since", None))
        until = _parse_time("--until", getattr(args, "until", None))
        records = read_records(
            path,
            principal=getattr(args, "principal", None),
            since=since,
            until=until,
            outcome=getattr(args, "outcome", None),
            metric=getattr(args, "metric", None),
            endpoint=getattr(args, "endpoint", None),
        )
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"error: no audit log at {path}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read audit log {path}: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        print(_render_list(records))
    return 0
