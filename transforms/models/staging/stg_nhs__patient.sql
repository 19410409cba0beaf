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
        cast(birth_year as integer) as birth_year,
        postcode_district,
        {{ optional_column(source('raw', 'nhs__patient'), 'residence_lsoa_code', 'varchar') }},

        -- lineage
        _delivery_id,
        _row_number,
        _ingested_at,
        _warnings

    from source

)

select * from renamed
