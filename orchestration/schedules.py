"""Jobs, schedules and the landing sensor: each agency's ingest job runs over the deliveries
waiting in its landing folder (registered as partitions first; see orchestration/deliveries.py)."""
import dagster as dg

from orchestration.deliveries import ingest_job_name, plan_run, run_key
from orchestration.raw import raw_asset_key
from sources.registry import AGENCIES
from tapestry.config import Settings

INGEST_JOBS = {
    a.name: dg.define_asset_job(
        ingest_job_name(a), selection=dg.AssetSelection.assets(raw_asset_key(a)),
        description=f"Load {a.title} deliveries (partitions = delivered file names) into the raw zone.",
    )
    for a in AGENCIES
}


@dg.sensor(jobs=list(INGEST_JOBS.values()), minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_sensor(context: dg.SensorEvaluationContext):
    """Start an agency's load when files wait in landing/<agency>/ (they leave it once loaded)."""
    settings = Settings.from_env()
    for agency in AGENCIES:
        tags = plan_run(context.instance, agency, settings)
        if tags:
            yield dg.RunRequest(run_key=run_key(agency, settings), job_name=ingest_job_name(agency), tags=tags)


def _daily(agency):
    @dg.schedule(name=f"daily_{agency.name}", job=INGEST_JOBS[agency.name], cron_schedule=agency.cadence,
                 execution_timezone="Europe/London",
                 description=f"{agency.title} deliver daily: load whatever is waiting.")
    def _schedule(context: dg.ScheduleEvaluationContext):
        settings = Settings.from_env()
        tags = plan_run(context.instance, agency, settings)
        if not tags:
            return dg.SkipReason(f"nothing waiting in landing/{agency.name}")
        return dg.RunRequest(run_key=run_key(agency, settings), tags=tags)

    return _schedule


SCHEDULES = [_daily(a) for a in AGENCIES if a.cadence]
