{#
    Parsing rules shared by every staging model: a raw text value is trimmed, an empty
    string means missing, and a value that does not parse becomes null (the caller
    decides whether that rejects the row or only flags the field). dbt's cross-database
    `safe_cast` keeps this portable (try_cast on DuckDB and Spark).
#}

{% macro clean_text(column_name) -%}
    {#- trim() alone keeps tabs and newlines, which real exports carry -#}
    nullif(regexp_replace({{ column_name }}, '^\s+|\s+$', '', 'g'), '')
{%- endmacro %}

{% macro clean_key(column_name) -%}
    {#- Lower-case, trimmed, inner whitespace collapsed: the form used to match codes. -#}
    lower(regexp_replace({{ clean_text(column_name) }}, '\s+', ' ', 'g'))
{%- endmacro %}

{% macro to_integer(column_name) -%}
    {{ dbt.safe_cast(clean_text(column_name), api.Column.translate_type('bigint')) }}
{%- endmacro %}

{% macro to_money(column_name) -%}
    {{ dbt.safe_cast(clean_text(column_name), 'decimal(18, 2)') }}
{%- endmacro %}

{% macro to_fraction(column_name) -%}
    {{ dbt.safe_cast(clean_text(column_name), 'decimal(9, 4)') }}
{%- endmacro %}

{% macro to_timestamp(column_name) -%}
    {{ dbt.safe_cast(clean_text(column_name), api.Column.translate_type('timestamp')) }}
{%- endmacro %}

{% macro to_date(column_name) -%}
    {{ dbt.safe_cast(clean_text(column_name), api.Column.translate_type('date')) }}
{%- endmacro %}

{% macro to_boolean(column_name) -%}
    case {{ clean_key(column_name) }}
        when 'true' then true
        when 't' then true
        when 'yes' then true
        when 'y' then true
        when '1' then true
        when 'false' then false
        when 'f' then false
        when 'no' then false
        when 'n' then false
        when '0' then false
    end
{%- endmacro %}

{% macro raw_row_json(table_name) -%}
    {#- The raw values of a row as one JSON object, kept with every rejected row. -#}
    {{ return(adapter.dispatch('raw_row_json', 'retail_xsell')(table_name)) }}
{%- endmacro %}

{% macro default__raw_row_json(table_name) -%}
    to_json(struct_pack(
        {%- for column_name in raw_contract_columns(table_name) %}
        {{ column_name }} := {{ column_name }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    ))
{%- endmacro %}


{% macro duckdb__safe_cast(field, type) -%}
    {#- dbt-duckdb's safe_cast is a plain cast, which fails the whole query on one bad
        value. This override (the root project wins dbt's dispatch) makes it null. -#}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}

{% macro exact_copy_number(table_name) -%}
    {#- 1 for the first occurrence of a raw row, 2 and up for exact copies of it. -#}
    row_number() over (
        partition by {{ raw_contract_columns(table_name) | join(', ') }}
        order by {{ raw_contract_columns(table_name)[0] }}
    )
{%- endmacro %}

{% macro row_disposition_columns(rejection_reason, version_rank=none) -%}
    {#- The disposition of a raw row, in order of precedence: an exact copy is a
        duplicate, then a row with a rejection reason is rejected, then an older version
        of a key (version_rank > 1, when the table has versions) is a superseded
        duplicate; the rest is clean. -#}
    case
        when exact_copy_number > 1 then 'duplicate'
        when {{ rejection_reason }} is not null then 'rejected'
        {%- if version_rank is not none %}
        when {{ version_rank }} > 1 then 'duplicate'
        {%- endif %}
        else 'clean'
    end as row_disposition,
    case
        when exact_copy_number > 1 then 'exact_duplicate'
        when {{ rejection_reason }} is not null then {{ rejection_reason }}
        {%- if version_rank is not none %}
        when {{ version_rank }} > 1 then 'superseded_version'
        {%- endif %}
    end as disposition_reason
{%- endmacro %}

{% macro version_rank(key_columns, order_by) -%}
    {#- Among the usable rows (first exact copy, not rejected): 1 for the version of a key
        that wins under order_by, 2 and up for the older versions it supersedes; null for
        exact copies and rejected rows, which are not versions. -#}
    case
        when exact_copy_number = 1 and rejection_reason is null
            then row_number() over (
                partition by
                    {{ key_columns | join(', ') }},
                    exact_copy_number = 1 and rejection_reason is null
                order by {{ order_by }}
            )
    end
{%- endmacro %}
