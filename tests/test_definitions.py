import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from orchestration.definitions import defs
from sources.registry import AGENCIES


def test_definitions_load_with_a_raw_asset_per_agency_and_jobs():
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    assert {dg.AssetKey(["raw", a.name]) for a in AGENCIES} <= set(specs)
    assert {specs[dg.AssetKey(["raw", a.name])].group_name for a in AGENCIES} == {"raw"}
    everything = defs.resolve_job_def("everything")
    assert {dg.AssetKey(["raw", a.name]) for a in AGENCIES} <= set(everything.asset_layer.executable_asset_keys)
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["nightly_everything"].cron_schedule == "30 2 * * *"
    assert {"daily_police", "daily_nhs"} <= set(schedules)


def test_landing_sensor_requests_a_load_for_new_files(tapestry_env):
    from orchestration.schedules import landing_sensor

    (tapestry_env.landing / "police").mkdir(parents=True)
    (tapestry_env.landing / "police" / "occurrences_2025-01.csv").write_text("a\n1\n")
    with dg.build_sensor_context() as context:
        requests = list(landing_sensor(context))
        assert [r.job_name for r in requests] == ["load_police"]
        assert list(landing_sensor(dg.build_sensor_context(cursor=context.cursor))) == []


def test_dagster_definitions_validate():
    root = Path(__file__).resolve().parents[1]
    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    result = subprocess.run([str(dagster), "definitions", "validate", "-m", "orchestration.definitions"],
                            cwd=root, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
