"""Source freshness on purchases: the loaded_at of the newest row against the clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from conftest import run_dbt

pytestmark = pytest.mark.dbt


def _with_loaded_at(small_raw_dir, tmp_path, loaded_at: datetime):
    raw = tmp_path / "raw"
    shutil.copytree(small_raw_dir, raw, ignore=shutil.ignore_patterns("*.md"))
    stamp = loaded_at.strftime("%Y-%m-%d %H:%M:%S")
    ordered = (loaded_at - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    purchase = raw / "purchase" / "part-0.csv"
    header, *rows = purchase.read_text().splitlines()
    rows = [",".join([*r.split(",")[:7], ordered, *r.split(",")[8:10], stamp]) for r in rows]
    purchase.write_text("\n".join([header, *rows]) + "\n")
    return raw


@pytest.mark.parametrize(
    ("age", "expected_status", "expected_rc"),
    [
        (timedelta(hours=2), "pass", 0),
        (timedelta(hours=30), "warn", 0),
        (timedelta(days=4), "error", 1),
    ],
)
def test_purchase_freshness(tmp_path, small_raw_dir, age, expected_status, expected_rc):
    now = datetime.now(UTC).replace(tzinfo=None)
    raw = _with_loaded_at(small_raw_dir, tmp_path, now - age)
    result = run_dbt(
        ["source", "freshness", "--select", "source:retail_raw.purchase"],
        tmp_path / "work",
        {"raw_input_format": "csv", "raw_input_path": str(raw)},
    )
    assert result.returncode == expected_rc, result.output[-3000:]
    sources = (result.target_path / "sources.json").read_text()
    assert f'"status": "{expected_status}"' in sources
