{#- The filter every staging view applies: keep only rows of deliveries in force.

    raw keeps every delivery, including ones superseded by a later file of the same name; the
    ledger view raw.current_deliveries lists the deliveries in force (status 'loaded'). Read
    here as a plain relation, not a dbt source: each raw asset writes its own ledger rows with
    its tables, so the lineage edge raw/<agency> -> staging model already covers it. -#}
{% macro current_deliveries_relation() -%}
    {{ api.Relation.create(database=target.database, schema='raw', identifier='current_deliveries') }}
{%- endmacro %}

{% macro in_current_delivery(delivery_column='_delivery_id') -%}
    {{ delivery_column }} in (select delivery_id from {{ current_deliveries_relation() }})
{%- endmacro %}
