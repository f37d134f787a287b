with

source as (
    select * from {{ ref('base_retail__purchase') }}
    where row_disposition = 'clean'
),

renamed as (
    select
        order_id,
        line_number,
        customer_id,
        product_id,
        line_type,
        line_status,
        quantity,
        unit_price,
        discount,
        channel,
        ordered_at,
        loaded_at
    from source
)

select * from renamed
