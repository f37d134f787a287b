{% test unique_combination_of_columns(model, combination_of_columns) %}
{#- Key values (the combination of columns) that occur more than once. -#}
{%- if combination_of_columns | length == 0 -%}
    {{ exceptions.raise_compiler_error("unique_combination_of_columns needs at least one column") }}
{%- endif -%}
{%- set columns_csv = combination_of_columns | join(', ') -%}

select
    {{ columns_csv }},
    count(*) as occurrences
from {{ model }}
group by {{ columns_csv }}
having count(*) > 1
{% endtest %}
