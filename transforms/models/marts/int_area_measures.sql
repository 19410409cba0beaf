{{ config(schema='staging', materialized='table') }}
{#- Exact counts per area x month x measure: the input of disclosure control (marts/area_risk.py).
    Internal (staging zone): commissioners only ever receive marts.area_risk, after SDC.
    Area: the event's LSOA (police: where it happened; StreetSafe: the pin) or, for services to
    a person, the LSOA of the person's home postcode (residence_lsoa_code). la_code comes from
    the LSOA, else from the record (social care records carry their local authority). -#}
with

occurrences as (select * from {{ ref('stg_police__occurrences') }}),
offence_groups as (select * from {{ ref('police_offence_groups') }}),
encounters as (select * from {{ ref('stg_nhs__encounter') }}),
patients as (select * from {{ ref('stg_nhs__patient') }}),
referrals as (select * from {{ ref('stg_childrens_social_care__referrals') }}),
factors as (select * from {{ ref('stg_childrens_social_care__assessment_factors') }}),
cp_plans as (select * from {{ ref('stg_childrens_social_care__cp_plans') }}),
s42 as (select * from {{ ref('stg_adult_social_care__s42_enquiries') }}),
caseload as (select * from {{ ref('stg_probation__caseload') }}),
reports as (select * from {{ ref('stg_streetsafe__reports') }}),
lsoas as (select * from {{ source('reference', 'lsoa') }}),

-- an occurrence lists every person involved: one row per occurrence
police_occurrences as (

    select
        occurrences.occurrence_ref,
        any_value(occurrences.lsoa_code) as lsoa_code,
        cast(null as varchar) as la_code,
        cast(date_trunc('month', min(occurrences.recorded_at)) as date) as month,
        bool_or(occurrences.occurrence_type = 'CRIME'
                and offence_groups.event_type in ('violent_crime', 'knife_crime')) as is_violent,
        bool_or(occurrences.occurrence_type = 'CRIME' and offence_groups.event_type = 'violent_crime'
                and coalesce(occurrences.involves_knife, false)) as is_knife_violence,
        bool_or(coalesce(occurrences.is_domestic_abuse, false)) as is_domestic

    from occurrences
    left join offence_groups on occurrences.ho_class_code = offence_groups.ho_class_code
    group by occurrences.occurrence_ref

),

police_measures as (

    select lsoa_code, la_code, month, 'violent_crime' as measure from police_occurrences where is_violent
    union all
    select lsoa_code, la_code, month, 'knife_violence' from police_occurrences where is_knife_violence
    union all
    select lsoa_code, la_code, month, 'domestic_abuse_incidents' from police_occurrences where is_domestic

),

patient_homes as (

    select record_key, any_value(residence_lsoa_code) as residence_lsoa_code
    from patients
    group by record_key

),

-- Cardiff Model: A&E attendances for assault, by the patient's home LSOA
nhs_measures as (

    select
        patient_homes.residence_lsoa_code as lsoa_code,
        cast(null as varchar) as la_code,
        cast(date_trunc('month', encounters.arrived_at) as date) as month,
        'ae_assault_attendances' as measure

    from encounters
    left join patient_homes on encounters.person_key = patient_homes.record_key
    where encounters.injury_intent = 'assault'

),

referral_homes as (

    select record_key, any_value(residence_lsoa_code) as residence_lsoa_code
    from referrals
    group by record_key

),

csc_measures as (

    select residence_lsoa_code as lsoa_code, la_code, cast(date_trunc('month', referral_date) as date) as month,
           'childrens_referrals' as measure
    from referrals

    union all

    select residence_lsoa_code, la_code, cast(date_trunc('month', cp_plan_start_date) as date),
           'cp_plan_starts'
    from cp_plans

    union all

    -- CIN census assessment factors of interest to violence reduction
    select
        referral_homes.residence_lsoa_code,
        factors.la_code,
        cast(date_trunc('month', factors.assessment_start_date) as date),
        case
            when factors.factor_code in ('3A', '3B', '3C') then 'cin_factor_domestic_abuse'
            when factors.factor_code = '24A' then 'cin_factor_cce'
            when factors.factor_code = '11A' then 'cin_factor_cse'
            when factors.factor_code = '10A' then 'cin_factor_missing'
            when factors.factor_code = '13A' then 'cin_factor_gangs'
        end
    from factors
    left join referral_homes on factors.referral_key = referral_homes.record_key
    where factors.factor_code in ('3A', '3B', '3C', '24A', '11A', '10A', '13A')

),

bounds as (

    select
        cast(date_trunc('month', min(cp_plan_start_date)) as date) as first_month,
        cast(date_trunc('month', max(coalesce(cp_plan_end_date, cp_plan_start_date))) as date) as plan_last,
        (select cast(date_trunc('month', max(referral_date)) as date) from referrals) as referral_last
    from cp_plans

),

months as (

    select cast(unnest(generate_series(first_month, greatest(plan_last, coalesce(referral_last, plan_last)),
                                       interval 1 month)) as date) as month
    from bounds
    where first_month is not null

),

-- children on a child protection plan at the end of each month, by initial category
cp_stock as (

    select
        cp_plans.residence_lsoa_code as lsoa_code,
        cp_plans.la_code,
        months.month,
        'children_on_cp_plan_' || lower(cp_plans.initial_category_of_abuse) as measure,
        cp_plans.person_key

    from cp_plans
    join months
        on cp_plans.cp_plan_start_date <= last_day(months.month)
        and (cp_plans.cp_plan_end_date is null or cp_plans.cp_plan_end_date > last_day(months.month))

),

asc_measures as (

    select residence_lsoa_code as lsoa_code, la_code, cast(date_trunc('month', enquiry_start_date) as date) as month,
           's42_enquiries' as measure
    from s42

),

-- MAPPA nominals on the caseload snapshot of each month (distinct cases)
mappa as (

    select residence_lsoa_code as lsoa_code, cast(null as varchar) as la_code,
           cast(date_trunc('month', snapshot_date) as date) as month, 'mappa_nominals' as measure, record_key
    from caseload
    where mappa_category is not null and snapshot_date is not null

),

streetsafe_measures as (

    select lsoa_code, cast(null as varchar) as la_code, cast(date_trunc('month', submitted_at) as date) as month,
           'streetsafe_' || regexp_replace(lower(trim(reason)), '[^a-z0-9]+', '_', 'g') as measure
    from reports, unnest(list_concat(coalesce(environmental_reasons, []), coalesce(behavioural_reasons, []))) as r(reason)

),

events as (

    select lsoa_code, la_code, month, measure, 1 as n from police_measures
    union all select lsoa_code, la_code, month, measure, 1 from nhs_measures
    union all select lsoa_code, la_code, month, measure, 1 from csc_measures
    union all select lsoa_code, la_code, month, measure, 1 from asc_measures
    union all select lsoa_code, la_code, month, measure, 1 from streetsafe_measures

),

people as (

    select lsoa_code, la_code, month, measure, count(distinct person_key) as n from cp_stock group by all
    union all
    select lsoa_code, la_code, month, measure, count(distinct record_key) from mappa group by all

),

located as (

    select
        all_rows.lsoa_code,
        coalesce(lsoas.la_code, all_rows.la_code) as la_code,
        all_rows.month,
        all_rows.measure,
        all_rows.n

    from (select * from events union all select * from people) as all_rows
    left join lsoas on all_rows.lsoa_code = lsoas.lsoa_code
    where all_rows.month is not null

)

select
    -- an LSOA outside the reference geography counts as unknown within its LA
    case when lsoa_code in (select lsoa_code from lsoas) then lsoa_code end as lsoa_code,
    la_code,
    month,
    measure,
    cast(sum(n) as bigint) as count

from located
group by all
