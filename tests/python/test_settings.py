"""Paths and environment variables resolve the way profiles.yml and the docs say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_DIR
from retail_xsell import settings


def test_working_database_follows_the_target_and_the_override_as_profiles_yml_does(tmp_path):
    base = tmp_path
    assert settings.database_path(base, {}) == base / "build/retail_xsell.duckdb"
    ci = {"RETAIL_XSELL_TARGET": "ci"}
    assert settings.database_path(base, ci) == base / "build/ci.duckdb"
    moved = {**ci, "RETAIL_XSELL_DUCKDB_PATH": "elsewhere/x.duckdb"}
    assert settings.database_path(base, moved) == base / "elsewhere/x.duckdb"
    absolute = {"RETAIL_XSELL_DUCKDB_PATH": str(tmp_path / "abs.duckdb")}
    assert settings.database_path(Path("/ignored"), absolute) == tmp_path / "abs.duckdb"
    with pytest.raises(ValueError, match="must be one of dev, ci; got 'published'"):
        settings.database_path(base, {"RETAIL_XSELL_TARGET": "published"})
    # The defaults are profiles.yml's own.
    outputs = yaml.safe_load((PROJECT_DIR / "profiles.yml").read_text())["retail_xsell"]["outputs"]
    for target, default in settings.DEFAULT_DATABASE_PATHS.items():
        assert f"'{default}'" in outputs[target]["attach"][0]["path"]
    assert f"'{settings.DEFAULT_PUBLISHED_PATH}'" in outputs["published"]["attach"][0]["path"]


def test_relative_paths_are_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert settings.published_path(environ={}) == tmp_path / settings.DEFAULT_PUBLISHED_PATH
    assert settings.slo_file(environ={"RETAIL_XSELL_SLO_FILE": "mine.yml"}) == tmp_path / "mine.yml"


def test_project_dir_is_the_current_project_or_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert settings.project_dir() == PROJECT_DIR  # not a dbt project: the checkout
    (tmp_path / "dbt_project.yml").write_text("name: other\n")
    assert settings.project_dir() == tmp_path
    assert settings.target_path() == tmp_path / "target"
    assert settings.slo_file(environ={}) == tmp_path / "slos.yml"


@pytest.mark.parametrize("raw", ["0", "-1", "five", ""])
def test_keep_publications_must_be_a_whole_number_of_at_least_one(raw):
    with pytest.raises(ValueError, match="RETAIL_XSELL_KEEP_PUBLICATIONS"):
        settings.keep_publications({"RETAIL_XSELL_KEEP_PUBLICATIONS": raw})
    assert settings.keep_publications({}) == settings.DEFAULT_KEEP_PUBLICATIONS
    assert settings.keep_publications({"RETAIL_XSELL_KEEP_PUBLICATIONS": "2"}) == 2


def test_report_dir_is_beside_the_working_database():
    assert settings.report_dir(Path("build/ci.duckdb")) == Path("build/slo/ci")
