with

source as (

    select * from {{ source('raw', 'nhs__patient') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys: the Patient id is both the record and the person id (an Encounter's
        -- person_key equals its Patient's record_key)
        record_key,
        record_key as person_key,

        -- patient
        gender,
        city,
        {{ coarse_person_columns(source('raw', 'nhs__patient')) }},

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
