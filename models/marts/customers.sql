{#
    One row per customer: who they are (pseudonymised; no raw personal data; the age
    band on as_of_date from int_customers_age_grouped), and what they bought up to
    as_of_date (lifetime orders and net spend, RFM scores, segment).

    RFM scores run from 1 (worst) to 5 (best) among customers with at least one
    completed order: score = ceil(5 * n_le / n), where n is the number of such
    customers and n_le the number whose value is no better than this customer's
    (recency: as many days or more since the last order; frequency and monetary: as
    many or fewer orders, as much or less net spend). Equal values therefore always
    get equal scores, and the result does not depend on row order.
#}

with

customers as (
    select * from {{ ref('stg_retail__customers') }}
),

age_groups as (
    select * from {{ ref('int_customers_age_grouped') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

orders as (
    select * from {{ ref('orders') }}
),

order_lines as (
    select * from {{ ref('order_lines') }}
),

orders_to_date as (
    select orders.*
    from orders
    cross join as_of
    where orders.order_date <= as_of.as_of_date
),

order_lines_to_date as (
    select order_lines.*
    from order_lines
    cross join as_of
    where order_lines.order_date <= as_of.as_of_date
),

completed_orders_per_customer as (
    select
        customer_id,
        count(*) as lifetime_order_count,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date
    from orders_to_date
    where is_completed
    group by customer_id
),

net_revenue_per_customer as (
    select
        customer_id,
        sum(net_revenue) as lifetime_net_revenue
    from order_lines_to_date
    group by customer_id
),

rfm_inputs as (
    select
        completed_orders_per_customer.*,
        coalesce(net_revenue_per_customer.lifetime_net_revenue, 0)
            as lifetime_net_revenue,
        as_of.as_of_date - completed_orders_per_customer.last_order_date
            as recency_days,
        count(*) over () as buyers
    from completed_orders_per_customer
    cross join as_of
    left join net_revenue_per_customer
        on completed_orders_per_customer.customer_id = net_revenue_per_customer.customer_id
),

rfm_scored as (
    select
        customer_id,
        {{ rfm_score('count(*) over (order by recency_days desc)', 'buyers') }}
            as recency_score,
        {{ rfm_score('count(*) over (order by lifetime_order_count)', 'buyers') }}
            as frequency_score,
        {{ rfm_score('count(*) over (order by lifetime_net_revenue)', 'buyers') }}
            as monetary_score
    from rfm_inputs
),

final as (
    select
        customers.customer_id,
        customers.email_sha256,
        customers.phone_masked,
        customers.birth_year,
        age_groups.age_group,
        customers.gender,
        customers.country_code,
        customers.country_name,
        customers.region,
        customers.signed_up_at,
        cast(date_trunc('month', customers.signed_up_at) as date) as signup_cohort_month,
        customers.has_marketing_consent,
        rfm_inputs.first_order_date,
        rfm_inputs.last_order_date,
        coalesce(rfm_inputs.lifetime_order_count, 0) as lifetime_order_count,
        cast(
            coalesce(net_revenue_per_customer.lifetime_net_revenue, 0) as decimal(18, 4)
        ) as lifetime_net_revenue,
        rfm_inputs.recency_days,
        rfm_scored.recency_score,
        rfm_scored.frequency_score,
        rfm_scored.monetary_score,
        case
            when rfm_scored.customer_id is null then 'no_purchases'
            when rfm_scored.recency_score >= 4 and rfm_scored.frequency_score >= 4
                then 'champions'
            when rfm_scored.recency_score >= 3 and rfm_scored.frequency_score >= 3
                then 'loyal'
            when rfm_scored.recency_score >= 4 then 'promising'
            when rfm_scored.recency_score = 3 then 'needs_attention'
            when rfm_scored.frequency_score >= 3 then 'at_risk'
            else 'hibernating'
        end as rfm_segment
    from customers
    left join age_groups
        on customers.customer_id = age_groups.customer_id
    left join rfm_inputs
        on customers.customer_id = rfm_inputs.customer_id
    left join rfm_scored
        on customers.customer_id = rfm_scored.customer_id
    left join net_revenue_per_customer
        on customers.customer_id = net_revenue_per_customer.customer_id
)

select * from final
