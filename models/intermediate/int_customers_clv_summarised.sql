{#
    The purchase-model and Gamma-Gamma inputs of every customer with a completed order
    up to as_of_date (the whole history to as_of_date is the calibration period; later
    orders are ignored), at the grain of the var clv_purchase_grain. See macros/clv.sql.
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
        as_of.as_of_date as calibration_end_date
    from orders
    cross join as_of
),

customer_summary as (
    {{ clv_customer_summary('calibration_orders', 'calibration_end_date') }}
),

final as (
    select
        customer_summary.*,
        '{{ clv_purchase_grain() }}' as purchase_grain,
        as_of.as_of_date
    from customer_summary
    cross join as_of
)

select * from final
