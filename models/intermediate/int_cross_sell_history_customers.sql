{#
    The customers whose history before as_of_date the cross-sell take-up model learns
    from and the backtest judges (snapshots 1 and 2): every customer with a completed
    order on or before snapshot 1 (the later of the two; a customer who first bought
    after it has no history there to sample) when there are at most
    cross_sell_history_customers of them, otherwise a fixed
    uniform sample of that many (the lowest hash of the customer id: the same customers
    build after build on the same data). The offers at as_of_date do not depend on it:
    they are computed for every customer.
#}

{% set limit = whole_number_var('cross_sell_history_customers', 'customers') %}

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
),

snapshots as (
    select * from {{ ref('int_cross_sell_snapshots') }}
),

customers as (
    select distinct orders.customer_id
    from orders
    inner join snapshots
        on
            snapshots.snapshot_lag = 1
            and orders.order_date <= snapshots.snapshot_date
    where orders.is_completed
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
    where sample_rank <= {{ limit }}
)

select * from final
