{#
    Every (snapshot, customer, category) the take-up model scores: at each cross-sell
    snapshot, each customer owning a category and each category someone owned but this
    customer had not bought yet. Everything on a row is known on the snapshot date:
      evidence     the owned category A with the highest customer-level rule confidence
                   A -> category (ties: higher lift, then A's name); null when no owned
                   category's owners bought this one;
      popularity   the share of customers owning the category;
      customer     purchase occasions, recency, age, mean spend per occasion, number of
                   categories owned, P(alive) (BG/NBD fitted at the snapshot);
      value        the mean first-day revenue of a first purchase in the category, and the
                   customer's spend multiplier (docs/cross_sell.md).
    The feature_* columns are the model's inputs, transformed as documented; for snapshots
    before as_of_date the outcome over the following horizon is here too (is_taken_up:
    the category was first bought within it; taken_up_net_revenue: its net revenue then).
#}

with

snapshots as (
    select * from {{ ref('int_cross_sell_snapshots') }}
),

category_sets as (
    select * from {{ ref('int_customer_category_sets_by_snapshot') }}
),

rules as (
    select * from {{ ref('int_category_rules_by_snapshot') }}
),

customers as (
    select * from {{ ref('int_customers_summarised_by_snapshot') }}
),

alive as (
    select * from {{ ref('int_customers_alive_by_snapshot') }}
),

first_bought as (
    select * from {{ ref('int_customer_categories_first_bought') }}
),

sale_lines as (
    select * from {{ ref('int_sale_lines_categorised') }}
),

popularity as (
    select distinct
        snapshot_lag,
        consequent_category as category,
        consequent_owner_count as owner_count,
        cast(consequent_owner_count as double) / customer_count as customer_share
    from rules
),

distinct_sets as (
    {{ distinct_category_sets('category_sets') }}
),

set_targets as (
    select
        distinct_sets.snapshot_lag,
        distinct_sets.category_set_id,
        popularity.category
    from distinct_sets
    inner join popularity
        on
            distinct_sets.snapshot_lag = popularity.snapshot_lag
            and not list_contains(distinct_sets.owned_categories, popularity.category)
),

set_evidence as (
    select
        set_targets.snapshot_lag,
        set_targets.category_set_id,
        set_targets.category,
        rules.antecedent_category as evidence_category,
        rules.confidence as evidence_confidence,
        rules.lift as evidence_lift,
        row_number() over (
            partition by set_targets.snapshot_lag, set_targets.category_set_id, set_targets.category
            order by rules.confidence desc, rules.lift desc, rules.antecedent_category asc
        ) as evidence_rank
    from set_targets
    inner join distinct_sets
        on
            set_targets.snapshot_lag = distinct_sets.snapshot_lag
            and set_targets.category_set_id = distinct_sets.category_set_id
    inner join rules
        on
            set_targets.snapshot_lag = rules.snapshot_lag
            and set_targets.category = rules.consequent_category
            and list_contains(distinct_sets.owned_categories, rules.antecedent_category)
    where rules.confidence > 0
),

set_candidates as (
    select
        set_targets.snapshot_lag,
        set_targets.category_set_id,
        set_targets.category,
        set_evidence.evidence_category,
        coalesce(set_evidence.evidence_confidence, 0) as evidence_confidence,
        coalesce(set_evidence.evidence_lift, 0) as evidence_lift
    from set_targets
    left join set_evidence
        on
            set_targets.snapshot_lag = set_evidence.snapshot_lag
            and set_targets.category_set_id = set_evidence.category_set_id
            and set_targets.category = set_evidence.category
            and set_evidence.evidence_rank = 1
),

first_purchase_values as (
    select
        snapshots.snapshot_lag,
        first_bought.category,
        cast(avg(first_bought.first_day_net_revenue) as double) as category_first_purchase_value
    from first_bought
    inner join snapshots
        on first_bought.first_bought_date <= snapshots.snapshot_date
    group by snapshots.snapshot_lag, first_bought.category
),

population_spend as (
    {#- Each customer's occasion revenue as an exact decimal before summing: a sum of
        doubles depends on the order DuckDB's threads add them in, which changed the
        last bits of every score from one build of the same data to the next. -#}
    select
        snapshot_lag,
        cast(
            sum(cast(mean_occasion_sales_revenue * occasion_count as decimal(38, 12)))
            as double
        ) / sum(occasion_count) as mean_occasion_sales_revenue
    from customers
    group by snapshot_lag
),

window_revenue as (
    select
        snapshots.snapshot_lag,
        sale_lines.customer_id,
        sale_lines.category,
        sum(sale_lines.net_revenue) as net_revenue
    from sale_lines
    inner join snapshots
        on
            sale_lines.order_date > snapshots.snapshot_date
            and sale_lines.order_date <= snapshots.horizon_end_date
    group by snapshots.snapshot_lag, sale_lines.customer_id, sale_lines.category
),

joined as (
    select
        category_sets.snapshot_lag,
        snapshots.snapshot_date,
        snapshots.horizon_end_date,
        snapshots.horizon_days,
        category_sets.customer_id,
        category_sets.category_set_id,
        set_candidates.category,
        set_candidates.evidence_category,
        set_candidates.evidence_confidence,
        set_candidates.evidence_lift,
        popularity.customer_share as category_customer_share,
        category_sets.owned_category_count,
        customers.occasion_count,
        customers.repeat_purchase_count,
        customers.recency_weeks,
        customers.age_weeks,
        customers.days_since_last_purchase,
        customers.mean_occasion_sales_revenue,
        alive.probability_alive,
        first_purchase_values.category_first_purchase_value,
        case
            when population_spend.mean_occasion_sales_revenue > 0
                then
                    (
                        customers.occasion_count * customers.mean_occasion_sales_revenue
                        + population_spend.mean_occasion_sales_revenue
                    )
                    / (customers.occasion_count + 1)
                    / population_spend.mean_occasion_sales_revenue
            else 1.0
        end as customer_spend_multiplier,
        case
            when snapshots.horizon_end_date is not null
                then window_revenue.customer_id is not null
        end as is_taken_up,
        case
            when snapshots.horizon_end_date is not null
                then coalesce(window_revenue.net_revenue, 0)
        end as taken_up_net_revenue
    from category_sets
    inner join snapshots
        on category_sets.snapshot_lag = snapshots.snapshot_lag
    inner join set_candidates
        on
            category_sets.snapshot_lag = set_candidates.snapshot_lag
            and category_sets.category_set_id = set_candidates.category_set_id
    inner join popularity
        on
            set_candidates.snapshot_lag = popularity.snapshot_lag
            and set_candidates.category = popularity.category
    inner join customers
        on
            category_sets.snapshot_lag = customers.snapshot_lag
            and category_sets.customer_id = customers.customer_id
    inner join alive
        on
            category_sets.snapshot_lag = alive.snapshot_lag
            and category_sets.customer_id = alive.customer_id
    inner join first_purchase_values
        on
            set_candidates.snapshot_lag = first_purchase_values.snapshot_lag
            and set_candidates.category = first_purchase_values.category
    inner join population_spend
        on category_sets.snapshot_lag = population_spend.snapshot_lag
    left join window_revenue
        on
            category_sets.snapshot_lag = window_revenue.snapshot_lag
            and category_sets.customer_id = window_revenue.customer_id
            and set_candidates.category = window_revenue.category
),

final as (
    select
        {%- for name, expression in cross_sell_take_up_features().items() %}
        {{ expression }} as {{ name }},
        {%- endfor %}
        *
    from joined
)

select * from final
