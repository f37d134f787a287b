"""The publication is a consumer projection: output ports only, no personal data.

The committed sample is built once (the session's ``sample_db``), gated and published
into a temporary folder. Each test then reads the publication the way a consumer
would: the DuckDB file opened read-only, the Parquet files, ``mf query`` from a folder
that holds nothing but the project files and the published semantic manifest.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import PROJECT_DIR
from retail_xsell.publications import (
    current_folder,
    last_publication,
    list_publications,
    publications_dir,
)
from retail_xsell.publish import PublishRefusedError, publish, rollback
from retail_xsell.quality import run_gate
from retail_xsell.summary import render_summary

PYTHON = sys.executable
MF = Path(sys.executable).parent / "mf"


@dataclass
class Published:
    working: Path
    target: Path
    published: Path
    report: dict
    report_dir: Path


def _gate_and_publish(working: Path, target: Path, published: Path, report_dir: Path) -> dict:
    report = run_gate(working, target, published, report_dir)
    assert report["passed"], report["blocking_breaches"]
    publish(working, published, report)
    return report


@pytest.fixture(scope="module")
def sample_publication(sample_db, tmp_path_factory) -> Published:
    root = tmp_path_factory.mktemp("publication")
    target = sample_db.parent / "target"
    published = root / "published" / "retail_xsell.duckdb"
    report_dir = root / "slo"
    report = _gate_and_publish(sample_db, target, published, report_dir)
    return Published(sample_db, target, published, report, report_dir)


def _manifest(target: Path) -> dict:
    return json.loads((target / "manifest.json").read_text())


def _expected_ports(target: Path) -> set[str]:
    """Public models, plus what the semantic manifest reads: computed here from the
    artifacts independently of retail_xsell.ports."""
    public = {
        node["alias"]
        for node in _manifest(target)["nodes"].values()
        if node["resource_type"] == "model" and node.get("access") == "public"
    }
    semantic = json.loads((target / "semantic_manifest.json").read_text())
    read = {model["node_relation"]["alias"] for model in semantic["semantic_models"]}
    read |= {
        spine["node_relation"]["alias"]
        for spine in semantic["project_configuration"]["time_spines"]
    }
    return public | read


def _tables(database: Path) -> set[tuple[str, str, str]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return set(
            con.execute(
                "select schema_name, table_name, 'table' from duckdb_tables()"
                " where database_name = current_database()"
                " union all select schema_name, view_name, 'view' from duckdb_views()"
                " where database_name = current_database() and not internal"
            ).fetchall()
        )


def test_publication_holds_only_the_output_ports(sample_publication):
    expected = {("main", name, "table") for name in _expected_ports(sample_publication.target)}
    expected.add(("main", "publications", "table"))
    tables = _tables(sample_publication.published)
    assert {t for t in tables if t[0] != "metric_exports"} == expected
    # Besides them only the metric exports: the index and the tables it names.
    with duckdb.connect(str(sample_publication.published), read_only=True) as con:
        indexed = {
            name
            for (name,) in con.execute(
                "select table_name from metric_exports.export_index"
            ).fetchall()
        }
    assert {t for t in tables if t[0] == "metric_exports"} == {
        ("metric_exports", name, "table") for name in indexed | {"export_index"}
    }
    assert len(indexed) > 100
    # The working database it came from holds far more (raw, staging, quarantine, audit).
    working = _tables(sample_publication.working)
    assert ("main", "stg_retail__customer_pii", "view") in working
    assert any(schema == "main_audit" for schema, _, _ in working)


def _raw_customer_rows() -> list[dict[str, str]]:
    with open(PROJECT_DIR / "seeds" / "customer_info.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _raw_personal_values() -> dict[str, set[str]]:
    """Every personal value of the raw sample, read from the seed file itself."""
    values: dict[str, set[str]] = {"email": set(), "phone": set(), "name": set(), "birth": set()}
    for row in _raw_customer_rows():
        if "@" in row["email"]:
            values["email"].add(row["email"].strip().lower())
        digits = re.sub(r"\D", "", row["phone"])
        if len(digits) >= 7:
            values["phone"] |= {row["phone"].strip().lower(), digits}
        for name in (row["first_name"], row["last_name"]):
            if len(name.strip()) >= 3:
                values["name"].add(name.strip().lower())
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["birth_date"].strip()):
            values["birth"].add(row["birth_date"].strip())
    assert all(len(found) > 100 for found in values.values()), {
        kind: len(found) for kind, found in values.items()
    }
    return values


def test_publication_carries_no_raw_personal_data_of_the_sample(sample_publication):
    raw = _raw_personal_values()
    leaks = []
    with duckdb.connect(str(sample_publication.published), read_only=True) as con:
        columns = con.execute(
            "select schema_name, table_name, column_name, data_type from duckdb_columns()"
            " where database_name = current_database()"
        ).fetchall()
        # Every schema, the metric exports too: their group-by values are scanned as well.
        assert {schema for schema, *_ in columns} == {"main", "metric_exports"}
        for schema, table, column, data_type in columns:
            if data_type not in ("VARCHAR", "JSON"):
                continue
            found = {
                value.strip().lower()
                for (value,) in con.execute(
                    f'select distinct cast("{column}" as varchar) from "{schema}"."{table}"'
                    f' where "{column}" is not null'
                ).fetchall()
            }
            digits = {re.sub(r"\D", "", value) for value in found}
            for kind, values in raw.items():
                hits = (found | digits) & values if kind == "phone" else found & values
                if hits:
                    leaks.append(f"{table}.{column}: {len(hits)} raw {kind} value(s)")
        # A birth date hides in a date column: compare each customer's own.
        birth_dates = {
            (int(row["customer_id"]), row["birth_date"].strip())
            for row in _raw_customer_rows()
            if row["customer_id"].strip().isdigit()
            and re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["birth_date"].strip())
        }
        for schema, table, column, data_type in columns:
            has_customer = (schema, table, "customer_id") in {(s, t, c) for s, t, c, _ in columns}
            if data_type == "DATE" and has_customer:
                pairs = set(
                    con.execute(
                        f'select distinct customer_id, cast("{column}" as varchar)'
                        f' from "{schema}"."{table}"'
                    ).fetchall()
                )
                if pairs & birth_dates:
                    leaks.append(f"{table}.{column}: a customer's own birth date")
    assert leaks == []
    # Column classification: whatever derives from personal data says how it was treated.
    for node in _manifest(sample_publication.target)["nodes"].values():
        if node["resource_type"] == "model" and node.get("access") == "public":
            for column in node["columns"].values():
                meta = {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}
                assert not meta.get("pii") or meta.get("pii_treatment"), (node["name"], column)


def test_publication_gate_blocks_a_port_that_carries_personal_data(sample_publication, tmp_path):
    """Make the stewards' PII model public in a copy of the artifacts: the governance SLO
    breaches and publish, which scans the projection itself, refuses."""
    target = tmp_path / "target"
    shutil.copytree(sample_publication.target, target)
    manifest = _manifest(target)
    node = next(n for n in manifest["nodes"].values() if n["name"] == "stg_retail__customer_pii")
    node["access"] = "public"
    (target / "manifest.json").write_text(json.dumps(manifest))
    report = run_gate(
        sample_publication.working, target, sample_publication.published, tmp_path / "slo"
    )
    pii = next(slo for slo in report["slos"] if slo["name"] == "published_pii")
    assert pii["status"] == "breach" and "published_pii" in report["blocking_breaches"]
    assert any("stg_retail__customer_pii.email_as_entered" in d for d in pii["details"])
    # No raw value in the report: only counts and column names.
    report_text = json.dumps(report).lower()
    assert not any(email in report_text for email in _raw_personal_values()["email"])

    before = current_folder(sample_publication.published)
    forced = {**report, "passed": True, "blocking_breaches": []}
    with pytest.raises(PublishRefusedError, match=r"personal data.*stg_retail__customer_pii"):
        publish(sample_publication.working, sample_publication.published, forced)
    assert current_folder(sample_publication.published) == before
    assert not list(publications_dir(sample_publication.published).glob(".*"))


def _consumer_kit(tmp_path: Path, publication_folder: Path) -> Path:
    """What a consumer needs for `mf`: the project file, the profiles and the
    semantic manifest shipped with the publication. No models, no working database."""
    kit = tmp_path / "kit"
    (kit / "target").mkdir(parents=True)
    shutil.copyfile(PROJECT_DIR / "dbt_project.yml", kit / "dbt_project.yml")
    shutil.copyfile(PROJECT_DIR / "profiles.yml", kit / "profiles.yml")
    shutil.copyfile(
        publication_folder / "semantic_manifest.json", kit / "target" / "semantic_manifest.json"
    )
    return kit


def _mf_clv(kit: Path, published: Path) -> str:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(kit),
        "RETAIL_XSELL_TARGET": "published",
        "RETAIL_XSELL_PUBLISHED_PATH": str(published),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    completed = _run([str(MF), "query", "--metrics", "clv", "--decimals", "4"], kit, env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_mf_query_answers_clv_on_a_published_file_at_any_path(sample_publication, tmp_path):
    folder = current_folder(sample_publication.published)
    elsewhere = tmp_path / "some" / "where" / "else.duckdb"
    elsewhere.parent.mkdir(parents=True)
    shutil.copyfile(folder / sample_publication.published.name, elsewhere)
    before = elsewhere.read_bytes()
    output = _mf_clv(_consumer_kit(tmp_path, folder), elsewhere)
    with duckdb.connect(str(elsewhere), read_only=True) as con:
        (expected,) = con.execute("select avg(clv) from customer_value").fetchone()
    assert f"{float(expected):.4f}" in output
    assert elsewhere.read_bytes() == before  # the consumer target opens it read-only


def test_compiled_relations_name_one_catalog_whatever_the_file_or_target(
    sample_publication, tmp_path
):
    """The sample was built into test.duckdb; the CI target builds into ci.duckdb. Both
    name the catalog retail_xsell, so their artifacts query a publication anywhere."""
    semantic = json.loads((sample_publication.target / "semantic_manifest.json").read_text())
    assert {m["node_relation"]["database"] for m in semantic["semantic_models"]} == {"retail_xsell"}
    from conftest import run_dbt

    parsed = run_dbt(["parse"], tmp_path / "ci", env={"RETAIL_XSELL_TARGET": "ci"})
    assert parsed.returncode == 0, parsed.output[-2000:]
    ci_semantic = json.loads((parsed.target_path / "semantic_manifest.json").read_text())
    assert {m["node_relation"]["database"] for m in ci_semantic["semantic_models"]} == {
        "retail_xsell"
    }


def test_semantic_layer_answers_on_the_publication_as_on_the_working_database(
    sample_publication,
):
    from retail_xsell.semantic import SemanticLayer

    folder = current_folder(sample_publication.published)
    manifest = folder / "semantic_manifest.json"
    with (
        SemanticLayer(manifest, sample_publication.published) as published,
        SemanticLayer(manifest, sample_publication.working) as working,
    ):
        assert published.metrics == working.metrics
        for metric in published.metrics:
            group_by = ["metric_time__month"] if metric.endswith(("_growth", "_yoy")) else []
            try:
                expected = working.query([metric], group_by=group_by).rows
            except Exception as error:  # metrics that need a grain: same error both sides
                with pytest.raises(type(error)):
                    published.query([metric], group_by=group_by)
                continue
            assert sorted(published.query([metric], group_by=group_by).rows) == sorted(expected), (
                metric
            )
        for name in published.saved_queries:
            assert sorted(published.query_saved(name).rows) == sorted(
                working.query_saved(name).rows
            )


def test_parquet_ports_equal_the_published_marts(sample_publication):
    folder = current_folder(sample_publication.published)
    public = {
        node["alias"]
        for node in _manifest(sample_publication.target)["nodes"].values()
        if node["resource_type"] == "model" and node.get("access") == "public"
    }
    assert {p.name for p in (folder / "parquet").iterdir()} == public
    with duckdb.connect(str(sample_publication.published), read_only=True) as con:
        for name in sorted(public):
            files = str(folder / "parquet" / name / "**" / "*.parquet")
            parquet = f"read_parquet('{files}', hive_partitioning = false)"
            columns = ", ".join(
                f'"{c}"'
                for (c,) in con.execute(
                    "select column_name from duckdb_columns() where table_name = ?"
                    " and database_name = current_database() order by column_index",
                    [name],
                ).fetchall()
            )
            (missing,) = con.execute(
                f"select count(*) from (select {columns} from {name}"
                f" except all select {columns} from {parquet})"
            ).fetchone()
            (extra,) = con.execute(
                f"select count(*) from (select {columns} from {parquet}"
                f" except all select {columns} from {name})"
            ).fetchone()
            assert (missing, extra) == (0, 0), name
        months = con.execute(
            "select count(distinct date_trunc('month', order_date)) from order_lines"
        ).fetchone()[0]
    partitions = sorted(p.name for p in (folder / "parquet" / "order_lines").iterdir())
    assert len(partitions) == months and partitions[0].startswith("order_month=")


def test_summary_reads_consumer_figures_from_the_publication(sample_publication):
    alone = render_summary(sample_publication.published)
    assert "Publication " in alone and "stay in the working database" in alone
    assert "Rejected rows by reason" not in alone
    both = render_summary(sample_publication.published, sample_publication.working)
    assert "Rejected rows by reason" in both and "For data stewards" in both
    clv = next(line for line in alone.splitlines() if line.startswith("Customer value"))
    assert clv in both


def test_publications_are_kept_switched_atomically_and_rolled_back(sample_publication, tmp_path):
    """Several publications: the newest is current, only `keep` folders remain, the
    history survives in the current file, a rollback switches every port at once."""
    published = tmp_path / "published" / "retail_xsell.duckdb"
    ids = []
    for _ in range(3):
        ids.append(
            publish(
                sample_publication.working, published, sample_publication.report, keep=2
            ).publication_id
        )
    kept = list_publications(published)
    assert [r["publication_id"] for r in kept] == ids[::-1][:2]
    assert kept[0]["is_current"] and not kept[1]["is_current"]
    assert last_publication(published)["publication_id"] == ids[-1]
    with duckdb.connect(str(published), read_only=True) as con:
        history = [
            r
            for (r,) in con.execute(
                "select publication_id from publications order by published_at"
            ).fetchall()
        ]
    assert history == ids
    assert os.readlink(published) == os.path.join("current", published.name)

    rollback(published, ids[1][:8])
    assert last_publication(published)["publication_id"] == ids[1]
    assert (
        json.loads((current_folder(published) / "publication.json").read_text())["publication_id"]
        == ids[1]
    )
    with pytest.raises(PublishRefusedError, match="no kept publication matches"):
        rollback(published, ids[0][:8])  # pruned


def test_a_killed_publish_leaves_nothing_that_the_next_one_does_not_clean(
    sample_publication, tmp_path
):
    published = tmp_path / "published" / "retail_xsell.duckdb"
    publish(sample_publication.working, published, sample_publication.report)
    before = current_folder(published)
    # What a publish killed mid-way leaves: a half-written folder and a link being made.
    half = publications_dir(published) / ".20990101T000000Z-deadbeef.tmp"
    (half / "parquet").mkdir(parents=True)
    (half / "retail_xsell.duckdb").write_bytes(b"half")
    os.symlink("publications/nowhere", published.parent / ".current.deadbeef.tmp")
    assert current_folder(published) == before  # consumers never saw it
    publish(sample_publication.working, published, sample_publication.report)
    assert not half.exists() and not list(published.parent.glob(".*.tmp"))


CONCURRENT_PUBLISH = """
import json, sys
from pathlib import Path
from retail_xsell.publish import publish
working, published, report = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
print(publish(working, published, json.loads(report.read_text()), keep=10).publication_id)
"""


def test_concurrent_publishes_keep_every_publication_record(sample_publication, tmp_path):
    published = tmp_path / "published" / "retail_xsell.duckdb"
    report = sample_publication.report_dir / "report.json"
    processes = [
        subprocess.Popen(
            [
                PYTHON,
                "-c",
                CONCURRENT_PUBLISH,
                str(sample_publication.working),
                str(published),
                str(report),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    ids = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        ids.append(out.strip())
    with duckdb.connect(str(published), read_only=True) as con:
        history = {r for (r,) in con.execute("select publication_id from publications").fetchall()}
    assert history == set(ids)


def test_gate_blocks_a_column_removed_from_a_public_port(sample_publication, tmp_path):
    """Remove a column from a public mart's contract in a copy of the build's
    artifacts: the contract SLO breaches and names the port and the column."""
    target = tmp_path / "target"
    shutil.copytree(sample_publication.target, target)
    manifest = _manifest(target)
    node = next(
        n for n in manifest["nodes"].values() if n["unique_id"] == "model.retail_xsell.customers"
    )
    del node["columns"]["rfm_segment"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    report = run_gate(
        sample_publication.working, target, sample_publication.published, tmp_path / "slo"
    )
    compatibility = next(s for s in report["slos"] if s["name"] == "contract_compatibility")
    assert report["blocking_breaches"] == ["contract_compatibility"]
    assert compatibility["measured"] == 2  # one per tabular port
    for port in ("duckdb", "parquet"):
        assert any(
            detail.startswith(f"port {port}: customers.rfm_segment was removed")
            and "Bump the model's version or declare it in contract_changes.yml" in detail
            for detail in compatibility["details"]
        ), compatibility["details"]


def test_published_parquet_contract_passes_datacontract_test_on_the_published_parquet(
    sample_publication, tmp_path
):
    tools = PROJECT_DIR / ".venv-contracts" / "bin"
    if not (tools / "datacontract").is_file():
        pytest.fail(f"{tools / 'datacontract'} is missing: run `make contracts-venv`")
    folder = current_folder(sample_publication.published)
    contract = folder / "contracts" / "parquet.odcs.yaml"
    (server,) = yaml.safe_load(contract.read_text())["servers"]
    # The contract points at the stable path, which always shows the current publication.
    assert server["path"].startswith(str(sample_publication.published.parent / "current"))
    results = tmp_path / "results.json"
    completed = _run(
        [
            str(tools / "datacontract"),
            "test",
            str(contract),
            "--output-format",
            "json",
            "--output",
            str(results),
        ],
        tmp_path,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    checks = json.loads(results.read_text())["checks"]
    assert not [c for c in checks if c["result"] in ("failed", "error")]
    assert sum(c["result"] == "passed" for c in checks) > 200
    # Linting every generated contract is test_contracts.py's job.


def test_readme_parquet_example_runs_on_a_publication(sample_publication, tmp_path):
    """The README's notebook example, run as written against a publication (only the
    folder differs), prints the figures of the published marts."""
    readme = (PROJECT_DIR / "README.md").read_text()
    block = readme.split("<!-- parquet-example -->\n```python\n", 1)[1].split("```", 1)[0]
    assert 'port = "build/published/current/parquet"' in block
    port = sample_publication.published.parent / "current" / "parquet"
    script = tmp_path / "example.py"
    script.write_text(block.replace("build/published/current/parquet", str(port)))
    completed = subprocess.run(
        [PYTHON, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    with duckdb.connect(str(sample_publication.published), read_only=True) as con:
        (lines,) = con.execute("select count(*) from order_lines").fetchone()
        (returns,) = con.execute(
            "select count(*) from order_lines where line_type = 'return'"
        ).fetchone()
    assert f"{lines} order lines in" in completed.stdout
    assert f"{returns} returns" in completed.stdout
    assert "bgnbd_gamma_gamma" in completed.stdout


def test_overview_links_the_documents_every_publication_ships(sample_publication):
    """The docs site links data-product/<file>; `make docs` writes the same layout there
    as a publication folder has."""
    overview = (PROJECT_DIR / "models" / "overview.md").read_text()
    links = set(re.findall(r"\]\(data-product/([^)]+)\)", overview))
    assert {"dataproduct.yaml", "contracts/duckdb.odcs.yaml"} <= links
    folder = current_folder(sample_publication.published)
    for link in links:
        assert (folder / link).is_file(), link


def _exports(database: Path) -> list[tuple]:
    """Every export table's name, columns and rows, and the index, of a publication."""
    with duckdb.connect(str(database), read_only=True) as con:
        index = con.execute(
            "select key, table_name, columns, row_count from metric_exports.export_index"
            " order by key"
        ).fetchall()
        tables = sorted({table for _, table, _, _ in index})
        return index + [
            (
                table,
                sorted(con.execute(f"select * from metric_exports.{table}").fetchall(), key=repr),
            )
            for table in tables
        ]


def test_publishing_the_same_build_again_copies_its_metric_exports(sample_publication, tmp_path):
    published = tmp_path / "published" / "retail_xsell.duckdb"
    publish(sample_publication.working, published, sample_publication.report)
    first = json.loads((current_folder(published) / "publication.json").read_text())
    assert first["metric_exports"]["copied_from"] is None
    assert (
        first["metric_exports"]["source"]["build_invocation_id"]
        == (sample_publication.report["build"]["invocation_id"])
    )
    computed = _exports(current_folder(published) / published.name)

    publish(sample_publication.working, published, sample_publication.report)
    second = json.loads((current_folder(published) / "publication.json").read_text())
    assert second["metric_exports"]["copied_from"] == first["publication_id"]
    assert second["metric_exports"]["exports"] == first["metric_exports"]["exports"]
    assert second["metric_exports"]["skipped"] == first["metric_exports"]["skipped"]
    assert _exports(current_folder(published) / published.name) == computed

    # Another build of the same data is another source: computed again, not copied.
    forced = json.loads(json.dumps(sample_publication.report))
    forced["build"]["invocation_id"] = "another-build"
    publish(sample_publication.working, published, forced)
    third = json.loads((current_folder(published) / "publication.json").read_text())
    assert third["metric_exports"]["copied_from"] is None
    assert _exports(current_folder(published) / published.name) == computed


def test_exports_that_cannot_be_copied_are_computed_again(sample_publication, tmp_path):
    """The current publication lost an export table (a damaged file): publishing the same
    build again cannot copy its exports, so it computes them; the half-done copy leaves
    nothing behind and the new publication holds every export."""
    published = tmp_path / "published" / "retail_xsell.duckdb"
    publish(sample_publication.working, published, sample_publication.report)
    computed = _exports(current_folder(published) / published.name)
    with duckdb.connect(str(current_folder(published) / published.name)) as con:
        (last,) = con.execute("select max(table_name) from metric_exports.export_index").fetchone()
        con.execute(f"drop table metric_exports.{last}")

    publish(sample_publication.working, published, sample_publication.report)
    record = json.loads((current_folder(published) / "publication.json").read_text())
    assert record["metric_exports"]["copied_from"] is None
    assert _exports(current_folder(published) / published.name) == computed
