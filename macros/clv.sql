{% macro clv_period_end_at(as_of) -%}
    {#- The instant a calibration period ends: the start of the day after as_of, so
        that every order placed on as_of itself is inside the period. -#}
    cast({{ dbt.dateadd('day', 1, as_of) }} as timestamp)
{%- endmacro %}


{% macro clv_customer_summary(orders) -%}
    {#- One row per customer with a completed order before calibration_end_at (a
        midnight): the inputs of the BG/NBD and Gamma-Gamma models (docs/clv.md), in
        weeks counted in whole days (orders are placed "on a day", as in most CLV work;
        it also makes customers share (x, t_x, T) values, which is what lets a million
        customers fit in seconds), and store currency.
          repeat_purchase_count  x    completed orders after the first one
          recency_weeks          t_x  first order day to last order day (0 when x = 0)
          age_weeks              T    first order day to calibration_end_at (at least
                                      one day)
          mean_repeat_order_sales_revenue  m_x  mean sales revenue (after discount,
                                 before returns) of the x repeat orders; null when x = 0
        `orders` names a relation or CTE of the caller with the columns of the orders
        (int_order_lines_aggregated_to_orders) and calibration_end_at, the end of the
        period, the same on every row; the caller's import CTEs say what is read, so
        this macro hides no ref. Orders are completed orders, timed by their first
        line; ties in time are broken by order id. Returns are not orders: the spend
        model works on what was bought, and the population's return rate is applied to
        the prediction afterwards (see int_clv_models_fitted). -#}
    select
        customer_id,
        calibration_end_at,
        count(*) as order_count,
        count(*) - 1 as repeat_purchase_count,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        {{ dbt.datediff('min(order_date)', 'max(order_date)', 'day') }} / 7.0
            as recency_weeks,
        {{ dbt.datediff('min(order_date)', 'cast(calibration_end_at as date)', 'day') }} / 7.0
            as age_weeks,
        case
            when count(*) > 1
                then
                    (sum(sales_revenue) - sum(case when order_number = 1 then sales_revenue end))
                    / (count(*) - 1)
        end as mean_repeat_order_sales_revenue
    from (
        select
            customer_id,
            calibration_end_at,
            ordered_at,
            order_date,
            sales_revenue,
            row_number() over (
                partition by customer_id order by ordered_at, order_id
            ) as order_number
        from {{ orders }}
        where is_completed and ordered_at < calibration_end_at
    ) as completed_orders
    group by customer_id, calibration_end_at
{%- endmacro %}
