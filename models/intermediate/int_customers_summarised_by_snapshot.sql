{#
    One row per cross-sell snapshot (int_cross_sell_snapshots) and customer with a
    completed order up to that snapshot's date (before as_of_date, the customers of
    int_cross_sell_history_customers): how often, how recently and how much the
    customer buys, as known on that day. Purchase occasions are customer-days with a
    completed order (the CLV convention, docs/clv.md): x = occasions - 1, t_x = first to
    last occasion, T = first occasion to the snapshot date, in weeks. The take-up model
    uses them as features, and fits BG/NBD on them for P(alive) at each snapshot.
#}

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
),

snapshots as (
    select * from {{ ref('int_cross_sell_snapshots') }}
),

history_customers as (
    select * from {{ ref('int_cross_sell_history_customers') }}
),

occasions as (
    select
        customer_id,
        order_date as purchase_date,
        sum(sales_revenue) as occasion_sales_revenue
    from orders
    where is_completed
    group by customer_id, order_date
),

final as (
    select
        snapshots.snapshot_lag,
        snapshots.snapshot_date,
        occasions.customer_id,
        count(*) as occasion_count,
        count(*) - 1 as repeat_purchase_count,
        {{ dbt.datediff('min(occasions.purchase_date)', 'max(occasions.purchase_date)', 'day') }}
        / 7.0 as recency_weeks,
        {{ dbt.datediff('min(occasions.purchase_date)', 'snapshots.snapshot_date', 'day') }}
        / 7.0 as age_weeks,
        {{ dbt.datediff('max(occasions.purchase_date)', 'snapshots.snapshot_date', 'day') }}
            as days_since_last_purchase,
        cast(avg(occasions.occasion_sales_revenue) as double) as mean_occasion_sales_revenue
    from occasions
    inner join snapshots
        on occasions.purchase_date <= snapshots.snapshot_date
    left join history_customers
        on occasions.customer_id = history_customers.customer_id
    where snapshots.snapshot_lag = 0 or history_customers.customer_id is not null
    group by snapshots.snapshot_lag, snapshots.snapshot_date, occasions.customer_id
)

select * from final
