{#
    One row per clean order-line event with its net revenue, the unit every money
    figure of the product is built from. The calculation is int_order_lines_priced's;
    this mart publishes it under its contract.
#}

with

order_lines as (
    select * from {{ ref('int_order_lines_priced') }}
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
