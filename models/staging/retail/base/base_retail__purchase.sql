{#
    Every raw purchase row, parsed, with its disposition.
      duplicate  an exact copy of an earlier row, or an older load of the same
                 (order_id, line_number) (the latest loaded_at wins);
      rejected   unusable, with the first reason that applies, in this order:
                 keys, quantity, price, discount, status, timestamps, then references
                 to customers and products that staging does not know;
      clean      one row per order line event.
#}

{#- A table, or in a daily load (macros/daily_loads.sql) the rows of the day's files
    appended to the previous build's. -#}
{{ config(**daily_load_config()) }}

{#- "Now" for the load-time check: when this dbt invocation started (UTC), so every
    model and test of one build agrees on it. -#}
{%- set build_started_at = run_started_at.strftime('%Y-%m-%d %H:%M:%S') %}
{#- Decimals a unit price may carry (stored as decimal(20, 4): fuel and weighed goods
    are sold in fractional units at sub-cent prices); more significant decimals are
    quarantined, never rounded. A price of 0 is a real sale (a free item, a
    promotion); only a negative or unparseable price is quarantined. -#}
{%- set unit_price_scale = 4 %}

with

source as (
    select {{ raw_text_columns('purchase') }}
    {%- if is_daily_load() %}
    from {{ daily_purchase_source() }}
    {%- else %}
    from {{ raw_source('purchase') }}
    {%- endif %}
),

known_customers as (
    select customer_id
    from {{ ref('base_retail__customer_info') }}
    where row_disposition = 'clean'
),

known_products as (
    select
        product_id,
        list_price
    from {{ ref('base_retail__product') }}
    where row_disposition = 'clean'
),

distinct_rows as (
    {{ exact_copies_collapsed('purchase', 'source') }}
),

parsed as (
    select
        *,
        {{ to_integer('order_id') }} as parsed_order_id,
        {{ to_integer('line_number') }} as parsed_line_number,
        {{ to_integer('customer_id') }} as parsed_customer_id,
        {{ to_integer('product_id') }} as parsed_product_id,
        {{ to_integer('quantity') }} as parsed_quantity,
        {{ to_money('unit_price', unit_price_scale) }} as parsed_unit_price,
        case
            {#- a missing discount means no discount; an unparseable one stays null #}
            when {{ clean_text('discount') }} is null then cast(0 as decimal(9, 4))
            else {{ to_fraction('discount') }}
        end as parsed_discount,
        {{ to_timestamp('order_at') }} as parsed_ordered_at,
        {{ to_timestamp('loaded_at') }} as parsed_loaded_at,
        case {{ clean_key('status') }}
            when 'completed' then 'completed'
            when 'complete' then 'completed'
            when 'returned' then 'returned'
            when 'return' then 'returned'
            when 'cancelled' then 'cancelled'
            when 'canceled' then 'cancelled'
        end as parsed_status,
        case {{ clean_key('channel') }}
            when 'web' then 'web'
            when 'website' then 'web'
            when 'online' then 'web'
            when 'mobile_app' then 'mobile_app'
            when 'app' then 'mobile_app'
            when 'mobile' then 'mobile_app'
            when 'marketplace' then 'marketplace'
            when 'call_centre' then 'call_centre'
            when 'call_center' then 'call_centre'
            when 'phone' then 'call_centre'
            else 'unknown'
        end as parsed_channel
    from distinct_rows
),

row_checked as (
    select
        *,
        {#- a key that parsed was not missing: look at its text only when it did not #}
        case
            when parsed_order_id is null and {{ clean_text('order_id') }} is null
                then 'missing_order_id'
            when coalesce(parsed_order_id <= 0, true) then 'invalid_order_id'
            when parsed_line_number is null and {{ clean_text('line_number') }} is null
                then 'missing_line_number'
            when coalesce(parsed_line_number <= 0, true) then 'invalid_line_number'
            when parsed_customer_id is null and {{ clean_text('customer_id') }} is null
                then 'missing_customer_id'
            when coalesce(parsed_customer_id <= 0, true) then 'invalid_customer_id'
            when parsed_product_id is null and {{ clean_text('product_id') }} is null
                then 'missing_product_id'
            when coalesce(parsed_product_id <= 0, true) then 'invalid_product_id'
            when coalesce(parsed_quantity = 0, true) then 'invalid_quantity'
            when abs(parsed_quantity) > {{ var('max_quantity', 10000) }}
                then 'absurd_quantity'
            {#- a parsed price has at most unit_price_scale decimals already: test the
                text (two regular expressions) only when it did not parse #}
            when
                parsed_unit_price is null
                and {{ is_decimal_text('unit_price') }}
                and not {{ is_decimal_text('unit_price', unit_price_scale) }}
                then 'unit_price_too_precise'
            when parsed_unit_price is null then 'invalid_unit_price'
            when parsed_unit_price < 0 then 'negative_unit_price'
            when coalesce(parsed_discount < 0 or parsed_discount >= 1, true)
                then 'invalid_discount'
            when parsed_status is null then 'invalid_status'
            when parsed_ordered_at is null then 'invalid_order_at'
            when parsed_loaded_at is null then 'invalid_loaded_at'
            when
                parsed_loaded_at > timestamp '{{ build_started_at }}'
                + to_minutes({{ (var('load_time_tolerance_hours', 1) | float * 60) | int }})
                then 'loaded_at_in_future'
            when parsed_ordered_at > parsed_loaded_at then 'order_at_after_loaded_at'
        end as row_rejection_reason
    from parsed
),

reference_checked as (
    select
        row_checked.*,
        case
            when row_checked.row_rejection_reason is not null
                then row_checked.row_rejection_reason
            when known_customers.customer_id is null then 'unknown_customer'
            when known_products.product_id is null then 'unknown_product'
            when row_checked.parsed_unit_price > coalesce(
                known_products.list_price * {{ var('absurd_price_ratio') }},
                {{ var('max_unit_price') }}
            ) then 'absurd_unit_price'
        end as rejection_reason
    from row_checked
    left join known_customers
        on row_checked.parsed_customer_id = known_customers.customer_id
    left join known_products
        on row_checked.parsed_product_id = known_products.product_id
),

versions_ranked as (
    {#- latest load wins; on a tie, the larger raw values #}
    {{ versions_ranked(
        'reference_checked',
        ['parsed_order_id', 'parsed_line_number'],
        'parsed_loaded_at desc, '
        ~ raw_contract_columns('purchase') | join(' desc, ') ~ ' desc'
    ) }}
),

copies_restored as (
    {{ exact_copies_restored('versions_ranked') }}
),

final as (
    select
        parsed_order_id as order_id,
        parsed_line_number as line_number,
        parsed_customer_id as customer_id,
        parsed_product_id as product_id,
        abs(parsed_quantity) as quantity,
        parsed_unit_price as unit_price,
        parsed_discount as discount,
        parsed_ordered_at as ordered_at,
        parsed_loaded_at as loaded_at,
        parsed_status as line_status,
        parsed_channel as channel,
        case
            when parsed_status = 'cancelled' then 'cancellation'
            when parsed_status = 'returned' or parsed_quantity < 0 then 'return'
            else 'sale'
        end as line_type,
        {{ row_disposition_columns('rejection_reason', 'version_rank') }},
        case
            when exact_copy_number = 1 and rejection_reason is not null
                then {{ raw_row_json('purchase') }}
        end as raw_values
    from copies_restored
)

select * from final
