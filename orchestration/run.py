"""Run a job of the Dagster definitions in this process (what `tapestry run` does).

Same definitions as `dagster dev` loads, not a second code path; the run is recorded in the
Dagster instance under TAPESTRY_HOME, so it shows in the UI afterwards.
"""
from __future__ import annotations

import logging
import sys
import time

from orchestration.deliveries import ingest_job_name, plan_run
from orchestration.instance import prepare_dagster_home
from tapestry import lakehouse
from tapestry.config import Settings
from tapestry.output import print_frame

log = logging.getLogger("tapestry")


def _progress_to_stdout() -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


DOWNSTREAM_JOBS = ("link", "transform", "publish_marts")  # after ingestion, in this order


def run_all(settings: Settings, agencies: list[str] | None = None, downstream: bool = True) -> int:
    """Load the reference geography and every agency's waiting deliveries (one in-process run
    of its ingest job each), then, when raw changed since the last link (and ``downstream``),
    the jobs of DOWNSTREAM_JOBS: link, transform (dbt), publish_marts."""
    prepare_dagster_home(settings)
    import dagster as dg

    from orchestration.definitions import defs
    from sources.registry import AGENCIES

    chosen = [a for a in AGENCIES if agencies is None or a.name in agencies]
    print(f"Running the pipeline on {lakehouse.describe(settings)}")
    print(f"  landing: {settings.landing}")
    handler = _progress_to_stdout()
    started, outcomes = time.monotonic(), []

    def execute(instance, name: str, tags: dict | None = None):
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        outcomes.append((name, result))
        return result

    try:
        with dg.DagsterInstance.get() as instance:
            if (settings.landing / "reference").is_dir():  # coarsening at ingestion needs it first
                print("Running job load_reference")
                execute(instance, "load_reference")
            for agency in chosen:
                tags = plan_run(instance, agency, settings)
                if tags is not None:
                    execute(instance, ingest_job_name(agency), tags)
            if downstream and all(r.success for _, r in outcomes) and _downstream_stale(settings):
                for name in DOWNSTREAM_JOBS:
                    print(f"Running job {name}")
                    if not execute(instance, name).success:
                        break
    finally:
        log.removeHandler(handler)
    seconds = time.monotonic() - started
    ok = all(r.success for _, r in outcomes)
    print(f"\nPipeline {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s ({len(outcomes)} run(s))")
    for name, result in outcomes:
        print(f"  {'ok    ' if result.success else 'FAILED'} {name}  run {result.run_id}")
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                while error is not None and error.cause is not None:
                    error = error.cause  # the user-code error, not Dagster's wrapper
                print(f"         {error.message.strip().splitlines()[0] if error else 'see the Dagster UI'}")
    _summary(settings, [r.run_id for _, r in outcomes])
    return 0 if ok else 1


def _downstream_stale(settings: Settings) -> bool:
    """Link (and transform) when raw changed since the last link run, or never linked."""
    if settings.catalog_path is not None and not settings.catalog_path.exists():
        return False
    with lakehouse.connect(settings, read_only=True) as con:
        if not lakehouse.table_exists(con, "raw", "deliveries"):
            return False
        if not lakehouse.table_exists(con, "linked", "runs"):
            return True
        return bool(con.execute(
            "SELECT (SELECT max(loaded_at) FROM raw.deliveries) > (SELECT max(started_at) FROM linked.runs)"
        ).fetchone()[0])


def _summary(settings: Settings, run_ids: list[str]) -> None:
    if settings.catalog_path is not None and not settings.catalog_path.exists():
        print(f"\nNothing loaded yet: no files were waiting in {settings.landing}.")
        return
    with lakehouse.connect(settings, read_only=True) as con:
        deliveries = con.sql(
            "SELECT agency, status, count(*) AS files, sum(rows_loaded)::BIGINT AS rows "
            "FROM raw.deliveries WHERE list_contains(?, run_id) GROUP BY ALL ORDER BY agency, status", params=[run_ids]
        ).pl() if lakehouse.table_exists(con, "raw", "deliveries") else None
        rejected = con.sql(
            "SELECT agency, file_name, reason FROM raw.deliveries WHERE list_contains(?, run_id) "
            "AND status = 'rejected' ORDER BY agency, file_name", params=[run_ids]
        ).pl() if deliveries is not None else None
        tables = con.sql(
            "SELECT schema_name || '.' || table_name AS table_name, estimated_size AS rows "
            "FROM duckdb_tables() WHERE database_name = 'lake' ORDER BY 1"
        ).pl()
        snapshot = lakehouse.current_snapshot(con)
    if deliveries is not None and deliveries.height:
        print("\nFiles handled in this run:")
        print_frame(deliveries)
    else:
        print("\nNo files were waiting in the landing folder (loaded files move to the archive).")
    if rejected is not None and rejected.height:
        print(f"\nRejected files (nothing from them was loaded; moved to {settings.rejected_dir}):")
        for agency, name, reason in rejected.iter_rows():
            print(f"  {agency}/{name}: {reason}")
    print("\nLakehouse tables:")
    print_frame(tables, max_rows=100)
    print(f"\nLakehouse snapshot after this run: {snapshot} (audit.run_snapshots maps runs to snapshots)")
    print("Where to look:")
    print('  tapestry sql "SELECT * FROM raw.deliveries"          # the delivery ledger')
    print('  tapestry sql "SELECT entity, reason, count(*) FROM quarantine.police GROUP BY ALL"')
    print('  tapestry sql "SELECT mode, records, persons, metrics FROM linked.runs"   # linkage runs and quality')
    print('  tapestry sql "SELECT * FROM marts.area_risk WHERE geography_level = \'la\' LIMIT 20"')
    print('  tapestry export --role commissioner --list           # what each role may take out')
    print('  tapestry mash --person <person_id> --purpose safeguarding_assessment --case-ref <ref>')
    print('  tapestry sql "SELECT * FROM lake.snapshots()"        # every lakehouse snapshot')
    print(f"  tapestry ui   (or: DAGSTER_HOME={settings.dagster_home} dagster dev -m orchestration.definitions)")
    print(f"  files: {settings.home}")
