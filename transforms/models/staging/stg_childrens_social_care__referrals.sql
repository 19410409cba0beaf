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
        {{ coarse_person_columns(source('raw', 'childrens_social_care__referrals')) }},

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
