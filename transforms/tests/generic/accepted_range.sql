{#- Values of the column lie between min_value and max_value (SQL expressions; either bound
    optional; inclusive by default). Nulls pass (test them with not_null). -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and not (
    true
    {%- if min_value is not none %}
    and {{ column_name }} {{ ">=" if inclusive else ">" }} {{ min_value }}
    {%- endif %}
    {%- if max_value is not none %}
    and {{ column_name }} {{ "<=" if inclusive else "<" }} {{ max_value }}
    {%- endif %}
  )

{% endtest %}
