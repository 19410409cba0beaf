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
        cast(birth_year as integer) as birth_year,
        postcode_district,
        {{ optional_column(source('raw', 'adult_social_care__s42_enquiries'), 'residence_lsoa_code', 'varchar') }},

        -- lineage
        _delivery_id,
        _row_number,
        _ingested_at,
        _warnings

    from source

)

select * from renamed
