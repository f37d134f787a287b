{% macro cross_sell_take_up_features() -%}
    {#- The inputs of the cross-sell take-up model, name -> SQL expression over the
        columns of int_cross_sell_candidates (docs/cross_sell.md). Defined once:
        int_cross_sell_candidates computes them, int_cross_sell_take_up_fitted fits one
        coefficient per feature_* column, int_cross_sell_candidates_scored applies them.
        Adding a feature here adds it everywhere. -#}
    {%- do return({
        'feature_log_popularity': 'ln(category_customer_share)',
        'feature_evidence_confidence': 'evidence_confidence',
        'feature_log_lift': 'case when evidence_lift > 0 then ln(evidence_lift) else 0 end',
        'feature_has_evidence': 'cast(evidence_category is not null as double)',
        'feature_owned_category_count': 'cast(owned_category_count as double)',
        'feature_log_occasions': 'ln(occasion_count)',
        'feature_years_since_last_purchase': 'days_since_last_purchase / 365.25',
        'feature_years_since_first_purchase': 'age_weeks * 7 / 365.25',
        'feature_probability_alive': 'probability_alive',
        'feature_log_spend': 'ln(1 + greatest(mean_occasion_sales_revenue, 0))',
    }) -%}
{%- endmacro %}

{% macro distinct_category_sets(relation) -%}
    {#- A select of one row per distinct owned set and snapshot of `relation`
        (int_customer_category_sets_by_snapshot, or a CTE over it): snapshot_lag,
        category_set_id, owned_categories and customer_count, the customers owning it.
        The cross-sell models that work per set rather than per customer start here. -#}
    select
        snapshot_lag,
        category_set_id,
        any_value(owned_categories) as owned_categories,
        count(*) as customer_count
    from {{ relation }}
    group by snapshot_lag, category_set_id
{%- endmacro %}
