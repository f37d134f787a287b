"""The gate's memory: every run's results in ``history.duckdb`` beside the report, so
that each objective's trend (its previous results) appears in the next report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

#: How many previous results of an objective the report shows.
HISTORY_RUNS = 5


def record_history(history: Path, report: dict[str, Any]) -> None:
    """Append this run's results and attach each SLO's previous results as its trend."""
    history.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(history)) as con:
        con.execute(
            "create table if not exists slo_results (run_id varchar, evaluated_at timestamptz,"
            " git_commit varchar, slo varchar, status varchar, measured double,"
            " blocking boolean, gate_passed boolean)"
        )
        for slo in report["slos"]:
            slo["trend"] = [
                {"evaluated_at": at.isoformat(timespec="seconds"), "status": s, "measured": m}
                for at, s, m in con.execute(
                    "select evaluated_at, status, measured from slo_results where slo = ?"
                    " order by evaluated_at desc limit ?",
                    [slo["name"], HISTORY_RUNS],
                ).fetchall()
            ]
        con.executemany(
            "insert into slo_results values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    report["run_id"],
                    report["evaluated_at"],
                    report["git_commit"],
                    slo["name"],
                    slo["status"],
                    slo["measured"],
                    slo["blocking"],
                    report["passed"],
                ]
                for slo in report["slos"]
            ],
        )
