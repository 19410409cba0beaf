{#- Every current row of each listed source table appears in the model exactly as many times
    as in the source: the model's row count per (agency, entity) equals the source table's count
    of rows in deliveries in force (raw.current_deliveries). Tables are named <agency>__<entity>.
    Fails with one row per (agency, entity) whose counts differ, and for model rows of an
    (agency, entity) not listed. Counts only: no data values. -#}
{% test row_count_equals_source(model, source_name, tables, agency_column='agency', entity_column='entity') %}

with

expected as (
    {%- for table in tables %}
    {%- set agency, entity = table.split('__', 1) %}
    select
        {{ sql_string(agency) }} as agency,
        {{ sql_string(entity) }} as entity,
        count(*) as expected_rows
    from {{ source(source_name, table) }}
    where {{ in_current_delivery() }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

actual as (
    select
        {{ agency_column }} as agency,
        {{ entity_column }} as entity,
        count(*) as actual_rows
    from {{ model }}
    group by all
)

select
    coalesce(expected.agency, actual.agency) as agency,
    coalesce(expected.entity, actual.entity) as entity,
    coalesce(expected.expected_rows, 0) as expected_rows,
    coalesce(actual.actual_rows, 0) as actual_rows
from expected
full outer join actual
    on expected.agency = actual.agency and expected.entity = actual.entity
where coalesce(expected.expected_rows, 0) != coalesce(actual.actual_rows, 0)

{% endtest %}
