{#
    The fit behind every CLV figure of this build: one row per build (the build
    replaces it), keyed by model_run_id, which customer_value carries on every row.
#}

with

fitted as (
    select * from {{ ref('int_clv_models_fitted') }}
),

final as (
    select
        model_run_id,
        fitted_at,
        model_version,
        method,
        fit_status,
        fit_message,
        as_of_date,
        calibration_end_at,
        time_unit,
        horizon_months,
        horizon_weeks,
        annual_discount_rate,
        revenue_retention_rate,
        purchase_grain,
        purchase_model,
        purchase_model_rule,
        customer_count,
        repeat_customer_count,
        bgnbd_r,
        bgnbd_alpha,
        bgnbd_a,
        bgnbd_b,
        bgnbd_log_likelihood,
        bgnbd_converged,
        bgnbd_iterations,
        bgnbd_fit_seconds,
        bgnbd_holdout_log_likelihood,
        bgnbd_holdout_mean_absolute_error,
        bgnbd_holdout_relative_error,
        pareto_nbd_r,
        pareto_nbd_alpha,
        pareto_nbd_s,
        pareto_nbd_beta,
        pareto_nbd_log_likelihood,
        pareto_nbd_converged,
        pareto_nbd_iterations,
        pareto_nbd_fit_seconds,
        pareto_nbd_holdout_log_likelihood,
        pareto_nbd_holdout_mean_absolute_error,
        pareto_nbd_holdout_relative_error,
        gamma_gamma_p,
        gamma_gamma_q,
        gamma_gamma_v,
        gamma_gamma_log_likelihood,
        gamma_gamma_converged,
        gamma_gamma_iterations,
        gamma_gamma_customer_count,
        gamma_gamma_fit_seconds,
        fallback_purchases_per_week,
        fallback_spend_per_order,
        fit_seconds
    from fitted
)

select * from final
