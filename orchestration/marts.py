"""Published marts for commissioners (group ``marts``): disclosure-controlled area risk, its
composite index and cohort overlap, from the exact counts dbt builds in the staging zone
(see marts/publish.py). The person-level MASH marts are dbt models (transforms/)."""
import dagster as dg

from marts.publish import publish
from orchestration.resources import LakehouseResource
from tapestry.lakehouse import record_run_snapshot

PUBLISHED = [dg.AssetKey(["marts", name]) for name in ("area_risk", "area_risk_index", "cohort_overlap")]


@dg.multi_asset(
    specs=[dg.AssetSpec(key, group_name="marts", kinds={"duckdb"},
                        deps=[dg.AssetKey(["staging", "int_area_measures"]), dg.AssetKey(["staging", "int_cohort_counts"])],
                        description="Disclosure-controlled (counts 1-7 suppressed, rounded to 5, secondary "
                                    "suppression); what commissioners receive.")
           for key in PUBLISHED],
    name="published_area_marts",
)
def published_area_marts(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    with lakehouse.connect() as con:
        summary = publish(con)
        snapshot = None
        for key in PUBLISHED:
            snapshot = record_run_snapshot(con, context.run.run_id, context.job_name, key.to_user_string())
    for key in PUBLISHED:
        yield dg.MaterializeResult(asset_key=key, metadata={
            "summary": dg.MetadataValue.json(summary), "lake_snapshot_id": snapshot})


PUBLISH_JOB = dg.define_asset_job("publish_marts", selection=dg.AssetSelection.assets(*PUBLISHED),
                                  description="Disclosure control over the exact area counts -> published marts.")
