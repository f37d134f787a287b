{#
    Daily loads of purchase files (docs/daily_loads.md). With the environment variable
    RETAIL_XSELL_DAILY_PURCHASE_FILES, a JSON list of purchase files under
    <raw_input_path>/purchase/ that the database does not hold yet, the incremental models of the purchase chain add
    those files to the tables of the previous build instead of rebuilding them:
      base_retail__purchase   parses and checks the files' rows only, and appends them;
      int_order_lines_aggregated_to_orders, order_lines, orders
                              recompute the orders those rows belong to (delete and
                              insert by order_id): a new line of an older order, a
                              return say, changes that order's totals.
    Without it each of them is rebuilt in full, on an existing database too (its hook
    empties the table first), exactly as before. The daily load is only equal to a full build
    when the files are new, the customer and product inputs are unchanged and no new
    row shares an (order_id, line_number) with an earlier load: the caller checks that
    (retail_xsell.daily_load) and rebuilds in full otherwise.
#}

{% macro daily_purchase_files() %}
    {#- The files of this daily load, checked, or none when this is not one. They come
        in the environment variable RETAIL_XSELL_DAILY_PURCHASE_FILES (a JSON list),
        not a dbt var: dbt parses the whole project again when a var changes, but only
        the files that read an environment variable when it changes. -#}
    {%- set text = env_var('RETAIL_XSELL_DAILY_PURCHASE_FILES', '') | trim -%}
    {%- if text == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set problem = "RETAIL_XSELL_DAILY_PURCHASE_FILES must be a JSON list of purchase file paths; got '" ~ text ~ "'" -%}
    {%- if not text.startswith('[') -%}
        {{ exceptions.raise_compiler_error(problem) }}
    {%- endif -%}
    {%- set files = fromjson(text) -%}
    {%- if files is not iterable or files is string or files is mapping or files | length == 0 -%}
        {{ exceptions.raise_compiler_error(problem) }}
    {%- endif -%}
    {%- set fmt = raw_input_format() -%}
    {%- if fmt == 'seed' -%}
        {{ exceptions.raise_compiler_error(
            "RETAIL_XSELL_DAILY_PURCHASE_FILES needs file input (raw_input_format parquet "
            ~ "or csv): the committed sample is loaded whole by dbt seed"
        ) }}
    {%- endif -%}
    {%- set folder = (var('raw_input_path', '') | string).rstrip('/') ~ '/purchase/' -%}
    {%- for file in files -%}
        {%- if file is not string or not file.startswith(folder) -%}
            {{ exceptions.raise_compiler_error(
                "RETAIL_XSELL_DAILY_PURCHASE_FILES: '" ~ file ~ "' is not a file under "
                ~ folder ~ ", the purchase folder of raw_input_path"
            ) }}
        {%- endif -%}
        {%- if modules.re.fullmatch(raw_file_name_pattern(fmt), file) is none -%}
            {{ exceptions.raise_compiler_error(
                "RETAIL_XSELL_DAILY_PURCHASE_FILES: '" ~ file ~ "' is not a " ~ fmt ~ " file"
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(files) }}
{% endmacro %}


{% macro is_daily_load() %}
    {#- True in a daily load onto an existing table of the model being built. Never while
        dbt parses: a model that read the environment variable then would be parsed
        again every day the list changes. -#}
    {{ return(execute and daily_purchase_files() is not none and is_incremental()) }}
{% endmacro %}


{% macro daily_purchase_source() -%}
    {#- The rows of the daily load's files, read the way the retail_raw source reads
        every file (raw_file_reader). -#}
    {%- set paths = [] -%}
    {%- for file in daily_purchase_files() -%}
        {%- do paths.append(sql_string(file)) -%}
    {%- endfor -%}
    {{ raw_file_reader('[' ~ paths | join(', ') ~ ']', raw_input_format(), literal=true) }}
{%- endmacro %}


{% macro daily_order_ids() -%}
    {#- The orders a daily load touches: every order id its files name (as the base
        model parses it; a row with no usable id is quarantined and touches none). -#}
    (
        select distinct {{ to_integer('order_id') }} as order_id
        from (select cast(order_id as varchar) as order_id from {{ daily_purchase_source() }})
    )
{%- endmacro %}


{% macro daily_load_config(unique_key=none) %}
    {#- The config of a purchase-chain model that a daily load adds to: appended rows
        (base) or orders deleted and inserted again (unique_key order_id). Its hook
        (daily_load_hook) keeps what a daily load is about to change, and makes any
        other build onto the existing table a full rebuild. -#}
    {%- set config = {
        'materialized': 'incremental',
        'on_schema_change': 'fail',
        'pre_hook': ["{{ daily_load_hook() }}"],
    } -%}
    {%- if unique_key is none -%}
        {%- do config.update({'incremental_strategy': 'append'}) -%}
    {%- else -%}
        {%- do config.update({'incremental_strategy': 'delete+insert', 'unique_key': unique_key}) -%}
    {%- endif -%}
    {{ return(config) }}
{% endmacro %}


{% macro daily_load_hook() %}
    {#- Before a purchase-chain model is built onto its existing table:
          in a daily load, before order_lines or orders change, their rows of the orders
            the day's files touch, in main_audit.daily_load_before_<model>; before the
            base model, the touched order ids, in main_audit.daily_load_orders (for
            retail_xsell.daily_load to compare, and drop, afterwards);
          in any other build (plain dbt build in place), every row deleted, so that the
            model's whole select replaces them: a full rebuild, as for a table.
        Nothing on a fresh database, where the model is created from its whole select. -#}
    {%- if not execute or not is_incremental() -%}
        {{ return('') }}
    {%- endif -%}
    {%- if daily_purchase_files() is none -%}
        {{ return('delete from ' ~ this) }}
    {%- endif -%}
    {%- set audit = target.database ~ '.' ~ target.schema ~ '_audit' -%}
    {%- if this.identifier == 'base_retail__purchase' -%}
        {{ return(
            'create schema if not exists ' ~ audit ~ '; create or replace table ' ~ audit
            ~ '.daily_load_orders as select order_id from ' ~ daily_order_ids()
        ) }}
    {%- endif -%}
    {%- if this.identifier in ['order_lines', 'orders'] -%}
        {{ return(
            'create or replace table ' ~ audit ~ '.daily_load_before_' ~ this.identifier
            ~ ' as select * from ' ~ this ~ ' where order_id in ' ~ daily_order_ids()
        ) }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}


{% macro duckdb__get_where_subquery(relation) -%}
    {#- What a data test reads (dbt's get_where_subquery, with its `where` config). In a
        daily load, a test of a model keyed by order reads only the orders the day's
        files touch: every other row is as the last build left it, and that build passed
        every test (retail_xsell.daily_load refuses a daily load otherwise), so the test
        finds what it would over the whole table, in a fraction of the time. -#}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {#- Not while dbt parses: the tests would then read the environment variable, and dbt
        would parse every test's file again each day the list changes. -#}
    {%- if execute and relation.identifier in daily_order_keyed_models() and daily_purchase_files() is not none -%}
        {%- do conditions.append('(order_id in ' ~ daily_order_ids() ~ ' or order_id is null)') -%}
    {%- endif -%}
    {%- if conditions -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}


{% macro daily_order_keyed_models() %}
    {#- The relations of the purchase chain with an order_id on every row, whose tests a
        daily load limits to the orders it touches. -#}
    {{ return([
        'base_retail__purchase', 'stg_retail__purchase_lines', 'int_order_lines_priced',
        'order_lines', 'int_order_lines_aggregated_to_orders', 'orders',
    ]) }}
{% endmacro %}
