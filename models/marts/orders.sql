{#
    One row per order: when, who, which channel, its status and its sales, refunds and
    net revenue. The calculation is int_order_lines_aggregated_to_orders's; this mart
    publishes it under its contract.
#}

{#- A table; a daily load (macros/daily_loads.sql) recomputes the orders it touches. -#}
{{ config(**daily_load_config(unique_key='order_id')) }}

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
    {%- if is_daily_load() %}
    where order_id in {{ daily_order_ids() }}
    {%- endif %}
),

final as (
    select
        order_id,
        customer_id,
        channel,
        ordered_at,
        order_date,
        is_completed,
        order_status,
        sale_line_count,
        return_line_count,
        cancelled_line_count,
        units_sold,
        units_returned,
        sales_revenue,
        returned_revenue,
        net_revenue
    from orders
)

select * from final
