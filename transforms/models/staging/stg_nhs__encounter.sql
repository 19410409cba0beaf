with

source as (

    select * from {{ source('raw', 'nhs__encounter') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys (keyed pseudonyms; person_key is the Patient's record_key)
        record_key,
        person_key,

        -- encounter
        status as encounter_status,
        class_code,
        arrived_at,
        departed_at,
        chief_complaint_code,
        chief_complaint,
        provider_ods_code,

        -- injury (Emergency Care Data Set / Cardiff Model)
        injury_intent,
        injury_place,
        assault_method,

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
