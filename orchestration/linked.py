"""Linked zone asset: every current person-bearing record -> a stable person_id (group ``linked``).

Reads raw + the vault through governance (identifiers decrypted in memory only), links with the
saved model incrementally when a delivery is small, else re-trains (see linkage/lake.py), and
writes linked.person_record, person_lineage, review_queue and runs. Metadata: counts, timings,
the model file and its charts, and on generated data the measured linkage quality.
"""
import logging

import dagster as dg

from linkage.lake import link_lake
from orchestration.raw import raw_asset_key
from orchestration.resources import LakehouseResource
from sources.registry import AGENCIES
from tapestry.lakehouse import record_run_snapshot

log = logging.getLogger("tapestry")
PERSON_RECORD = dg.AssetKey(["linked", "person_record"])


class LinkConfig(dg.Config):
    full: bool = False  # re-train and re-link everything even when the new records are few


def _quality(evaluation: dict | None) -> dict:
    if not evaluation:
        return {}
    t = evaluation["tapestry"]
    return {
        "eval_records_with_truth": evaluation["records_with_truth"],
        "eval_pairwise_precision": t["pairwise_precision"],
        "eval_pairwise_recall": t["pairwise_recall"],
        "eval_pairwise_f1": t["pairwise_f1"],
        "eval_bcubed_f1": t["bcubed_f1"],
        "eval_recall_by_source_pair": dg.MetadataValue.json(t["recall_by_source_pair"]),
    }


@dg.asset(
    key=PERSON_RECORD,
    group_name="linked",
    kinds={"splink", "duckdb"},
    deps=[raw_asset_key(a) for a in AGENCIES if a.person_bearing],
    description="Every current person-bearing record (agency, entity, record_key) -> opaque, stable person_id "
                "with a match confidence; lineage of merges/splits, review queue of uncertain pairs, run log.",
)
def person_record(context: dg.AssetExecutionContext, config: LinkConfig, lakehouse: LakehouseResource):
    settings = lakehouse.settings()
    result = link_lake(settings, full=config.full, truth=settings.truth, progress=log.info)
    with lakehouse.connect() as con:
        snapshot = record_run_snapshot(con, context.run.run_id, context.job_name, PERSON_RECORD.to_user_string())
    m = result.metrics
    charts = result.run_dir / "charts"
    metadata = {
        "mode": m["mode"],
        "mode_reason": m["mode_reason"],
        "link_run_id": result.run_id,
        "records": m["records"],
        "new_records": m["new_records"],
        "persons": m["persons"],
        "records_no_longer_current": m["records_no_longer_current"],
        "review_pairs": m.get("review_pairs", 0),
        "seconds_total": m["seconds_total"],
        "metrics": dg.MetadataValue.json(m),
        "lake_snapshot_id": snapshot,
    }
    if result.model_path is not None and result.model_path.is_file():
        metadata["model"] = dg.MetadataValue.path(str(result.model_path))
    for name in ("match_weights", "m_u_parameters"):
        if (charts / f"{name}.html").is_file():
            metadata[f"chart_{name}"] = dg.MetadataValue.url((charts / f"{name}.html").as_uri())
    return dg.MaterializeResult(metadata=metadata | _quality(result.evaluation))


LINK_JOB = dg.define_asset_job("link", selection=dg.AssetSelection.assets(PERSON_RECORD),
                               description="Link every current person record into persons (linked zone).")
