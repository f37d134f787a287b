{#
    The customers whose history before as_of_date the cross-sell take-up model learns
    from and the backtest judges (snapshots 1 and 2): every customer with a completed
    order when there are at most cross_sell_history_customers of them, otherwise a fixed
    uniform sample of that many (the lowest hash of the customer id: the same customers
    build after build on the same data). The offers at as_of_date do not depend on it:
    they are computed for every customer.
#}

{% set limit = var('cross_sell_history_customers') %}
{% if limit is not number or limit < 1 or limit != limit | int %}
    {{ exceptions.raise_compiler_error(
        "cross_sell_history_customers must be a whole number of customers >= 1; got '"
        ~ limit ~ "'"
    ) }}
{% endif %}

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
),

customers as (
    select distinct customer_id
    from orders
    where is_completed
),

ranked as (
    select
        customer_id,
        row_number() over (order by hash(customer_id), customer_id) as sample_rank
    from customers
),

final as (
    select customer_id
    from ranked
    where sample_rank <= {{ limit | int }}
)

select * from final
