{#
    How well the purchase models forecast: BG/NBD and Pareto/NBD, fitted on the history
    up to 7 x clv_holdout_weeks days before as_of_date, predict each customer's repeat
    purchases on those days; compared here with what happened, per model, by
    calibration frequency (x) and overall.
#}

with

evaluated as (
    select * from {{ ref('int_clv_holdout_evaluated') }}
),

final as (
    select
        purchase_model,
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
        mean_absolute_error,
        calibration_log_likelihood,
        fit_status,
        fit_message,
        bgnbd_r,
        bgnbd_alpha,
        bgnbd_a,
        bgnbd_b,
        pareto_nbd_r,
        pareto_nbd_alpha,
        pareto_nbd_s,
        pareto_nbd_beta
    from evaluated
)

select * from final
