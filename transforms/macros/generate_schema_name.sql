{#- Models land in the zone schema they name (`staging`, later `marts`) of the lakehouse, not
    dbt's default `<target schema>_<custom schema>` (e.g. main_staging). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
