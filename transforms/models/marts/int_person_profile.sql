{{ config(schema='staging', materialized='table') }}
{#- One row per linked person: the coarse attributes the person-level marts and the cohort
    counts need (birth year, home LSOA and local authority, agencies involved). Values come from
    the person's records; where they disagree the most frequent birth year and the most recent
    home LSOA win. -#}
with

person_records as (select * from {{ source('linked', 'person_record') }}),
lsoas as (select * from {{ source('reference', 'lsoa') }}),

attributes as (

    {%- set person_tables = ['stg_police__occurrences', 'stg_nhs__patient', 'stg_childrens_social_care__referrals',
                             'stg_childrens_social_care__cp_plans', 'stg_adult_social_care__s42_enquiries',
                             'stg_probation__caseload'] %}
    {%- for model in person_tables %}
    select record_key, birth_year, residence_lsoa_code, _delivery_id from {{ ref(model) }}
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}

),

per_person as (

    select
        person_records.person_id,
        mode(attributes.birth_year) as birth_year,
        arg_max(attributes.residence_lsoa_code, attributes._delivery_id)
            filter (where attributes.residence_lsoa_code is not null) as residence_lsoa_code

    from person_records
    join attributes on person_records.record_key = attributes.record_key
    group by person_records.person_id

),

agencies as (

    select person_id, list(distinct agency order by agency) as agencies, count(distinct agency) as n_agencies,
           min(match_confidence) as min_link_confidence
    from person_records
    group by person_id

)

select
    agencies.person_id,
    agencies.agencies,
    cast(agencies.n_agencies as integer) as n_agencies,
    agencies.min_link_confidence,
    per_person.birth_year,
    per_person.residence_lsoa_code,
    lsoas.la_code,
    lsoas.la_name

from agencies
left join per_person on agencies.person_id = per_person.person_id
left join lsoas on per_person.residence_lsoa_code = lsoas.lsoa_code
