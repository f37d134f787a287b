"""A build larger than DuckDB's memory limit spills to its temp directory and completes.

dbt-duckdb runs a profile's ``settings`` with SET on every cursor it opens, and DuckDB
refuses to set ``temp_directory`` again once it has spilled there ("Cannot switch
temporary directory after the current one has been used"). With temp_directory among
the settings, the 100M-line build failed on the first model after its first spill.
profiles.yml now sets the memory limit and the temp directory once, when dbt opens
DuckDB (``config_options``).

The sample build is made to spill by a 60 MB memory limit: with the old settings it
failed there with that error on 15 nodes (measured 2026-12-04); at 40 MB it runs out of
memory with either setting, at 100 MB it does not spill.

The spilled build must also give the same rows as the session's ordinary build of the
same sample: DuckDB splits and orders its work differently under memory pressure, which
is what exposed sums of doubles that depended on the order their rows were added in.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import PROJECT_DIR, run_dbt, table_differences
from retail_xsell import settings


def test_a_build_that_spills_to_disk_completes(tmp_path: Path, sample_db: Path):
    result = run_dbt(
        ["build"],
        tmp_path / "work",
        env={
            "RETAIL_XSELL_MEMORY_LIMIT": "60MB",
            "RETAIL_XSELL_TEMP_DIR": str(tmp_path / "spill"),
        },
    )
    assert "Cannot switch temporary directory" not in result.output
    assert result.returncode == 0, result.output[-4000:]
    differences, compared = table_differences(result.database, sample_db)
    assert len(compared) > 40
    assert differences == []


def test_building_targets_set_the_temp_directory_once_per_connection():
    outputs = yaml.safe_load((PROJECT_DIR / "profiles.yml").read_text())["retail_xsell"]["outputs"]
    for name in ("dev", "ci"):
        target = outputs[name]
        assert "temp_directory" not in (target.get("settings") or {}), name
        options = target["config_options"]
        # The defaults the package's own DuckDB connections use (settings.py) are the same.
        assert options["memory_limit"] == (
            f"{{{{ env_var('{settings.MEMORY_LIMIT_ENV}', '{settings.DEFAULT_MEMORY_LIMIT}') }}}}"
        ), name
        assert options["temp_directory"] == (
            f"{{{{ env_var('{settings.TEMP_DIR_ENV}', '{settings.DEFAULT_TEMP_DIR}') }}}}"
        ), name
