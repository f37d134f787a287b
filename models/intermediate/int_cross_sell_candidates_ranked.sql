{#
    The scored candidates of as_of_date (snapshot 0, the offers) and of snapshot 1 (the
    backtest), valued and ranked per customer:
      take_up_probability   the take-up model's calibrated P(first purchase of the
                            category within cross_sell_horizon_days);
      expected_first_purchase_value  the category's mean first-day revenue of a first
                            purchase x the customer's spend multiplier;
      expected_revenue      take_up_probability x expected_first_purchase_value;
      opportunity_score     0-100: 100 x sqrt(take_up_probability x min(1, expected first
                            purchase value / the most valuable category's)): the
                            geometric mean of how likely and how valuable, so 100 is a
                            certain take-up of the most valuable kind of first purchase.
    opportunity_rank orders a customer's candidates by the dbt var cross_sell_rank_by:
    'probability' (default) or 'expected_revenue', ties to the other, then the category's
    name; both orders are kept for the backtest.
#}

{% set rank_by = var('cross_sell_rank_by') %}
{% if rank_by not in ['probability', 'expected_revenue'] %}
    {{ exceptions.raise_compiler_error(
        "cross_sell_rank_by must be 'probability' or 'expected_revenue'; got '"
        ~ rank_by ~ "'"
    ) }}
{% endif %}

with

scored as (
    select * from {{ ref('int_cross_sell_candidates_scored') }}
),

top_values as (
    {#- from the stored candidates (two columns), not the scored view, which is then
        computed once #}
    select
        snapshot_lag,
        max(category_first_purchase_value) as top_category_first_purchase_value
    from {{ ref('int_cross_sell_candidates') }}
    where snapshot_lag < 2
    group by snapshot_lag
),

valued as (
    select
        scored.snapshot_lag,
        scored.snapshot_date,
        scored.horizon_end_date,
        scored.horizon_days,
        scored.customer_id,
        scored.category,
        scored.evidence_category,
        scored.evidence_confidence,
        scored.evidence_lift,
        scored.category_customer_share,
        scored.probability_alive,
        scored.category_first_purchase_value,
        scored.customer_spend_multiplier,
        scored.is_taken_up,
        scored.taken_up_net_revenue,
        scored.fit_name,
        scored.take_up_probability,
        scored.category_first_purchase_value * scored.customer_spend_multiplier
            as expected_first_purchase_value,
        top_values.top_category_first_purchase_value
    from scored
    inner join top_values
        on scored.snapshot_lag = top_values.snapshot_lag
),

scored_values as (
    select
        *,
        take_up_probability * expected_first_purchase_value as expected_revenue,
        100 * sqrt(
            take_up_probability
            * case
                when top_category_first_purchase_value > 0
                    then least(
                        1.0,
                        greatest(expected_first_purchase_value, 0)
                        / top_category_first_purchase_value
                    )
                else 0
            end
        ) as opportunity_score
    from valued
),

ranked as (
    select
        *,
        row_number() over (
            partition by snapshot_lag, customer_id
            order by take_up_probability desc, expected_revenue desc, category asc
        ) as probability_rank,
        row_number() over (
            partition by snapshot_lag, customer_id
            order by expected_revenue desc, take_up_probability desc, category asc
        ) as expected_revenue_rank
    from scored_values
),

final as (
    select
        *,
        {{ 'probability_rank' if rank_by == 'probability' else 'expected_revenue_rank' }}
            as opportunity_rank
    from ranked
)

select * from final
