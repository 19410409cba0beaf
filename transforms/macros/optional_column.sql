{#- A column that some deliveries' tables have and others do not yet (e.g. lsoa_code, added
    to person-bearing raw tables that had a postcode): selected and cast when the relation has
    it, a typed NULL otherwise, so downstream models keep one schema either way. -#}
{% macro optional_column(relation, column_name, data_type, alias=none) -%}
    {%- set alias = alias or column_name -%}
    {%- if execute and column_name | lower in (adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list) -%}
        cast({{ adapter.quote(column_name) }} as {{ data_type }}) as {{ alias }}
    {%- else -%}
        cast(null as {{ data_type }}) as {{ alias }}
    {%- endif -%}
{%- endmacro %}
