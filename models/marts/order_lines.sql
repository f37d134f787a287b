{#
    One row per clean order-line event with its net revenue, the unit every money
    figure of the product is built from. The calculation is int_order_lines_priced's;
    this mart publishes it under its contract.
#}

{#- A table; a daily load (macros/daily_loads.sql) recomputes the orders it touches. -#}
{{ config(**daily_load_config(unique_key='order_id')) }}

with

order_lines as (
    select * from {{ ref('int_order_lines_priced') }}
    {%- if is_daily_load() %}
    where order_id in {{ daily_order_ids() }}
    {%- endif %}
),

final as (
    select
        order_line_id,
        order_id,
        line_number,
        customer_id,
        product_id,
        line_type,
        quantity,
        unit_price,
        discount,
        channel,
        ordered_at,
        order_date,
        gross_amount,
        net_revenue
    from order_lines
)

select * from final
