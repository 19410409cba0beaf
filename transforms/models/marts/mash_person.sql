{{ config(schema='marts', materialized='table') }}
{#- One row per linked person: agencies involved, open statuses, indicator counts by side and
    the weakest link among the person's records. "Open" = no end date recorded in the latest
    delivery; child_in_need = a referral in the 12 months before the latest referral delivered. -#}
with

profile as (select * from {{ ref('int_person_profile') }}),
events as (select * from {{ ref('int_events') }} where person_id is not null),
indicators as (select * from {{ ref('mash_indicators') }}),
cp_plans as (select * from {{ ref('stg_childrens_social_care__cp_plans') }}),
s42 as (select * from {{ ref('stg_adult_social_care__s42_enquiries') }}),
caseload as (select * from {{ ref('stg_probation__caseload') }}),
person_records as (select * from {{ source('linked', 'person_record') }}),

open_cp as (

    select person_records.person_id, arg_max(cp_plans.initial_category_of_abuse, cp_plans.cp_plan_start_date)
        as cp_category
    from cp_plans
    join person_records on person_records.agency = 'childrens_social_care'
        and person_records.record_key = cp_plans.record_key
    where cp_plans.cp_plan_end_date is null
    group by 1

),

cin as (

    select distinct person_id
    from events
    where event_type = 'referral'
        and event_date > (select max(event_date) from events where event_type = 'referral') - interval 12 month

),

open_s42 as (

    select distinct person_records.person_id
    from s42
    join person_records on person_records.agency = 'adult_social_care' and person_records.record_key = s42.record_key
    where s42.enquiry_end_date is null

),

probation as (

    select person_records.person_id,
           arg_max(caseload.mappa_category, caseload.snapshot_date) as mappa_category,
           arg_max(caseload.mappa_level, caseload.snapshot_date) as mappa_level,
           arg_max(caseload.rosh, caseload.snapshot_date) as rosh
    from caseload
    join person_records on person_records.agency = 'probation' and person_records.record_key = caseload.record_key
    group by 1

),

counts as (

    select person_id,
           count(*) filter (where side = 'victim') as victim_indicators,
           count(*) filter (where side = 'perpetrator') as perpetrator_indicators
    from indicators
    group by 1

),

spans as (

    select person_id, min(event_date) as first_event, max(event_date) as last_event
    from events
    group by 1

)

select
    profile.person_id,
    profile.agencies,
    profile.n_agencies,
    open_cp.person_id is not null as open_cp_plan,
    open_cp.cp_category,
    cin.person_id is not null as child_in_need,
    cast(probation.mappa_category as integer) as mappa_category,
    cast(probation.mappa_level as integer) as mappa_level,
    probation.rosh,
    open_s42.person_id is not null as open_s42,
    cast(coalesce(counts.victim_indicators, 0) as integer) as victim_indicators,
    cast(coalesce(counts.perpetrator_indicators, 0) as integer) as perpetrator_indicators,
    spans.first_event,
    spans.last_event,
    profile.min_link_confidence,
    profile.birth_year,
    profile.residence_lsoa_code,
    (select max(snapshot_id) from lake.snapshots()) as lake_snapshot_id

from profile
left join open_cp on profile.person_id = open_cp.person_id
left join cin on profile.person_id = cin.person_id
left join open_s42 on profile.person_id = open_s42.person_id
left join probation on profile.person_id = probation.person_id
left join counts on profile.person_id = counts.person_id
left join spans on profile.person_id = spans.person_id
