{#
    The BG/NBD and Gamma-Gamma inputs of every customer with a completed order up to
    as_of_date (the whole history is the calibration period). See macros/clv.sql.
#}

with

orders as (
    select * from {{ ref('int_order_lines_aggregated_to_orders') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

calibration_orders as (
    select
        orders.*,
        {{ clv_period_end_at('as_of.as_of_date') }} as calibration_end_at
    from orders
    cross join as_of
),

customer_summary as (
    {{ clv_customer_summary('calibration_orders') }}
),

final as (
    select
        customer_summary.*,
        as_of.as_of_date
    from customer_summary
    cross join as_of
)

select * from final
