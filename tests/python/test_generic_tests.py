"""The project's own generic tests (macros/tests/) catch exactly the rows they should.

A throwaway dbt project gets a copy of the macros and a seed whose bad rows were
planted by hand; each test's failure count must equal the number of planted rows.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from conftest import PROJECT_DIR, run_dbt

pytestmark = pytest.mark.dbt

SEED = """\
id,amount,code,order_id,line_number
1,0,AB,1,1
2,10,AB,1,2
3,10.5,ab,1,2
4,-1,A1,2,1
5,,XYZ,2,1
"""

PROPERTIES = """\
version: 2
seeds:
  - name: things
    config:
      column_types: {id: integer, amount: double, code: varchar, order_id: integer,
                     line_number: integer}
    data_tests:
      - unique_combination_of_columns:     # (1,2) and (2,1) repeat: 2 groups
          name: combo_fails
          arguments: {combination_of_columns: [order_id, line_number]}
      - unique_combination_of_columns:
          name: combo_passes
          arguments: {combination_of_columns: [id]}
      - expression_is_true:                # rows 1, 4 and 5 (null) fail
          name: expression_fails
          arguments: {expression: "amount >= id"}
      - expression_is_true:
          name: expression_passes
          arguments: {expression: "id > 0"}
    columns:
      - name: amount
        data_tests:
          - accepted_range:                # -1 and 10.5 outside [0, 10]; null ignored
              name: range_inclusive_fails
              arguments: {min_value: 0, max_value: 10}
          - accepted_range:                # 0, -1 and 10.5 outside (0, 10.5)
              name: range_exclusive_fails
              arguments: {min_value: 0, max_value: 10.5, inclusive: false}
          - accepted_range:
              name: range_passes
              arguments: {min_value: -1}
          - expression_is_true:            # column form: amount > 0 fails for 0, -1
              name: column_expression_fails
              arguments: {expression: "> 0"}
      - name: code
        data_tests:
          - regex_full_match:              # ab, A1, XYZ do not match [A-Z]{2} fully
              name: regex_fails
              arguments: {pattern: "[A-Z]{2}"}
          - regex_full_match:
              name: regex_passes
              arguments: {pattern: "[A-Za-z0-9]{2,3}"}
"""

# Expected failing-row counts, worked by hand from SEED.
EXPECTED = {
    "combo_fails": 2,
    "combo_passes": 0,
    # amount >= id: 0>=1 no, 10>=2 yes, 10.5>=3 yes, -1>=4 no, null -> not true
    "expression_fails": 3,
    "expression_passes": 0,
    "range_inclusive_fails": 2,
    "range_exclusive_fails": 3,
    "range_passes": 0,
    "column_expression_fails": 3,  # 0, -1, and null (null is not true)
    "regex_fails": 3,
    "regex_passes": 0,
}


def test_generic_tests_count_planted_failures(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "macros" / "tests", project / "macros" / "tests")
    (project / "seeds").mkdir()
    (project / "seeds" / "things.csv").write_text(SEED)
    (project / "seeds" / "_things.yml").write_text(PROPERTIES)
    (project / "dbt_project.yml").write_text(
        textwrap.dedent(
            """\
            name: generic_tests_check
            version: "1.0"
            config-version: 2
            profile: retail_xsell
            """
        )
    )
    shutil.copy(PROJECT_DIR / "profiles.yml", project / "profiles.yml")
    result = run_dbt(["build"], tmp_path / "work", project_dir=project)
    statuses = {
        r["unique_id"].split(".")[2]: (r["status"], r["failures"])
        for r in result.run_results()["results"]
        if r["unique_id"].startswith("test.")
    }
    assert statuses == {
        name: ("fail" if count else "pass", count) for name, count in EXPECTED.items()
    }
