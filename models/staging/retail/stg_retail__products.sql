with

source as (
    select * from {{ ref('base_retail__product') }}
    where row_disposition = 'clean'
),

renamed as (
    select
        product_id,
        product_name,
        category,
        subcategory,
        brand,
        list_price,
        unit_cost,
        has_valid_list_price,
        has_valid_unit_cost,
        has_known_category
    from source
)

select * from renamed
