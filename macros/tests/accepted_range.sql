{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
{#- Rows whose value lies outside [min_value, max_value] (or the open interval when
    inclusive is false). Nulls are not checked here: pair with not_null if needed. -#}
{%- if min_value is none and max_value is none -%}
    {{ exceptions.raise_compiler_error("accepted_range needs min_value, max_value or both") }}
{%- endif -%}
{%- set low = '>=' if inclusive else '>' -%}
{%- set high = '<=' if inclusive else '<' -%}

select *
from {{ model }}
where {{ column_name }} is not null
    and not (
        true
        {%- if min_value is not none %} and {{ column_name }} {{ low }} {{ min_value }}{% endif %}
        {%- if max_value is not none %} and {{ column_name }} {{ high }} {{ max_value }}{% endif %}
    )
{% endtest %}
