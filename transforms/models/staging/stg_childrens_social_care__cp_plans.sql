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
        {{ coarse_person_columns(source('raw', 'childrens_social_care__cp_plans')) }},

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
