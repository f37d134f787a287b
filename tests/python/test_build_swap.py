"""`retail-xsell build`: a fresh file swapped onto the working database (build.py).

dbt itself is replaced here by a small script that does what a build does to the file
it is given (RETAIL_XSELL_DUCKDB_PATH) and exits with the code a test asks for, so every
branch of the swap rule runs in milliseconds. The real dbt goes through the same code
in `make dbt-test` and `make build`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from retail_xsell.build import build_and_swap, building_path, selection_option
from retail_xsell.cli import main
from retail_xsell.settings import wal_path

# Writes `rows` rows into table `built` of RETAIL_XSELL_DUCKDB_PATH (replacing it, as dbt
# replaces a table), optionally leaves a write-ahead log or is killed, exits with `code`.
FAKE_DBT = textwrap.dedent(
    """
    import os, signal, sys
    import duckdb
    code, rows, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    path = os.environ["RETAIL_XSELL_DUCKDB_PATH"]
    if mode == "expect-fresh" and os.path.exists(path):
        sys.exit(97)
    if rows:
        con = duckdb.connect(path)
        con.execute(
            "create or replace table built as select range as id, md5(range::varchar) as"
            f" label from range({rows})"
        )
        con.close()
    if mode == "leave-wal":
        open(path + ".wal", "wb").write(b"unfinished")
    if mode == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(code)
    """
)


@pytest.fixture
def fake_dbt(tmp_path: Path):
    script = tmp_path / "fake_dbt.py"
    script.write_text(FAKE_DBT)

    def command(code: int = 0, rows: int = 10, mode: str = "plain") -> list[str]:
        return [sys.executable, str(script), str(code), str(rows), mode]

    return command


def _old_build(working: Path) -> None:
    with duckdb.connect(str(working)) as con:
        con.execute("create table old_build as select 1 as marker")


def _tables(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()}


@pytest.mark.parametrize("code", [0, 1])
def test_a_finished_build_replaces_the_working_database(tmp_path, fake_dbt, code):
    """Exit 0, and exit 1 (failed tests, whose stored failures the gate must read)."""
    working = tmp_path / "work.duckdb"
    _old_build(working)
    result = build_and_swap(working, fake_dbt(code=code))
    assert (result.returncode, result.swapped) == (code, True)
    assert _tables(working) == {"built"}
    assert not building_path(working).exists()


@pytest.mark.parametrize(
    ("code", "rows", "mode"),
    [
        (2, 10, "plain"),  # dbt failed (bad vars, compile error) after opening the file
        (2, 0, "plain"),  # dbt failed before creating any file
        (0, 10, "leave-wal"),  # the file's log was not checkpointed: not a whole build
        (0, 0, "plain"),  # "success" without a database file
        (0, 10, "killed"),  # SIGKILL, or the OOM killer
    ],
)
def test_an_unfinished_build_keeps_the_old_working_database(tmp_path, fake_dbt, code, rows, mode):
    working = tmp_path / "work.duckdb"
    _old_build(working)
    result = build_and_swap(working, fake_dbt(code=code, rows=rows, mode=mode))
    assert not result.swapped
    assert _tables(working) == {"old_build"}
    assert not building_path(working).exists()
    assert not wal_path(building_path(working)).exists()


def test_a_first_build_creates_the_working_database_and_its_folder(tmp_path, fake_dbt):
    working = tmp_path / "new" / "folder" / "work.duckdb"
    assert build_and_swap(working, fake_dbt()).swapped
    assert _tables(working) == {"built"}


def test_a_crashed_builds_leftovers_are_removed_before_dbt_starts(tmp_path, fake_dbt):
    working = tmp_path / "work.duckdb"
    _old_build(working)
    building_path(working).write_bytes(b"half a build")
    wal_path(building_path(working)).write_bytes(b"its log")
    # The fake exits 97 when its file already exists.
    assert build_and_swap(working, fake_dbt(mode="expect-fresh")).returncode == 0


def test_the_old_files_stale_log_is_not_replayed_into_the_new_build(tmp_path, fake_dbt):
    """A write-ahead log left by an interrupted write to the old file belongs to the old
    file; DuckDB would replay it against the new one."""
    working = tmp_path / "work.duckdb"
    _old_build(working)
    wal_path(working).write_bytes(b"a log of the old file")
    assert build_and_swap(working, fake_dbt()).swapped
    assert not wal_path(working).exists()
    assert _tables(working) == {"built"}


def test_selecting_part_of_the_project_is_refused(capsys):
    assert main(["build", "--", "--select", "orders+"]) == 2
    assert "--select has nothing upstream" in capsys.readouterr().err
    assert selection_option(["--vars", "{}", "--exclude=orders"]) == "--exclude"
    assert selection_option(["--vars", "{select: 1}"]) is None


def test_the_published_target_has_no_working_database_to_build(monkeypatch, capsys):
    monkeypatch.setenv("RETAIL_XSELL_TARGET", "published")
    monkeypatch.delenv("RETAIL_XSELL_DUCKDB_PATH", raising=False)
    assert main(["build"]) == 2
    assert "RETAIL_XSELL_TARGET must be one of" in capsys.readouterr().err


# --- the real dbt, through the command ------------------------------------------------


def _fingerprint(path: Path) -> tuple[int, int, bytes]:
    return (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes())


def _dbt_folders(tmp_path: Path) -> list[str]:
    """Keep the real dbt's artifacts out of the project's target/ and logs/."""
    return ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]


def test_dbt_refusing_its_vars_leaves_the_working_database_as_it_was(tmp_path, capsys):
    working = tmp_path / "work.duckdb"
    _old_build(working)
    before = _fingerprint(working)
    code = main(
        [
            "build",
            "--database",
            str(working),
            "--",
            "--vars",
            "{raw_input_format: xml}",
            *_dbt_folders(tmp_path),
        ]
    )
    assert code == 2
    assert "is unchanged" in capsys.readouterr().err
    assert _fingerprint(working) == before
    assert sorted(p.name for p in tmp_path.glob("work.duckdb*")) == ["work.duckdb"]


def test_ctrl_c_during_a_real_build_leaves_the_working_database_as_it_was(tmp_path):
    """Ctrl-C reaches the whole foreground process group: retail-xsell and dbt."""
    working = tmp_path / "work.duckdb"
    _old_build(working)
    before = _fingerprint(working)
    command = [
        str(Path(sys.executable).with_name("retail-xsell")),
        "build",
        "--database",
        str(working),
        "--",
        *_dbt_folders(tmp_path),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # interrupt once dbt has started building
        if " START " in line:
            break
    else:
        pytest.fail(f"dbt never started a node: {process.stderr.read() if process.stderr else ''}")
    assert building_path(working).exists()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert _fingerprint(working) == before
    assert sorted(p.name for p in tmp_path.glob("work.duckdb*")) == ["work.duckdb"]
