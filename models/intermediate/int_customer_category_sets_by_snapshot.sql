{#
    One row per cross-sell snapshot and customer who had bought a category by then
    (before as_of_date, the customers of int_cross_sell_history_customers): the
    set of categories they owned on that day, as a sorted list with a number
    (category_set_id) shared by every customer owning the same set at the same snapshot.
    Customers with equal sets have equal rule evidence, so the cross-sell models work per
    distinct set (a few hundred) instead of per customer.
#}

with

first_bought as (
    select * from {{ ref('int_customer_categories_first_bought') }}
),

snapshots as (
    select * from {{ ref('int_cross_sell_snapshots') }}
),

history_customers as (
    select * from {{ ref('int_cross_sell_history_customers') }}
),

owned_sets as (
    select
        snapshots.snapshot_lag,
        first_bought.customer_id,
        list(first_bought.category order by first_bought.category) as owned_categories
    from first_bought
    inner join snapshots
        on first_bought.first_bought_date <= snapshots.snapshot_date
    left join history_customers
        on first_bought.customer_id = history_customers.customer_id
    where snapshots.snapshot_lag = 0 or history_customers.customer_id is not null
    group by snapshots.snapshot_lag, first_bought.customer_id
),

distinct_sets as (
    select distinct
        snapshot_lag,
        owned_categories
    from owned_sets
),

set_ids as (
    select
        snapshot_lag,
        owned_categories,
        row_number() over (
            partition by snapshot_lag order by owned_categories
        ) as category_set_id
    from distinct_sets
),

final as (
    select
        owned_sets.snapshot_lag,
        owned_sets.customer_id,
        set_ids.category_set_id,
        owned_sets.owned_categories,
        len(owned_sets.owned_categories) as owned_category_count
    from owned_sets
    inner join set_ids
        on
            owned_sets.snapshot_lag = set_ids.snapshot_lag
            and owned_sets.owned_categories = set_ids.owned_categories
)

select * from final
