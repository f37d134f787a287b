{% macro whole_number_var(name, unit) -%}
    {#- The dbt var `name` when it is a whole number >= 1 (of `unit`, for the message);
        otherwise the build stops at compile time naming the var and the value. -#}
    {%- set value = var(name) -%}
    {%- if value is not number or value is sameas true or value is sameas false
        or value < 1 or value != value | int -%}
        {{ exceptions.raise_compiler_error(
            name ~ " must be a whole number of " ~ unit ~ " >= 1; got '" ~ value ~ "'"
        ) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}
