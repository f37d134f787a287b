{#
    Raw personal data of current customers, for the data-stewardship group only
    (access: private). Nothing outside that group may select from it; its one reader
    downstream, int_customers_age_grouped (data stewardship too), keeps only the age
    band of the birth date.
#}

with

source as (
    select * from {{ ref('base_retail__customer_info') }}
    where row_disposition = 'clean'
),

renamed as (
    select
        customer_id,
        first_name,
        last_name,
        email_as_entered,
        case when has_valid_email then email_normalised end as email_normalised,
        phone_as_entered,
        case when has_valid_phone then phone_digits end as phone_digits,
        birth_date_as_entered,
        case when has_valid_birth_date then birth_date_parsed end as birth_date,
        city
    from source
)

select * from renamed
