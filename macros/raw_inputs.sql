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
    {#- Every file under the table's folder, at any depth: the contract check below
        accepts each one by name or stops the build naming it, so nothing in the folder
        is silently left unread. -#}
    {%- set base = var('raw_input_path', '') | string -%}
    {{ return(base.rstrip('/') ~ '/' ~ table_name ~ '/**') }}
{% endmacro %}


{% macro raw_file_name_pattern(fmt) %}
    {#- File names the input port reads (regex, case-insensitive): CSV may be gzip or
        zstd compressed. -#}
    {%- if fmt == 'parquet' -%}
        {{ return('(?i).*[.]parquet') }}
    {%- else -%}
        {{ return('(?i).*[.]csv([.](gz|zst))?') }}
    {%- endif -%}
{% endmacro %}


{% macro check_raw_input_path(path) %}
    {#- Characters a path may not hold: DuckDB reads * ? [ ] as a glob pattern (a
        folder `raw[1]` would read `raw1`), and dbt-duckdb formats the source's
        location with { } placeholders. -#}
    {%- set bad = [] -%}
    {%- for char in ['{', '}', '[', ']', '*', '?'] -%}
        {%- if char in path -%}{%- do bad.append(char) -%}{%- endif -%}
    {%- endfor -%}
    {%- if bad | length > 0 -%}
        {{ exceptions.raise_compiler_error(
            "Input contract: raw_input_path '" ~ path ~ "' contains " ~ bad | join(' ')
            ~ ", which would be read as a file pattern (DuckDB globs) or a placeholder "
            ~ "(dbt-duckdb's source location), not as part of a folder name. Rename the "
            ~ "folder, or point raw_input_path at a link to it without these characters."
        ) }}
    {%- endif -%}
{% endmacro %}


{% macro check_raw_input_contract() %}
    {#- Runs at the start of every dbt invocation (on-run-start). It pins the session
        time zone to UTC, and for external inputs it checks each raw table's files
        against the input contract, stopping the run with a message naming the file
        (and the line, for a malformed CSV row) before any model reads them. -#}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {#- every connection of this build: typed zoned timestamps print in UTC -#}
    {%- do run_query("set global TimeZone = 'UTC'") -%}
    {%- if raw_input_format() == 'seed' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set fmt = raw_input_format() -%}
    {%- if (var('raw_input_path', '') | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error(
            "raw_input_format is '" ~ fmt ~ "' but raw_input_path is empty. "
            ~ "Pass --vars '{raw_input_format: " ~ fmt ~ ", raw_input_path: /path/to/raw}'."
        ) }}
    {%- endif -%}
    {%- do check_raw_input_path(var('raw_input_path') | string) -%}
    {#- A daily load (macros/daily_loads.sql) reads only its new purchase files; every
        other file is unchanged since the build that checked it (retail_xsell.daily_load
        compares sizes and modification times first), so only the new ones are checked. -#}
    {%- set daily_files = daily_purchase_files() -%}
    {%- for table_name in var('raw_contract') if daily_files is none or table_name == 'purchase' -%}
        {%- set pattern = raw_file_glob(table_name) -%}
        {%- if daily_files is none -%}
            {%- set listed = sql_string(pattern) -%}
        {%- else -%}
            {%- set quoted = [] -%}
            {%- for file in daily_files -%}{%- do quoted.append(sql_string(file)) -%}{%- endfor -%}
            {%- set listed = '[' ~ quoted | join(', ') ~ ']' -%}
        {%- endif -%}
        {%- set files = run_query(
            "select filename, size, regexp_full_match(filename, "
            ~ sql_string(raw_file_name_pattern(fmt)) ~ ") from read_blob("
            ~ listed ~ ") order by filename"
        ) -%}
        {%- if files.rows | length == 0 -%}
            {{ exceptions.raise_compiler_error(
                "Input contract: no " ~ fmt ~ " files for raw table '" ~ table_name
                ~ "' at '" ~ pattern ~ "'. Put one folder per raw table under "
                ~ "raw_input_path: customer_info/, product/, purchase/."
            ) }}
        {%- endif -%}
        {%- for file in files.rows if not file[2] -%}
            {{ exceptions.raise_compiler_error(
                "Input contract: file '" ~ file[0] ~ "' (raw table '" ~ table_name
                ~ "') is not a " ~ fmt ~ " file: every file under the table's folder is "
                ~ "read, and " ~ fmt ~ " input files must be named "
                ~ ("*.parquet" if fmt == 'parquet' else "*.csv, *.csv.gz or *.csv.zst")
                ~ " (any case). Move it out of the folder or convert it."
            ) }}
        {%- endfor -%}
        {%- set expected = raw_contract_columns(table_name) -%}
        {%- set ns = namespace(rows=0) -%}
        {%- for file in files.rows -%}
            {%- if file[1] == 0 -%}
                {{ exceptions.raise_compiler_error(
                    "Input contract: file '" ~ file[0] ~ "' (raw table '" ~ table_name
                    ~ "') is empty (0 bytes)."
                ) }}
            {%- endif -%}
            {%- if fmt == 'csv' -%}
                {%- set present = raw_csv_header(file[0], table_name) -%}
            {%- else -%}
                {%- set described = run_query(
                    "describe select * from " ~ raw_file_reader(file[0], fmt)
                ) -%}
                {%- set present = described.columns[0].values() | list -%}
            {%- endif -%}
            {%- set present_lower = present | map('lower') | list -%}
            {%- set missing = [] -%}
            {%- for column_name in expected -%}
                {%- if column_name | lower not in present_lower -%}
                    {%- do missing.append(column_name) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- if missing | length > 0 -%}
                {{ exceptions.raise_compiler_error(
                    "Input contract: file '" ~ file[0] ~ "' (raw table '" ~ table_name
                    ~ "') is missing column(s): " ~ missing | join(', ')
                    ~ ". Expected: " ~ expected | join(', ') ~ "."
                    ~ (" Its header reads as one column '" ~ present[0]
                       ~ "': contract CSV files are comma-separated."
                       if fmt == 'csv' and present | length == 1 else "")
                ) }}
            {%- endif -%}
            {%- if fmt == 'csv' -%}
                {%- set ns.rows = ns.rows + check_raw_csv_rows(file[0], table_name, present) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if fmt != 'csv' -%}
            {%- set counted = run_query(
                "select count(*) from " ~ raw_file_reader(pattern, fmt)
            ) -%}
            {%- set ns.rows = counted.columns[0].values()[0] -%}
        {%- endif -%}
        {#- in a daily load the table had rows at the last build, which it keeps -#}
        {%- if ns.rows == 0 and daily_files is none -%}
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


{% macro raw_csv_header(path, table_name) %}
    {#- The column names in a CSV file's header line, read as plain text (DuckDB's
        dialect sniffer would misreport a malformed file as having one column). -#}
    {%- set header = run_query(
        "select rtrim(ltrim(line, chr(65279)), chr(13)) from read_csv(" ~ sql_string(path) ~ ", auto_detect = false,"
        ~ " header = false, columns = {'line': 'varchar'}, delim = chr(1), quote = '',"
        ~ " escape = '', max_line_size = 16777216, ignore_errors = true) limit 1"
    ) -%}
    {%- set names = [] -%}
    {%- if header.rows | length > 0 and header.rows[0][0] is not none -%}
        {%- for name in header.rows[0][0].split(',') -%}
            {%- do names.append(name | trim | replace('"', '')) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(names) }}
{% endmacro %}


{% macro check_raw_csv_rows(path, table_name, columns) %}
    {#- Reads every value of one CSV file in the contract's dialect and stops the run
        on the first malformed rows, naming the file, line and what is wrong. Returns
        the file's row count. A file with a malformed row is rejected whole: its bytes
        cannot be trusted to split into the rows the sender meant. -#}
    {%- set column_types = [] -%}
    {%- for name in columns -%}
        {%- do column_types.append(sql_string(name) ~ ": 'varchar'") -%}
    {%- endfor -%}
    {%- set counted = run_query(
        "select count(*), count(columns(*)) from read_csv(" ~ sql_string(path)
        ~ ", auto_detect = false, header = true, columns = {" ~ column_types | join(', ')
        ~ "}, delim = ',', quote = '\"', escape = '\"', store_rejects = true,"
        ~ " rejects_table = 'retail_xsell_csv_errors',"
        ~ " rejects_scan = 'retail_xsell_csv_scans')"
    ) -%}
    {%- set errors = run_query(
        "select line, column_name, error_type, error_message, count(*) over ()"
        ~ " from retail_xsell_csv_errors"
        ~ " where scan_id = (select max(scan_id) from retail_xsell_csv_scans)"
        ~ " order by line limit 3"
    ) -%}
    {%- if errors.rows | length > 0 -%}
        {%- set what = {
            'UNQUOTED VALUE': 'a quoted value is never closed, or has text after its closing quote (unterminated quote)',
            'TOO MANY COLUMNS': 'the row has more values than the header has columns',
            'MISSING COLUMNS': 'the row has fewer values than the header has columns',
            'INVALID ENCODING': 'the row holds bytes that are not UTF-8',
            'INVALID UNICODE': 'the row holds bytes that are not UTF-8',
            'LINE SIZE OVER MAXIMUM': 'the line is longer than the maximum line size',
        } -%}
        {%- set found = [] -%}
        {%- for error in errors.rows -%}
            {%- do found.append(
                "line " ~ error[0] ~ ": " ~ what.get(error[2], error[2] | lower)
                ~ (" (column " ~ error[1] ~ ")" if error[1] else "")
                ~ " [DuckDB: " ~ error[3] ~ "]"
            ) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error(
            "Input contract: file '" ~ path ~ "' (raw table '" ~ table_name ~ "') is not "
            ~ "valid contract CSV (UTF-8, comma-separated, header row, values quoted with "
            ~ "\" and a quote inside a value doubled); the whole file is rejected. "
            ~ errors.rows[0][4] ~ " malformed row(s); " ~ found | join('; ') ~ "."
        ) }}
    {%- endif -%}
    {{ return(counted.rows[0][0]) }}
{% endmacro %}


{% macro raw_file_reader(path, fmt, literal=false) %}
    {#- The DuckDB table function that reads one file or glob of the raw input, the
        same way the retail_raw source does (files may order their columns freely).
        With literal, `path` is SQL already (a list of quoted paths). -#}
    {%- set files = path if literal else sql_string(path) -%}
    {%- if fmt == 'parquet' -%}
        {{ return("read_parquet(" ~ files ~ ", union_by_name = true)") }}
    {%- else -%}
        {{ return(
            "read_csv(" ~ files ~ ", delim = ',', quote = '\"', escape = '\"',"
            ~ " header = true, all_varchar = true, union_by_name = true)"
        ) }}
    {%- endif -%}
{% endmacro %}


{% macro sql_string(value) %}
    {#- A SQL string literal for a path, safe for names with quotes in them. -#}
    {{ return("'" ~ (value | string | replace("'", "''")) ~ "'") }}
{% endmacro %}
