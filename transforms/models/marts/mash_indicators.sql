{{ config(schema='marts', materialized='table') }}
{#- Indicators for the MASH view: each one a fact from one record with a plain-language reason and
    its provenance. No score: victim, perpetrator and vulnerability signals stay separate and are
    never added up into one number. -#}
with

events as (select * from {{ ref('int_events') }} where person_id is not null),
caseload as (select * from {{ ref('stg_probation__caseload') }}),
person_records as (select * from {{ source('linked', 'person_record') }}),

police as (

    select
        person_id,
        case when person_role = 'victim' then 'victim' else 'perpetrator' end as side,
        case
            when is_domestic_abuse then 'domestic_abuse'
            when event_type = 'knife_crime' or involves_knife then 'knife_crime'
            else event_type
        end as indicator,
        case when person_role = 'victim' then 'Victim' else 'Recorded as ' || person_role end
            || ' in ' || case when is_domestic_abuse then 'a domestic abuse ' else 'a ' end
            || replace(event_type, '_', ' ')
            || coalesce(' (' || event_label || ')', '')
            || ' recorded by police on ' || strftime(event_date, '%d %b %Y') as reason,
        agency, event_date, record_key
    from events
    where agency = 'police'
        and person_role in ('victim', 'suspect', 'offender')
        and (event_type in ('violent_crime', 'knife_crime', 'sexual_offence', 'weapon_possession')
             or is_domestic_abuse)

),

missing as (

    select person_id, 'vulnerability' as side, 'missing_episode' as indicator,
           'Reported missing to police on ' || strftime(event_date, '%d %b %Y') as reason,
           agency, event_date, record_key
    from events
    where event_type = 'missing_person'

),

health as (

    select
        person_id,
        case when event_code = 'assault' then 'victim' else 'vulnerability' end as side,
        case when event_code = 'assault' then 'ae_assault' else 'ae_self_harm' end as indicator,
        case when event_code = 'assault' then 'Attended A&E after an assault' else 'Attended A&E after self-harm' end
            || ' on ' || strftime(event_date, '%d %b %Y') as reason,
        agency, event_date, record_key
    from events
    where agency = 'nhs' and event_code in ('assault', 'self-harm')

),

childrens as (

    select
        person_id,
        'vulnerability' as side,
        case when event_type = 'cp_plan' then 'child_protection_plan' else 'cin_factor_' || lower(event_code) end
            as indicator,
        case
            when event_type = 'cp_plan'
                then 'Child protection plan (' || coalesce(event_label, event_code) || ') started '
                     || strftime(event_date, '%d %b %Y')
            else 'Children''s social care assessment on ' || strftime(event_date, '%d %b %Y')
                 || ' recorded factor ' || event_code || coalesce(' (' || event_label || ')', '')
        end as reason,
        agency, event_date, record_key
    from events
    where event_type = 'cp_plan'
        or (event_type = 'assessment_factor' and event_code in ('3A', '3B', '3C', '10A', '11A', '13A', '24A'))

),

adults as (

    select person_id, 'vulnerability' as side, 's42_enquiry' as indicator,
           'Adult safeguarding enquiry (Care Act s42) started ' || strftime(event_date, '%d %b %Y')
               || coalesce(': ' || event_label, '') as reason,
           agency, event_date, record_key
    from events
    where event_type = 's42_enquiry'

),

-- probation: the latest snapshot of each case
latest_case as (

    select caseload.*, person_records.person_id
    from caseload
    join person_records
        on person_records.agency = 'probation' and person_records.record_key = caseload.record_key
    qualify row_number() over (partition by caseload.record_key order by caseload.snapshot_date desc) = 1

),

probation as (

    select person_id, 'perpetrator' as side, 'mappa_nominal' as indicator,
           'MAPPA category ' || mappa_category || coalesce(' level ' || mappa_level, '')
               || ' nominal under probation supervision' as reason,
           'probation' as agency, snapshot_date as event_date, record_key
    from latest_case
    where mappa_category is not null

    union all

    select person_id, 'perpetrator', 'high_risk_of_serious_harm',
           'Assessed by probation (OASys) as ' || rosh || ' risk of serious harm',
           'probation', snapshot_date, record_key
    from latest_case
    where rosh in ('High', 'Very High')

)

select *, (select max(snapshot_id) from lake.snapshots()) as lake_snapshot_id
from (
    select * from police
    union all select * from missing
    union all select * from health
    union all select * from childrens
    union all select * from adults
    union all select * from probation
)
