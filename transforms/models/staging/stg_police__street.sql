with

source as (

    select * from {{ source('raw', 'police__street') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        crime_id,
        cast(month as date) as crime_month,
        reported_by,
        falls_within,
        cast(longitude as double) as longitude,
        cast(latitude as double) as latitude,
        location as location_description,
        lsoa_code,
        lsoa_name,
        crime_type,
        last_outcome_category,
        context,

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
