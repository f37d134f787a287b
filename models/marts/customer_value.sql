{#
    One row per customer: what they are worth as of as_of_date, looking back
    (historical CLV: net revenue so far) and forward (predicted CLV: expected net
    revenue over the next clv_horizon_months, discounted), and how much cross-sell
    potential they have. Predictions come from the fit recorded in clv_model_runs
    (clv_model_run_id); the formulas are in docs/clv.md and on this model's docs page.

    Customers who have never completed an order are here too: the models start at a
    customer's first purchase, so they get no prediction (nulls), a predicted CLV of 0
    and clv_method 'no_purchases'.
#}

with

customers as (
    select * from {{ ref('customers') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

clv_inputs as (
    select * from {{ ref('int_customers_clv_summarised') }}
),

clv_predictions as (
    select * from {{ ref('int_customers_clv_predicted') }}
),

model_runs as (
    select * from {{ ref('int_clv_models_fitted') }}
),

top_opportunities as (
    select * from {{ ref('cross_sell_opportunities') }}
    where opportunity_rank = 1
),

sale_lines as (
    select * from {{ ref('int_sale_lines_categorised') }}
),

purchased_categories as (
    select
        customer_id,
        count(distinct category) as purchased_category_count
    from sale_lines
    group by customer_id
),

joined as (
    select
        customers.customer_id,
        as_of.as_of_date,
        customers.lifetime_order_count as order_count,
        customers.first_order_date,
        customers.last_order_date,
        as_of.as_of_date - customers.first_order_date as tenure_days,
        customers.recency_days,
        customers.lifetime_net_revenue as historical_clv,
        coalesce(purchased_categories.purchased_category_count, 0) as purchased_category_count,
        clv_inputs.repeat_purchase_count,
        clv_inputs.recency_weeks,
        clv_inputs.age_weeks,
        clv_inputs.mean_repeat_purchase_sales_revenue as mean_repeat_order_sales_revenue,
        clv_predictions.probability_alive,
        clv_predictions.expected_purchases,
        clv_predictions.expected_spend_per_purchase,
        coalesce(clv_predictions.predicted_clv, 0) as predicted_clv,
        coalesce(clv_predictions.clv_method, 'no_purchases') as clv_method,
        model_runs.horizon_months as clv_horizon_months,
        model_runs.model_run_id as clv_model_run_id,
        model_runs.model_version as clv_model_version,
        top_opportunities.category as top_cross_sell_category,
        case
            when customers.lifetime_order_count = 0 then null
            else coalesce(top_opportunities.opportunity_score, 0)
        end as cross_sell_opportunity_score,
        top_opportunities.expected_revenue as top_cross_sell_expected_revenue
    from customers
    cross join as_of
    cross join model_runs
    left join clv_inputs
        on customers.customer_id = clv_inputs.customer_id
    left join clv_predictions
        on customers.customer_id = clv_predictions.customer_id
    left join purchased_categories
        on customers.customer_id = purchased_categories.customer_id
    left join top_opportunities
        on customers.customer_id = top_opportunities.customer_id
),

final as (
    select
        customer_id,
        as_of_date,
        order_count,
        first_order_date,
        last_order_date,
        tenure_days,
        recency_days,
        case
            when order_count = 0 then 0.0
            else cast(order_count / greatest(tenure_days / 365.25, 1.0) as double)
        end as orders_per_year,
        cast(historical_clv / nullif(order_count, 0) as decimal(18, 4)) as average_order_value,
        historical_clv,
        purchased_category_count,
        repeat_purchase_count,
        cast(recency_weeks as double) as bgnbd_recency_weeks,
        cast(age_weeks as double) as bgnbd_age_weeks,
        cast(mean_repeat_order_sales_revenue as decimal(18, 4))
            as mean_repeat_order_sales_revenue,
        cast(probability_alive as double) as probability_alive,
        cast(expected_purchases as double) as expected_purchases,
        cast(expected_spend_per_purchase as decimal(18, 4)) as expected_spend_per_purchase,
        cast(predicted_clv as decimal(18, 4)) as predicted_clv,
        cast(historical_clv + cast(predicted_clv as decimal(18, 4)) as decimal(18, 4)) as clv,
        cast(cross_sell_opportunity_score as double) as cross_sell_opportunity_score,
        top_cross_sell_category,
        top_cross_sell_expected_revenue,
        clv_method,
        clv_horizon_months,
        clv_model_run_id,
        clv_model_version
    from joined
)

select * from final
