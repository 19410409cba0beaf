with

source as (

    select * from {{ source('raw', 'police__occurrences') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys (keyed pseudonyms)
        record_key,
        person_key,
        occurrence_ref,

        -- occurrence
        recorded_at,
        occurrence_type,
        ho_class_code,
        ho_class_description,
        cast(domestic_abuse as boolean) as is_domestic_abuse,
        cast(knife_or_sharp_instrument as boolean) as involves_knife,
        beat_code,
        location_description,
        {{ optional_column(source('raw', 'police__occurrences'), 'lsoa_code', 'varchar') }},

        -- person involved
        person_role,
        gender,
        self_defined_ethnicity,
        cast(birth_year as integer) as birth_year,
        postcode_district,
        {{ optional_column(source('raw', 'police__occurrences'), 'residence_lsoa_code', 'varchar') }},

        -- lineage
        _delivery_id,
        _row_number,
        _ingested_at,
        _warnings

    from source

)

select * from renamed
