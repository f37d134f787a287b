{#
    One row per calendar day: the time spine MetricFlow joins to for cumulative metrics
    (running and trailing-window revenue), period-over-period offsets and metric_time at
    week, month, quarter and year.

    The range comes from the data, so any history builds: from 1 January of the year
    before the first order line to 31 December of the year after the later of the last
    order line and as_of_date (a var, when set). The whole-year margin lets trailing
    windows and offsets reach past either end, and whole years keep the spine the same
    for every load within a year; for the same data it is always the same. The vars
    time_spine_start_date and time_spine_end_date (YYYY-MM-DD) override either bound.
    With no order line at all the range is built around the build date. A data test (tests/dbt/assert_time_spine_covers_order_dates.sql)
    fails the build if an order ever falls outside it, instead of letting cumulative
    metrics drop those days.
#}

{{ config(materialized='table') }}

{%- set bounds = {} -%}
{%- for name in ['time_spine_start_date', 'time_spine_end_date', 'as_of_date'] -%}
{%- set value = var(name, '') | string | trim -%}
{%- set is_set = value not in ['', 'None'] -%}
{%- if is_set and modules.re.match('^\d{4}-\d{2}-\d{2}$', value) is none -%}
{{ exceptions.raise_compiler_error(
    name ~ " must be a date written YYYY-MM-DD; got '" ~ value ~ "'"
) }}
{%- endif -%}
{%- do bounds.update({name: value if is_set else none}) -%}
{%- endfor %}

with

purchase_lines as (
    select * from {{ ref('stg_retail__purchase_lines') }}
),

data_range as (
    select
        coalesce(
            cast(min(ordered_at) as date), cast({{ dbt.current_timestamp() }} as date)
        ) as first_order_date,
        greatest(
            coalesce(
                cast(max(ordered_at) as date), cast({{ dbt.current_timestamp() }} as date)
            ),
            {%- if bounds['as_of_date'] %}
            cast('{{ bounds["as_of_date"] }}' as date)
            {%- else %}
            cast(min(ordered_at) as date)
            {%- endif %}
        ) as last_order_date
    from purchase_lines
),

spine_range as (
    select
        {%- if bounds['time_spine_start_date'] %}
        cast('{{ bounds["time_spine_start_date"] }}' as date) as first_day,
        {%- else %}
        cast({{ dbt.date_trunc('year', 'first_order_date') }} as date)
        - interval 1 year as first_day,
        {%- endif %}
        {%- if bounds['time_spine_end_date'] %}
        cast('{{ bounds["time_spine_end_date"] }}' as date) as last_day
        {%- else %}
        cast({{ dbt.date_trunc('year', 'last_order_date') }} as date)
        + interval 2 year - interval 1 day as last_day
        {%- endif %}
    from data_range
),

days as (
    {{ days_between('spine_range.first_day', 'spine_range.last_day', 'spine_range') }}
),

final as (
    select cast(date_day as date) as date_day
    from days
)

select * from final
