{#
    Customer-level association rules A -> B between categories at each cross-sell
    snapshot, from what customers owned on that day (int_customer_category_sets_by_snapshot):
    the same measures as the category_affinities mart (basket_level 'customer'), but known
    at every cut-off, so that the take-up model learns and is backtested on evidence it
    would have had then. N = customers owning at least one category by the snapshot.
      confidence  n_AB / n_A        lift  confidence / (n_B / N)
    One row per ordered pair of categories owned by anyone at the snapshot, with 0 for a
    pair never owned together. Pairs are counted per distinct category set, not per
    customer: the same counts at a fraction of the work, by the same macro as
    category_affinities (category_pair_counts).
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

final as (
    select
        snapshot_lag,
        antecedent_category,
        consequent_category,
        total_count as customer_count,
        antecedent_count as antecedent_owner_count,
        consequent_count as consequent_owner_count,
        pair_count as pair_owner_count,
        cast(pair_count as double) / antecedent_count as confidence,
        cast(pair_count * total_count as double)
        / (antecedent_count * consequent_count) as lift
    from (
        {{ category_pair_counts('set_items', 'snapshot_lag', 'category_set_id', 'customer_count') }}
    ) as counts
)

select * from final
