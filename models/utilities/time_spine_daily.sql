{#
    One row per calendar day from 2020-01-01 to 2030-12-31: the time spine MetricFlow
    joins to for cumulative metrics (running and trailing-window revenue), period-over-
    period offsets and metric_time at week, month, quarter and year.

    Fixed bounds rather than the data's own range: the same spine then serves the
    committed sample (2023-2025), real exports going back a few years and queries that
    look ahead (a trailing window or an offset reaches past the last order), and it does
    not change with each load. About 4,000 rows, so the margin costs nothing. A data
    test (tests/dbt/assert_time_spine_covers_order_dates.sql) fails the build if an
    order ever falls outside it, instead of letting cumulative metrics drop those days.
#}

{{ config(materialized='table') }}

with

days as (
    {{ dbt.date_spine(
        'day',
        "cast('2020-01-01' as date)",
        "cast('2031-01-01' as date)"
    ) }}
),

final as (
    select cast(date_day as date) as date_day
    from days
)

select * from final
