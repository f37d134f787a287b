{#
    Input ports. The three raw tables reach staging through the dbt source `retail_raw`,
    whichever input the user chose with the `raw_input_format` var:

      seed            the committed sample, loaded by `dbt seed` into the `<schema>_raw`
                      schema with every column as text (default);
      parquet / csv   external files under `raw_input_path`, one folder per raw table.

    The source's `external_location` (see _retail__sources.yml) switches dbt-duckdb
    between the two; these macros add what a plain source cannot do.
#}

{% macro raw_input_format() %}
    {%- set fmt = var('raw_input_format', 'seed') | lower -%}
    {%- if fmt not in ['seed', 'parquet', 'csv'] -%}
        {{ exceptions.raise_compiler_error(
            "raw_input_format must be one of seed, parquet, csv; got '" ~ fmt ~ "'"
        ) }}
    {%- endif -%}
    {{ return(fmt) }}
{% endmacro %}


{% macro raw_source(table_name) %}
    {#- Returns the raw relation. In seed mode it also declares the dependency on the
        seed, so that `dbt build` loads the seed before staging reads it. -#}
    {%- if raw_input_format() == 'seed' -%}
        {%- do ref(table_name) -%}
    {%- endif -%}
    {{ return(source('retail_raw', table_name)) }}
{% endmacro %}


{% macro raw_contract_columns(table_name) %}
    {#- The input contract's column names for one raw table (var raw_contract). -#}
    {%- set contract = var('raw_contract') -%}
    {%- if table_name not in contract -%}
        {{ exceptions.raise_compiler_error(
            "No input contract declared for raw table '" ~ table_name ~ "' in var raw_contract"
        ) }}
    {%- endif -%}
    {{ return(contract[table_name]) }}
{% endmacro %}


{% macro raw_text_columns(table_name) %}
    {#- Select list that reads every contract column as text, whatever type the input
        file stored, so staging parses every value the same way. -#}
    {%- for column_name in raw_contract_columns(table_name) %}
        cast({{ adapter.quote(column_name) }} as varchar) as {{ column_name }}
        {%- if not loop.last %},{% endif -%}
    {%- endfor -%}
{% endmacro %}


{% macro raw_file_glob(table_name) %}
    {%- set fmt = raw_input_format() -%}
    {%- set base = var('raw_input_path', '') | string -%}
    {{ return(base.rstrip('/') ~ '/' ~ table_name ~ '/*.' ~ fmt) }}
{% endmacro %}


{% macro check_raw_input_contract() %}
    {#- Runs at the start of every dbt invocation (on-run-start). For external inputs
        it checks each raw table's files against the input contract and stops the run
        with a message naming the file and the column, before any model reads them. -#}
    {%- if not execute or raw_input_format() == 'seed' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set fmt = raw_input_format() -%}
    {%- if (var('raw_input_path', '') | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error(
            "raw_input_format is '" ~ fmt ~ "' but raw_input_path is empty. "
            ~ "Pass --vars '{raw_input_format: " ~ fmt ~ ", raw_input_path: /path/to/raw}'."
        ) }}
    {%- endif -%}
    {%- for table_name in var('raw_contract') -%}
        {%- set pattern = raw_file_glob(table_name) -%}
        {%- set files = run_query(
            "select filename, size from read_blob(" ~ sql_string(pattern) ~ ") order by filename"
        ) -%}
        {%- if files.rows | length == 0 -%}
            {{ exceptions.raise_compiler_error(
                "Input contract: no " ~ fmt ~ " files for raw table '" ~ table_name
                ~ "' at '" ~ pattern ~ "'. Put one folder per raw table under "
                ~ "raw_input_path: customer_info/, product/, purchase/."
            ) }}
        {%- endif -%}
        {%- set expected = raw_contract_columns(table_name) -%}
        {%- for file in files.rows -%}
            {%- if file[1] == 0 -%}
                {{ exceptions.raise_compiler_error(
                    "Input contract: file '" ~ file[0] ~ "' (raw table '" ~ table_name
                    ~ "') is empty (0 bytes)."
                ) }}
            {%- endif -%}
            {%- set described = run_query(
                "describe select * from " ~ raw_file_reader(file[0], fmt)
            ) -%}
            {%- set present = described.columns[0].values() | map('lower') | list -%}
            {%- set missing = [] -%}
            {%- for column_name in expected -%}
                {%- if column_name | lower not in present -%}
                    {%- do missing.append(column_name) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- if missing | length > 0 -%}
                {{ exceptions.raise_compiler_error(
                    "Input contract: file '" ~ file[0] ~ "' (raw table '" ~ table_name
                    ~ "') is missing column(s): " ~ missing | join(', ')
                    ~ ". Expected: " ~ expected | join(', ') ~ "."
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- set counted = run_query(
            "select count(*) from " ~ raw_file_reader(pattern, fmt)
        ) -%}
        {%- if counted.columns[0].values()[0] == 0 -%}
            {{ exceptions.raise_compiler_error(
                "Input contract: raw table '" ~ table_name ~ "' has no rows in '"
                ~ pattern ~ "'."
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {{ log("Input contract: external " ~ fmt ~ " files under '"
        ~ var('raw_input_path') ~ "' match the raw schema.", info=true) }}
    {{ return('') }}
{% endmacro %}


{% macro raw_file_reader(path, fmt) %}
    {#- The DuckDB table function that reads one file or glob of the raw input, the
        same way the retail_raw source does (files may order their columns freely). -#}
    {%- if fmt == 'parquet' -%}
        {{ return("read_parquet(" ~ sql_string(path) ~ ", union_by_name = true)") }}
    {%- else -%}
        {{ return(
            "read_csv(" ~ sql_string(path)
            ~ ", header = true, all_varchar = true, union_by_name = true)"
        ) }}
    {%- endif -%}
{% endmacro %}


{% macro sql_string(value) %}
    {#- A SQL string literal for a path, safe for names with quotes in them. -#}
    {{ return("'" ~ (value | string | replace("'", "''")) ~ "'") }}
{% endmacro %}
