{#
    The take-up probability of every candidate at as_of_date (snapshot 0, by the
    production fit) and at snapshot 1 (by the backtest fit), from the stored
    coefficients of int_cross_sell_take_up_fitted:
      p = sigma(intercept + sum_f coefficient_f (feature_f - center_f) / scale_f
                + sum_pairs coefficient_p (indicator_p - center_p) / scale_p).
    A pair indicator is 1 only for the owned categories of the candidate's customer and
    the offered category, so the pair part is a constant (every indicator at 0) plus the
    weights of the pairs the candidate has: a join on the owned categories, not one
    column per pair. In SQL, so that millions of candidates never pass through Python.
#}

{%- set features = cross_sell_take_up_features().keys() | list %}

with

candidates as (
    select * from {{ ref('int_cross_sell_candidates') }}
    where snapshot_lag < 2
),

fitted as (
    select * from {{ ref('int_cross_sell_take_up_fitted') }}
),

coefficients as (
    {#- One row per applied fit: the intercept with the pairs' constant part folded
        in, and each feature's weight (coefficient / scale) and centre. -#}
    select
        apply_snapshot_lag as snapshot_lag,
        any_value(fit_name) as fit_name,
        sum(case when term = 'intercept' then coefficient else 0 end)
        - sum(
            case when owned_category is not null then coefficient * center / scale else 0 end
        ) as intercept,
        {%- for feature in features %}
        max(case when term = '{{ feature }}' then coefficient / scale end)
            as weight_{{ loop.index }},
        max(case when term = '{{ feature }}' then center end) as center_{{ loop.index }},
        {%- endfor %}
        count(*) as term_count
    from fitted
    group by apply_snapshot_lag
),

pair_weights as (
    select
        apply_snapshot_lag as snapshot_lag,
        owned_category,
        offered_category,
        coefficient / scale as weight
    from fitted
    where owned_category is not null
),

owned as (
    select
        snapshot_lag,
        customer_id,
        category,
        unnest(owned_categories) as owned_category
    from candidates
),

candidate_pairs as (
    select
        owned.snapshot_lag,
        owned.customer_id,
        owned.category,
        sum(pair_weights.weight) as pair_score
    from owned
    inner join pair_weights
        on
            owned.snapshot_lag = pair_weights.snapshot_lag
            and owned.owned_category = pair_weights.owned_category
            and owned.category = pair_weights.offered_category
    group by owned.snapshot_lag, owned.customer_id, owned.category
),

linear as (
    select
        candidates.snapshot_lag,
        candidates.customer_id,
        candidates.category,
        coefficients.fit_name,
        coefficients.intercept
        + coalesce(candidate_pairs.pair_score, 0)
        {%- for feature in features %}
        + coalesce(
            coefficients.weight_{{ loop.index }}
            * (candidates.{{ feature }} - coefficients.center_{{ loop.index }}),
            0
        )
        {%- endfor %} as linear_predictor
    from candidates
    inner join coefficients
        on candidates.snapshot_lag = coefficients.snapshot_lag
    left join candidate_pairs
        on
            candidates.snapshot_lag = candidate_pairs.snapshot_lag
            and candidates.customer_id = candidate_pairs.customer_id
            and candidates.category = candidate_pairs.category
),

final as (
    select
        snapshot_lag,
        customer_id,
        category,
        fit_name,
        linear_predictor,
        {#- the logistic function, in the form that cannot overflow either way #}
        case
            when linear_predictor >= 0 then 1 / (1 + exp(-linear_predictor))
            else exp(linear_predictor) / (1 + exp(linear_predictor))
        end as take_up_probability
    from linear
)

select * from final
