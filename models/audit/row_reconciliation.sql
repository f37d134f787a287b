{#
    Proof that nothing is lost: for each raw table, the rows read from the input equal
    the clean rows plus the rejected rows plus the removed duplicates. Each count comes
    from a different model, so a row dropped anywhere on the way breaks the equation
    (tested in row_reconciliation.yml).

    Audit material, not staging: it reads the raw input, the base models, the clean
    staging models and the quarantine, and nothing in the product reads it but the data
    stewards and the quality gate. So it sits in models/audit/ and schema main_audit,
    beside the build record and the stored test failures.

    A table (three rows): as a view, each of its tests would re-count the raw input.
#}

{{ config(materialized='table') }}

{%- set layers = {
    'customer_info': ('base_retail__customer_info', 'stg_retail__customers'),
    'product': ('base_retail__product', 'stg_retail__products'),
    'purchase': ('base_retail__purchase', 'stg_retail__purchase_lines'),
} %}

with

raw_counts as (
    {%- for table_name in layers %}
    select
        '{{ table_name }}' as source_table,
        count(*) as raw_row_count
    from {{ raw_source(table_name) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

clean_counts as (
    {%- for table_name, models in layers.items() %}
    select
        '{{ table_name }}' as source_table,
        count(*) as clean_row_count
    from {{ ref(models[1]) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

rejected_counts as (
    select
        source_table,
        count(*) as rejected_row_count
    from {{ ref('stg_retail__rejected_rows') }}
    group by source_table
),

removed_duplicates as (
    {%- for table_name, models in layers.items() %}
    select
        '{{ table_name }}' as source_table,
        disposition_reason
    from {{ ref(models[0]) }}
    where row_disposition = 'duplicate'
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

duplicate_counts as (
    select
        source_table,
        cast(
            sum(case when disposition_reason = 'exact_duplicate' then 1 else 0 end)
            as bigint
        ) as exact_duplicate_row_count,
        cast(
            sum(case when disposition_reason = 'superseded_version' then 1 else 0 end)
            as bigint
        ) as superseded_row_count
    from removed_duplicates
    group by source_table
),

counts as (
    select
        raw_counts.source_table,
        raw_counts.raw_row_count,
        clean_counts.clean_row_count,
        coalesce(rejected_counts.rejected_row_count, 0) as rejected_row_count,
        coalesce(duplicate_counts.exact_duplicate_row_count, 0)
            as exact_duplicate_row_count,
        coalesce(duplicate_counts.superseded_row_count, 0) as superseded_row_count
    from raw_counts
    inner join clean_counts
        on raw_counts.source_table = clean_counts.source_table
    left join rejected_counts
        on raw_counts.source_table = rejected_counts.source_table
    left join duplicate_counts
        on raw_counts.source_table = duplicate_counts.source_table
),

final as (
    select
        *,
        exact_duplicate_row_count + superseded_row_count as duplicate_row_count,
        raw_row_count = clean_row_count + rejected_row_count
        + exact_duplicate_row_count + superseded_row_count as is_reconciled
    from counts
)

select * from final
