{#
    Every raw customer_info row, parsed, with its disposition:
      duplicate  an exact copy of an earlier row, or an older version of a customer
                 (a newer updated_at wins; on a tie, the larger raw values);
      rejected   unusable (no valid customer key), with a reason code;
      clean      the one current version of each customer.
    Field-level problems (a bad email, phone, birth date or country) do not reject the
    customer: the value becomes null and a has_valid_* flag says why.
#}

with

source as (
    select {{ raw_text_columns('customer_info') }}
    from {{ raw_source('customer_info') }}
),

country_aliases as (
    select * from {{ ref('country_aliases') }}
),

distinct_rows as (
    {{ exact_copies_collapsed('customer_info', 'source') }}
),

copies_numbered as (
    select
        *,
        {{ raw_row_json('customer_info') }} as raw_values
    from distinct_rows
),

parsed as (
    select
        copies.raw_values,
        copies.copy_count,
        copies.exact_copy_number,
        copies.customer_id as raw_customer_id,
        {{ to_integer('copies.customer_id') }} as customer_id,
        {{ clean_text('copies.first_name') }} as first_name,
        {{ clean_text('copies.last_name') }} as last_name,
        {{ clean_text('copies.email') }} as email_as_entered,
        lower({{ clean_text('copies.email') }}) as email_normalised,
        {{ clean_text('copies.phone') }} as phone_as_entered,
        nullif(regexp_replace(coalesce(copies.phone, ''), '[^0-9]', '', 'g'), '')
            as phone_digits,
        {{ clean_text('copies.birth_date') }} as birth_date_as_entered,
        {{ to_date('copies.birth_date') }} as birth_date_parsed,
        {{ clean_key('copies.gender') }} as gender_key,
        {{ clean_text('copies.city') }} as city,
        {{ clean_text('copies.country') }} as country_as_entered,
        country_aliases.country_code,
        country_aliases.country_name,
        country_aliases.region,
        {{ to_timestamp('copies.signup_at') }} as signed_up_at,
        {{ to_boolean('copies.marketing_consent') }} as has_marketing_consent,
        {{ to_timestamp('copies.updated_at') }} as updated_at
    from copies_numbered as copies
    left join country_aliases
        on {{ clean_key('copies.country') }} = country_aliases.country_alias
),

validated as (
    select
        *,
        case
            when {{ clean_text('raw_customer_id') }} is null
                then 'missing_customer_id'
            when customer_id is null or customer_id <= 0
                then 'invalid_customer_id'
        end as rejection_reason,
        coalesce(
            regexp_full_match(
                email_normalised,
                '[a-z0-9._%+''-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}'
            ),
            false
        ) as has_valid_email,
        coalesce(
            regexp_full_match(phone_as_entered, '\+?[0-9 ().-]+')
            and length(phone_digits) between 7 and 15,
            false
        ) as has_valid_phone,
        coalesce(
            birth_date_parsed >= date '1900-01-01'
            and birth_date_parsed <= coalesce(cast(updated_at as date), birth_date_parsed),
            false
        ) as has_valid_birth_date,
        country_code is not null as has_known_country
    from parsed
),

versions_ranked as (
    {#- newest update wins; on a tie, the larger raw values #}
    {{ versions_ranked(
        'validated',
        ['customer_id'],
        'updated_at desc nulls last, raw_values desc'
    ) }}
),

copies_restored as (
    {{ exact_copies_restored('versions_ranked') }}
),

final as (
    select
        {#- an exact copy is not a version #}
        * replace (
            case when exact_copy_number = 1 then version_rank end as version_rank
        ),
        {{ row_disposition_columns('rejection_reason', 'version_rank') }}
    from copies_restored
)

{# sqlfluff cannot follow the columns through versions_ranked's anti and semi joins
    (AM04); the model's columns are its YAML's, checked by test_docs_site. #}
select * from final  -- noqa: AM04
