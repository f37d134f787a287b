{#
    The three cut-offs of the cross-sell take-up model, one row each, a whole horizon
    (dbt var cross_sell_horizon_days) apart, counted back from as_of_date:
      snapshot_lag 0  as_of_date: the offers are computed here (cross_sell_opportunities);
      snapshot_lag 1  one horizon earlier: the production model learns from what was
                      taken up from here to as_of_date, and the backtest ranks here and
                      observes the same horizon (cross_sell_backtest);
      snapshot_lag 2  two horizons earlier: the backtest's model learns from what was
                      taken up from here to snapshot 1, so the backtest uses nothing
                      after its own cut-off.
    horizon_end_date is the last day observed after the snapshot (null for lag 0: the
    future is not known yet).
#}

{% set horizon_days = whole_number_var('cross_sell_horizon_days', 'days') %}

with

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

lags as (
    select 0 as snapshot_lag
    union all
    select 1 as snapshot_lag
    union all
    select 2 as snapshot_lag
),

final as (
    select
        lags.snapshot_lag,
        cast(
            {{ dbt.dateadd(
                'day', '-' ~ horizon_days ~ ' * lags.snapshot_lag', 'as_of.as_of_date'
            ) }} as date
        ) as snapshot_date,
        case
            when lags.snapshot_lag > 0
                then cast(
                    {{ dbt.dateadd(
                        'day',
                        '-' ~ horizon_days ~ ' * (lags.snapshot_lag - 1)',
                        'as_of.as_of_date'
                    ) }} as date
                )
        end as horizon_end_date,
        {{ horizon_days }} as horizon_days
    from lags
    cross join as_of
    where as_of.as_of_date is not null
)

select * from final
