"""Shared fixtures: run this dbt project against throwaway DuckDB databases.

dbt runs in a subprocess (its in-process API keeps global state between invocations),
with its own target/ and logs/ folders, so tests never touch a developer's build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from retail_xsell.daily_load import table_differences  # noqa: F401 (shared by tests)

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DBT = Path(sys.executable).parent / "dbt"


@dataclass
class DbtResult:
    returncode: int
    output: str
    database: Path
    target_path: Path

    def run_results(self) -> dict:
        return json.loads((self.target_path / "run_results.json").read_text())


@dataclass
class WorkDir:
    """A dbt work folder as `run_dbt` lays it out: test.duckdb and target/ inside."""

    workdir: Path

    @property
    def database(self) -> Path:
        return self.workdir / "test.duckdb"

    @property
    def target(self) -> Path:
        return self.workdir / "target"


def dbt_command(
    args: list[str],
    workdir: Path,
    dbt_vars: dict | None = None,
    project_dir: Path = PROJECT_DIR,
    env: dict | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `dbt <args>` with its database
    (`workdir/test.duckdb`) and target folder in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "test.duckdb"
    target_path = workdir / "target"
    command = [
        str(DBT),
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(workdir / "logs"),
        "--no-use-colors",
    ]
    if dbt_vars:
        command += ["--vars", json.dumps(dbt_vars)]
    full_env = {
        **os.environ,
        "RETAIL_XSELL_DUCKDB_PATH": str(database),
        "RETAIL_XSELL_TARGET": "dev",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(env or {}),
    }
    return command, full_env


def run_dbt(
    args: list[str],
    workdir: Path,
    dbt_vars: dict | None = None,
    project_dir: Path = PROJECT_DIR,
    env: dict | None = None,
) -> DbtResult:
    """Run `dbt <args>` on `project_dir` with a database and target folder in `workdir`."""
    command, full_env = dbt_command(args, workdir, dbt_vars, project_dir, env)
    completed = subprocess.run(
        command,
        cwd=project_dir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return DbtResult(
        completed.returncode,
        completed.stdout + completed.stderr,
        workdir / "test.duckdb",
        workdir / "target",
    )


@pytest.fixture(scope="session")
def small_raw_dir() -> Path:
    """The hand-made raw input with one of each flaw (see fixtures/raw_small/README.md)."""
    return FIXTURES / "raw_small"


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory) -> Path:
    """The product built on the committed sample (seed mode), once per test session."""
    result = run_dbt(["build"], tmp_path_factory.mktemp("sample"))
    assert result.returncode == 0, result.output[-4000:]
    return result.database
