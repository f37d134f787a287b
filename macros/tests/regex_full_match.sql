{% test regex_full_match(model, column_name, pattern) %}
{#- Non-null values that do not match the regular expression as a whole. -#}

select *
from {{ model }}
where {{ column_name }} is not null
    and not regexp_full_match({{ column_name }}, '{{ pattern | replace("'", "''") }}')
{% endtest %}
