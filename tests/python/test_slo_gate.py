"""The SLO gate and write-audit-publish, shown with faults injected into generated data.

A healthy baseline (generated data, timestamps moved so the last load is two hours old)
is built, passes the gate and is published once per module. Each fault then breaches
its SLO, the gate blocks, publishing is refused, and the previous publication stays
byte for byte the same and readable. Faults that need a new build get one; faults
whose SLO reads a single artifact re-run only what produces it (noted per test).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from conftest import PROJECT_DIR, WorkDir, run_dbt
from retail_xsell.publications import last_publication
from retail_xsell.publish import PublishRefusedError, publish
from retail_xsell.quality import CATEGORIES, load_slos, run_gate

pytestmark = pytest.mark.dbt

PYTHON = sys.executable
TS = "%Y-%m-%d %H:%M:%S"


@dataclass
class Build(WorkDir):
    raw: Path

    @property
    def vars(self) -> dict[str, str]:
        return {"raw_input_format": "csv", "raw_input_path": str(self.raw)}


def _generate(out: Path) -> Path:
    subprocess.run(
        [
            *(PYTHON, str(PROJECT_DIR / "scripts" / "generate_raw_data.py"), "scale"),
            *("--purchase-lines", "3000", "--products", "60", "--format", "csv"),
            *("--out", str(out), "--quiet"),
        ],
        check=True,
        capture_output=True,
    )
    return out


def _raw_variant(generated: Path, out: Path, age: dt.timedelta, extra_sql: str = "") -> Path:
    """Copy the generated raw tables, moving every purchase timestamp so that the newest
    load is `age` old; `extra_sql` (a query over `purchase`) replaces the purchase rows."""
    for table in ("customer_info", "product"):
        shutil.copytree(generated / table, out / table)
    (out / "purchase").mkdir(parents=True)
    newest = dt.datetime.now(dt.UTC).replace(tzinfo=None) - age
    with duckdb.connect() as con:
        source = str(generated / "purchase" / "*.csv").replace("'", "''")
        con.execute(
            f"create table raw as select * from read_csv('{source}', all_varchar = true,"
            " header = true)"
        )
        (latest,) = con.execute(f"select max(try_strptime(loaded_at, '{TS}')) from raw").fetchone()
        seconds = int((newest - latest).total_seconds())
        shifted = ", ".join(
            f"coalesce(strftime(try_strptime({c}, '{TS}') + to_seconds({seconds}), '{TS}'), {c})"
            f" as {c}"
            for c in ("order_at", "loaded_at")
        )
        con.execute(f"create table purchase as select * replace ({shifted}) from raw")
        query = extra_sql or "select * from purchase"
        target = str(out / "purchase" / "part-0.csv").replace("'", "''")
        con.execute(f"copy ({query}) to '{target}' (header, delimiter ',')")
    return out


#: Own (csv) input must be pseudonymised with a secret key, or the gate blocks it.
TEST_PII_KEY = "pytest-slo-gate-pseudonym-key-0123456789abcdef"


def _build(build: Build) -> None:
    result = run_dbt(
        ["build"], build.workdir, build.vars, env={"RETAIL_XSELL_PII_KEY": TEST_PII_KEY}
    )
    assert result.returncode == 0, result.output[-3000:]


def _gate(build: Build, published: Path) -> dict[str, Any]:
    return run_gate(build.database, build.target, published, build.workdir / "slo")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Baseline:
    build: Build
    published: Path
    report: dict[str, Any]
    publication_id: str
    generated: Path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Baseline:
    root = tmp_path_factory.mktemp("slo_baseline")
    generated = _generate(root / "generated")
    build = Build(root / "work", _raw_variant(generated, root / "raw", dt.timedelta(hours=2)))
    _build(build)
    published = root / "published" / "retail_xsell.duckdb"
    report = _gate(build, published)
    assert report["passed"], json.dumps(report["slos"], indent=1, default=str)[:4000]
    publication = publish(build.database, published, report)
    return Baseline(build, published, report, publication.publication_id, generated)


def _published_copy(baseline: Baseline, tmp_path: Path) -> Path:
    published = tmp_path / "published" / "retail_xsell.duckdb"
    published.parent.mkdir(parents=True)
    shutil.copyfile(baseline.published, published)
    return published


def _work_copy(baseline: Baseline, tmp_path: Path) -> Build:
    workdir = tmp_path / "work"
    shutil.copytree(baseline.build.workdir, workdir, ignore=shutil.ignore_patterns("slo"))
    return Build(workdir, baseline.build.raw)


def _assert_blocked(
    report: dict[str, Any],
    expected: str,
    build: Build,
    published: Path,
    baseline: Baseline,
    status: str = "breach",
    also: tuple[str, ...] = (),
) -> None:
    """The right SLO (and only it, or with ``also``) blocks, publishing is refused, the
    last publication is untouched and still answers queries."""
    assert not report["passed"]
    assert sorted(report["blocking_breaches"]) == sorted([expected, *also]), report[
        "blocking_breaches"
    ]
    slo = next(s for s in report["slos"] if s["name"] == expected)
    assert slo["status"] == status and slo["measured"] is not None
    before = _sha(published)
    with pytest.raises(PublishRefusedError, match=expected):
        publish(build.database, published, report)
    assert _sha(published) == before
    assert last_publication(published)["publication_id"] == baseline.publication_id
    assert not list(published.parent.glob(".*.tmp"))


def test_baseline_passes_and_records_its_publication(baseline):
    statuses = {s["name"]: s["status"] for s in baseline.report["slos"]}
    # The first publication has nothing to compare its volume and contracts with.
    assert statuses.pop("volume_vs_last_publication") == "no_baseline"
    assert statuses.pop("contract_compatibility") == "no_baseline"
    assert set(statuses.values()) == {"pass"}, statuses
    record = last_publication(baseline.published)
    assert record["row_counts"] == baseline.report["row_counts"]
    assert record["slo_results"]["reconciliation"] == {"status": "pass", "measured": 0.0}
    stored_failures = (
        "select count(*) from information_schema.tables where table_schema = 'main_audit'"
    )
    with duckdb.connect(str(baseline.published), read_only=True) as con:
        (orders,) = con.execute("select count(*) from main.orders").fetchone()
        (published_stored,) = con.execute(stored_failures).fetchone()
    with duckdb.connect(str(baseline.build.database), read_only=True) as con:
        (stored,) = con.execute(
            stored_failures + " and table_name not in ('build_runs', 'row_reconciliation')"
        ).fetchone()
    assert orders == record["row_counts"]["orders"] > 0
    run_results = json.loads((baseline.build.target / "run_results.json").read_text())
    tests = [r for r in run_results["results"] if r["unique_id"].startswith("test.")]
    # store_failures keeps the failing rows of each test that found some, for the data
    # stewards: in the working database, never in what consumers read. A passing test
    # leaves no table (macros/materializations/test.sql).
    assert len(tests) > 100
    assert stored == len([r for r in tests if r["failures"]])
    assert published_stored == 0


def _started(build: Build, started: dt.datetime) -> None:
    """Say the build started at `started`: the same data, judged at another time."""
    path = build.target / "run_results.json"
    results = json.loads(path.read_text())
    results["metadata"]["invocation_started_at"] = started.isoformat().replace("+00:00", "Z")
    path.write_text(json.dumps(results))


def _newest_load(build: Build) -> dt.datetime:
    with duckdb.connect(str(build.database), read_only=True) as con:
        (loaded_at,) = con.execute(
            "select max(loaded_at) from stg_retail__purchase_lines"
        ).fetchone()
    return loaded_at.replace(tzinfo=dt.UTC)


def test_stale_load_breaches_freshness(baseline, tmp_path):
    """Freshness is measured on the built data against the build's start: the same
    data built five days after its last load is five days stale."""
    published = _published_copy(baseline, tmp_path)
    build = _work_copy(baseline, tmp_path)
    _started(build, _newest_load(build) + dt.timedelta(days=5))
    report = _gate(build, published)
    _assert_blocked(report, "purchase_freshness", build, published, baseline)
    slo = next(s for s in report["slos"] if s["name"] == "purchase_freshness")
    assert slo["measured"] == pytest.approx(120, abs=0.01)


def test_a_load_after_the_build_started_is_a_freshness_error_not_fresh(baseline, tmp_path):
    """A clock (or a loaded_at) far ahead must never make stale data look fresh: beyond
    the clock tolerance the age is an error; within it, zero."""
    published = _published_copy(baseline, tmp_path)
    build = _work_copy(baseline, tmp_path)
    _started(build, _newest_load(build) - dt.timedelta(hours=5))
    report = _gate(build, published)
    _assert_blocked(report, "purchase_freshness", build, published, baseline, status="error")
    slo = next(s for s in report["slos"] if s["name"] == "purchase_freshness")
    assert slo["status"] == "error" and slo["measured"] == pytest.approx(-5, abs=0.01)
    assert "after the build started" in slo["details"][0]

    _started(build, _newest_load(build) - dt.timedelta(minutes=30))
    report = _gate(build, published)
    slo = next(s for s in report["slos"] if s["name"] == "purchase_freshness")
    assert (slo["status"], slo["measured"]) == ("pass", 0.0)


def test_burst_of_invalid_rows_breaches_completeness(baseline, tmp_path):
    published = _published_copy(baseline, tmp_path)
    burst = (
        "select * from purchase union all"
        " select * replace (cast(9000000 + row_number() over () as varchar) as order_id,"
        " 'lots' as quantity) from purchase using sample 12 percent (bernoulli, 7)"
    )
    raw = _raw_variant(baseline.generated, tmp_path / "raw", dt.timedelta(hours=2), burst)
    build = Build(tmp_path / "work", raw)
    _build(build)
    report = _gate(build, published)
    _assert_blocked(report, "completeness_raw_rows", build, published, baseline)

    # The command line says which SLO, what was measured, where to look, and what
    # consumers still read.
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR / "src")}
    args = ["--database", str(build.database), "--published", str(published)]
    args += ["--report-dir", str(tmp_path / "cli")]
    gate = subprocess.run(
        [PYTHON, "-m", "retail_xsell.cli", "gate", "--target-path", str(build.target), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "SLO completeness_raw_rows breach: measured 8" in gate.stderr
    assert "purchase: " in gate.stderr and "Look at: stg_retail__rejected_rows" in gate.stderr
    assert "last good publication is untouched and readable" in gate.stderr
    assert (tmp_path / "cli" / "report.md").read_text().count("| BREACH (blocking) |") == 1
    refused = subprocess.run(
        [PYTHON, "-m", "retail_xsell.cli", "publish", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert refused.returncode == 1
    assert "publish refused: the quality gate failed" in refused.stderr
    assert baseline.publication_id[:8] in refused.stderr


def test_duplicated_key_breaches_uniqueness(baseline, tmp_path):
    """A fan-out bug in a mart, as dbt reports it: the gate reads the key tests' results
    from run_results.json (tagged slo:uniqueness_mart_keys) and their stored failing rows,
    so the fault is injected where dbt would have written it (staging removes duplicated
    raw keys by design, so it has to be the mart)."""
    published = _published_copy(baseline, tmp_path)
    build = _work_copy(baseline, tmp_path)
    run_results_path = build.target / "run_results.json"
    run_results = json.loads(run_results_path.read_text())
    (result,) = [
        r
        for r in run_results["results"]
        if r["unique_id"].startswith("test.retail_xsell.unique_orders_order_id.")
    ]
    result["status"], result["failures"] = "fail", 1
    run_results_path.write_text(json.dumps(run_results))
    stored = ".".join(result["relation_name"].split(".")[-2:])
    with duckdb.connect(str(build.database)) as con:
        con.execute("insert into main.orders select * from main.orders limit 1")
        con.execute(
            f"create or replace table {stored} as select order_id as unique_field,"
            " count(*) as n_records from main.orders group by 1 having count(*) > 1"
        )
        (orders,) = con.execute("select count(*) from main.orders").fetchone()
    report = _gate(build, published)
    # The failing key test is also a failed dbt node (dbt_build_results).
    _assert_blocked(
        report, "uniqueness_mart_keys", build, published, baseline, also=("dbt_build_results",)
    )
    slo = next(s for s in report["slos"] if s["name"] == "uniqueness_mart_keys")
    assert slo["measured"] == 2
    assert any(
        d.startswith(f"orders.order_id: 2 of {orders:,} rows fail unique") for d in slo["details"]
    )


def test_dropped_partition_breaches_volume(baseline, tmp_path):
    published = _published_copy(baseline, tmp_path)
    drop_a_year = (
        "select * from purchase where coalesce(try_strptime(loaded_at, '%Y-%m-%d %H:%M:%S')"
        " not between now()::timestamp - interval 730 days"
        " and now()::timestamp - interval 365 days, true)"
    )
    raw = _raw_variant(baseline.generated, tmp_path / "raw", dt.timedelta(hours=2), drop_a_year)
    build = Build(tmp_path / "work", raw)
    _build(build)
    report = _gate(build, published)
    _assert_blocked(report, "volume_vs_last_publication", build, published, baseline)
    slo = next(s for s in report["slos"] if s["name"] == "volume_vs_last_publication")
    assert slo["measured"] < -0.10
    assert any(d.startswith("raw.purchase: ") for d in slo["details"])


def test_unmasked_pii_in_a_public_model_breaches_governance(baseline, tmp_path):
    """A public mart's PII column loses its masking. Governance reads only the manifest,
    so the changed project is parsed (not rebuilt) against the baseline's build."""
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns(".venv", ".git", "target", "logs", "build", "data", "src"),
    )
    marts = project / "models" / "marts" / "customers.yml"
    text = marts.read_text()
    masked = "meta: {classification: confidential, pii: email, pii_treatment: hmac_sha256}"
    assert masked in text
    marts.write_text(text.replace(masked, "meta: {classification: confidential, pii: email}"))
    published = _published_copy(baseline, tmp_path)
    build = _work_copy(baseline, tmp_path)
    result = run_dbt(["parse"], build.workdir, build.vars, project_dir=project)
    assert result.returncode == 0, result.output[-3000:]
    report = _gate(build, published)
    _assert_blocked(report, "pii_masked_outside_private", build, published, baseline)
    slo = next(s for s in report["slos"] if s["name"] == "pii_masked_outside_private")
    assert slo["details"] == ["customers.email_sha256 (public): pii email without pii_treatment"]


READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import duckdb
    published, stop = Path(sys.argv[1]), Path(sys.argv[2])
    seen, errors, reads = {}, [], 0
    while not stop.exists():
        try:
            with duckdb.connect(str(published), read_only=True) as con:
                orders = con.execute("select count(*) from main.orders").fetchone()[0]
                pubs = con.execute("select count(*) from main.publications").fetchone()[0]
                counts = con.execute(
                    "select row_counts->>'orders' from main.publications"
                    " order by published_at desc limit 1").fetchone()[0]
            seen[str(pubs)] = [orders, int(counts)]
            reads += 1
        except Exception as exc:
            errors.append(repr(exc))
    print(json.dumps({"seen": seen, "errors": errors[:5], "reads": reads}))
    """
)


def test_reader_never_sees_an_error_or_a_half_written_publication(baseline, tmp_path):
    published = _published_copy(baseline, tmp_path)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [PYTHON, "-c", READER, str(published), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)
        # A new build runs (into its own working database; a whole build, since the gate
        # reads every tagged test's result from it), passes the gate and is published,
        # while the reader keeps reading.
        build = _work_copy(baseline, tmp_path)
        result = run_dbt(
            ["build"],
            build.workdir,
            build.vars,
            env={"RETAIL_XSELL_PII_KEY": TEST_PII_KEY},
        )
        assert result.returncode == 0, result.output[-3000:]
        report = _gate(build, published)
        assert report["passed"], report["blocking_breaches"]
        publish(build.database, published, report)
        for _ in range(2):
            time.sleep(0.5)
            publish(baseline.build.database, published, baseline.report)
    finally:
        stop.touch()
        output, _ = reader.communicate(timeout=60)
    result = json.loads(output)
    assert result["errors"] == []
    assert result["reads"] > 20
    # It read the old file and new ones, each whole: the orders it holds always match the
    # count recorded by that file's own newest publication.
    assert len(result["seen"]) >= 2, result
    assert all(orders == recorded for orders, recorded in result["seen"].values())
    assert last_publication(published)["row_counts"] == baseline.report["row_counts"]


def test_gate_on_the_sample_reports_stale_freshness_as_a_warning(sample_db, tmp_path):
    """What CI runs: the committed sample passes, but freshness is measured and shown as
    breached (a warning, by the documented committed_sample override), not hidden."""
    work = tmp_path / "work"
    shutil.copytree(sample_db.parent, work, ignore=shutil.ignore_patterns("*.wal"))
    build = Build(work, Path("unused"))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR / "src")}
    completed = subprocess.run(
        [
            *(PYTHON, "-m", "retail_xsell.cli", "gate", "--database", str(build.database)),
            *("--target-path", str(build.target), "--published", str(tmp_path / "none.duckdb")),
            *("--report-dir", str(tmp_path / "slo")),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Warnings (not blocking): purchase_freshness" in completed.stdout
    report = json.loads((tmp_path / "slo" / "report.json").read_text())
    freshness = next(s for s in report["slos"] if s["name"] == "purchase_freshness")
    assert freshness["status"] == "breach" and not freshness["blocking"]
    assert freshness["measured"] > 72 and "committed_sample" in freshness["note"]
    assert report["overrides"] == ["committed_sample"]


def test_slo_file_declares_every_objective_and_is_documented():
    document = load_slos(PROJECT_DIR / "slos.yml")
    slos = {s.name: s for s in document.slos}
    assert {s.category for s in slos.values()} == set(CATEGORIES)
    measurements = {s.measurement for s in slos.values()}
    assert measurements >= {
        "source_freshness",
        "raw_rows_passing_staging",
        "tagged_dbt_tests",
        "volume_change",
        "unreconciled_rows",
        "build_duration",
        "query_latency",
        "unmasked_pii_columns",
        "public_model_gaps",
    }
    docs = (PROJECT_DIR / "docs" / "slos.md").read_text()
    assert [name for name in slos if f"`{name}`" not in docs] == []


def test_slo_file_typos_fail_loudly(tmp_path):
    document = yaml.safe_load((PROJECT_DIR / "slos.yml").read_text())
    document["slos"][0]["measurement"] = "source_freshnes"
    path = tmp_path / "slos.yml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(Exception, match="unknown measurement 'source_freshnes'"):
        load_slos(path)
