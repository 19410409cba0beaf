with

source as (

    select * from {{ source('raw', 'childrens_social_care__assessment_factors') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys (keyed pseudonyms; assessment_id is the authority's assessment number)
        record_key,
        person_key,
        referral_key,
        assessment_id,

        -- assessment factor
        la_code,
        cast(assessment_start_date as date) as assessment_start_date,
        cast(assessment_authorisation_date as date) as assessment_authorisation_date,
        factor_code,
        factor_description,

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
