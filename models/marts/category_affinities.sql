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

basket_items as (
    select distinct
        'order' as basket_level,
        order_id as basket_id,
        category
    from sale_lines

    union all

    select distinct
        'customer' as basket_level,
        customer_id as basket_id,
        category
    from sale_lines
),

basket_counts as (
    select
        basket_level,
        count(distinct basket_id) as basket_count
    from basket_items
    group by basket_level
),

category_counts as (
    select
        basket_level,
        category,
        count(*) as category_basket_count
    from basket_items
    group by basket_level, category
),

pair_counts as (
    select
        antecedent.basket_level,
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        count(*) as pair_basket_count
    from basket_items as antecedent
    inner join basket_items as consequent
        on
            antecedent.basket_level = consequent.basket_level
            and antecedent.basket_id = consequent.basket_id
            and antecedent.category != consequent.category
    group by
        antecedent.basket_level,
        antecedent.category,
        consequent.category
),

all_pairs as (
    select
        antecedent.basket_level,
        antecedent.category as antecedent_category,
        consequent.category as consequent_category,
        basket_counts.basket_count,
        antecedent.category_basket_count as antecedent_basket_count,
        consequent.category_basket_count as consequent_basket_count,
        coalesce(pair_counts.pair_basket_count, 0) as pair_basket_count
    from category_counts as antecedent
    inner join category_counts as consequent
        on
            antecedent.basket_level = consequent.basket_level
            and antecedent.category != consequent.category
    inner join basket_counts
        on antecedent.basket_level = basket_counts.basket_level
    left join pair_counts
        on
            antecedent.basket_level = pair_counts.basket_level
            and antecedent.category = pair_counts.antecedent_category
            and consequent.category = pair_counts.consequent_category
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
