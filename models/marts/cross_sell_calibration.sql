{#
    Is take_up_probability a probability? The reliability table of the backtest (see
    cross_sell_backtest): at snapshot 1, the candidates scored by the backtest fit, in ten
    bins of predicted probability (0-0.1, ..., 0.9-1), with the mean predicted probability
    and the share actually taken up within the following horizon. Two populations:
      offered  the cross_sell_top_n offers of the default ranking (what consumers see);
      all      every candidate (each not-yet-bought category of each customer).
    A calibrated model has observed_take_up_rate close to mean_predicted_probability in
    every bin with enough candidates.
#}

with

ranked as (
    select * from {{ ref('int_cross_sell_candidates_ranked') }}
    where snapshot_lag = 1
),

populations as (
    select
        'offered' as population,
        *
    from ranked
    where opportunity_rank <= {{ var('cross_sell_top_n') }}

    union all

    select
        'all' as population,
        *
    from ranked
),

binned as (
    select
        population,
        least(floor(take_up_probability * 10), 9) as probability_bin,
        take_up_probability,
        cast(is_taken_up as double) as taken_up
    from populations
),

final as (
    select
        population,
        cast(probability_bin / 10 as double) as bin_lower,
        cast((probability_bin + 1) / 10 as double) as bin_upper,
        count(*) as candidate_count,
        {{ exact_avg('take_up_probability') }} as mean_predicted_probability,
        {{ exact_avg('taken_up') }} as observed_take_up_rate,
        abs({{ exact_avg('take_up_probability') }} - {{ exact_avg('taken_up') }})
            as absolute_error
    from binned
    group by population, probability_bin
)

select * from final
