"""Tapestry's Dagster definitions: `dagster dev -m orchestration.definitions` (or `tapestry ui`)."""
import dagster as dg

from orchestration.dbt import DBT_RESOURCE, TRANSFORM_JOB, transforms_dbt_assets
from orchestration.linked import LINK_JOB, person_record
from orchestration.marts import PUBLISH_JOB, published_area_marts
from orchestration.raw import RAW_ASSETS
from orchestration.reference import REFERENCE_JOB, geography
from orchestration.resources import LakehouseResource
from orchestration.schedules import INGEST_JOBS, SCHEDULES, landing_sensor

defs = dg.Definitions(
    assets=[geography, *RAW_ASSETS, person_record, transforms_dbt_assets, published_area_marts],
    resources={"lakehouse": LakehouseResource(), "dbt": DBT_RESOURCE},
    jobs=[REFERENCE_JOB, *INGEST_JOBS.values(), LINK_JOB, TRANSFORM_JOB, PUBLISH_JOB],
    schedules=SCHEDULES,
    sensors=[landing_sensor],
)
