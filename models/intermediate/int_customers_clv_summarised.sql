{#
    The BG/NBD and Gamma-Gamma inputs of every customer with a completed order up to
    as_of_date (the whole history is the calibration period). See macros/clv.sql.
#}

with

customer_summary as (
    {{ clv_customer_summary(clv_period_end_at(as_of_date())) }}
),

final as (
    select
        *,
        {{ as_of_date() }} as as_of_date
    from customer_summary
)

select * from final
