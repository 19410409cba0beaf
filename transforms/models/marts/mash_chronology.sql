{{ config(schema='marts', materialized='table') }}
{#- Every event of every linked person across agencies, oldest first, with its provenance
    (agency, delivery, legal gateway) and how sure the linkage is that it belongs to the person.
    Pseudonymous: who may see which agency's rows is decided at export / MASH view time from
    the sharing policy (marts/catalog.py). -#}
select
    person_id,
    event_date,
    agency,
    entity,
    event_type,
    event_label,
    person_role,
    severity,
    record_key,
    delivery_id,
    legal_gateway,
    match_confidence,
    (select max(snapshot_id) from lake.snapshots()) as lake_snapshot_id

from {{ ref('int_events') }}
where person_id is not null
order by person_id, event_date, agency
