"""The dbt project in transforms/: where it is, the environment it runs in, how to run it by hand.

dbt reads where the lakehouse is from environment variables that only ``dbt_env`` sets, from
``Settings`` through ``tapestry.lakehouse`` (the one module that builds catalog strings):

    TAPESTRY_DBT_TARGET     profiles.yml output: sqlite | duckdb | postgres (the catalog kind)
    TAPESTRY_DBT_CATALOG    the DuckLake ATTACH path, ``tapestry.lakehouse.catalog_uri(settings)``
    TAPESTRY_DBT_DATA_PATH  where DuckLake writes Parquet, ``settings.data_path``
    TAPESTRY_DBT_LEGAL_GATEWAYS  JSON {agency: {gateway, title}}: the legal gateway under which each
                            agency's data is shared for safeguarding, from governance/policy.yaml
    TAPESTRY_DBT_IDENTIFIERS  JSON {identifiers, allowed}: column names no model may have (policy
                            identifiers, contracts' personal columns) and the coarse ones allowed
    DBT_LOG_PATH / DBT_TARGET_PATH  dbt's logs and run artefacts, under $TAPESTRY_HOME/dbt/

By hand (holds the lakehouse writer lock while dbt may write):

    uv run python -m orchestration.dbt_project build      # or test, run -s int_events, show, ...
    uv run python -m orchestration.dbt_project prepare    # dbt parse: the manifest Dagster loads
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
from dagster_dbt import DbtProject

from tapestry import lakehouse
from tapestry.config import Settings

TRANSFORMS_DIR = Path(__file__).resolve().parents[1] / "transforms"
# The MASH role and purpose whose grants name the gateway each agency's events are shared under.
SAFEGUARDING_ROLE = "safeguarding_lead"
SAFEGUARDING_PURPOSE = "safeguarding_assessment"
# Folders whose files the manifest is parsed from.
_PROJECT_FOLDERS = ("models", "macros", "tests", "seeds", "analyses", "snapshots")
# Commands that never open the lakehouse (parse is pure: it runs no query).
_OFFLINE_COMMANDS = {"parse", "ls", "list", "clean", "deps", "--version", "--help", "-h"}


def legal_gateways() -> dict[str, dict[str, str]]:
    """Per agency, the gateway (name and title) of the safeguarding role's person-level grant."""
    from governance.policy import PERSON_LEVELS, Policy

    policy = Policy.load()
    return {g.agency: {"gateway": g.gateway, "title": policy.gateways[g.gateway].title}
            for g in policy.grants_for(SAFEGUARDING_ROLE, SAFEGUARDING_PURPOSE, PERSON_LEVELS[0])}


def identifier_columns() -> dict[str, list[str]]:
    """Column names that identify a person (the policy's identifier fields and every contract's
    personal columns) and the coarse columns raw keeps instead (allowed): no_identifier_columns."""
    from governance.policy import Policy
    from sources.registry import AGENCIES

    contracts = [e.contract for a in AGENCIES for e in a.entities]
    names = set(Policy.load().identifiers) | {c for k in contracts for c in k.personal_columns}
    allowed = {c for k in contracts for c in k.coarse_columns()}
    return {"identifiers": sorted(names), "allowed": sorted(allowed)}


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment variables profiles.yml and the models read (the only place that sets them)."""
    dbt_home = settings.home / "dbt"
    return {
        "TAPESTRY_DBT_TARGET": settings.catalog,
        "TAPESTRY_DBT_CATALOG": lakehouse.catalog_uri(settings),
        "TAPESTRY_DBT_DATA_PATH": settings.data_path.rstrip("/") + "/",
        "TAPESTRY_DBT_LEGAL_GATEWAYS": json.dumps(legal_gateways(), sort_keys=True),
        "TAPESTRY_DBT_IDENTIFIERS": json.dumps(identifier_columns(), sort_keys=True),
        "DBT_LOG_PATH": str(dbt_home / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def install_extensions(settings: Settings) -> None:
    """Install DuckLake and the catalog's extension from their wheels into DuckDB's extension
    directory: dbt-duckdb then only loads them (nothing is downloaded)."""
    con = duckdb.connect()
    try:
        lakehouse.install_extensions(con, lakehouse.lake_extensions(settings))
    finally:
        con.close()


def ensure_raw_tables(settings: Settings) -> None:
    """Every agency's raw tables (and the delivery ledger) exist, empty until its first delivery,
    created from the contracts exactly as ingestion creates them: staging reads every raw table,
    also of an agency that has delivered nothing yet."""
    from sources.landing import ensure_tables
    from sources.registry import AGENCIES

    with lakehouse.connect(settings) as con:
        for agency in AGENCIES:
            ensure_tables(con, agency)


@contextlib.contextmanager
def dbt_environment(settings: Settings) -> Iterator[dict[str, str]]:
    """Extensions installed and dbt_env() in os.environ (dagster-dbt passes os.environ to dbt and
    reads the profile in-process), restored afterwards."""
    install_extensions(settings)
    env = dbt_env(settings)
    Path(env["DBT_LOG_PATH"]).mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# manifest.json (no data values: parsing runs no query) stays in transforms/target/, git-ignored;
# each run's artefacts and logs go under $TAPESTRY_HOME/dbt/ (see orchestration/dbt.py).
transforms_project = DbtProject(project_dir=TRANSFORMS_DIR, profiles_dir=TRANSFORMS_DIR)


def manifest_is_stale() -> bool:
    """No manifest, or a project file (model, macro, test, seed, YAML) changed after it was written."""
    manifest = transforms_project.manifest_path
    if not manifest.exists():
        return True
    written = manifest.stat().st_mtime
    files = [TRANSFORMS_DIR / "dbt_project.yml", TRANSFORMS_DIR / "profiles.yml",
             *(p for folder in _PROJECT_FOLDERS for p in (TRANSFORMS_DIR / folder).rglob("*") if p.is_file())]
    return any(p.stat().st_mtime > written for p in files if p.exists())


def prepare_manifest(force: bool = False) -> Path:
    """Write transforms/target/manifest.json with `dbt parse` (no query runs), in dbt_environment so
    the profile resolves as in a run. Skipped when it is up to date (no project file is newer)
    unless `force`: under `dagster dev` an edited model re-parses on the next code reload, and
    run workers do not parse again."""
    manifest = transforms_project.manifest_path
    if force or manifest_is_stale():
        result = run_dbt(["parse", "--quiet"], target_path=manifest.parent, capture=True)
        if result.returncode != 0 or not manifest.exists():
            raise RuntimeError(f"dbt parse of {TRANSFORMS_DIR} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return manifest


def run_dbt(args: Sequence[str], settings: Settings | None = None, capture: bool = False,
            target_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run the dbt CLI on transforms/ with dbt_env(settings), holding the lakehouse writer lock
    unless the command is one that never connects. Run artefacts go to `target_path`, by default
    $TAPESTRY_HOME/dbt/target (transforms/target for commands that never connect)."""
    settings = settings or Settings.from_env()
    dbt = Path(sys.executable).parent / "dbt"
    command = [str(dbt), *args, "--project-dir", str(TRANSFORMS_DIR), "--profiles-dir", str(TRANSFORMS_DIR)]
    offline = not args or args[0] in _OFFLINE_COMMANDS
    if not offline:
        ensure_raw_tables(settings)
    with dbt_environment(settings) as env:
        env = {**os.environ, **env}
        if target_path is not None or not offline:
            env["DBT_TARGET_PATH"] = str(target_path or settings.home / "dbt" / "target")
        with contextlib.nullcontext() if offline else lakehouse.writer_lock(settings):
            return subprocess.run(command, cwd=TRANSFORMS_DIR, env=env, text=True, capture_output=capture)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m orchestration.dbt_project <dbt command and flags>`; `prepare` (re)writes the
    manifest Dagster loads (transforms/target/manifest.json)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["prepare"]:
        print(f"dbt manifest: {prepare_manifest(force=True)}")
        return 0
    return run_dbt(args or ["--help"]).returncode


if __name__ == "__main__":
    raise SystemExit(main())
