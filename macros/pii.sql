{#
    Pseudonymisation. Marts never carry raw personal data; they carry these forms.
    The salt comes from the environment variable RETAIL_XSELL_PII_SALT. The default is
    for development only and is public: set a secret salt in production, and treat
    target/ (which holds compiled SQL) as confidential there.
#}

{% macro pii_salt() -%}
    {{ return(env_var('RETAIL_XSELL_PII_SALT', 'retail-xsell-development-salt')) }}
{%- endmacro %}

{% macro salted_sha256(expression) -%}
    {#- Hex SHA-256 of salt || value; null stays null so missing data is not hashed. -#}
    case
        when {{ expression }} is not null
            then sha256('{{ pii_salt() | replace("'", "''") }}' || {{ expression }})
    end
{%- endmacro %}

{% macro mask_last_four(digits_expression) -%}
    {#- Keeps only the last four digits, e.g. '***0958'. -#}
    case
        when {{ digits_expression }} is not null
            then '***' || right({{ digits_expression }}, 4)
    end
{%- endmacro %}

{% macro age_in_years(birth_date, as_of_date) -%}
    {#- Completed years of age on as_of_date (a birthday counts on the day itself). -#}
    (
        extract(year from {{ as_of_date }}) - extract(year from {{ birth_date }})
        - case
            when extract(month from {{ as_of_date }}) * 100 + extract(day from {{ as_of_date }})
                < extract(month from {{ birth_date }}) * 100 + extract(day from {{ birth_date }})
                then 1
            else 0
        end
    )
{%- endmacro %}

{% macro age_group(age_expression) -%}
    {#- Bands from the `age_group_bounds` var, e.g. [18, 25, 35] gives
        'under 18', '18-24', '25-34', '35+'; unknown age gives 'unknown'. -#}
    {%- set bounds = var('age_group_bounds') -%}
    case
        when {{ age_expression }} is null then 'unknown'
        when {{ age_expression }} < {{ bounds[0] }} then 'under {{ bounds[0] }}'
        {%- for lower in bounds[:-1] %}
        when {{ age_expression }} < {{ bounds[loop.index] }}
            then '{{ lower }}-{{ bounds[loop.index] - 1 }}'
        {%- endfor %}
        else '{{ bounds[-1] }}+'
    end
{%- endmacro %}
