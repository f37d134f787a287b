"""scripts/benchmark_api.py on the sample publication: a small run, no timing asserted.

The benchmark must send only requests the service answers (0 errors), really miss the
result cache in cold mode and hit it in warm mode, and report what docs/benchmarks.md
quotes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import POLICIES, PROJECT_DIR

SCRIPT = PROJECT_DIR / "scripts" / "benchmark_api.py"
STAT_KEYS = {"requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "cache_hit_share"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_api", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_workload_mixes_every_endpoint_kind_and_cold_calls_never_repeat(bench):
    calls = bench.representative_calls({"erik": [10001], "nadia": [10010], "sam": [10005]})
    measured = bench.workload(calls, 400, seed=3)
    assert measured == bench.workload(calls, 400, seed=3)
    assert {c.kind for c in measured} == set(bench.KIND_WEIGHTS)
    ceilings = dict.fromkeys({c.principal for c in calls}, 500)
    cold = bench.make_distinct(measured, ceilings) + bench.make_distinct(measured, ceilings, 1)
    seen = [json.dumps([c.principal, c.path, c.body, c.params]) for c in cold if c.cacheable]
    assert len(seen) == len(set(seen))  # every cold request is a new cache key
    assert all(c == d for c, d in zip(measured, cold, strict=False) if not c.cacheable)


def test_a_small_run_has_no_errors_and_reports_both_modes(bench, sample_publication):
    report = bench.benchmark(
        bench.Settings(
            published=sample_publication.published,
            policies=POLICIES,
            clients=2,
            requests=30,
            in_process=True,
            customers_per_principal=3,
        )
    )
    assert set(report) >= {"machine", "publication", "settings", "runs", "summary"}
    assert report["machine"]["nproc"] >= 1
    assert report["publication"]["publication_id"]
    for mode in ("cold", "warm"):
        (run,) = report["runs"][mode]
        assert run["overall"]["errors"] == 0, run["errors"]
        assert run["overall"]["requests"] == 30
        assert set(run["overall"]) >= STAT_KEYS
        assert set(run["kinds"]) <= set(bench.KIND_WEIGHTS)
        assert all(set(stats) >= STAT_KEYS for stats in run["kinds"].values())
        assert run["publication_ids"] == [report["publication"]["publication_id"]]
        summary = report["summary"][mode]
        assert summary["overall"]["errors"] == 0 and summary["runs"] == 1
    assert report["runs"]["cold"][0]["overall"]["cache_hit_share"] == 0
    assert report["runs"]["warm"][0]["overall"]["cache_hit_share"] == 1
    markdown = bench.render_markdown(report)
    assert "| overall | 30 | 0 |" in markdown and "**cold**" in markdown
    json.dumps(report)  # what --json writes


def test_the_default_child_process_server_answers(bench, sample_publication, tmp_path: Path):
    tokens = bench.tokens_for(["erik"])
    with bench.serve(sample_publication.published, POLICIES, tmp_path) as server:
        assert not server.in_process
        with httpx.Client(base_url=server.base_url) as client:
            call = bench.Call("meta", "meta", "erik", "GET", "/v1/meta")
            sample = bench.send(client, call, tokens["erik"])
        assert sample.error is None and sample.status == 200
        assert sample.publication_id
        records = bench.audit_cache_hits(server.audit_path)
    assert sample.request_id in records


def test_profile_splits_a_request_into_planning_sql_and_the_rest(bench, sample_publication):
    profile = bench.profile_requests(sample_publication.published, POLICIES, repeats=1, max_calls=2)
    assert len(profile["calls"]) == 2
    for row in profile["calls"]:
        assert row["miss_ms"] >= row["planning_ms"] > 0 and row["sql_ms"] > 0
        assert row["hit_ms"] < row["miss_ms"]
    assert "cache missed" in bench.render_profile(profile)
