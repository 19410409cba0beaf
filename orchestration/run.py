"""Run a job of the Dagster definitions in this process (what `tapestry run` does).

Same definitions as `dagster dev` loads, not a second code path; the run is recorded in the
Dagster instance under TAPESTRY_HOME, so it shows in the UI afterwards.
"""
from __future__ import annotations

import logging
import sys
import time

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


def run_job(settings: Settings, job_name: str = "everything") -> int:
    prepare_dagster_home(settings)
    import dagster as dg

    from orchestration.definitions import defs

    try:
        job = defs.resolve_job_def(job_name)
    except Exception:
        names = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
        print(f"tapestry run: no job {job_name!r}; jobs: {', '.join(names)}", file=sys.stderr)
        return 2
    print(f"Running job {job_name!r} on {lakehouse.describe(settings)}")
    print(f"  landing: {settings.landing}")
    handler = _progress_to_stdout()
    started = time.monotonic()
    try:
        with dg.DagsterInstance.get() as instance:
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
    finally:
        log.removeHandler(handler)
    seconds = time.monotonic() - started
    steps = {e.step_key: e for e in result.all_events if e.is_step_success or e.is_step_failure}
    print(f"\nRun {result.run_id} {'succeeded' if result.success else 'FAILED'} in {seconds:.1f}s")
    for key, event in sorted(steps.items()):
        status = "ok    " if event.is_step_success else "FAILED"
        print(f"  {status} {key}")
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause  # the user-code error, not Dagster's wrapper
            print(f"         {error.message.strip().splitlines()[0] if error else 'see the Dagster UI'}")
    _summary(settings, result.run_id)
    return 0 if result.success else 1


def _summary(settings: Settings, run_id: str) -> None:
    with lakehouse.connect(settings, read_only=True) as con:
        deliveries = con.sql(
            "SELECT agency, status, count(*) AS files, sum(rows_loaded)::BIGINT AS rows "
            "FROM raw.deliveries WHERE run_id = ? GROUP BY ALL ORDER BY agency, status", params=[run_id]
        ).pl() if _exists(con, "raw", "deliveries") else None
        rejected = con.sql(
            "SELECT agency, file_name, reason FROM raw.deliveries WHERE run_id = ? AND status = 'rejected' "
            "ORDER BY agency, file_name", params=[run_id]
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
        print("\nNo new files in the landing folder (already-loaded files are skipped by SHA-256).")
    if rejected is not None and rejected.height:
        print("\nRejected files (nothing from them was loaded; see raw.deliveries):")
        for agency, name, reason in rejected.iter_rows():
            print(f"  {agency}/{name}: {reason}")
    print("\nLakehouse tables:")
    print_frame(tables, max_rows=100)
    print(f"\nLakehouse snapshot after this run: {snapshot} (audit.run_snapshots maps runs to snapshots)")
    print("Where to look:")
    print('  tapestry sql "SELECT * FROM raw.deliveries"          # the delivery ledger')
    print('  tapestry sql "SELECT * FROM lake.snapshots()"        # every lakehouse snapshot')
    print(f"  tapestry ui   (or: DAGSTER_HOME={settings.dagster_home} dagster dev -m orchestration.definitions)")
    print(f"  files: {settings.home}")


def _exists(con, schema: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = ? AND table_name = ?",
        [schema, table]).fetchone()[0])
