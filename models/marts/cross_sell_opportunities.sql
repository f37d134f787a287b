{#
    Per customer, the cross_sell_top_n categories they have not bought yet (up to
    as_of_date) that they are most likely to take up within cross_sell_horizon_days,
    or, with the dbt var cross_sell_rank_by = expected_revenue, that are worth the most
    in expectation. The figures come from the take-up model (docs/cross_sell.md):
    int_cross_sell_candidates_ranked at snapshot 0 (as_of_date), scored by the
    production fit in cross_sell_take_up_models. The rule evidence stays on every offer.
    Products without a category are never offered (int_sale_lines_categorised).
#}

{% set top_n = var('cross_sell_top_n') %}
{% if top_n is not number or top_n < 1 or top_n != top_n | int %}
    {{ exceptions.raise_compiler_error(
        "cross_sell_top_n must be a whole number >= 1; got '" ~ top_n ~ "'"
    ) }}
{% endif %}

with

ranked as (
    select * from {{ ref('int_cross_sell_candidates_ranked') }}
    where snapshot_lag = 0
),

sale_lines as (
    select * from {{ ref('int_sale_lines_categorised') }}
),

category_order_values as (
    select
        category,
        sum(net_revenue) / count(distinct order_id) as revenue_per_order
    from sale_lines
    group by category
),

final as (
    select
        ranked.customer_id,
        ranked.opportunity_rank,
        ranked.snapshot_date as as_of_date,
        ranked.category,
        cast(ranked.opportunity_score as double) as opportunity_score,
        cast(ranked.take_up_probability as double) as take_up_probability,
        ranked.horizon_days as take_up_horizon_days,
        cast(ranked.probability_alive as double) as probability_alive,
        ranked.evidence_category,
        cast(ranked.evidence_confidence as double) as evidence_confidence,
        cast(ranked.evidence_lift as double) as evidence_lift,
        cast(ranked.category_customer_share as double) as category_customer_share,
        cast(category_order_values.revenue_per_order as decimal(18, 4))
            as category_revenue_per_order,
        cast(ranked.expected_first_purchase_value as decimal(18, 4))
            as expected_first_purchase_value,
        cast(ranked.expected_revenue as decimal(18, 4)) as expected_revenue,
        '{{ var("cross_sell_rank_by") }}' as ranked_by
    from ranked
    left join category_order_values
        on ranked.category = category_order_values.category
    where ranked.opportunity_rank <= {{ top_n }}
)

select * from final
