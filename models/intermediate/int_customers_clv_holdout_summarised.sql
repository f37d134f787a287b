{#
    The same inputs as int_customers_clv_summarised, but with the history cut
    clv_holdout_weeks before the end of as_of_date, plus what each customer then did in
    the holdout: the completed orders placed from the cut-off to the end of as_of_date.
    Customers whose first order falls in the holdout are not here: the models predict
    repeat purchases of customers already acquired.
#}

{% set holdout_weeks = var('clv_holdout_weeks') %}
{% if holdout_weeks is not number or holdout_weeks <= 0 or holdout_weeks != holdout_weeks | int %}
    {{ exceptions.raise_compiler_error(
        "clv_holdout_weeks must be a whole number of weeks > 0; got '" ~ holdout_weeks ~ "'"
    ) }}
{% endif %}
{% set period_end_at = clv_period_end_at(as_of_date()) %}
{% set cutoff_at = dbt.dateadd('day', -7 * holdout_weeks, period_end_at) %}

with

orders as (
    select * from {{ ref('orders') }}
),

calibration_summary as (
    {{ clv_customer_summary(cutoff_at) }}
),

holdout_orders as (
    select
        customer_id,
        count(*) as holdout_order_count
    from orders
    where
        is_completed
        and ordered_at >= {{ cutoff_at }}
        and ordered_at < {{ period_end_at }}
    group by customer_id
),

final as (
    select
        calibration_summary.*,
        {{ holdout_weeks }} as holdout_weeks,
        coalesce(holdout_orders.holdout_order_count, 0) as holdout_order_count
    from calibration_summary
    left join holdout_orders
        on calibration_summary.customer_id = holdout_orders.customer_id
)

select * from final
