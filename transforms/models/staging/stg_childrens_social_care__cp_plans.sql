with

source as (

    select * from {{ source('raw', 'childrens_social_care__cp_plans') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys (keyed pseudonyms)
        record_key,
        person_key,
        referral_key,

        -- plan
        la_code,
        cast(cp_plan_start_date as date) as cp_plan_start_date,
        cast(cp_plan_end_date as date) as cp_plan_end_date,
        initial_category_of_abuse,

        -- child
        gender,
        cast(birth_year as integer) as birth_year,
        postcode_district,
        {{ optional_column(source('raw', 'childrens_social_care__cp_plans'), 'residence_lsoa_code', 'varchar') }},

        -- lineage
        _delivery_id,
        _row_number,
        _ingested_at,
        _warnings

    from source

)

select * from renamed
