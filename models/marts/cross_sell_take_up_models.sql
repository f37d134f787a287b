{#
    The take-up model behind cross_sell_opportunities and cross_sell_backtest, readable:
    one row per fit (production: trained one horizon before as_of_date, applied at it;
    backtest: trained two horizons before, applied one horizon before) and term. The
    probability of a candidate is sigma(intercept + sum over terms of coefficient x
    (term - center) / scale), a term being a feature or a pair indicator ("owns A &
    offered B"); docs/cross_sell.md defines each.
#}

with

fitted as (
    select * from {{ ref('int_cross_sell_take_up_fitted') }}
),

snapshots as (
    select * from {{ ref('int_cross_sell_snapshots') }}
),

final as (
    select
        fitted.fit_name,
        fitted.term,
        fitted.term_order,
        fitted.owned_category,
        fitted.offered_category,
        fitted.coefficient,
        fitted.center,
        fitted.scale,
        training.snapshot_date as training_snapshot_date,
        training.horizon_end_date as training_horizon_end_date,
        applied.snapshot_date as applied_snapshot_date,
        training.horizon_days,
        fitted.fit_status,
        fitted.fit_message,
        fitted.training_candidates,
        fitted.training_rows,
        fitted.training_take_ups,
        fitted.training_take_up_rate,
        fitted.log_likelihood,
        fitted.is_converged,
        fitted.iterations,
        fitted.l2_penalty
    from fitted
    inner join snapshots as training
        on fitted.train_snapshot_lag = training.snapshot_lag
    inner join snapshots as applied
        on fitted.apply_snapshot_lag = applied.snapshot_lag
)

select * from final
