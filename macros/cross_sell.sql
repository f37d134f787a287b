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

{% macro category_pair_counts(items, group_column, set_column, weight_column) -%}
    {#- The counts association rules between categories are computed from, from
        weighted category sets. `items` holds one row per category of a set: a group
        (basket level, snapshot), the set within it, the set's weight (how many
        baskets or customers have exactly that set) and the category. A select of one
        row per group and ordered pair of distinct categories present in the group:
          total_count       N, the weights summed over the group's sets
          antecedent_count  n_A, the weights of the sets holding A
          consequent_count  n_B, the weights of the sets holding B
          pair_count        n_AB, the weights of the sets holding both (0 if none)
        Defined once for category_affinities (order and customer baskets) and
        int_category_rules_by_snapshot (customers at each snapshot). -#}
    with set_weights as (
        select
            {{ group_column }},
            {{ set_column }},
            any_value({{ weight_column }}) as set_weight
        from {{ items }}
        group by {{ group_column }}, {{ set_column }}
    ),

    group_totals as (
        select
            {{ group_column }},
            cast(sum(set_weight) as bigint) as total_count
        from set_weights
        group by {{ group_column }}
    ),

    category_totals as (
        select
            {{ group_column }},
            category,
            cast(sum({{ weight_column }}) as bigint) as category_count
        from {{ items }}
        group by {{ group_column }}, category
    ),

    pair_totals as (
        select
            antecedent.{{ group_column }},
            antecedent.category as antecedent_category,
            consequent.category as consequent_category,
            cast(sum(antecedent.{{ weight_column }}) as bigint) as pair_count
        from {{ items }} as antecedent
        inner join {{ items }} as consequent
            on
                antecedent.{{ group_column }} = consequent.{{ group_column }}
                and antecedent.{{ set_column }} = consequent.{{ set_column }}
                and antecedent.category != consequent.category
        group by
            antecedent.{{ group_column }},
            antecedent.category,
            consequent.category
    )

    select
        antecedent.{{ group_column }},
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        group_totals.total_count,
        antecedent.category_count as antecedent_count,
        consequent.category_count as consequent_count,
        coalesce(pair_totals.pair_count, 0) as pair_count
    from category_totals as antecedent
    inner join category_totals as consequent
        on
            antecedent.{{ group_column }} = consequent.{{ group_column }}
            and antecedent.category != consequent.category
    inner join group_totals
        on antecedent.{{ group_column }} = group_totals.{{ group_column }}
    left join pair_totals
        on
            antecedent.{{ group_column }} = pair_totals.{{ group_column }}
            and antecedent.category = pair_totals.antecedent_category
            and consequent.category = pair_totals.consequent_category
{%- endmacro %}

{% macro exact_sum(expression, condition=none) -%}
    {#- sum() of a double expression that does not depend on the order rows are added
        in: each value is rounded to 18 decimals and summed exactly (decimal(38, 18):
        up to 10^20 in magnitude), then returned as a double. DuckDB adds doubles in
        whatever order its threads deliver them, so a plain sum or avg changes in the
        last bits between two builds of the same data. -#}
    cast(
        sum(cast({{ expression }} as decimal(38, 18)))
        {%- if condition is not none %} filter (where {{ condition }}){% endif %}
        as double
    )
{%- endmacro %}

{% macro exact_avg(expression, condition=none) -%}
    {#- avg() of a double expression, the same in every build: exact_sum's sum over the
        count of non-null values. -#}
    (
        {{ exact_sum(expression, condition) }}
        / count({{ expression }})
        {%- if condition is not none %} filter (where {{ condition }}){% endif %}
    )
{%- endmacro %}
