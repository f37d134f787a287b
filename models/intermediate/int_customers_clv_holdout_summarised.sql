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

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

periods as (
    select
        {{ clv_period_end_at('as_of_date') }} as period_end_at,
        {{ dbt.dateadd('day', -7 * holdout_weeks, clv_period_end_at('as_of_date')) }}
            as cutoff_at
    from as_of
),

calibration_orders as (
    select
        orders.*,
        periods.cutoff_at as calibration_end_at
    from orders
    cross join periods
),

calibration_summary as (
    {{ clv_customer_summary('calibration_orders') }}
),

holdout_orders as (
    select
        orders.customer_id,
        count(*) as holdout_order_count
    from orders
    cross join periods
    where
        orders.is_completed
        and orders.ordered_at >= periods.cutoff_at
        and orders.ordered_at < periods.period_end_at
    group by orders.customer_id
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
