{% macro rfm_score(count_no_better, population) -%}
    {#- ceil(5 * c / n) for whole numbers c and n, as floor((5c + n - 1) / n): no
        floating-point ceil that could turn an exact 3.0 into 4. Gives 1 to 5. -#}
    cast(floor((5 * {{ count_no_better }} + {{ population }} - 1) / {{ population }}) as integer)
{%- endmacro %}
