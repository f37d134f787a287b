{% macro days_between(first_day, last_day, relation) -%}
    {#- One row (date_day) per day from first_day to last_day, both included, for the
        one-row `relation` whose columns the bounds name. The bounds are data, not
        constants known at compile time, so dbt.date_spine cannot be used. -#}
    {{ return(adapter.dispatch('days_between')(first_day, last_day, relation)) }}
{%- endmacro %}

{% macro default__days_between(first_day, last_day, relation) -%}
    select unnest(generate_series(
        cast({{ first_day }} as timestamp),
        cast({{ last_day }} as timestamp),
        interval 1 day
    )) as date_day
    from {{ relation }}
{%- endmacro %}

{% macro spark__days_between(first_day, last_day, relation) -%}
    select explode(sequence({{ first_day }}, {{ last_day }}, interval 1 day)) as date_day
    from {{ relation }}
{%- endmacro %}
