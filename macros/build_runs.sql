{#
    The build record: which dbt invocation last wrote the working database, and whether
    it finished. The quality gate reads it to prove that the artifacts it judges
    (run_results.json) belong to the database it judges: a build killed half-way leaves
    its `running` row behind (committed before any model ran), so the gate refuses it
    instead of judging the new data with the previous build's results.
#}

{% macro build_runs_relation() -%}
    {{ target.database }}.{{ target.schema }}_audit.build_runs
{%- endmacro %}

{% macro writes_database() -%}
    {#- Commands that change the working database; freshness, docs, compile, ls and
        show only read it and leave no record. -#}
    {{ return(flags.WHICH in ['build', 'run', 'seed', 'snapshot', 'test']) }}
{%- endmacro %}

{% macro record_build_start() %}
    {%- if execute and writes_database() -%}
        create schema if not exists {{ target.database }}.{{ target.schema }}_audit;
        create table if not exists {{ build_runs_relation() }} (
            invocation_id varchar primary key,
            command varchar not null,
            started_at timestamp not null,
            finished_at timestamp,
            status varchar not null,
            failed_nodes integer
        );
        insert into {{ build_runs_relation() }} values (
            '{{ invocation_id }}', '{{ flags.WHICH }}',
            cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp),
            null, 'running', null
        );
        checkpoint {{ target.database }};
    {%- endif -%}
{% endmacro %}

{% macro record_build_end(results) %}
    {%- if execute and writes_database() -%}
        {%- set failed = results | selectattr(
            'status', 'in', ['error', 'fail', 'runtime error', 'skipped']
        ) | list | length -%}
        update {{ build_runs_relation() }}
        set
            finished_at = now() at time zone 'UTC',
            status = '{{ "success" if failed == 0 else "failed" }}',
            failed_nodes = {{ failed }}
        where invocation_id = '{{ invocation_id }}';
        checkpoint {{ target.database }};
    {%- endif -%}
{% endmacro %}
