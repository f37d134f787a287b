{#
    The quarantine: every raw row that staging could not use, from all three raw
    tables, with a machine-readable reason and the raw values exactly as received.
#}

with

customer_info as (
    select * from {{ ref('base_retail__customer_info') }}
    where row_disposition = 'rejected'
),

product as (
    select * from {{ ref('base_retail__product') }}
    where row_disposition = 'rejected'
),

purchase as (
    select * from {{ ref('base_retail__purchase') }}
    where row_disposition = 'rejected'
),

unioned as (
    select
        'customer_info' as source_table,
        disposition_reason as rejection_reason,
        raw_values
    from customer_info

    union all

    select
        'product' as source_table,
        disposition_reason as rejection_reason,
        raw_values
    from product

    union all

    select
        'purchase' as source_table,
        disposition_reason as rejection_reason,
        raw_values
    from purchase
),

final as (
    select
        md5(source_table || '|' || raw_values) as rejected_row_id,
        source_table,
        rejection_reason,
        raw_values
    from unioned
)

select * from final
