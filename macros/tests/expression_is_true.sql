{% test expression_is_true(model, expression, column_name=none) %}
{#- Rows for which the boolean SQL expression is false or null. With column_name the
    expression is applied to that column, e.g. expression: "> 0". -#}
{%- set check = (column_name ~ ' ' ~ expression) if column_name else expression -%}

select *
from {{ model }}
where not coalesce(({{ check }}), false)
{% endtest %}
