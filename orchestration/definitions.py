"""Tapestry's Dagster definitions: `dagster dev -m orchestration.definitions`."""
import dagster as dg

from orchestration.raw import RAW_ASSETS
from orchestration.resources import LakehouseResource
from orchestration.schedules import AGENCY_JOBS, EVERYTHING, SCHEDULES, landing_sensor

defs = dg.Definitions(
    assets=[*RAW_ASSETS],
    resources={"lakehouse": LakehouseResource()},
    jobs=[EVERYTHING, *AGENCY_JOBS.values()],
    schedules=SCHEDULES,
    sensors=[landing_sensor],
)
