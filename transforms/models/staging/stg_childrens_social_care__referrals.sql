with

source as (

    select * from {{ source('raw', 'childrens_social_care__referrals') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys (keyed pseudonyms)
        record_key,
        person_key,

        -- referral
        la_code,
        cast(referral_date as date) as referral_date,
        referral_source,
        primary_need_code,

        -- child
        gender,
        ethnicity,
        cast(birth_year as integer) as birth_year,
        postcode_district,
        {{ optional_column(source('raw', 'childrens_social_care__referrals'), 'residence_lsoa_code', 'varchar') }},

        -- lineage
        _delivery_id,
        _row_number,
        _ingested_at,
        _warnings

    from source

)

select * from renamed
