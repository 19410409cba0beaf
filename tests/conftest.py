import os
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def isolate(monkeypatch, root: Path, landing: Path | None = None):
    """TAPESTRY_HOME / TAPESTRY_SECRETS under `root` (and the landing folder, if given), every
    other Tapestry setting unset; returns Settings."""
    from tapestry.config import Settings

    monkeypatch.setenv("TAPESTRY_HOME", str(root / "home"))
    monkeypatch.setenv("TAPESTRY_SECRETS", str(root / "secrets"))
    for name in ("TAPESTRY_LANDING", "TAPESTRY_CATALOG", "TAPESTRY_CATALOG_PATH", "TAPESTRY_DATA_PATH",
                 "TAPESTRY_POSTGRES_DSN", "TAPESTRY_TRUTH", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    if landing is not None:
        monkeypatch.setenv("TAPESTRY_LANDING", str(landing))
    return Settings.from_env()


@pytest.fixture
def tapestry_env(tmp_path, monkeypatch):
    """An isolated TAPESTRY_HOME / TAPESTRY_SECRETS / landing for one test; returns Settings."""
    return isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def dbt_manifest():
    """transforms/target/manifest.json, which dagster-dbt reads when the definitions import:
    `dbt parse` when it is missing or older than the dbt project's files (a clean clone)."""
    from orchestration.dbt_project import prepare_manifest

    return prepare_manifest()
