{% macro clv_purchase_grain() -%}
    {#- What one purchase of the CLV models is (dbt var clv_purchase_grain):
          day    a purchase occasion: one per customer and day with at least one
                 completed order (the BG/NBD and Pareto/NBD papers, the BTYD tools).
                 The default: times are counted in whole days, so several orders on one
                 day would otherwise be repeat purchases at recency 0, which the models
                 read as a customer who bought in a burst and left (probability alive
                 near 0).
          order  every completed order is a purchase (times are still whole days).
        Anything else stops the build naming the var and the allowed values. -#}
    {%- set grain = var('clv_purchase_grain', 'day') | string | trim | lower -%}
    {%- if grain not in ['day', 'order'] -%}
        {{ exceptions.raise_compiler_error(
            "clv_purchase_grain must be one of day, order; got '"
            ~ var('clv_purchase_grain', 'day') ~ "'"
        ) }}
    {%- endif -%}
    {{ return(grain) }}
{%- endmacro %}


{% macro clv_period_end_at(end_date) -%}
    {#- The instant a period whose last day is end_date ends: the start of the next
        day, so that every order placed on end_date itself is inside the period. -#}
    cast({{ dbt.dateadd('day', 1, end_date) }} as timestamp)
{%- endmacro %}


{% macro clv_purchases(orders, from_date, to_date) -%}
    {#- The purchases (at the grain of clv_purchase_grain) of the completed orders of
        `orders` placed on the days from_date (exclusive, none for no lower bound) to
        to_date (inclusive; a column of `orders`, the same on every row): one row per
        customer and purchase, with the period's last day, the purchase's day, orders,
        sales revenue, first and last order time and first order id. -#}
    {%- set grain = clv_purchase_grain() %}
    select
        customer_id,
        {{ to_date }} as period_end_date,
        order_date as purchase_date,
        {%- if grain == 'day' %}
        count(*) as order_count,
        sum(sales_revenue) as sales_revenue,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        min(order_id) as first_order_id
        {%- else %}
        1 as order_count,
        sales_revenue,
        ordered_at as first_ordered_at,
        ordered_at as last_ordered_at,
        order_id as first_order_id
        {%- endif %}
    from {{ orders }}
    where
        is_completed
        and order_date <= {{ to_date }}
        {%- if from_date is not none %}
        and order_date > {{ from_date }}
        {%- endif %}
    {%- if grain == 'day' %}
    group by customer_id, {{ to_date }}, order_date
    {%- endif %}
{%- endmacro %}


{% macro clv_customer_summary(orders, end_date) -%}
    {#- One row per customer with a completed order on or before end_date (the last day
        of the calibration period): the inputs of the purchase models (BG/NBD,
        Pareto/NBD) and of Gamma-Gamma (docs/clv.md), in weeks counted in whole days,
        and store currency. A purchase is a purchase occasion (a customer-day with a
        completed order) or an order, as the var clv_purchase_grain says:
          purchase_count         purchases in the period
          repeat_purchase_count  x    purchases after the first one
          recency_weeks          t_x  first purchase day to last purchase day / 7
          age_weeks              T    first purchase day to end_date / 7 (0 for a
                                      customer whose first purchase is on end_date)
          mean_repeat_purchase_sales_revenue  m_x  mean sales revenue (after discount,
                                 before returns) of the x repeat purchases, a day's
                                 orders summed at the day grain; null when x = 0
        Whole days also make customers share (x, t_x, T) values, which is what lets a
        million customers fit in seconds. `orders` names a relation or CTE of the caller
        with the columns of the orders (int_order_lines_aggregated_to_orders) and
        end_date one of its columns, a date that is the same on every row (the caller
        joins it in from a one-row CTE); the caller's import CTEs say what is read, so
        this macro hides no ref. Orders after end_date are ignored. Purchases are timed
        by their first order; ties are broken by order id. Returns are not purchases:
        the spend model works on what was bought, and the population's return rate is
        applied to the prediction afterwards (see int_clv_models_fitted). -#}
    select
        customer_id,
        period_end_date as calibration_end_date,
        {{ clv_period_end_at('period_end_date') }} as calibration_end_at,
        cast(sum(order_count) as bigint) as order_count,
        count(*) as purchase_count,
        count(*) - 1 as repeat_purchase_count,
        min(first_ordered_at) as first_ordered_at,
        max(last_ordered_at) as last_ordered_at,
        {{ dbt.datediff('min(purchase_date)', 'max(purchase_date)', 'day') }} / 7.0
            as recency_weeks,
        {{ dbt.datediff('min(purchase_date)', 'period_end_date', 'day') }} / 7.0
            as age_weeks,
        case
            when count(*) > 1
                then
                    sum(case when purchase_number > 1 then sales_revenue end)
                    / (count(*) - 1)
        end as mean_repeat_purchase_sales_revenue
    from (
        select
            *,
            row_number() over (
                partition by customer_id order by first_ordered_at, first_order_id
            ) as purchase_number
        from ({{ clv_purchases(orders, none, end_date) }}) as purchases
    ) as numbered_purchases
    group by customer_id, period_end_date
{%- endmacro %}
