{#
    The cross-sell backtest: how the offers would have done. At snapshot 1 (one
    cross_sell_horizon_days horizon before as_of_date) every customer's not-yet-bought
    categories are ranked by the product's take-up model (trained on the horizon before
    that, so it knows nothing after the cut-off) and by three baselines, and the top k are
    compared with what each customer first bought in the following horizon (up to
    as_of_date). One row per ranking strategy and k = 1 .. cross_sell_top_n:
      take_up_probability  the product, ranked by probability (cross_sell_rank_by)
      expected_revenue     the product, ranked by probability x first-purchase value
      popularity           the most-owned categories the customer does not own yet
      confidence           the highest customer-level rule confidence from an owned one
      random               a fixed pseudo-random order (a hash of customer and category)
    hit_rate = customers with at least one offered category taken up / customers;
    precision = offers taken up / offers; revenue_captured = net revenue, in the horizon,
    of the offered categories taken up. For the product's rankings the offered
    probabilities are judged too: the Brier score and the calibration error, the mean
    over ten probability bins of width 0.1 of |mean predicted - observed take-up rate|,
    weighted by the offers in each bin (the expected calibration error); and unweighted,
    over the bins of at least 30 offers (a bin of a handful of offers is noise: one
    offer taken up in a bin of one is an error of 0.7). cross_sell_calibration has the
    bins.
#}

{% set top_n = var('cross_sell_top_n') %}
{% set default_strategy = 'expected_revenue' if var('cross_sell_rank_by') == 'expected_revenue'
    else 'take_up_probability' %}

with

ranked as (
    select * from {{ ref('int_cross_sell_candidates_ranked') }}
    where snapshot_lag = 1
),

with_baselines as (
    select
        *,
        row_number() over (
            partition by customer_id
            order by category_customer_share desc, category asc
        ) as popularity_rank,
        row_number() over (
            partition by customer_id
            order by evidence_confidence desc, category_customer_share desc, category asc
        ) as confidence_rank,
        row_number() over (
            partition by customer_id
            order by md5(cast(customer_id as varchar) || '|' || category), category asc
        ) as random_rank
    from ranked
),

strategy_ranks as (
    {%- for strategy, rank_column in [
        ('take_up_probability', 'probability_rank'),
        ('expected_revenue', 'expected_revenue_rank'),
        ('popularity', 'popularity_rank'),
        ('confidence', 'confidence_rank'),
        ('random', 'random_rank'),
    ] %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select
        '{{ strategy }}' as strategy,
        {{ loop.index }} as strategy_order,
        {{ 'true' if strategy in ['take_up_probability', 'expected_revenue'] else 'false' }}
            as is_product_ranking,
        customer_id,
        {{ rank_column }} as offer_rank,
        take_up_probability,
        is_taken_up,
        taken_up_net_revenue
    from with_baselines
    where {{ rank_column }} <= {{ top_n }}
    {%- endfor %}
),

ks as (
    {%- for k in range(1, top_n + 1) %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select {{ k }} as k
    {%- endfor %}
),

offers as (
    select
        strategy_ranks.*,
        ks.k,
        least(floor(strategy_ranks.take_up_probability * 10), 9) as probability_bin
    from strategy_ranks
    inner join ks
        on strategy_ranks.offer_rank <= ks.k
),

population as (
    select
        count(distinct customer_id) as customer_count,
        coalesce(sum(taken_up_net_revenue), 0) as new_category_net_revenue,
        any_value(snapshot_date) as cutoff_date,
        any_value(horizon_end_date) as horizon_end_date,
        any_value(horizon_days) as horizon_days
    from ranked
),

customer_hits as (
    select
        strategy,
        k,
        customer_id,
        bool_or(is_taken_up) as has_hit
    from offers
    group by strategy, k, customer_id
),

hit_counts as (
    select
        strategy,
        k,
        count(*) filter (where has_hit) as hit_customer_count
    from customer_hits
    group by strategy, k
),

bins as (
    select
        strategy,
        k,
        probability_bin,
        count(*) as offer_count,
        abs(
            {{ exact_avg('take_up_probability') }}
            - {{ exact_avg('cast(is_taken_up as integer)') }}
        ) as absolute_error
    from offers
    where is_product_ranking
    group by strategy, k, probability_bin
),

calibration as (
    select
        strategy,
        k,
        {{ exact_sum('absolute_error * offer_count') }} / sum(offer_count) as calibration_error,
        {{ exact_avg('absolute_error', 'offer_count >= 30') }} as unweighted_calibration_error
    from bins
    group by strategy, k
),

offer_totals as (
    select
        strategy,
        strategy_order,
        is_product_ranking,
        k,
        count(*) as offer_count,
        count(*) filter (where is_taken_up) as taken_up_offer_count,
        coalesce(sum(taken_up_net_revenue), 0) as revenue_captured,
        case
            when is_product_ranking
                then {{ exact_avg('power(take_up_probability - cast(is_taken_up as double), 2)') }}
        end as brier_score,
        case when is_product_ranking then {{ exact_avg('take_up_probability') }} end
            as mean_predicted_probability
    from offers
    group by strategy, strategy_order, is_product_ranking, k
),

final as (
    select
        offer_totals.strategy,
        offer_totals.strategy_order,
        offer_totals.k,
        offer_totals.is_product_ranking,
        offer_totals.strategy = '{{ default_strategy }}' as is_default_ranking,
        population.cutoff_date,
        population.horizon_end_date,
        population.horizon_days,
        population.customer_count,
        offer_totals.offer_count,
        hit_counts.hit_customer_count,
        offer_totals.taken_up_offer_count,
        cast(hit_counts.hit_customer_count as double) / population.customer_count as hit_rate,
        cast(offer_totals.taken_up_offer_count as double) / offer_totals.offer_count
            as precision_at_k,
        cast(offer_totals.revenue_captured as decimal(18, 4)) as revenue_captured,
        cast(population.new_category_net_revenue as decimal(18, 4))
            as new_category_net_revenue,
        case
            when population.new_category_net_revenue > 0
                then offer_totals.revenue_captured / population.new_category_net_revenue
        end as revenue_captured_share,
        offer_totals.mean_predicted_probability,
        offer_totals.brier_score,
        calibration.calibration_error,
        calibration.unweighted_calibration_error
    from offer_totals
    cross join population
    inner join hit_counts
        on offer_totals.strategy = hit_counts.strategy and offer_totals.k = hit_counts.k
    left join calibration
        on offer_totals.strategy = calibration.strategy and offer_totals.k = calibration.k
)

select * from final
