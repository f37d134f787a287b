"""Pseudonyms that hold (issue 10, item 5): a keyed HMAC whose key leaves no trace.

One build of the committed sample with a secret key in the environment; every check
reads what that build left behind: each file dbt wrote (target/, logs/, the
partial-parse cache; manifest.json is what the docs site serves), the SQL the database
stores, the pseudonyms themselves. Meanwhile a run-operation with the development key on external
input shows the run-start warning. The gate's check runs on small databases made with
the development key, the way a careless real build would make them.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import PROJECT_DIR, dbt_command, run_dbt
from retail_xsell import pseudonyms
from retail_xsell.pseudonyms import (
    DEVELOPMENT_KEY,
    KEY_ENV,
    PseudonymKey,
    PseudonymKeyError,
    load_key,
    register,
)
from retail_xsell.quality import Inputs, load_slos
from retail_xsell.quality.measurements import measure_development_key

pytestmark = pytest.mark.dbt

TEST_KEY = "pytest-pseudonym-key-9f1c2e7a-not-for-production-4b6d"
SLO = load_slos(PROJECT_DIR / "slos.yml").slo("pseudonym_key_not_development")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, small_raw_dir):
    """The sample built with TEST_KEY; and the output of the warning run."""
    warning_dir = tmp_path_factory.mktemp("dev_key_warning")
    command, env = dbt_command(
        ["run-operation", "warn_if_development_pii_key"],
        warning_dir,
        {"raw_input_format": "csv", "raw_input_path": str(small_raw_dir)},
        env={KEY_ENV: ""},
    )
    # Runs beside the build (its own database and folders): it only parses and asks
    # the connection which key it holds.
    warning_run = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workdir = tmp_path_factory.mktemp("keyed")
    try:
        # The same secret in the retired salt variable: the old macro wrote it into the
        # SQL text, so the leak checks below fail on it (and pass now that nothing
        # reads that variable).
        build = run_dbt(
            ["build"], workdir, env={KEY_ENV: TEST_KEY, "RETAIL_XSELL_PII_SALT": TEST_KEY}
        )
        assert build.returncode == 0, build.output[-4000:]
        warning_output = warning_run.communicate(timeout=600)[0]
    finally:
        if warning_run.poll() is None:
            warning_run.kill()
    return {
        "workdir": workdir,
        "build": build,
        "warning_returncode": warning_run.returncode,
        "warning_output": warning_output,
    }


def _connect(database: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(database), read_only=True)


def test_key_appears_in_no_artifact_log_or_stored_sql(keyed):
    workdir = keyed["workdir"]
    files = [
        p for folder in ("target", "logs") for p in (workdir / folder).rglob("*") if p.is_file()
    ]
    assert any(p.name == "partial_parse.msgpack" for p in files)
    assert any(p.name == "dbt.log" for p in files)
    key = TEST_KEY.encode()
    assert [p for p in files if key in p.read_bytes()] == []
    assert key not in keyed["build"].database.read_bytes()
    with _connect(keyed["build"].database) as con:
        stored_sql = con.sql(
            "select sql from duckdb_views() where sql is not null"
            " union all select sql from duckdb_tables() where sql is not null"
        ).fetchall()
    assert stored_sql
    assert [sql for (sql,) in stored_sql if TEST_KEY in sql] == []


def test_compiled_sql_calls_the_function_not_the_key(keyed):
    compiled = (
        keyed["build"].target_path
        / "compiled/retail_xsell/models/staging/retail/stg_retail__customers.sql"
    ).read_text()
    assert "pii_hmac(" in compiled
    assert "sha256('" not in compiled


def test_email_pseudonym_is_hmac_sha256_of_normalised_email(keyed):
    with _connect(keyed["build"].database) as con:
        rows = con.sql(
            "select pii.email_normalised, customers.email_sha256"
            " from main.customers as customers"
            " join main.stg_retail__customer_pii as pii using (customer_id)"
        ).fetchall()
        customer_count = con.sql("select count(*) from main.customers").fetchall()[0][0]
    assert len(rows) == customer_count > 1000
    assert sum(email is not None for email, _ in rows) > 1000

    def expected(email: str | None) -> str | None:
        if email is None:
            return None
        return hmac.new(TEST_KEY.encode(), email.encode(), hashlib.sha256).hexdigest()

    assert [made for _, made in rows] == [expected(email) for email, _ in rows]


def test_same_email_differs_between_development_and_secret_key(keyed):
    with _connect(keyed["build"].database) as con:
        email, made = con.sql(
            "select pii.email_normalised, customers.email_sha256"
            " from main.customers as customers"
            " join main.stg_retail__customer_pii as pii using (customer_id)"
            " where pii.email_normalised is not null order by customer_id limit 1"
        ).fetchall()[0]
    development = load_key({})
    assert development.is_development
    assert development.pseudonym(email) != made
    made_with = {}
    for name, key in (("development", development), ("secret", load_key({KEY_ENV: TEST_KEY}))):
        with duckdb.connect() as con:
            register(con, key)
            made_with[name] = con.execute("select pii_hmac(?)", [email]).fetchall()[0][0]
    with_development, with_secret = made_with["development"], made_with["secret"]
    assert with_development == development.pseudonym(email) != with_secret == made


def test_development_key_warns_at_run_start_on_real_input(keyed):
    assert keyed["warning_returncode"] == 0, keyed["warning_output"][-4000:]
    assert "PSEUDONYMS ARE REVERSIBLE" in keyed["warning_output"]
    assert "raw_input_format is 'csv'" in keyed["warning_output"]


def test_run_start_hook_warns_on_every_build():
    """The warning only helps if dbt runs it: it must be one of the on-run-start hooks."""
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    assert any("warn_if_development_pii_key()" in hook for hook in project["on-run-start"])


def test_secret_key_build_passes_the_gate_check_even_on_real_input(keyed):
    build = keyed["build"]
    with _connect(build.database) as con:
        for raw_input_format in ("seed", "parquet"):
            measured = measure_development_key(
                SLO, _inputs(con, build.database, raw_input_format, build.target_path)
            )
            assert measured.value == 0, measured.details


# --- the gate's check on databases made with the development key ----------------------


def _inputs(
    con: duckdb.DuckDBPyConnection, database: Path, raw_input_format: str, target: Path
) -> Inputs:
    run_results = {"args": {"vars": f"{{raw_input_format: {raw_input_format}}}"}}
    if raw_input_format == "seed":
        run_results = {"args": {}}  # the sample build passes no --vars
    return Inputs(
        project_dir=PROJECT_DIR,
        database=database,
        target_path=target,
        published=None,
        run_results=run_results,
        manifest={},
        connection=con,
    )


def _pseudonymised_db(path: Path, pseudonym_sql: str, key: PseudonymKey) -> Path:
    """customers and stg_retail__customer_pii as a build makes them, three customers."""
    with duckdb.connect(str(path)) as con:
        register(con, key)
        con.execute(
            "create table stg_retail__customer_pii as select * from (values"
            " (1, 'anna.smith@example.org'), (2, null), (3, 'eve@example.com'))"
            " as t(customer_id, email_normalised)"
        )
        con.execute(
            f"create table customers as select customer_id, {pseudonym_sql} as email_sha256"
            " from stg_retail__customer_pii"
        )
    return path


@pytest.mark.parametrize(
    "pseudonym_sql",
    ["pii_hmac(email_normalised)", "sha256('retail-xsell-development-salt' || email_normalised)"],
    ids=["development_key", "old_public_salt"],
)
def test_gate_blocks_real_input_made_with_a_public_key(tmp_path, pseudonym_sql):
    database = _pseudonymised_db(tmp_path / "dev.duckdb", pseudonym_sql, load_key({}))
    with _connect(database) as con:
        real = measure_development_key(SLO, _inputs(con, database, "parquet", tmp_path))
        sample = measure_development_key(SLO, _inputs(con, database, "seed", tmp_path))
    assert real.value == 1
    assert "parquet input" in real.details[0] and KEY_ENV in real.details[0]
    assert sample.value == 0
    assert "allowed for the committed sample" in sample.details[0]


def test_gate_passes_real_input_made_with_a_secret_key(tmp_path):
    key = load_key({KEY_ENV: TEST_KEY})
    database = _pseudonymised_db(tmp_path / "secret.duckdb", "pii_hmac(email_normalised)", key)
    with _connect(database) as con:
        measured = measure_development_key(SLO, _inputs(con, database, "csv", tmp_path))
    assert measured.value == 0
    assert "none of 2 sampled pseudonyms" in measured.details[0]


# --- the key ---------------------------------------------------------------------


def test_unset_or_empty_key_is_the_development_key():
    for environ in ({}, {KEY_ENV: ""}, {KEY_ENV: "  "}, {KEY_ENV: DEVELOPMENT_KEY}):
        key = load_key(environ)
        assert key.is_development and key.secret == DEVELOPMENT_KEY.encode()


def test_key_is_text_or_hex_and_at_least_32_bytes():
    assert load_key({KEY_ENV: f" {TEST_KEY}\n"}).secret == TEST_KEY.encode()
    raw = bytes(range(32))
    assert load_key({KEY_ENV: "hex:" + raw.hex()}).secret == raw
    for short in ("short-key", "hex:" + bytes(31).hex()):
        with pytest.raises(PseudonymKeyError) as error:
            load_key({KEY_ENV: short})
        assert short not in str(error.value)
    with pytest.raises(PseudonymKeyError):
        load_key({KEY_ENV: "hex:not-hex-digits-" + "0" * 64})


def test_key_repr_and_fingerprint_reveal_nothing():
    key = load_key({KEY_ENV: TEST_KEY})
    assert TEST_KEY not in repr(key)
    assert (
        key.fingerprint
        == hmac.new(TEST_KEY.encode(), pseudonyms.FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[
            :16
        ]
    )
    assert key.fingerprint != load_key({}).fingerprint


def test_functions_match_hmac_for_any_text_and_long_keys():
    values = ["anna.smith@example.org", "", "zoë@exämple.com", "x" * 5000, None]
    for secret in (TEST_KEY, "k" * 200):  # longer than a SHA-256 block: hashed first
        key = load_key({KEY_ENV: secret})
        with duckdb.connect() as con:
            register(con, key)
            rows = con.execute(
                "select pii_hmac(v), pii_key_is_development(), pii_key_fingerprint()"
                " from unnest(?) as t(v)",
                [values],
            ).fetchall()
        assert [row[0] for row in rows] == [
            None if v is None else hmac.new(secret.encode(), v.encode(), "sha256").hexdigest()
            for v in values
        ]
        assert {row[1:] for row in rows} == {(False, key.fingerprint)}


def test_unusable_key_fails_the_first_pseudonym_not_the_connection():
    with duckdb.connect() as con:
        register(con, PseudonymKeyError("RETAIL_XSELL_PII_KEY is 5 bytes"))
        assert con.execute("select 1").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error, match="5 bytes"):
            con.execute("select pii_hmac('a')").fetchall()


def test_plugin_registers_the_functions_from_the_environment(monkeypatch):
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    plugin = pseudonyms.Plugin(name="pseudonyms", plugin_config={})
    with duckdb.connect() as con:
        plugin.configure_connection(con)
        assert con.execute("select pii_key_is_development(), pii_hmac('a')").fetchall() == [
            (False, hmac.new(TEST_KEY.encode(), b"a", "sha256").hexdigest())
        ]
