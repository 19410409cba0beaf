{{ config(schema='staging', materialized='table') }}
{#- Exact counts of linked persons by home local authority, age band, cohort and number of
    agencies that know them: the population picture only linkage makes possible. Internal
    (staging zone): commissioners receive marts.cohort_overlap after disclosure control.
    Cohorts:
      known_to_any                 every linked person
      police_and_nhs               known to police and to the NHS
      violence_victim_ae_csc       victim of violence recorded by police AND attended A&E after an
                                   assault AND known to children's social care
    Age band from the birth year at the year of the latest event delivered. -#}
with

profile as (select * from {{ ref('int_person_profile') }}),
events as (select * from {{ ref('int_events') }} where person_id is not null),

reference_year as (select year(max(event_date)) as y from events),

flags as (

    select
        person_id,
        bool_or(agency = 'police' and person_role = 'victim'
                and event_type in ('violent_crime', 'knife_crime', 'sexual_offence')) as police_violence_victim,
        bool_or(agency = 'nhs' and event_code = 'assault') as ae_assault
    from events
    group by person_id

),

persons as (

    select
        profile.person_id,
        coalesce(profile.la_code, 'unknown') as la_code,
        case
            when profile.birth_year is null then 'unknown'
            when (select y from reference_year) - profile.birth_year < 10 then '0-9'
            when (select y from reference_year) - profile.birth_year < 18 then '10-17'
            when (select y from reference_year) - profile.birth_year < 25 then '18-24'
            when (select y from reference_year) - profile.birth_year < 35 then '25-34'
            when (select y from reference_year) - profile.birth_year < 50 then '35-49'
            when (select y from reference_year) - profile.birth_year < 65 then '50-64'
            else '65+'
        end as age_band,
        case when profile.n_agencies >= 3 then '3+' else cast(profile.n_agencies as varchar) end as agencies_known,
        list_contains(profile.agencies, 'police') and list_contains(profile.agencies, 'nhs') as police_and_nhs,
        coalesce(flags.police_violence_victim and flags.ae_assault, false)
            and list_contains(profile.agencies, 'childrens_social_care') as violence_victim_ae_csc

    from profile
    left join flags on profile.person_id = flags.person_id

),

cohorts as (

    select la_code, age_band, agencies_known, 'known_to_any' as cohort from persons
    union all
    select la_code, age_band, agencies_known, 'police_and_nhs' from persons where police_and_nhs
    union all
    select la_code, age_band, agencies_known, 'violence_victim_ae_csc' from persons where violence_victim_ae_csc

)

select la_code, age_band, cohort, agencies_known, cast(count(*) as bigint) as count
from cohorts
group by all
