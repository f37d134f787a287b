{#
    How well the purchase model forecasts: fitted on all but the last clv_holdout_weeks
    weeks, it predicts each customer's repeat purchases in those weeks; compared here
    with what happened, by calibration frequency (x) and overall.
#}

with

evaluated as (
    select * from {{ ref('int_clv_holdout_evaluated') }}
),

final as (
    select
        frequency_group,
        group_order,
        calibration_end_at,
        holdout_weeks,
        customer_count,
        actual_purchases,
        predicted_purchases,
        actual_purchases_per_customer,
        predicted_purchases_per_customer,
        error,
        relative_error,
        fit_status,
        fit_message,
        bgnbd_r,
        bgnbd_alpha,
        bgnbd_a,
        bgnbd_b
    from evaluated
)

select * from final
