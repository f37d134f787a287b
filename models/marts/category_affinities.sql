{#
    Association rules between product categories, for every ordered pair (A -> B) and
    two kinds of basket, up to as_of_date:
      order     the categories bought together in one completed order ("bought
                together": bundle and checkout recommendations);
      customer  the categories a customer has bought over time ("bought by the same
                customer": cross-sell campaigns).
    A basket holds the distinct categories of its sale lines. N is the number of
    baskets of that level with at least one sale line. The measures are the standard
    ones (Agrawal et al. 1993; Brin et al. 1997), as mlxtend computes them:
      support     n_AB / N             confidence  n_AB / n_A
      lift        confidence / (n_B / N)
      leverage    n_AB / N - (n_A / N) (n_B / N)
      conviction  (1 - n_B / N) / (1 - confidence); infinite when confidence = 1,
                  stored as IEEE infinity (a double), so that sorting by conviction
                  descending puts the strongest rules first; JSON outputs write it as
                  the string "Infinity".
    Products without a category are not a category here (int_sale_lines_categorised).
#}

with

sale_lines as (
    select * from {{ ref('int_sale_lines_categorised') }}
),

{# Counting by category bitmask (issue 12, hotspot 5): each basket's categories become
    one 64-bit mask, baskets are counted per distinct mask (a few hundred), and every
    count below comes from those counts. This replaces a distinct over every basket's
    categories and a self-join of them (3.5x slower at 10M lines), with identical rows.
    Data with more categories than var category_mask_max_categories (64, the mask's
    width) takes the self-join instead: category_index is then null for all of them. #}
{%- set mask_max = whole_number_var('category_mask_max_categories', 'categories') %}
{%- if mask_max > 64 %}
    {{ exceptions.raise_compiler_error(
        "category_mask_max_categories is at most 64 (a 64-bit mask); got " ~ mask_max
    ) }}
{%- endif %}
categories as (
    select
        category,
        case
            when count(*) over () <= {{ mask_max }}
                then cast(row_number() over (order by category) - 1 as integer)
        end as category_index
    from (select distinct category from sale_lines) as distinct_categories
),

basket_masks as (
    select
        'order' as basket_level,
        sale_lines.order_id as basket_id,
        bit_or(cast(1 as ubigint) << categories.category_index) as category_mask
    from sale_lines
    inner join categories on sale_lines.category = categories.category
    where categories.category_index is not null
    group by sale_lines.order_id

    union all

    select
        'customer' as basket_level,
        sale_lines.customer_id as basket_id,
        bit_or(cast(1 as ubigint) << categories.category_index) as category_mask
    from sale_lines
    inner join categories on sale_lines.category = categories.category
    where categories.category_index is not null
    group by sale_lines.customer_id
),

mask_counts as (
    select
        basket_level,
        category_mask,
        count(*) as mask_basket_count
    from basket_masks
    group by basket_level, category_mask
),

mask_categories as (
    select
        mask_counts.basket_level,
        mask_counts.category_mask,
        mask_counts.mask_basket_count,
        categories.category
    from mask_counts
    inner join categories
        on (mask_counts.category_mask >> categories.category_index) & 1 = 1
),

{# More than 64 categories: the basket items, for the self-join. #}
basket_items as (
    select distinct
        'order' as basket_level,
        sale_lines.order_id as basket_id,
        sale_lines.category
    from sale_lines
    inner join categories on sale_lines.category = categories.category
    where categories.category_index is null

    union all

    select distinct
        'customer' as basket_level,
        sale_lines.customer_id as basket_id,
        sale_lines.category
    from sale_lines
    inner join categories on sale_lines.category = categories.category
    where categories.category_index is null
),

weighted_items as (
    {#- one row per category of a weighted basket set: a mask with the number of
        baskets holding exactly those categories, or (more than 64 categories) one
        basket with weight 1 -#}
    select
        basket_level,
        cast(category_mask as hugeint) as basket_set,
        mask_basket_count as basket_weight,
        category
    from mask_categories

    union all

    select
        basket_level,
        cast(basket_id as hugeint) as basket_set,
        1 as basket_weight,
        category
    from basket_items
),

all_pairs as (
    select
        basket_level,
        antecedent_category,
        consequent_category,
        total_count as basket_count,
        antecedent_count as antecedent_basket_count,
        consequent_count as consequent_basket_count,
        pair_count as pair_basket_count
    from (
        {{ category_pair_counts('weighted_items', 'basket_level', 'basket_set', 'basket_weight') }}
    ) as counts
),

final as (
    {#- each measure is one division of whole-number counts, so exact ratios such as
        3/4 come out exact and the result does not depend on the order of operations #}
    select
        basket_level,
        antecedent_category,
        consequent_category,
        basket_count,
        antecedent_basket_count,
        consequent_basket_count,
        pair_basket_count,
        cast(antecedent_basket_count as double) / basket_count as antecedent_support,
        cast(consequent_basket_count as double) / basket_count as consequent_support,
        {#- the standard name of the measure, though a keyword in some dialects #}
        cast(pair_basket_count as double) / basket_count as support,  -- noqa: RF04
        cast(pair_basket_count as double) / antecedent_basket_count as confidence,
        cast(pair_basket_count * basket_count as double)
        / (antecedent_basket_count * consequent_basket_count) as lift,
        cast(
            pair_basket_count * basket_count
            - antecedent_basket_count * consequent_basket_count
            as double
        ) / (basket_count * basket_count) as leverage,
        case
            when pair_basket_count < antecedent_basket_count
                then cast(
                    (basket_count - consequent_basket_count) * antecedent_basket_count
                    as double
                ) / (basket_count * (antecedent_basket_count - pair_basket_count))
            else cast('infinity' as double)
        end as conviction
    from all_pairs
)

select * from final
