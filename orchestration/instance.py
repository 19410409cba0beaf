"""The Dagster instance lives under TAPESTRY_HOME (run history, event logs, schedules)."""
from __future__ import annotations

import os
import shutil

from tapestry.config import CHECKOUT, Settings

QUIET_ENV = {"DO_NOT_TRACK": "1", "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}


def prepare_dagster_home(settings: Settings) -> str:
    """Create DAGSTER_HOME under TAPESTRY_HOME with the repo's dagster.yaml; export it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    source = CHECKOUT / "dagster.yaml"
    target = home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    return str(home)
