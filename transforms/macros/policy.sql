{#- Values from the sharing policy (governance/policy.yaml), never copied by hand: dbt_env() in
    orchestration/dbt_project.py derives them with governance.policy.Policy and passes them as
    JSON environment variables. -#}

{#- Rows (agency, legal_gateway, legal_gateway_title): per agency, the gateway under which its
    person-level data is shared for safeguarding (the MASH role's grant). -#}
{% macro legal_gateway_rows() -%}
    {%- set gateways = fromjson(env_var('TAPESTRY_DBT_LEGAL_GATEWAYS')) -%}
    select * from (values
    {%- for agency, grant in gateways | dictsort %}
        ({{ sql_string(agency) }}, {{ sql_string(grant['gateway']) }}, {{ sql_string(grant['title']) }}){{ "," if not loop.last }}
    {%- endfor %}
    ) as gateways (agency, legal_gateway, legal_gateway_title)
{%- endmacro %}

{#- Identifier field names (policy identifiers and the contracts' personal columns) and the
    coarse columns that replace them in raw (birth_year, postcode_district), for the
    no_identifier_columns test. -#}
{% macro identifier_columns() -%}
    {{ return(fromjson(env_var('TAPESTRY_DBT_IDENTIFIERS'))) }}
{%- endmacro %}

{#- A SQL string literal with quotes doubled. -#}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}
