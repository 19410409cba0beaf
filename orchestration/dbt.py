"""The dbt project (transforms/) as Dagster assets: each model and seed an asset in the zone it
lands in (``staging/<name>``, group ``staging``), each dbt test an asset check, the dbt sources
the raw assets (``raw/<agency>``) and the linkage asset (``linked/person_record``) they read.

One ``dbt build`` per run (after making sure every agency's raw tables exist, empty before its
first delivery), in dbt_environment (see orchestration/dbt_project.py), holding the
lakehouse writer lock while dbt writes through its own connection; then the run's lakehouse
snapshot is recorded in audit.run_snapshots for every model it materialised. A failed dbt test
is a failed asset check (severity from the test's config) and fails the run.
"""

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestration.dbt_project import dbt_environment, ensure_raw_tables, prepare_manifest, transforms_project
from orchestration.resources import LakehouseResource
from tapestry.lakehouse import record_run_snapshot, writer_lock

# dagster-dbt reads the manifest at import: prepared by `make` and the test session; this only
# parses when it is missing (a fresh clone) or older than the project's files (an edited model,
# e.g. under `dagster dev`, re-parsed on the next reload).
prepare_manifest()


class TapestryDbtTranslator(DagsterDbtTranslator):
    """Models and seeds are keyed by zone: ``staging/int_events``, grouped by zone; sources take
    the asset key in their ``meta.dagster.asset_key`` (models/staging/_sources.yml): all of an
    agency's raw tables are one asset, ``raw/<agency>``."""

    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta = dbt_resource_props.get("meta") or dbt_resource_props.get("config", {}).get("meta") or {}
        if dbt_resource_props["resource_type"] == "source" or meta.get("dagster", {}).get("asset_key"):
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_group_name(dbt_resource_props)
        return dbt_resource_props["schema"]


DBT_RESOURCE = DbtCliResource(project_dir=transforms_project)


@dbt_assets(manifest=transforms_project.manifest_path, project=transforms_project,
            dagster_dbt_translator=TapestryDbtTranslator(), name="transforms")
def transforms_dbt_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                          lakehouse: LakehouseResource) -> Iterator:
    settings = lakehouse.settings()
    # dbt's run artefacts and logs for this run go under TAPESTRY_HOME, not the checkout.
    target = settings.home / "dbt" / "target" / f"{context.run.run_id[:8]}-{uuid.uuid4().hex[:6]}"
    materialised: list[dg.AssetKey] = []
    ensure_raw_tables(settings)
    with dbt_environment(settings), writer_lock(settings):
        invocation = dbt.cli(["build"], context=context, target_path=target, raise_on_error=False)
        for event in invocation.stream():
            if isinstance(event, dg.Output):
                materialised.append(context.asset_key_for_output(event.output_name))
            elif isinstance(event, (dg.AssetMaterialization, dg.MaterializeResult)) and event.asset_key:
                materialised.append(event.asset_key)
            yield event
        if materialised:  # still under the lock: no other writer's snapshot can come in between
            with lakehouse.connect() as con:
                # one transaction: every model of this run records the same (dbt's last) snapshot
                con.execute("BEGIN")
                for key in materialised:
                    record_run_snapshot(con, context.run.run_id, context.job_name, key.to_user_string())
                con.execute("COMMIT")
    if not invocation.is_successful():
        results = invocation.get_artifact("run_results.json").get("results", [])
        failed = sorted(r["unique_id"] for r in results if r.get("status") in ("error", "fail"))
        raise dg.Failure(f"dbt build failed: {len(failed)} node(s) failed or errored",
                         metadata={"failed": dg.MetadataValue.json(failed)})


TRANSFORM_JOB = dg.define_asset_job(
    "transform", selection=dg.AssetSelection.assets(transforms_dbt_assets),
    description="dbt build of transforms/: staging views, seeds and int_events, with their tests as asset checks.")
