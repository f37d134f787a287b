{#
    Every raw product row, parsed, with its disposition:
      duplicate  an exact copy of an earlier row;
      rejected   no valid product key, or two different versions of the same key
                 (the catalogue has no version timestamp, so neither can be trusted);
      clean      one row per product.
    A bad list price or unit cost does not reject the product (its purchases carry
    their own price); the value becomes null and has_valid_list_price says so. A
    category outside the var known_categories is kept as sent and flagged
    (has_known_category false).
#}

with

source as (
    select {{ raw_text_columns('product') }}
    from {{ raw_source('product') }}
),

distinct_rows as (
    {{ exact_copies_collapsed('product', 'source') }}
),

copies_numbered as (
    select
        *,
        {{ raw_row_json('product') }} as raw_values
    from distinct_rows
),

parsed as (
    select
        raw_values,
        copy_count,
        exact_copy_number,
        product_id as raw_product_id,
        {{ to_integer('product_id') }} as product_id,
        {{ clean_text('product_name') }} as product_name,
        coalesce({{ clean_key('category') }}, 'uncategorised') as category,
        coalesce({{ clean_key('subcategory') }}, 'uncategorised') as subcategory,
        {{ clean_text('brand') }} as brand,
        {{ to_money('list_price') }} as parsed_list_price,
        {{ to_money('unit_cost') }} as parsed_unit_cost
    from copies_numbered
),

validated as (
    select
        *,
        case
            when {{ clean_text('raw_product_id') }} is null
                then 'missing_product_id'
            when product_id is null or product_id <= 0
                then 'invalid_product_id'
        end as rejection_reason,
        coalesce(parsed_list_price > 0, false) as has_valid_list_price,
        coalesce(parsed_unit_cost >= 0, false) as has_valid_unit_cost,
        {#- stored as sent (standardised case); a category the product does not know is
            flagged, not dropped or remapped #}
        category in (
            {%- for known in var('known_categories', [
                'beauty', 'books', 'electronics', 'fashion', 'grocery',
                'home & kitchen', 'sports & outdoors', 'toys & games',
            ]) %}
            '{{ known | lower | replace("'", "''") }}'{% if not loop.last %},{% endif %}
            {%- endfor %}
        ) as has_known_category
    from parsed
),

versions_counted as (
    select
        *,
        count(*) over (
            partition by
                product_id,
                exact_copy_number = 1 and rejection_reason is null
        ) as usable_rows_of_key
    from validated
),

versions_checked as (
    select
        *,
        {#- no version timestamp: conflicting versions of a key are all rejected #}
        case
            when rejection_reason is not null then rejection_reason
            when exact_copy_number = 1 and usable_rows_of_key > 1
                then 'conflicting_product_versions'
        end as key_rejection_reason
    from versions_counted
),

copies_restored as (
    {{ exact_copies_restored('versions_checked') }}
),

final as (
    select
        raw_values,
        product_id,
        product_name,
        category,
        subcategory,
        brand,
        case when has_valid_list_price then parsed_list_price end as list_price,
        case when has_valid_unit_cost then parsed_unit_cost end as unit_cost,
        has_valid_list_price,
        has_valid_unit_cost,
        has_known_category,
        {{ row_disposition_columns('key_rejection_reason') }}
    from copies_restored
)

select * from final
