"""The semantic layer's query path can read and write nothing but a metric answer (issue 10).

Every attack goes through a public entry point: SemanticLayer.query and query_saved with
structured filters, the trusted raw path (``trusted_where=``), and ``mf query --where``
on the ``published`` target in a subprocess. The attacked file is a copy of the sample's
working database, which holds the private PII model stg_retail__customer_pii, so a leak
or an export would have something to take. After each attack the file's checksum is
unchanged and no file was written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from conftest import PROJECT_DIR
from retail_xsell.filters import Filter
from retail_xsell.semantic import (
    InvalidFilterError,
    QueryExecutionError,
    RefusedQueryError,
    SemanticLayer,
    UnknownDimensionError,
    UnreachableDimensionError,
)

pytestmark = pytest.mark.dbt

MF = Path(sys.executable).parent / "mf"
PII = "retail_xsell.main.stg_retail__customer_pii"
REGION = "{{ Dimension('customer__region') }}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def target(sample_db: Path) -> Path:
    return sample_db.parent / "target"


@pytest.fixture(scope="module")
def attacked(sample_db: Path, tmp_path_factory) -> Iterator[Path]:
    """A copy of the working database (PII included); its checksum must never change."""
    copy = tmp_path_factory.mktemp("attacked") / "retail_xsell.duckdb"
    shutil.copyfile(sample_db, copy)
    before = sha256(copy)
    yield copy
    assert sha256(copy) == before, "an attack changed the database file"


@pytest.fixture(scope="module")
def emails(sample_db: Path) -> list[str]:
    with duckdb.connect(str(sample_db), read_only=True) as connection:
        rows = connection.execute(
            "select email_normalised from stg_retail__customer_pii"
        ).fetchall()
    found = [email for (email,) in rows if email]
    assert found, "the sample must hold PII for the leak checks to mean something"
    return found


@pytest.fixture(scope="module")
def layer(attacked: Path, target: Path) -> Iterator[SemanticLayer]:
    with SemanticLayer(target / "semantic_manifest.json", attacked) as sl:
        yield sl


@pytest.fixture(scope="module")
def marts(attacked: Path, layer: SemanticLayer) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(attacked), read_only=True)
    yield connection
    connection.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Where an export would land; each test asserts it never appears."""
    return tmp_path / "x.csv"


def total(layer: SemanticLayer, **query) -> object:
    return layer.query(["total_spend"], **query).rows[0][0]


def assert_no_data_in(message: str, emails: list[str]) -> None:
    assert not any(email in message for email in emails), message
    assert "@" not in message, message


# The connection itself.


def test_layer_connection_is_locked_down(layer):
    """A filter only true when external access is off and the configuration locked."""
    locked = (
        "current_setting('enable_external_access') = false"
        " and current_setting('lock_configuration') = true"
        " and current_setting('autoinstall_known_extensions') = false"
    )
    assert total(layer, trusted_where=locked) == total(layer)


# Structured filters: a value is only ever a value.


@pytest.mark.parametrize(
    "value",
    [
        "' or 1=1 --",
        "Europe' or '1'='1",
        "x'; copy (select * from retail_xsell.main.stg_retail__customer_pii) to '/tmp/x.csv'; --",
        "{{ Dimension('customer__country') }}",
        "{% for x in range(3) %}x{% endfor %}",
        "\\' or 1=1 --",
    ],
)
def test_structured_filter_values_are_literals_that_match_nothing(layer, value, emails):
    result = layer.query(
        ["total_spend"],
        ["customer__region"],
        where=Filter(dimension="customer__region", operator="eq", value=value),
    )
    assert result.rows == []  # the whole value compared as one string: no region has it
    assert_no_data_in(result.sql, emails)


def test_a_quote_in_a_value_matches_the_value_itself(layer, marts):
    """Escaping keeps the value exact: a region with a quote and a brace would match."""
    sql = layer.query(
        ["total_spend"],
        where=Filter(dimension="customer__region", operator="in", values=["O'Brien {x}", "Europe"]),
    ).sql
    assert "'O''Brien ' || chr(123) || 'x}'" in sql
    (expected,) = marts.execute(
        "select sum(l.net_revenue) from order_lines as l join customers as c using (customer_id)"
        " where c.region in ('Europe')"
    ).fetchone()
    assert total(
        layer,
        where=Filter(dimension="customer__region", operator="in", values=["O'Brien {x}", "Europe"]),
    ) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ({"dimension": "customer__region) or (1=1", "operator": "eq", "value": "x"}, "dimension"),
        ({"dimension": "customer__region", "operator": "like", "value": "%"}, "operator: must be"),
        ({"dimension": "customer__region", "operator": "raw", "value": "1=1"}, "operator: must be"),
        ({"dimension": "customer__region", "operator": "eq", "sql": "1=1"}, "sql: Extra inputs"),
        ({"dimension": "customer__region", "operator": "eq"}, "exactly 1 value; got 0"),
        ({"dimension": "customer__region", "operator": "between", "value": "a"}, "exactly 2"),
        ({"dimension": "customer__region", "operator": "is_null", "value": "a"}, "no values"),
        ({"dimension": "customer__region", "operator": "eq", "value": ["a"]}, r"values\[0\]"),
        ({"dimension": "customer__region", "operator": "eq", "value": 5}, "give strings"),
        ({"dimension": "customer__region", "operator": "gt", "value": True}, "not a boolean"),
        ({"dimension": "metric_time__day", "operator": "eq", "value": "2024-13-01"}, "not a date"),
        ({"dimension": "metric_time__day", "operator": "gte", "value": 20240101}, "time dimension"),
        (
            {
                "dimension": "metric_time__day",
                "operator": "between",
                "values": ["2024-06-01", "2024-01-01"],
            },
            "must not be above",
        ),
        ("{{ Dimension('customer__region') }} = 'Europe'", "not SQL text.*trusted_where"),
        (["1=1"], "Filter or a mapping"),
    ],
)
def test_malformed_filters_are_refused_with_the_field_named(layer, where, match):
    with pytest.raises(InvalidFilterError, match=match):
        layer.query(["total_spend"], where=where)


def test_numbers_must_be_numbers(layer):
    rank = "cross_sell_opportunity__opportunity_rank"
    with pytest.raises(InvalidFilterError, match=f"{rank} holds integer values.*not a string"):
        layer.query(
            ["cross_sell_potential_revenue"],
            where={"dimension": rank, "operator": "eq", "value": "1 or 1=1"},
        )
    assert (
        layer.query(
            ["cross_sell_potential_revenue"],
            where={"dimension": rank, "operator": "eq", "value": 1},
        ).rows[0][0]
        > 0
    )


def test_filters_only_name_dimensions_the_metrics_reach(layer):
    with pytest.raises(UnknownDimensionError, match=r"'customer__email'.*filtered"):
        layer.query(
            ["total_spend"], where={"dimension": "customer__email", "operator": "is_not_null"}
        )
    with pytest.raises(UnknownDimensionError, match="stg_retail__customer_pii"):
        layer.query(
            ["total_spend"],
            where={"dimension": "stg_retail__customer_pii__email", "operator": "is_not_null"},
        )
    with pytest.raises(
        UnreachableDimensionError, match=r"'order_count' cannot be filtered by 'product__category'"
    ):
        layer.query(
            ["order_count"],
            where={"dimension": "product__category", "operator": "eq", "value": "x"},
        )
    with pytest.raises(InvalidFilterError, match=r"'customer__region__day' is not a time"):
        layer.query(
            ["total_spend"],
            where={"dimension": "customer__region__day", "operator": "eq", "value": "x"},
        )


# The trusted raw path: still one SELECT over the semantic layer's tables.


def test_trusted_filter_cannot_read_the_pii_table(layer, emails):
    with pytest.raises(
        RefusedQueryError, match=r"reads retail_xsell\.main\.stg_retail__customer_pii"
    ) as caught:
        layer.query(
            ["total_spend"],
            trusted_where=f"{REGION} = (select max(email_normalised) from {PII})",
        )
    assert_no_data_in(str(caught.value), emails)
    with pytest.raises(RefusedQueryError, match="stg_retail__customer_pii"):  # two-part name
        layer.query(
            ["total_spend"],
            trusted_where="exists (select 1 from retail_xsell.stg_retail__customer_pii)",
        )


@pytest.mark.parametrize(
    "where",
    [
        "{{ Dimension('customer__region') }} in (select * from read_csv('/etc/hostname'))",
        "exists (select * from read_text('/etc/hostname'))",
        "exists (select * from glob('/etc/*'))",
        "exists (select * from query('select 1'))",
        "exists (select * from duckdb_settings())",
    ],
)
def test_trusted_filter_cannot_call_table_functions(layer, where):
    with pytest.raises(RefusedQueryError, match="table function"):
        layer.query(["total_spend"], trusted_where=where)


def test_trusted_filter_cannot_read_a_local_file(layer):
    with pytest.raises(RefusedQueryError, match="/etc/hostname"):  # a replacement scan
        layer.query(["total_spend"], trusted_where="exists (select * from '/etc/hostname')")


def test_trusted_filter_cannot_stack_statements(layer, attacked, outside):
    attacks = [
        f"1=1; copy (select * from {PII}) to '{outside}'",
        f"1=1; attach '{attacked}' as w; drop table w.main.orders",
        "1=1; drop table retail_xsell.main.orders",
        "1=1; detach retail_xsell",
        "1=1; set enable_external_access = true",
    ]
    for where in attacks:
        with pytest.raises(RefusedQueryError, match=r"exactly one SELECT.*2 statement|3 statement"):
            layer.query(["total_spend"], trusted_where=where)
    assert not outside.exists()
    assert total(layer) > 0  # the connection still answers: nothing ran


def test_database_errors_never_quote_data_values(layer, marts, emails):
    # Casting region to an integer fails on a value from the data; DuckDB names it.
    with pytest.raises(QueryExecutionError) as caught:
        layer.query(
            ["total_spend"],
            trusted_where="cast({{ Dimension('customer__region') }} as integer) = 1",
        )
    message = str(caught.value)
    assert "could not be converted" in message
    regions = [
        region for (region,) in marts.execute("select distinct region from customers").fetchall()
    ]
    assert len(regions) >= 3
    for region in regions:
        assert region not in message
    assert_no_data_in(message, emails)


# Structured filters answer as the trusted filter and as SQL on the marts.


def test_structured_filters_equal_trusted_filters_and_sql(layer, marts):
    categories = [
        c for (c,) in marts.execute("select distinct category from products order by 1").fetchall()
    ][:2]
    structured = [
        Filter(dimension="product__category", operator="in", values=categories),
        Filter(
            dimension="metric_time__day",
            operator="between",
            values=[dt.date(2024, 3, 1), "2024-05-31"],
        ),
        {"dimension": "customer__region", "operator": "ne", "value": "Europe"},
    ]
    listed = ", ".join(f"'{c}'" for c in categories)
    trusted = [
        f"{{{{ Dimension('product__category') }}}} in ({listed})",
        "{{ TimeDimension('metric_time', 'day') }} between '2024-03-01' and '2024-05-31'",
        "{{ Dimension('customer__region') }} <> 'Europe'",
    ]
    group_by = ["customer__region"]
    by_filters = layer.query(["total_spend"], group_by, where=structured)
    by_trusted = layer.query(["total_spend"], group_by, trusted_where=trusted)
    expected = dict(
        marts.execute(
            f"""
            select c.region, sum(l.net_revenue) from order_lines as l
            join customers as c using (customer_id) join products as p using (product_id)
            where p.category in ({listed}) and c.region <> 'Europe'
            and l.order_date between date '2024-03-01' and date '2024-05-31'
            group by all
            """
        ).fetchall()
    )
    assert len(expected) >= 2
    assert dict(by_filters.rows) == dict(by_trusted.rows) == expected


def test_structured_filters_on_saved_queries_and_customer_metrics(layer, marts):
    europe = {"dimension": "customer__region", "operator": "eq", "value": "Europe"}
    filtered = layer.query_saved("marketing_customer_value", where=europe)
    trusted = layer.query_saved(
        "marketing_customer_value", trusted_where="{{ Dimension('customer__region') }} = 'Europe'"
    )
    assert sorted(filtered.rows) == sorted(trusted.rows)
    assert {row[0] for row in filtered.rows} == {"Europe"}
    (expected,) = marts.execute(
        "select avg(v.clv) from customer_value as v join customers as c using (customer_id)"
        " where c.region = 'Europe'"
    ).fetchone()
    assert layer.query(["clv"], where=europe).rows[0][0] == pytest.approx(expected, rel=1e-9)


# mf query --where, on the published target, in a subprocess.


def _mf(kit: Path, database: Path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(kit),
        "RETAIL_XSELL_TARGET": "published",
        "RETAIL_XSELL_PUBLISHED_PATH": str(database),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    return subprocess.Popen(
        [str(MF), "query", *args],
        cwd=kit,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def kit(target: Path, tmp_path_factory) -> Path:
    """A consumer's folder for mf: the project file, profiles.yml, the semantic manifest."""
    folder = tmp_path_factory.mktemp("kit")
    (folder / "target").mkdir()
    shutil.copyfile(PROJECT_DIR / "dbt_project.yml", folder / "dbt_project.yml")
    shutil.copyfile(PROJECT_DIR / "profiles.yml", folder / "profiles.yml")
    shutil.copyfile(target / "semantic_manifest.json", folder / "target/semantic_manifest.json")
    return folder


def test_mf_query_where_on_the_published_target_cannot_touch_files(
    kit, attacked, sample_db, tmp_path
):
    """The published target, pointed at a file holding PII: stacked COPY, ATTACH + DROP,
    DROP on the served file and read_csv all fail, and nothing changes anywhere."""
    other = tmp_path / "other.duckdb"  # a second database file an attach would open
    shutil.copyfile(sample_db, other)
    other_before = sha256(other)
    exported = tmp_path / "x.csv"
    attacks = {
        f"1=1; copy (select * from {PII}) to '{exported}'": "Permission Error",
        f"1=1; attach '{other}' as w; drop table w.main.orders": "Permission Error",
        "1=1; drop table retail_xsell.main.orders": "attached in read-only mode",
        f"{REGION} in (select * from read_csv('/etc/hostname'))": "Permission Error",
    }
    # mf takes seconds to start; run the attacks side by side.
    running = {
        where: _mf(kit, attacked, "--metrics", "total_spend", "--where", where) for where in attacks
    }
    for where, process in running.items():
        output, _ = process.communicate(timeout=180)
        assert "ERROR" in output and attacks[where] in output, (where, output)
        assert "Success" not in output, (where, output)
    assert not exported.exists()
    assert sha256(other) == other_before
