{#
    The data-test materialization, dbt's own (dbt-core's
    global_project/macros/materializations/tests/test.sql) with one change: failing rows
    are stored only when there are some.

    dbt's version, with store_failures on, writes a table into main_audit for every
    test, passing or not, and then counts its rows. Each of those writes is a commit to
    the database file, about half of a data test's cost, which made the 271 tests
    nearly as slow as every model put together on the sample (8.2 of 16.4 node-seconds).
    Here the test's query is counted first, exactly as dbt counts it (fail_calc,
    warn_if, error_if, limit). Only when it finds failing rows, whether they make the
    test fail or only warn, are those rows written to the test's table, where the SLO
    report and `dbt_build_results` name it. A passing test leaves no table, and a table
    left by an earlier build in the same file is dropped, so a table in main_audit
    always holds the failures of the last build.
#}
{%- materialization test, default -%}

  {% set relations = [] %}
  {% set limit = config.get('limit') %}
  {% set sql_header = config.get('sql_header') if flags.REQUIRE_SQL_HEADER_IN_TEST_CONFIGS else none %}
  {% set fail_calc = config.get('fail_calc') %}
  {% set warn_if = config.get('warn_if') %}
  {% set error_if = config.get('error_if') %}

  {% set sql_with_limit %}
    {{ get_limit_subquery_sql(sql, limit) }}
  {% endset %}

  {% call statement('main', fetch_result=True) -%}
    {% if sql_header %}{{ sql_header }}{% endif %}
    {{ get_test_sql(sql_with_limit, fail_calc, warn_if, error_if, limit=none) }}
  {%- endcall %}

  {% if should_store_failures() %}
    {% set identifier = model['alias'] %}
    {% set old_relation = adapter.get_relation(
        database=database, schema=schema, identifier=identifier) %}
    {% set store_failures_as = config.get('store_failures_as') %}
    {% if store_failures_as == none %}{% set store_failures_as = 'table' %}{% endif %}
    {% if store_failures_as not in ['table', 'view'] %}
      {{ exceptions.raise_compiler_error(
          "'" ~ store_failures_as ~ "' is not a valid value for `store_failures_as`. "
          "Accepted values are: ['ephemeral', 'table', 'view']"
      ) }}
    {% endif %}
    {#- the first column of get_test_sql's one row is the failure count -#}
    {% set failures = load_result('main')['data'][0][0] %}
    {% set store = failures is not none and failures | float != 0 %}
    {% if old_relation %}
      {% do adapter.drop_relation(old_relation) %}
    {% endif %}
    {% if store %}
      {% set target_relation = api.Relation.create(
          identifier=identifier, schema=schema, database=database, type=store_failures_as) %}
      {% call statement(auto_begin=True) %}
        {% if sql_header %}{{ sql_header }}{% endif %}
        {{ get_create_sql(target_relation, sql_with_limit) }}
      {% endcall %}
      {% do relations.append(target_relation) %}
    {% endif %}
    {#- a commit only when something was written: a passing test writes nothing -#}
    {% if store or old_relation %}
      {{ adapter.commit() }}
    {% endif %}
  {% endif %}

  {{ return({'relations': relations}) }}

{%- endmaterialization -%}
