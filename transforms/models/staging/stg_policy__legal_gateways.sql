{#- The legal gateway each agency's data is shared under for safeguarding, from the sharing
    policy (governance/policy.yaml via orchestration/dbt_project.py: legal_gateways()). -#}
with

source as (

    {{ legal_gateway_rows() }}

),

renamed as (

    select
        cast(agency as varchar) as agency,
        cast(legal_gateway as varchar) as legal_gateway,
        cast(legal_gateway_title as varchar) as legal_gateway_title

    from source

)

select * from renamed
