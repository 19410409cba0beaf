with

source as (

    select * from {{ source('raw', 'adult_social_care__s42_enquiries') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys (keyed pseudonyms)
        record_key,
        person_key,

        -- enquiry
        la_code,
        cast(enquiry_start_date as date) as enquiry_start_date,
        cast(enquiry_end_date as date) as enquiry_end_date,
        type_of_abuse,
        location_of_risk,
        source_of_risk,
        risk_outcome,

        -- adult
        gender,
        {{ coarse_person_columns(source('raw', 'adult_social_care__s42_enquiries')) }},

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
