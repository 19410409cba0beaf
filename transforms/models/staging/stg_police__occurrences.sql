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
        {{ coarse_person_columns(source('raw', 'police__occurrences')) }},

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
