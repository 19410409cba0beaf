{#- The model has no column named like an identifier: a policy identifier field or a contract's
    personal column (forename, surname, date_of_birth, postcode, nhs_number, pnc_id, upn, crn,
    address, ...), on its own or as a word of a longer name (child_date_of_birth), except the
    coarse attributes the policy keeps in their place (birth_year, postcode_district,
    residence_lsoa_code, lsoa_code) and the names in `allow` (e.g. the anonymous map points of a
    source without persons). Identifiers live only in the encrypted vault. Fails with the
    offending column names (never data values). -#}
{% test no_identifier_columns(model, allow=[]) %}
{%- set names = identifier_columns() %}
{%- set allowed = names['allowed'] + allow %}

select column_name
from duckdb_columns()
where database_name = {{ sql_string(model.database) }}
  and schema_name = {{ sql_string(model.schema) }}
  and table_name = {{ sql_string(model.identifier) }}
  and lower(column_name) not in (
    {%- for name in allowed %}{{ sql_string(name | lower) }}{{ ", " if not loop.last }}{% endfor -%}
  )
  and regexp_matches(
    '_' || lower(column_name) || '_',
    '_({{ names["identifiers"] | join("|") }})_'
  )

{% endtest %}
