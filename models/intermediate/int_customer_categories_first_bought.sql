{#
    One row per customer and category they have bought up to as_of_date: when they first
    bought it and what that first day's purchase in the category was worth. The cross-sell
    model reads ownership at any cut-off from first_bought_date, and learns the value of a
    first purchase in a category from first_day_net_revenue. Sale lines of products
    without a category are already left out (int_sale_lines_categorised).
#}

with

sale_lines as (
    select * from {{ ref('int_sale_lines_categorised') }}
),

daily as (
    select
        customer_id,
        category,
        order_date,
        sum(net_revenue) as net_revenue
    from sale_lines
    group by customer_id, category, order_date
),

final as (
    select
        customer_id,
        category,
        min(order_date) as first_bought_date,
        cast(arg_min(net_revenue, order_date) as decimal(18, 4)) as first_day_net_revenue
    from daily
    group by customer_id, category
)

select * from final
