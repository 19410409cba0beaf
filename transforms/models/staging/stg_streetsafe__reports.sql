with

source as (

    select * from {{ source('raw', 'streetsafe__reports') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        report_id,
        submitted_at,
        cast(latitude as double) as latitude,
        cast(longitude as double) as longitude,
        {{ optional_column(source('raw', 'streetsafe__reports'), 'lsoa_code', 'varchar') }},
        environmental_reasons,
        behavioural_reasons,

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
