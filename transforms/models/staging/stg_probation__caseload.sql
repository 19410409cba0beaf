with

source as (

    select * from {{ source('raw', 'probation__caseload') }}
    where {{ in_current_delivery() }}

),

renamed as (

    select
        -- keys: the CRN is both the record and the person id, so both pseudonyms are the
        -- record_key (raw stores it once)
        record_key,
        record_key as person_key,

        -- the snapshot date is the delivery tag of the file name (caseload_<YYYY-MM-DD>.xlsx)
        try_cast(regexp_extract(_file_name, '(\d{4}-\d{2}-\d{2})', 1) as date) as snapshot_date,

        -- supervision
        sentence_type,
        cast(supervision_start_date as date) as supervision_start_date,
        rosh,
        cast(mappa_category as integer) as mappa_category,
        cast(mappa_level as integer) as mappa_level,
        probation_delivery_unit,

        -- person
        gender,
        {{ coarse_person_columns(source('raw', 'probation__caseload')) }},

        -- lineage
        {{ lineage_columns() }}

    from source

)

select * from renamed
