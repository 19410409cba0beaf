{#- One row per event across agencies, keyed by the linked person (see int_events.yml for the
    columns and the event_type vocabulary). Every current raw row of the event sources appears
    exactly once; nhs.patient (demographics, not an event) is not an event source. -#}
with

police_occurrences as (

    select * from {{ ref('stg_police__occurrences') }}

),

police_street as (

    select * from {{ ref('stg_police__street') }}

),

csc_referrals as (

    select * from {{ ref('stg_childrens_social_care__referrals') }}

),

csc_assessment_factors as (

    select * from {{ ref('stg_childrens_social_care__assessment_factors') }}

),

csc_cp_plans as (

    select * from {{ ref('stg_childrens_social_care__cp_plans') }}

),

asc_s42_enquiries as (

    select * from {{ ref('stg_adult_social_care__s42_enquiries') }}

),

probation_caseload as (

    select * from {{ ref('stg_probation__caseload') }}

),

nhs_encounters as (

    select * from {{ ref('stg_nhs__encounter') }}

),

streetsafe_reports as (

    select * from {{ ref('stg_streetsafe__reports') }}

),

nhs_patients as (

    select * from {{ ref('stg_nhs__patient') }}

),

offence_groups as (

    select * from {{ ref('police_offence_groups') }}

),

street_crime_types as (

    select * from {{ ref('police_street_crime_types') }}

),

legal_gateways as (

    select * from {{ ref('stg_policy__legal_gateways') }}

),

-- One linked person per record. A record the linkage assigned to two different persons is
-- left unlinked (null person_id) rather than guessed.
person_records as (

    select
        agency,
        entity,
        record_key,
        case when count(distinct person_id) = 1 then any_value(person_id) end as person_id,
        max(match_confidence) as match_confidence

    from (
        {{ source_or_empty('linked', 'person_record', {'record_key': 'varchar', 'agency': 'varchar',
            'entity': 'varchar', 'person_id': 'varchar', 'match_confidence': 'double'}) }}
    ) as linked
    group by agency, entity, record_key

),

-- Rows without an address of their own take the home LSOA of the record they belong to: an
-- assessment factor its referral's, an A&E attendance its Patient's (latest delivery).
referral_residence as (

    select record_key, residence_lsoa_code
    from csc_referrals
    qualify row_number() over (partition by record_key order by _ingested_at desc, _row_number desc) = 1

),

patient_residence as (

    select person_key, residence_lsoa_code
    from nhs_patients
    qualify row_number() over (partition by person_key order by _ingested_at desc, _row_number desc) = 1

),

police_occurrence_events as (

    select
        'police' as agency,
        'occurrences' as entity,
        case
            when occurrences.occurrence_type = 'MISSING' then 'missing_person'
            when occurrences.occurrence_type = 'CRIME'
                and (occurrences.involves_knife or offence_groups.event_type = 'knife_crime') then 'knife_crime'
            when occurrences.is_domestic_abuse then 'domestic_abuse'
            when occurrences.occurrence_type = 'CRIME' then coalesce(offence_groups.event_type, 'other_crime')
            else 'incident'
        end as event_type,
        occurrences.ho_class_code as event_code,
        occurrences.ho_class_description as event_label,
        cast(occurrences.recorded_at as date) as event_date,
        occurrences.recorded_at as event_at,
        occurrences.lsoa_code,
        occurrences.residence_lsoa_code,
        lower(occurrences.person_role) as person_role,
        coalesce(occurrences.is_domestic_abuse, false) as is_domestic_abuse,
        coalesce(occurrences.involves_knife, false)
            or coalesce(offence_groups.event_type = 'knife_crime', false) as involves_knife,
        occurrences.record_key,
        occurrences._delivery_id,
        occurrences._row_number

    from police_occurrences as occurrences
    left join offence_groups
        on occurrences.ho_class_code = offence_groups.ho_class_code

),

police_street_events as (

    select
        'police' as agency,
        'street' as entity,
        coalesce(street_crime_types.event_type, 'other_crime') as event_type,
        street.crime_type as event_label,
        street.crime_month as event_date,
        street.lsoa_code,
        street._delivery_id,
        street._row_number

    from police_street as street
    left join street_crime_types
        on street.crime_type = street_crime_types.crime_type

),

csc_referral_events as (

    select
        'childrens_social_care' as agency,
        'referrals' as entity,
        'referral' as event_type,
        referral_source as event_code,
        referral_date as event_date,
        la_code,
        residence_lsoa_code,
        'subject' as person_role,
        record_key,
        _delivery_id,
        _row_number

    from csc_referrals

),

csc_assessment_factor_events as (

    select
        'childrens_social_care' as agency,
        'assessment_factors' as entity,
        'assessment_factor' as event_type,
        factor_code as event_code,
        factor_description as event_label,
        assessment_start_date as event_date,
        la_code,
        referral_residence.residence_lsoa_code,
        'subject' as person_role,
        -- CIN assessment factors 3A/3B/3C: domestic abuse concerning the child, a parent/carer, another person
        coalesce(factor_code in ('3A', '3B', '3C'), false) as is_domestic_abuse,
        factors.record_key,
        factors._delivery_id,
        factors._row_number

    from csc_assessment_factors as factors
    left join referral_residence
        on factors.referral_key = referral_residence.record_key

),

csc_cp_plan_events as (

    select
        'childrens_social_care' as agency,
        'cp_plans' as entity,
        'cp_plan' as event_type,
        initial_category_of_abuse as event_code,
        case initial_category_of_abuse
            when 'NEG' then 'Neglect'
            when 'PHY' then 'Physical abuse'
            when 'SAB' then 'Sexual abuse'
            when 'EMO' then 'Emotional abuse'
            when 'MUL' then 'Multiple categories'
        end as event_label,
        cp_plan_start_date as event_date,
        la_code,
        residence_lsoa_code,
        'subject' as person_role,
        record_key,
        _delivery_id,
        _row_number

    from csc_cp_plans

),

asc_s42_events as (

    select
        'adult_social_care' as agency,
        's42_enquiries' as entity,
        's42_enquiry' as event_type,
        type_of_abuse as event_code,
        type_of_abuse as event_label,
        enquiry_start_date as event_date,
        la_code,
        residence_lsoa_code,
        'subject' as person_role,
        coalesce(type_of_abuse = 'Domestic abuse', false) as is_domestic_abuse,
        record_key,
        _delivery_id,
        _row_number

    from asc_s42_enquiries

),

probation_events as (

    select
        'probation' as agency,
        'caseload' as entity,
        'probation_caseload' as event_type,
        cast(mappa_category as varchar) as event_code,
        concat_ws(', ', sentence_type,
            case when mappa_category is not null
                then 'MAPPA category ' || mappa_category || coalesce(' level ' || mappa_level, '') end
        ) as event_label,
        coalesce(snapshot_date, supervision_start_date) as event_date,
        residence_lsoa_code,
        'subject' as person_role,
        rosh as severity,
        record_key,
        _delivery_id,
        _row_number

    from probation_caseload

),

nhs_encounter_events as (

    select
        'nhs' as agency,
        'encounter' as entity,
        'ae_attendance' as event_type,
        injury_intent as event_code,
        concat_ws(', ',
            case injury_intent
                when 'assault' then 'Assault'
                when 'self-harm' then 'Self-harm'
                when 'accidental' then 'Accidental injury'
                when 'undetermined' then 'Injury of undetermined intent'
            end,
            injury_place, assault_method
        ) as event_label,
        cast(arrived_at as date) as event_date,
        arrived_at as event_at,
        patient_residence.residence_lsoa_code,
        'subject' as person_role,
        coalesce(injury_intent = 'assault' and regexp_matches(lower(assault_method), 'knife|blade|sharp'), false)
            as involves_knife,
        encounters.record_key,
        encounters._delivery_id,
        encounters._row_number

    from nhs_encounters as encounters
    left join patient_residence
        on encounters.person_key = patient_residence.person_key

),

streetsafe_events as (

    select
        'streetsafe' as agency,
        'reports' as entity,
        'unsafe_place_report' as event_type,
        nullif(array_to_string(
            list_concat(coalesce(environmental_reasons, []), coalesce(behavioural_reasons, [])), '; '
        ), '') as event_label,
        cast(submitted_at as date) as event_date,
        submitted_at as event_at,
        lsoa_code,
        _delivery_id,
        _row_number

    from streetsafe_reports

),

unioned as (

    -- by name: a column a branch does not have is null there (flags default to false below)
    select * from police_occurrence_events
    union all by name
    select * from police_street_events
    union all by name
    select * from csc_referral_events
    union all by name
    select * from csc_assessment_factor_events
    union all by name
    select * from csc_cp_plan_events
    union all by name
    select * from asc_s42_events
    union all by name
    select * from probation_events
    union all by name
    select * from nhs_encounter_events
    union all by name
    select * from streetsafe_events

),

final as (

    select
        -- one id per raw row: the delivery and the row's number in it identify it exactly
        md5(concat_ws('|', unioned.agency, unioned.entity, unioned._delivery_id, unioned._row_number)) as event_id,
        person_records.person_id,
        person_records.match_confidence,
        unioned.agency,
        unioned.entity,
        unioned.event_type,
        unioned.event_code,
        unioned.event_label,
        unioned.event_date,
        unioned.event_at,
        unioned.la_code,
        unioned.lsoa_code,
        unioned.residence_lsoa_code,
        unioned.person_role,
        unioned.severity,
        coalesce(unioned.is_domestic_abuse, false) as is_domestic_abuse,
        coalesce(unioned.involves_knife, false) as involves_knife,
        legal_gateways.legal_gateway,
        unioned.record_key,
        unioned._delivery_id as delivery_id

    from unioned
    left join person_records
        on unioned.agency = person_records.agency
        and unioned.entity = person_records.entity
        and unioned.record_key = person_records.record_key
    left join legal_gateways
        on unioned.agency = legal_gateways.agency

)

select * from final
