"""The gate's report: each objective's result, and the report as people read it.

``report.json`` is the record (publish and the tests read it); ``report.md`` and
``target/slo_report.html`` (linked from the docs site) say the same for people, and
:func:`failure_messages` is what the command line prints for a blocking breach.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def format_value(value: float, unit: str) -> str:
    """A measured value or a bound in its unit: shares as percentages, counts whole."""
    if unit == "share":
        return f"{value:.2%}"
    if unit == "relative change":
        return f"{value:+.1%}"
    if float(value).is_integer():
        return f"{int(value):,} {unit}"
    return f"{value:,.1f} {unit}"


@dataclass
class SloResult:
    """One objective as judged, as report.json records it."""

    name: str
    category: str
    description: str
    blocking: bool
    target: dict[str, float]
    unit: str
    measured: float | None
    status: str  # pass, breach, error or no_baseline
    details: list[str]
    where: str
    note: str = ""
    trend: list[dict[str, Any]] = field(default_factory=list)

    @property
    def target_text(self) -> str:
        parts = []
        if "min" in self.target:
            parts.append(f">= {format_value(self.target['min'], self.unit)}")
        if "max" in self.target:
            parts.append(f"<= {format_value(self.target['max'], self.unit)}")
        return " and ".join(parts)

    @property
    def measured_text(self) -> str:
        return "n/a" if self.measured is None else format_value(self.measured, self.unit)

    @property
    def is_failing(self) -> bool:
        """Breached, or not measurable (which counts as a breach)."""
        return self.status in ("breach", "error")


def result_from_dict(slo: dict[str, Any]) -> SloResult:
    fields = {k: v for k, v in slo.items() if k != "target_text"}
    return SloResult(**fields)


def _status_label(slo: SloResult) -> str:
    if slo.is_failing:
        return f"{slo.status.upper()} (blocking)" if slo.blocking else f"{slo.status} (warning)"
    return slo.status


def _trend_text(slo: SloResult) -> str:
    if not slo.trend:
        return "first run"
    marks = {"pass": "ok", "breach": "BREACH", "error": "ERROR", "no_baseline": "-"}
    previous = [
        marks.get(t["status"], t["status"])
        + ("" if t["measured"] is None else f" {format_value(t['measured'], slo.unit)}")
        for t in reversed(slo.trend)
    ]
    return " -> ".join(previous)


def failure_messages(report: dict[str, Any]) -> list[str]:
    """One line per blocking breach: the SLO, the measured value, and where to look."""
    lines = []
    for slo in map(result_from_dict, report["slos"]):
        if slo.blocking and slo.is_failing:
            lines.append(
                f"SLO {slo.name} {slo.status}: measured {slo.measured_text}, target "
                f"{slo.target_text}. {slo.details[0] if slo.details else ''} "
                f"Look at: {slo.where}"
            )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        "# SLO report: retail cross-sell data product",
        "",
        f"Gate **{verdict}** at {report['evaluated_at']} on commit `{report['git_commit']}`,"
        f" build {report['build']['invocation_id'][:8]} started {report['build']['started_at']}"
        f", database `{report['database']['path']}`.",
        "",
    ]
    if report["overrides"]:
        lines += [f"Overrides applied: {', '.join(report['overrides'])} (see the notes).", ""]
    lines += [
        "| SLO | category | blocking | target | measured | status "
        "| previous runs (oldest -> newest) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for slo in map(result_from_dict, report["slos"]):
        lines.append(
            f"| {slo.name} | {slo.category} | {'yes' if slo.blocking else 'no'} "
            f"| {slo.target_text} | {slo.measured_text} | {_status_label(slo)} "
            f"| {_trend_text(slo)} |"
        )
    lines += ["", "## Details", ""]
    for slo in map(result_from_dict, report["slos"]):
        lines.append(f"- **{slo.name}** ({_status_label(slo)}): {slo.description}")
        lines += [f"  - {detail}" for detail in slo.details]
        if slo.note:
            lines.append(f"  - note: {slo.note}")
        lines.append(f"  - where to look: {slo.where}")
    lines += ["", "## Access review (API audit trail)", ""]
    review = report.get("access_review") or []
    if review:
        from retail_xsell.delivery.audit import render_access_review_markdown

        lines.append(render_access_review_markdown(review).rstrip())
    else:
        lines.append("No API access recorded yet (retail-xsell serve; docs/governance.md).")
    return "\n".join(lines) + "\n"


def render_html(markdown: str) -> str:
    """A plain HTML page of the Markdown report, for the dbt docs site to link to."""
    body = html.escape(markdown)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>SLO report</title></head>"
        f"<body><pre style='white-space: pre-wrap'>{body}</pre></body></html>\n"
    )


def write_report(report: dict[str, Any], report_dir: Path, target_path: Path) -> Path:
    """Write report.json and report.md, and slo_report.html into target/ (the folder the
    docs site is served from, linked from its overview page)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (report_dir / "report.md").write_text(markdown)
    if target_path.is_dir():
        (target_path / "slo_report.html").write_text(render_html(markdown))
    return report_dir / "report.md"
