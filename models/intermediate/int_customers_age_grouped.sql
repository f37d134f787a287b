{#
    Each current customer's age band on as_of_date: business logic (it changes with the
    as-of date), so it is computed here rather than in staging. It needs the birth date,
    which only the data stewards' private stg_retail__customer_pii holds, so this model
    belongs to the data_stewardship group too (a private model can only be read from
    its own group); it keeps nothing of the birth date but the band, which the
    customers mart carries.
#}

with

customer_pii as (
    select * from {{ ref('stg_retail__customer_pii') }}
),

as_of as (
    select * from {{ ref('int_as_of_date') }}
),

final as (
    select
        customer_pii.customer_id,
        {{ age_group(age_in_years('customer_pii.birth_date', 'as_of.as_of_date')) }}
            as age_group
    from customer_pii
    cross join as_of
)

select * from final
