{% macro as_of_date() -%}
    {#- The point in time for every customer-level figure. Set it with
        --vars '{as_of_date: 2025-12-31}'; by default it is the date of the last
        clean sale line, so that a fixed data set always gives the same answers. -#}
    {%- set configured = var('as_of_date', '') | string | trim -%}
    {%- if configured != '' and configured != 'None' -%}
        {%- if modules.re.match('^\d{4}-\d{2}-\d{2}$', configured) is none -%}
            {{ exceptions.raise_compiler_error(
                "as_of_date must be a date written YYYY-MM-DD; got '" ~ configured ~ "'"
            ) }}
        {%- endif -%}
        cast('{{ configured }}' as date)
    {%- else -%}
        (
            select cast(max(ordered_at) as date)
            from {{ ref('stg_retail__purchase_lines') }}
            where line_type = 'sale'
        )
    {%- endif -%}
{%- endmacro %}
