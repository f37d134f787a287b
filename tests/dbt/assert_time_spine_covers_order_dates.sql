{#
    Every order-line date must lie inside the time spine; otherwise MetricFlow's running
    and trailing-window metrics would silently leave those days out. Returns the dates
    that fall outside (none on a healthy build).
#}

with

order_lines as (
    select * from {{ ref('order_lines') }}
),

time_spine as (
    select * from {{ ref('time_spine_daily') }}
),

spine_range as (
    select
        min(date_day) as first_day,
        max(date_day) as last_day
    from time_spine
),

final as (
    select distinct order_lines.order_date
    from order_lines
    cross join spine_range
    where
        order_lines.order_date < spine_range.first_day
        or order_lines.order_date > spine_range.last_day
)

select * from final
