"""The API's audit trail: every record lands, in one chain, and damage to it shows.

Tamper tests edit the file the way someone with shell access would (rewrite, drop or
swap lines) and then ask the public `verify`, as a steward would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import re
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from retail_xsell.delivery.audit import (
    GENESIS_HASH,
    AuditIntegrityError,
    AuditLog,
    AuditRecordError,
    AuditWriteError,
    access_review,
    add_audit_arguments,
    default_audit_path,
    read_records,
    render_access_review_markdown,
    run_audit_command,
    verify,
)


def request(request_id: str = "r1", **fields: Any) -> dict[str, Any]:
    """A record as the API writes it for an allowed metrics query."""
    record: dict[str, Any] = {
        "request_id": request_id,
        "principal": "alice",
        "groups": ["analysts"],
        "endpoint": "POST /v1/query",
        "operation": "query_metrics",
        "metrics": ["revenue"],
        "dimensions": ["region"],
        "filters_requested": [{"dimension": "region", "operator": "in", "values": ["north"]}],
        "filters_enforced": [],
        "masked": [],
        "suppressed_rows": 0,
        "rows_returned": 3,
        "status": 200,
        "outcome": "allowed",
        "reason": None,
        "latency_ms": 12.5,
        "publication_id": "pub-1",
        "sql_hash": "ab" * 32,
        "client": "127.0.0.1",
    }
    record.update(fields)
    return record


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "access.jsonl"


def write_log(path: Path, count: int) -> list[dict[str, Any]]:
    log = AuditLog(path)
    return [log.append(request(f"r{i}")) for i in range(1, count + 1)]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def problems_text(path: Path) -> str:
    result = verify(path)
    assert not result.ok
    return "\n".join(result.problems)


# --- writing --------------------------------------------------------------------------


def test_appended_records_verify_intact_and_parent_dirs_are_created(log_path: Path) -> None:
    write_log(log_path, 3)

    result = verify(log_path)

    assert result.ok, result.problems
    assert result.records == 3
    assert result.problems == []
    assert len(lines(log_path)) == 3


def test_each_record_chains_to_the_one_before_by_sha256_of_its_canonical_json(
    log_path: Path,
) -> None:
    stored = write_log(log_path, 3)

    assert [r["seq"] for r in stored] == [1, 2, 3]
    assert stored[0]["prev_hash"] == GENESIS_HASH == "0" * 64
    assert stored[1]["prev_hash"] == stored[0]["hash"]
    assert stored[2]["prev_hash"] == stored[1]["hash"]
    for record, line in zip(stored, lines(log_path), strict=True):
        assert json.loads(line) == record
        body = {k: v for k, v in record.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert record["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["recorded_at"])
    head = json.loads((log_path.parent / "access.jsonl.head").read_text())
    assert (head["seq"], head["hash"]) == (3, stored[2]["hash"])


def test_default_path_is_the_env_var_else_build_audit_under_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETAIL_XSELL_AUDIT_LOG", raising=False)
    assert default_audit_path() == tmp_path / "build" / "audit" / "access.jsonl"

    monkeypatch.setenv("RETAIL_XSELL_AUDIT_LOG", str(tmp_path / "elsewhere.jsonl"))
    assert default_audit_path() == tmp_path / "elsewhere.jsonl"
    assert AuditLog().path == tmp_path / "elsewhere.jsonl"


def test_dates_datetimes_and_decimals_are_stored_as_json_and_still_verify(
    log_path: Path,
) -> None:
    stored = AuditLog(log_path).append(
        request(
            as_of_date=date(2024, 5, 1),
            asked_at=datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            latency_ms=Decimal("12.25"),
            budget=Decimal("100"),
        )
    )

    assert stored["as_of_date"] == "2024-05-01"
    assert stored["asked_at"] == "2024-05-01T12:00:00Z"
    assert stored["latency_ms"] == 12.25
    assert stored["budget"] == 100
    assert verify(log_path).ok


def test_a_record_longer_than_the_tail_read_chunk_still_chains(log_path: Path) -> None:
    log = AuditLog(log_path)
    first = log.append(request("long", reason="x" * 50_000))
    second = log.append(request("after"))

    assert second["prev_hash"] == first["hash"]
    assert verify(log_path).ok


@pytest.mark.parametrize("missing", ["request_id", "principal", "endpoint", "status"])
def test_a_record_without_a_required_field_is_refused(log_path: Path, missing: str) -> None:
    record = request()
    del record[missing]

    with pytest.raises(AuditWriteError, match=missing):
        AuditLog(log_path).append(record)
    assert not log_path.exists()


def test_status_must_be_an_http_status_int(log_path: Path) -> None:
    with pytest.raises(AuditRecordError, match="status"):
        AuditLog(log_path).append(request(status="200"))


def test_the_caller_cannot_supply_the_chain_fields(log_path: Path) -> None:
    with pytest.raises(AuditRecordError, match="seq"):
        AuditLog(log_path).append(request(seq=1))


def test_a_value_json_cannot_hold_is_refused_naming_the_field(log_path: Path) -> None:
    filters = [{"dimension": "region", "operator": "in", "values": ["north", object()]}]

    with pytest.raises(AuditWriteError, match=re.escape("filters_requested[0].values[1]")):
        AuditLog(log_path).append(request(filters_requested=filters))
    with pytest.raises(AuditWriteError, match="latency_ms"):
        AuditLog(log_path).append(request(latency_ms=float("nan")))
    assert not log_path.exists()


def test_an_unwritable_path_raises_audit_write_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log's folder should be")
    path = blocker / "access.jsonl"

    with pytest.raises(AuditWriteError, match=re.escape(str(path))):
        AuditLog(path).append(request())


def test_a_log_path_that_is_a_directory_raises_audit_write_error(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    path.mkdir()

    with pytest.raises(AuditWriteError, match=re.escape(str(path))):
        AuditLog(path).append(request())


def _append_from_two_threads(path: str, worker: int, per_thread: int, start: Any) -> None:
    """One API worker process: two threads appending at once, as uvicorn's would."""
    log = AuditLog(Path(path))
    failures: list[BaseException] = []

    def run(thread: int) -> None:
        try:
            for i in range(per_thread):
                log.append(request(f"w{worker}-t{thread}-{i}"))
        except BaseException as exc:  # reported through the exit code
            failures.append(exc)

    start.wait()
    threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def test_four_processes_with_two_threads_each_append_one_unbroken_chain(log_path: Path) -> None:
    # spawn, not fork: a test session has threads (DuckDB, MetricFlow) whose locks a
    # forked child would inherit held.
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_append_from_two_threads, args=(str(log_path), w, 50, start))
        for w in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]

    result = verify(log_path)
    assert result.ok, result.problems[:5]
    assert result.records == 400
    records = read_records(log_path)
    assert [r["seq"] for r in records] == list(range(1, 401))
    expected_ids = {f"w{w}-t{t}-{i}" for w in range(4) for t in range(2) for i in range(50)}
    assert sorted(r["request_id"] for r in records) == sorted(expected_ids)


# --- tampering ------------------------------------------------------------------------


def test_an_edited_record_is_reported_by_seq_and_line(log_path: Path) -> None:
    write_log(log_path, 3)
    text = lines(log_path)
    edited = json.loads(text[1])
    edited["rows_returned"] = 0
    text[1] = json.dumps(edited) + "\n"
    log_path.write_text("".join(text))

    result = verify(log_path)

    assert not result.ok
    assert len(result.problems) == 1
    assert "line 2 (seq 2)" in result.problems[0]
    assert "hash mismatch" in result.problems[0]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(log_path: Path) -> None:
    write_log(log_path, 3)
    text = lines(log_path)
    edited = json.loads(text[1])
    edited["principal"] = "mallory"
    body = {k: v for k, v in edited.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    edited["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    text[1] = json.dumps(edited) + "\n"
    log_path.write_text("".join(text))

    problems = problems_text(log_path)

    assert "line 3 (seq 3)" in problems
    assert "prev_hash" in problems


def test_a_record_removed_from_the_middle_is_reported(log_path: Path) -> None:
    write_log(log_path, 5)
    text = lines(log_path)
    del text[2]
    log_path.write_text("".join(text))

    problems = problems_text(log_path)

    assert "line 3 (seq 4)" in problems
    assert "records missing (removed): seq 3" in problems


def test_reordered_records_are_reported(log_path: Path) -> None:
    write_log(log_path, 4)
    text = lines(log_path)
    text[1], text[2] = text[2], text[1]
    log_path.write_text("".join(text))

    problems = problems_text(log_path)

    assert "line 3 (seq 2)" in problems
    assert "reordered" in problems
    assert "missing" not in problems  # every record is still there, just out of order


def test_records_removed_from_the_end_are_caught_by_the_head(log_path: Path) -> None:
    write_log(log_path, 5)
    text = lines(log_path)
    log_path.write_text("".join(text[:3]))

    problems = problems_text(log_path)

    assert "ends at seq 3 but its head records seq 5" in problems
    assert "seq 4-5" in problems
    assert "truncated" in problems


def test_appending_to_a_truncated_log_is_refused_so_the_gap_stays_visible(
    log_path: Path,
) -> None:
    write_log(log_path, 5)
    log_path.write_text("".join(lines(log_path)[:3]))
    before = log_path.read_bytes()

    with pytest.raises(AuditIntegrityError, match=re.escape(str(log_path))):
        AuditLog(log_path).append(request("after-truncation"))

    assert log_path.read_bytes() == before
    assert "truncated" in problems_text(log_path)


def test_a_head_one_record_behind_after_a_crash_is_accepted(log_path: Path) -> None:
    stored = write_log(log_path, 3)
    head_path = log_path.parent / "access.jsonl.head"
    head_path.write_text(json.dumps({"seq": 2, "hash": stored[1]["hash"]}))

    assert verify(log_path).ok
    fourth = AuditLog(log_path).append(request("r4"))
    assert fourth["seq"] == 4
    assert verify(log_path).ok


def test_a_garbled_line_is_reported_with_its_line_number(log_path: Path) -> None:
    write_log(log_path, 3)
    text = lines(log_path)
    text[1] = text[1][:40] + "\n"
    log_path.write_text("".join(text))

    problems = problems_text(log_path)

    assert "line 2: not valid JSON" in problems


def test_a_cut_last_line_is_reported_and_blocks_further_appends(log_path: Path) -> None:
    write_log(log_path, 3)
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-30])

    problems = problems_text(log_path)
    assert "line 3: incomplete last line" in problems
    assert "ends at seq 2 but its head records seq 3" in problems
    with pytest.raises(AuditIntegrityError, match="incomplete"):
        AuditLog(log_path).append(request("r4"))


def test_a_missing_log_is_a_problem_distinguishable_from_damage(log_path: Path) -> None:
    result = verify(log_path)

    assert not result.ok
    assert result.log_exists is False
    assert result.records == 0
    assert result.problems == [f"no audit log at {log_path}"]


def test_an_empty_log_is_a_problem(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"")

    result = verify(log_path)

    assert not result.ok
    assert result.log_exists is True
    assert result.problems == [f"audit log {log_path} is empty"]


# --- reading ----------------------------------------------------------------------------


def test_read_records_filters_by_principal_outcome_metric_endpoint_and_time(
    log_path: Path,
) -> None:
    log = AuditLog(log_path)
    log.append(request("a1", metrics=["revenue", "orders"]))
    second = log.append(request("b1", principal="bob", metrics=["orders"]))
    log.append(
        request("a2", outcome="denied", status=403, reason="metric margin not granted", metrics=[])
    )
    log.append(request("anon", principal=None, endpoint="GET /v1/meta", status=401))
    when = datetime.fromisoformat(second["recorded_at"])

    def ids(**filters: Any) -> list[str]:
        return [r["request_id"] for r in read_records(log_path, **filters)]

    assert ids() == ["a1", "b1", "a2", "anon"]
    assert ids(principal="alice") == ["a1", "a2"]
    assert ids(outcome="denied") == ["a2"]
    assert ids(metric="orders") == ["a1", "b1"]
    assert ids(endpoint="GET /v1/meta") == ["anon"]
    assert ids(since=when) == ["b1", "a2", "anon"]  # since is inclusive
    assert ids(until=when) == ["a1"]  # until is exclusive
    assert ids(since=when, until=when + timedelta(microseconds=1)) == ["b1"]
    assert ids(principal="alice", metric="orders") == ["a1"]


def test_read_records_of_a_missing_log_raises_file_not_found(log_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_records(log_path)


# --- access review ----------------------------------------------------------------------

REVIEW_RECORDS: list[dict[str, Any]] = [
    {
        "principal": "alice",
        "endpoint": "POST /v1/query",
        "outcome": "allowed",
        "status": 200,
        "metrics": ["revenue", "orders", "revenue"],
        "dimensions": ["region"],
        "rows_returned": 10,
        "suppressed_rows": 0,
        "recorded_at": "2024-05-01T09:00:00.000000Z",
    },
    {
        "principal": "alice",
        "endpoint": "POST /v1/query",
        "outcome": "allowed",
        "status": 200,
        "metrics": ["revenue"],
        "dimensions": ["region", "channel"],
        "rows_returned": 5,
        "suppressed_rows": 2,
        "recorded_at": "2024-05-01T10:00:00.000000Z",
    },
    {
        "principal": "alice",
        "endpoint": "POST /v1/query",
        "outcome": "denied",
        "status": 403,
        "reason": "metric margin not granted",
        "metrics": ["margin"],
        "dimensions": [],
        "rows_returned": 0,
        "recorded_at": "2024-05-01T08:30:00.000000Z",
    },
    {
        "principal": "alice",
        "endpoint": "POST /v1/query",
        "outcome": "denied",
        "status": 403,
        "reason": "metric margin not granted",
        "metrics": ["margin"],
        "rows_returned": 0,
        "recorded_at": "2024-05-01T11:00:00.000000Z",
    },
    {
        "principal": "alice",
        "endpoint": "POST /v1/query",
        "outcome": "error",
        "status": 503,
        "reason": "warehouse unavailable",
        "metrics": ["revenue"],
        "rows_returned": 0,
        "recorded_at": "2024-05-01T12:00:00.000000Z",
    },
    {
        "principal": "bob",
        "endpoint": "graphql:query",
        "outcome": "allowed",
        "status": 200,
        "metrics": ["orders"],
        "dimensions": [],
        "rows_returned": 7,
        "suppressed_rows": 1,
        "recorded_at": "2024-05-02T00:00:00.000000Z",
    },
    {
        "principal": None,
        "endpoint": "GET /v1/meta",
        "outcome": "denied",
        "status": 401,
        "reason": "missing token",
        "rows_returned": 0,
        "recorded_at": "2024-05-01T07:00:00.000000Z",
    },
]


def test_access_review_counts_per_principal() -> None:
    review = access_review(REVIEW_RECORDS)

    assert [entry["principal"] for entry in review] == ["alice", "bob", None]
    alice, bob, anonymous = review
    # alice: 2 allowed, 2 denied (same endpoint and reason), 1 error. Metrics count allowed
    # requests only, once per request: revenue in both allowed ones, orders in the first.
    assert alice == {
        "principal": "alice",
        "requests": 5,
        "allowed": 2,
        "denied": 2,
        "errors": 1,
        "first_access": "2024-05-01T08:30:00.000000Z",
        "last_access": "2024-05-01T12:00:00.000000Z",
        "metrics_used": [{"metric": "revenue", "count": 2}, {"metric": "orders", "count": 1}],
        "dimensions_used": [
            {"dimension": "region", "count": 2},
            {"dimension": "channel", "count": 1},
        ],
        "denials": [
            {"endpoint": "POST /v1/query", "reason": "metric margin not granted", "count": 2}
        ],
        "rows_returned": 15,
        "suppressed_rows": 2,
    }
    assert (bob["requests"], bob["allowed"], bob["denied"], bob["errors"]) == (1, 1, 0, 0)
    assert bob["metrics_used"] == [{"metric": "orders", "count": 1}]
    assert (bob["rows_returned"], bob["suppressed_rows"]) == (7, 1)
    assert bob["first_access"] == bob["last_access"] == "2024-05-02T00:00:00.000000Z"
    assert (anonymous["requests"], anonymous["denied"]) == (1, 1)
    assert anonymous["denials"] == [
        {"endpoint": "GET /v1/meta", "reason": "missing token", "count": 1}
    ]
    assert anonymous["metrics_used"] == []


def test_access_review_markdown_has_a_row_per_principal_and_a_denials_table() -> None:
    markdown = render_access_review_markdown(access_review(REVIEW_RECORDS))

    assert "| Principal | Requests | Allowed | Denied | Errors |" in markdown
    assert (
        "| alice | 5 | 2 | 2 | 1 | 2024-05-01T08:30:00.000000Z | 2024-05-01T12:00:00.000000Z "
        "| 15 | 2 | revenue (2), orders (1) | region (2), channel (1) |"
    ) in markdown
    assert "### Denials" in markdown
    assert "| alice | POST /v1/query | metric margin not granted | 2 |" in markdown
    assert "| (unauthenticated) | GET /v1/meta | missing token | 1 |" in markdown
    assert render_access_review_markdown([]).endswith("No requests in the audit log.\n")


def test_markdown_cells_escape_pipes_so_a_reason_cannot_break_the_table() -> None:
    records = [dict(REVIEW_RECORDS[6], reason="bad | token")]

    markdown = render_access_review_markdown(access_review(records))

    assert "| (unauthenticated) | GET /v1/meta | bad \\| token | 1 |" in markdown


# --- command line -----------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="retail-xsell audit")
    add_audit_arguments(parser)
    return run_audit_command(parser.parse_args(argv))


def test_cli_verify_reports_an_intact_chain_and_exits_0(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(log_path, 3)

    assert run_cli(["verify", "--log", str(log_path)]) == 0
    assert capsys.readouterr().out == f"audit log {log_path}: 3 records, chain intact\n"


def test_cli_verify_lists_each_problem_and_exits_1(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(log_path, 4)
    text = lines(log_path)
    del text[1]
    log_path.write_text("".join(text))

    assert run_cli(["--log", str(log_path), "verify"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"audit log {log_path}: 3 records, 2 problems:\n")
    assert "  - line 2 (seq 3)" in out
    assert "  - records missing (removed): seq 2" in out


def test_cli_verify_of_a_missing_log_exits_1(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["verify", "--log", str(log_path)]) == 1
    assert f"no audit log at {log_path}" in capsys.readouterr().out


def test_cli_list_json_applies_filters_given_before_or_after_the_action(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(log_path)
    log.append(request("a1"))
    log.append(request("b1", principal="bob"))

    for argv in (
        ["list", "--log", str(log_path), "--principal", "bob", "--json"],
        ["--principal", "bob", "list", "--log", str(log_path), "--json"],
        ["--principal", "bob", "--json", "--log", str(log_path)],
    ):
        assert run_cli(argv) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [r["request_id"] for r in listed] == ["b1"], argv


def test_cli_list_is_the_default_action_and_prints_a_table(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    AuditLog(log_path).append(request("a1", metrics=["revenue", "orders"]))

    assert run_cli(["--log", str(log_path)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "time",
        "(UTC)",
        "principal",
        "endpoint",
        "status",
        "outcome",
        "metrics",
        "rows",
    ]
    assert "alice" in row
    assert "POST /v1/query" in row
    assert row.split()[-4:] == ["200", "allowed", "revenue,orders", "3"]


def test_cli_bad_since_is_one_error_line_and_exit_2(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(log_path, 1)

    assert run_cli(["list", "--log", str(log_path), "--since", "yesterday"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: --since: cannot read 'yesterday'")


def test_cli_list_of_a_missing_log_exits_2(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["list", "--log", str(log_path)]) == 2
    assert capsys.readouterr().err == f"error: no audit log at {log_path}\n"


def test_cli_review_prints_markdown_or_json(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(log_path)
    log.append(request("a1"))
    log.append(request("a2", outcome="denied", status=403, reason="region not granted"))

    assert run_cli(["review", "--log", str(log_path)]) == 0
    markdown = capsys.readouterr().out
    assert "| alice | 2 | 1 | 1 | 0 |" in markdown
    assert "| alice | POST /v1/query | region not granted | 1 |" in markdown

    assert run_cli(["review", "--log", str(log_path), "--json"]) == 0
    (alice,) = json.loads(capsys.readouterr().out)
    assert (alice["requests"], alice["allowed"], alice["denied"]) == (2, 1, 1)


def test_recorded_at_is_utc_now(log_path: Path) -> None:
    before = datetime.now(UTC)
    stored = AuditLog(log_path).append(request())
    after = datetime.now(UTC)

    assert before <= datetime.fromisoformat(stored["recorded_at"]) <= after
