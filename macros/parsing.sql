{#
    Parsing rules shared by every staging model: a raw text value is trimmed, an empty
    string means missing, and a value that does not parse becomes null (the caller
    decides whether that rejects the row or only flags the field). dbt's cross-database
    `safe_cast` keeps this portable (try_cast on DuckDB and Spark).
#}

{% macro clean_text(column_name) -%}
    {#- trim() alone keeps tabs and newlines, which real exports carry. Most values have
        no whitespace at either end: test for it (one cheap match) before replacing. -#}
    nullif(
        case
            when regexp_matches({{ column_name }}, '^\s|\s$')
                then regexp_replace({{ column_name }}, '^\s+|\s+$', '', 'g')
            else {{ column_name }}
        end,
        ''
    )
{%- endmacro %}

{% macro clean_key(column_name) -%}
    {#- Lower-case, trimmed, inner whitespace collapsed: the form used to match codes. -#}
    case
        when regexp_matches({{ column_name }}, '\s')
            then lower(regexp_replace({{ clean_text(column_name) }}, '\s+', ' ', 'g'))
        else lower(nullif({{ column_name }}, ''))
    end
{%- endmacro %}

{#
    Strict parsing: a value is cast only when its text has the documented form
    (docs/input_contract.md). DuckDB's cast alone accepts far more (1.7 -> 2, 1_0 -> 10,
    0x2e9c -> 11932, 1e6, 'epoch', 'infinity', 26.499 -> 26.50, an offset dropped), and
    each of those would turn a wrong value into a plausible one.
#}

{% macro to_integer(column_name) -%}
    {#- An optional minus sign and decimal digits, nothing else; null on overflow. -#}
    case
        when regexp_full_match({{ clean_text(column_name) }}, '-?[0-9]+')
            then {{ dbt.safe_cast(clean_text(column_name), api.Column.translate_type('bigint')) }}
    end
{%- endmacro %}

{% macro is_decimal_text(column_name, scale=none) -%}
    {#- True when the text is a decimal with a point (-12, 12.5, 12.50); with a scale,
        only when no more than `scale` decimals are significant (12.500 is 2-decimal,
        12.499 is not), so a value never changes by being stored. -#}
    {%- if scale is none -%}
        {%- set pattern = '-?[0-9]+([.][0-9]+)?' -%}
    {%- elif scale | int == 0 -%}
        {%- set pattern = '-?[0-9]+([.]0+)?' -%}
    {%- else -%}
        {%- set pattern = '-?[0-9]+([.][0-9]{1,' ~ (scale | int) ~ '}0*)?' -%}
    {%- endif -%}
    coalesce(regexp_full_match({{ clean_text(column_name) }}, '{{ pattern }}'), false)
{%- endmacro %}

{% macro to_decimal(column_name, precision, scale) -%}
    {#- decimal(precision, scale) when the text is a decimal with at most `scale`
        significant decimals; null otherwise (never rounded) and on overflow. -#}
    case
        when {{ is_decimal_text(column_name, scale) }}
            then {{ dbt.safe_cast(
                clean_text(column_name),
                'decimal(' ~ precision ~ ', ' ~ scale ~ ')'
            ) }}
    end
{%- endmacro %}

{% macro to_money(column_name, scale=2) -%}
    {#- 16 digits before the point whatever the scale: decimal(18, 2) for list prices,
        decimal(20, 4) for unit prices (a lossless widening of decimal(18, 2)). -#}
    {{ to_decimal(column_name, 16 + (scale | int), scale) }}
{%- endmacro %}

{% macro to_fraction(column_name) -%}
    {{ to_decimal(column_name, 9, 4) }}
{%- endmacro %}

{% macro to_timestamp(column_name) -%}
    {#- `YYYY-MM-DD HH:MM:SS` (or a `T` between date and time), optional fraction of a
        second (up to microseconds), optional UTC offset (`Z`, `+HH`, `+HH:MM`,
        `+HHMM`) that is converted to UTC. Plain arithmetic on the offset, so the result
        never depends on the session's time zone. -#}
    {%- set text = clean_text(column_name) -%}
    {%- set pattern = '[0-9]{4}-[0-9]{2}-[0-9]{2}[ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]'
        ~ '([.][0-9]{1,6})?(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?' -%}
    {%- set offset = '([0-9]{2})(:?([0-9]{2}))?' -%}
    case
        {#- the plain form (19 characters) has no fraction and no offset to work out #}
        when regexp_full_match({{ text }}, '{{ pattern }}') and length({{ text }}) = 19
            then {{ dbt.safe_cast(
                "replace(" ~ text ~ ", 'T', ' ')", api.Column.translate_type('timestamp')
            ) }}
        when regexp_full_match({{ text }}, '{{ pattern }}')
            then {{ dbt.safe_cast(
                "replace(left(" ~ text ~ ", 19), 'T', ' ')"
                ~ " || regexp_extract(" ~ text ~ ", '^.{19}([.][0-9]+)?', 1)",
                api.Column.translate_type('timestamp')
            ) }}
            - to_minutes(
                case
                    when regexp_matches({{ text }}, '[+]{{ offset }}$') then 1
                    when regexp_matches({{ text }}, '-{{ offset }}$') then -1
                    else 0
                end * (
                    coalesce(try_cast(regexp_extract(
                        {{ text }}, '[+-]{{ offset }}$', 1
                    ) as integer), 0) * 60
                    + coalesce(try_cast(regexp_extract(
                        {{ text }}, '[+-]{{ offset }}$', 3
                    ) as integer), 0)
                )
            )
    end
{%- endmacro %}

{% macro to_date(column_name) -%}
    {#- `YYYY-MM-DD` only; null for any other form or an impossible date. -#}
    case
        when regexp_full_match({{ clean_text(column_name) }}, '[0-9]{4}-[0-9]{2}-[0-9]{2}')
            then {{ dbt.safe_cast(clean_text(column_name), api.Column.translate_type('date')) }}
    end
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

{% macro exact_copies_collapsed(table_name, relation) -%}
    {#- A select of one row per distinct raw row of `relation` (every contract column
        equal, nulls equal): the row, how many times it came (copy_count), and
        exact_copy_number 1. Parse and check the distinct rows, then restore the copies
        with exact_copies_restored: one aggregate instead of a window over every column. -#}
    select
        {%- for column_name in raw_contract_columns(table_name) %}
        {{ column_name }},
        {%- endfor %}
        count(*) as copy_count,
        1 as exact_copy_number
    from {{ relation }}
    group by {{ raw_contract_columns(table_name) | join(', ') }}
{%- endmacro %}

{% macro exact_copies_restored(relation) -%}
    {#- A select of every row of `relation` (from exact_copies_collapsed) copy_count
        times: exact_copy_number 1 for the first occurrence, 2 and up for its copies
        (every other column as the first occurrence's: a column that must differ for
        a copy, such as a version rank, is the caller's to null). -#}
    select
        * exclude (copy_count)
        replace (unnest(range(1, copy_count + 1)) as exact_copy_number)
    from {{ relation }}
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

{% macro versions_ranked(relation, key_columns, order_by) -%}
    {#- A select of every row of `relation` with version_rank: among the usable rows
        (first exact copy, not rejected), 1 for the version of a key that wins under
        order_by, 2 and up for the older versions it supersedes; null for exact copies
        and rejected rows, which are not versions.
        Nearly every key has one usable version, which is rank 1 without sorting
        anything: only the rows of keys with several usable versions go through the
        window. A window over every row, sorted on all of order_by, was a third of
        base_retail__purchase at 10M lines. -#}
    {%- set usable = 'exact_copy_number = 1 and rejection_reason is null' -%}
    {%- set keys = key_columns | join(', ') -%}
    with versioned_keys as materialized (
        select {{ keys }}
        from {{ relation }}
        where {{ usable }}
        group by {{ keys }}
        having count(*) > 1
    )

    select
        *,
        case when {{ usable }} then 1 end as version_rank
    from {{ relation }}
    anti join versioned_keys using ({{ keys }})

    union all

    select
        *,
        case
            when {{ usable }}
                then row_number() over (
                    partition by {{ keys }}, {{ usable }}
                    order by {{ order_by }}
                )
        end as version_rank
    from {{ relation }}
    semi join versioned_keys using ({{ keys }})
{%- endmacro %}
