{#
    Customer-level association rules A -> B between categories at each cross-sell
    snapshot, from what customers owned on that day (int_customer_category_sets_by_snapshot):
    the same measures as the category_affinities mart (basket_level 'customer'), but known
    at every cut-off, so that the take-up model learns and is backtested on evidence it
    would have had then. N = customers owning at least one category by the snapshot.
      confidence  n_AB / n_A        lift  confidence / (n_B / N)
    One row per ordered pair of categories owned by anyone at the snapshot, with 0 for a
    pair never owned together. Pairs are counted per distinct category set, not per
    customer: the same counts at a fraction of the work.
#}

with

category_sets as (
    select * from {{ ref('int_customer_category_sets_by_snapshot') }}
),

set_counts as (
    {{ distinct_category_sets('category_sets') }}
),

set_items as (
    select
        snapshot_lag,
        category_set_id,
        customer_count,
        unnest(owned_categories) as category
    from set_counts
),

snapshot_counts as (
    select
        snapshot_lag,
        cast(sum(customer_count) as bigint) as customer_count
    from set_counts
    group by snapshot_lag
),

category_counts as (
    select
        snapshot_lag,
        category,
        cast(sum(customer_count) as bigint) as owner_count
    from set_items
    group by snapshot_lag, category
),

pair_counts as (
    select
        antecedent.snapshot_lag,
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        cast(sum(antecedent.customer_count) as bigint) as pair_owner_count
    from set_items as antecedent
    inner join set_items as consequent
        on
            antecedent.snapshot_lag = consequent.snapshot_lag
            and antecedent.category_set_id = consequent.category_set_id
            and antecedent.category != consequent.category
    group by antecedent.snapshot_lag, antecedent.category, consequent.category
),

final as (
    select
        antecedent.snapshot_lag,
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        snapshot_counts.customer_count,
        antecedent.owner_count as antecedent_owner_count,
        consequent.owner_count as consequent_owner_count,
        coalesce(pair_counts.pair_owner_count, 0) as pair_owner_count,
        cast(coalesce(pair_counts.pair_owner_count, 0) as double)
        / antecedent.owner_count as confidence,
        cast(coalesce(pair_counts.pair_owner_count, 0) * snapshot_counts.customer_count as double)
        / (antecedent.owner_count * consequent.owner_count) as lift
    from category_counts as antecedent
    inner join category_counts as consequent
        on
            antecedent.snapshot_lag = consequent.snapshot_lag
            and antecedent.category != consequent.category
    inner join snapshot_counts
        on antecedent.snapshot_lag = snapshot_counts.snapshot_lag
    left join pair_counts
        on
            antecedent.snapshot_lag = pair_counts.snapshot_lag
            and antecedent.category = pair_counts.antecedent_category
            and consequent.category = pair_counts.consequent_category
)

select * from final
