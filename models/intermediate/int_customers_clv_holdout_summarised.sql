{#
    The same inputs as int_customers_clv_summarised, but with the calibration period
    ending clv_holdout_weeks before as_of_date (its last day is as_of_date minus
    7 x clv_holdout_weeks days), plus what each customer then did in the holdout: the
    purchases (at the grain of clv_purchase_grain) on the 7 x clv_holdout_weeks days
    after it, up to and including as_of_date. Customers whose first purchase falls in
    the holdout are not here: the models predict repeat purchases of customers already
    acquired.
#}

{% set holdout_weeks = whole_number_var('clv_holdout_weeks', 'weeks') %}

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

periods as (
    select
        as_of_date,
        cast({{ dbt.dateadd('day', -7 * holdout_weeks, 'as_of_date') }} as date)
            as calibration_end_date
    from as_of
),

period_orders as (
    select
        orders.*,
        periods.calibration_end_date,
        periods.as_of_date as holdout_end_date
    from orders
    cross join periods
),

calibration_summary as (
    {{ clv_customer_summary('period_orders', 'calibration_end_date') }}
),

holdout_purchases as (
    {{ clv_purchases('period_orders', 'calibration_end_date', 'holdout_end_date') }}
),

holdout_counts as (
    select
        customer_id,
        count(*) as holdout_purchase_count
    from holdout_purchases
    group by customer_id
),

final as (
    select
        calibration_summary.*,
        '{{ clv_purchase_grain() }}' as purchase_grain,
        {{ holdout_weeks }} as holdout_weeks,
        coalesce(holdout_counts.holdout_purchase_count, 0) as holdout_purchase_count
    from calibration_summary
    left join holdout_counts
        on calibration_summary.customer_id = holdout_counts.customer_id
)

select * from final
