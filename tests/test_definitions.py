import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from orchestration.deliveries import RANGE_END, RANGE_START
from orchestration.definitions import defs
from sources.registry import AGENCIES


def test_definitions_have_a_partitioned_raw_asset_and_ingest_job_per_agency():
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    for agency in AGENCIES:
        spec = specs[dg.AssetKey(["raw", agency.name])]
        assert spec.group_name == "raw"
        assert isinstance(spec.partitions_def, dg.DynamicPartitionsDefinition)
        job = defs.resolve_job_def(f"ingest_{agency.name}")
        assert dg.AssetKey(["raw", agency.name]) in job.asset_layer.executable_asset_keys
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"contract_expectations", "rows_conserved"} <= checks
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["daily_police"].cron_schedule == "0 6 * * *"
    assert set(schedules) == {"daily_police", "daily_nhs"}


def test_landing_sensor_registers_deliveries_and_requests_one_run_per_agency(tapestry_env):
    from orchestration.schedules import landing_sensor

    for name in ("occurrences_2025-01.csv", "occurrences_2025-02.csv"):
        (tapestry_env.landing / "police").mkdir(parents=True, exist_ok=True)
        (tapestry_env.landing / "police" / name).write_text("a\n1\n")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        [request] = list(landing_sensor(context))
        assert request.job_name == "ingest_police"
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (
            "occurrences_2025-01.csv", "occurrences_2025-02.csv")
        assert instance.get_dynamic_partitions("police_deliveries") == [
            "occurrences_2025-01.csv", "occurrences_2025-02.csv"]
        # Same files, same run key: the sensor does not launch the same load twice.
        [again] = list(landing_sensor(dg.build_sensor_context(instance=instance)))
        assert again.run_key == request.run_key


def test_dagster_definitions_validate():
    root = Path(__file__).resolve().parents[1]
    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    result = subprocess.run([str(dagster), "definitions", "validate", "-m", "orchestration.definitions"],
                            cwd=root, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
