{#
    The point in time of every customer-level figure (ages and age groups, RFM, CLV,
    cross-sell), computed once and joined by every model that needs it, so that it shows
    in lineage. Set it with --vars '{as_of_date: 2025-12-31}'; by default it is the date
    of the last clean sale line, so that a fixed data set always gives the same answers.
    One row, whatever the input (an aggregate without group by): with no sale line at all
    and no var, as_of_date is null.
#}

{%- set configured = var('as_of_date', '') | string | trim -%}
{%- set is_configured = configured != '' and configured != 'None' -%}
{%- if is_configured and modules.re.match('^\d{4}-\d{2}-\d{2}$', configured) is none -%}
    {{ exceptions.raise_compiler_error(
        "as_of_date must be a date written YYYY-MM-DD; got '" ~ configured ~ "'"
    ) }}
{%- endif %}

with

purchase_lines as (
    select * from {{ ref('stg_retail__purchase_lines') }}
),

last_sale as (
    select cast(max(ordered_at) as date) as last_sale_date
    from purchase_lines
    where line_type = 'sale'
),

final as (
    select
        {%- if is_configured %}
        cast('{{ configured }}' as date) as as_of_date,
        'var' as as_of_date_source,
        {%- else %}
        last_sale_date as as_of_date,
        'last_sale_date' as as_of_date_source,
        {%- endif %}
        last_sale_date
    from last_sale
)

select * from final
