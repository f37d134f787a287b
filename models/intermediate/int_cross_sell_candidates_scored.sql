{#
    The candidates of as_of_date (snapshot 0, scored by the production fit) and of
    snapshot 1 (by the backtest fit), with their take-up probability from the stored
    coefficients of int_cross_sell_take_up_fitted:
      p = sigma(intercept + sum_f coefficient_f (feature_f - center_f) / scale_f
                + sum_pairs coefficient_p (indicator_p - center_p) / scale_p).
    A pair indicator is 1 only for the owned categories of the candidate's customer and
    the offered category, so the pair part is a constant (every indicator at 0) plus the
    weights of the pairs the candidate has; customers with the same owned set share it,
    so it is summed once per distinct set (int_customer_category_sets_by_snapshot) and
    offered category, not per customer. In SQL, so that millions of candidates never
    pass through Python. A view: int_cross_sell_candidates_ranked stores the result, and
    a table here would write every candidate once more.
#}
{{ config(materialized='view') }}
{%- set features = cross_sell_take_up_features().keys() | list %}

with

candidates as (
    select * from {{ ref('int_cross_sell_candidates') }}
    where snapshot_lag < 2
),

category_sets as (
    select * from {{ ref('int_customer_category_sets_by_snapshot') }}
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

distinct_sets as (
    {{ distinct_category_sets('category_sets') }}
),

owned as (
    select
        snapshot_lag,
        category_set_id,
        unnest(owned_categories) as owned_category
    from distinct_sets
),

set_pair_scores as (
    select
        owned.snapshot_lag,
        owned.category_set_id,
        pair_weights.offered_category as category,
        sum(pair_weights.weight) as pair_score
    from owned
    inner join pair_weights
        on
            owned.snapshot_lag = pair_weights.snapshot_lag
            and owned.owned_category = pair_weights.owned_category
    group by owned.snapshot_lag, owned.category_set_id, pair_weights.offered_category
),

linear as (
    select
        candidates.*,
        coefficients.fit_name,
        coefficients.intercept
        + coalesce(set_pair_scores.pair_score, 0)
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
    left join set_pair_scores
        on
            candidates.snapshot_lag = set_pair_scores.snapshot_lag
            and candidates.category_set_id = set_pair_scores.category_set_id
            and candidates.category = set_pair_scores.category
),

final as (
    select
        snapshot_lag,
        snapshot_date,
        horizon_end_date,
        horizon_days,
        customer_id,
        category,
        evidence_category,
        evidence_confidence,
        evidence_lift,
        category_customer_share,
        probability_alive,
        category_first_purchase_value,
        customer_spend_multiplier,
        is_taken_up,
        taken_up_net_revenue,
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
