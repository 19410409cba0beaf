{#- Columns every staging view keeps the same way. -#}

{#- The raw row's lineage: its delivery (raw.deliveries), its number in the delivered file, when
    it was loaded, and the soft contract rules it broke. -#}
{% macro lineage_columns() -%}
        _delivery_id,
        _row_number,
        _ingested_at,
        _warnings
{%- endmacro %}

{#- The coarse person attributes the policy keeps in place of identifiers (coarse_attributes in
    governance/policy.yaml): year of birth, postcode district, and the home's LSOA (which raw
    tables loaded before it was added do not have). -#}
{% macro coarse_person_columns(relation) -%}
        cast(birth_year as integer) as birth_year,
        postcode_district,
        {{ optional_column(relation, 'residence_lsoa_code', 'varchar') }}
{%- endmacro %}
