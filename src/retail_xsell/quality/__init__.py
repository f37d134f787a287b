"""The quality gate: evaluate the objectives declared in slos.yml after a build.

- ``declarations``: slos.yml as a pydantic model (validation, the JSON schema);
- ``measurements``: one function per ``measurement:`` kind, in one registry;
- ``evaluation``: measure, judge and decide (:func:`run_gate`);
- ``report``: report.json, report.md, the HTML page and the command line's messages;
- ``history``: every run's results, for each objective's trend;
- ``cli``: the ``retail-xsell gate`` subcommand.

docs/slos.md describes the objectives and the write-audit-publish flow.
"""

from retail_xsell.quality.declarations import (
    CATEGORIES,
    GateSetupError,
    Slo,
    SloFile,
    json_schema,
    load_slos,
    write_json_schema,
)
from retail_xsell.quality.evaluation import evaluate, run_gate
from retail_xsell.quality.measurements import MEASUREMENTS, Inputs, Measurement, row_counts
from retail_xsell.quality.report import SloResult, failure_messages, result_from_dict

__all__ = [
    "CATEGORIES",
    "MEASUREMENTS",
    "GateSetupError",
    "Inputs",
    "Measurement",
    "Slo",
    "SloFile",
    "SloResult",
    "evaluate",
    "failure_messages",
    "json_schema",
    "load_slos",
    "result_from_dict",
    "row_counts",
    "run_gate",
    "write_json_schema",
]
