{#
    Per customer, the cross_sell_top_n categories they have not bought yet (up to
    as_of_date) that the evidence says they are most likely and most valuable to buy.

    For customer c and a category B they have not bought:
      evidence          the category A they own with the highest customer-level rule
                        confidence A -> B (category_affinities, basket_level 'customer':
                        the share of customers owning A who also bought B); ties go to
                        the higher lift, then to A's name.
      take_up_probability  P(alive) of c (BG/NBD; 1 when the CLV models fell back and
                        there is none) x that confidence.
      expected_revenue  take_up_probability x B's average net revenue per order that
                        contains B: one order's worth, weighted by how likely it is.
      score             100 x sqrt(expected_revenue / the highest average order revenue
                        of any category): 100 = certain take-up of the most valuable
                        category. The square root spreads the typical small values over
                        the scale; it ranks exactly as expected_revenue does.
    Categories with no evidence (confidence 0) are not offered. Rank 1 is the best;
    ties go to the higher confidence, then to the category's name.
#}

{% set top_n = var('cross_sell_top_n') %}
{% if top_n is not number or top_n < 1 or top_n != top_n | int %}
    {{ exceptions.raise_compiler_error(
        "cross_sell_top_n must be a whole number >= 1; got '" ~ top_n ~ "'"
    ) }}
{% endif %}

with

sale_lines as (
    select * from {{ ref('int_sale_lines_categorised') }}
),

customer_rules as (
    select * from {{ ref('category_affinities') }}
    where basket_level = 'customer'
),

clv_predictions as (
    select * from {{ ref('int_customers_clv_predicted') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

owned_categories as (
    select distinct
        customer_id,
        category
    from sale_lines
),

category_order_values as (
    select
        category,
        sum(net_revenue) / count(distinct order_id) as revenue_per_order
    from sale_lines
    group by category
),

ranked_rules as (
    {#- Which evidence wins for a target is a property of the rules alone, so the rules
        are ranked once here and each customer keeps the best-ranked rule they own (a
        group-by minimum, far cheaper than ranking every customer's rules). -#}
    select
        *,
        row_number() over (
            partition by consequent_category
            order by confidence desc, lift desc, antecedent_category asc
        ) as rule_rank
    from customer_rules
    where confidence > 0
),

best_rule_per_target as (
    select
        owned_categories.customer_id,
        ranked_rules.consequent_category,
        min(ranked_rules.rule_rank) as rule_rank
    from owned_categories
    inner join ranked_rules
        on owned_categories.category = ranked_rules.antecedent_category
    left join owned_categories as already_owned
        on
            owned_categories.customer_id = already_owned.customer_id
            and ranked_rules.consequent_category = already_owned.category
    where already_owned.customer_id is null
    group by owned_categories.customer_id, ranked_rules.consequent_category
),

candidate_rules as (
    select
        best_rule_per_target.customer_id,
        ranked_rules.consequent_category as category,
        ranked_rules.antecedent_category as evidence_category,
        ranked_rules.confidence as evidence_confidence,
        ranked_rules.lift as evidence_lift
    from best_rule_per_target
    inner join ranked_rules
        on
            best_rule_per_target.consequent_category = ranked_rules.consequent_category
            and best_rule_per_target.rule_rank = ranked_rules.rule_rank
),

valued as (
    select
        candidate_rules.customer_id,
        candidate_rules.category,
        candidate_rules.evidence_category,
        candidate_rules.evidence_confidence,
        candidate_rules.evidence_lift,
        coalesce(clv_predictions.probability_alive, 1.0) as probability_alive,
        coalesce(clv_predictions.probability_alive, 1.0)
        * candidate_rules.evidence_confidence as take_up_probability,
        category_order_values.revenue_per_order as category_revenue_per_order,
        max(category_order_values.revenue_per_order) over () as top_category_revenue_per_order
    from candidate_rules
    inner join category_order_values
        on candidate_rules.category = category_order_values.category
    left join clv_predictions
        on candidate_rules.customer_id = clv_predictions.customer_id
),

scored as (
    select
        *,
        take_up_probability * category_revenue_per_order as expected_revenue,
        100 * sqrt(
            take_up_probability * category_revenue_per_order
            / nullif(top_category_revenue_per_order, 0)
        ) as opportunity_score
    from valued
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id
            order by opportunity_score desc, evidence_confidence desc, category asc
        ) as opportunity_rank
    from scored
),

final as (
    select
        ranked.customer_id,
        ranked.opportunity_rank,
        as_of.as_of_date,
        ranked.category,
        cast(ranked.opportunity_score as double) as opportunity_score,
        cast(ranked.take_up_probability as double) as take_up_probability,
        cast(ranked.probability_alive as double) as probability_alive,
        ranked.evidence_category,
        cast(ranked.evidence_confidence as double) as evidence_confidence,
        cast(ranked.evidence_lift as double) as evidence_lift,
        cast(ranked.category_revenue_per_order as decimal(18, 4))
            as category_revenue_per_order,
        cast(ranked.expected_revenue as decimal(18, 4)) as expected_revenue
    from ranked
    cross join as_of
    where ranked.opportunity_rank <= {{ top_n }}
)

select * from final
