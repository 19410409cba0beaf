"""Jobs, schedules and the landing sensor."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from orchestration.raw import raw_asset_key
from sources.registry import AGENCIES
from tapestry.config import Settings

EVERYTHING = dg.define_asset_job(
    "everything", selection=dg.AssetSelection.all(), description="Materialise every asset, zone by zone."
)
AGENCY_JOBS = {
    a.name: dg.define_asset_job(
        f"load_{a.name}",
        selection=dg.AssetSelection.assets(raw_asset_key(a)).downstream(),
        description=f"Land {a.title} files and refresh what depends on them.",
    )
    for a in AGENCIES
}

SCHEDULES = [
    dg.ScheduleDefinition(name="nightly_everything", job=EVERYTHING, cron_schedule="30 2 * * *",
                          execution_timezone="Europe/London"),
    *(
        dg.ScheduleDefinition(name=f"daily_{a.name}", job=AGENCY_JOBS[a.name], cron_schedule=a.cadence,
                              execution_timezone="Europe/London")
        for a in AGENCIES if a.cadence
    ),
]


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


@dg.sensor(jobs=list(AGENCY_JOBS.values()), minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_sensor(context: dg.SensorEvaluationContext):
    """Start an agency's load when files appear or change in landing/<agency>/."""
    landing = Settings.from_env().landing
    seen = json.loads(context.cursor) if context.cursor else {}
    for agency in AGENCIES:
        prints = sorted(_fingerprint(p) for p in agency.deliveries(landing))
        if prints and prints != seen.get(agency.name):
            seen[agency.name] = prints
            yield dg.RunRequest(run_key=f"{agency.name}:{hashlib.sha256(chr(10).join(prints).encode()).hexdigest()[:16]}", job_name=AGENCY_JOBS[agency.name].name)
    context.update_cursor(json.dumps(seen))
