{#
    One row per product, with a price band for reporting. Bands come from the
    price_band_bounds var (upper bounds of list price, store currency).
#}

{%- set bounds = var('price_band_bounds') %}

with

products as (
    select * from {{ ref('stg_retail__products') }}
),

final as (
    select
        product_id,
        product_name,
        category,
        subcategory,
        brand,
        list_price,
        case
            when list_price is null then 'unknown'
            when list_price < {{ bounds[0] }} then 'under {{ bounds[0] }}'
            {%- for lower in bounds[:-1] %}
            when list_price < {{ bounds[loop.index] }}
                then '{{ lower }}-{{ bounds[loop.index] }}'
            {%- endfor %}
            else '{{ bounds[-1] }}+'
        end as price_band
    from products
)

select * from final
