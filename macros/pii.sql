{#
    Pseudonymisation. Marts never carry raw personal data; they carry these forms.

    Emails are pseudonymised with a keyed HMAC-SHA-256. The key never passes through
    Jinja or SQL: the dbt-duckdb plugin retail_xsell.pseudonyms (profiles.yml, targets
    dev and ci) reads it from the environment variable RETAIL_XSELL_PII_KEY and
    registers the DuckDB function pii_hmac(varchar), so compiled SQL, manifests, logs
    and the docs site show only the function's name. Unset, the key is the public
    development key: fine for the committed sample, never for real data (the run warns,
    and the gate blocks publication). See docs/security.md.
#}

{% macro hmac_sha256(expression) -%}
    {#- Hex HMAC-SHA-256 (64 characters) of the value under the pseudonymisation key;
        null stays null so missing data is not hashed. Call it only in models
        materialised as tables: pii_hmac exists on build connections only. -#}
    pii_hmac(cast({{ expression }} as varchar))
{%- endmacro %}

{% macro warn_if_development_pii_key() -%}
    {#- on-run-start: building real (non-seed) input with the public development key
        makes every pseudonym reversible, so say so loudly before any model runs. The
        gate's pseudonym_key_not_development objective blocks the publication. -#}
    {%- if not execute or raw_input_format() == 'seed' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set registered = run_query(
        "select count(*) from duckdb_functions() where function_name = 'pii_hmac'"
    ) -%}
    {%- if registered.rows[0][0] == 0 -%}
        {{ exceptions.raise_compiler_error(
            "pii_hmac() is not registered: this target's profile needs "
            ~ "`plugins: [{module: retail_xsell.pseudonyms}]` (profiles.yml)."
        ) }}
    {%- endif -%}
    {%- set key = run_query("select pii_key_is_development(), pii_key_fingerprint()") -%}
    {%- if key.rows[0][0] -%}
        {{ exceptions.warn(
            "PSEUDONYMS ARE REVERSIBLE: raw_input_format is '" ~ raw_input_format()
            ~ "' but RETAIL_XSELL_PII_KEY is unset, so emails are pseudonymised with the "
            ~ "public development key (fingerprint " ~ key.rows[0][1] ~ "). Set "
            ~ "RETAIL_XSELL_PII_KEY to a secret of at least 32 bytes (openssl rand -hex 32) "
            ~ "and build again; the gate will not publish this build."
        ) }}
    {%- else -%}
        {{ log("Pseudonym key fingerprint " ~ key.rows[0][1], info=False) }}
    {%- endif -%}
    {{ return('') }}
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
