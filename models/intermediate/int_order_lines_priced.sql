{#
    One row per clean order-line event with its net revenue, the unit every money
    figure of the product is built from:
      sale          quantity * unit_price * (1 - discount)
      return        the same amount, negative
      cancellation  0 (a cancelled order earns nothing and is not an order)
    Defined once here: the order_lines mart publishes it, and the orders, the CLV inputs
    and the cross-sell inputs are built from it, so no intermediate model reads a mart.

    A view: a projection with arithmetic over staging; the order_lines mart stores it,
    and a table here would store every line twice.
#}

{{ config(materialized='view') }}

with

purchase_lines as (
    select * from {{ ref('stg_retail__purchase_lines') }}
),

final as (
    select
        order_id || '-' || line_number as order_line_id,
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
        cast(ordered_at as date) as order_date,
        {#- Exact decimal products of the unrounded inputs (unit prices keep 4
            decimals); only the result is rounded, half away from zero. round() before
            the cast gives the same values as the cast alone, which rounds too, at
            half the cost: DuckDB's cast of a 38-digit decimal to a smaller scale is
            slow (2.8 s vs 1.2 s per 10M lines, and it runs in every reader of this
            view). #}
        cast(round(quantity * unit_price, 2) as decimal(18, 2)) as gross_amount,
        cast(
            round(
                case line_type
                    when 'sale' then quantity * unit_price * (1 - discount)
                    when 'return' then -quantity * unit_price * (1 - discount)
                    else 0
                end,
                4
            )
            as decimal(18, 4)
        ) as net_revenue
    from purchase_lines
)

select * from final
