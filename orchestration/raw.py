"""Raw zone assets: one per agency, landing that agency's new files (group ``raw``)."""
import logging

import dagster as dg

from orchestration.resources import LakehouseResource
from sources.agency import Agency
from sources.landing import land_agency
from sources.registry import AGENCIES
from tapestry.lakehouse import record_run_snapshot

log = logging.getLogger("tapestry")


def raw_asset_key(agency: Agency) -> dg.AssetKey:
    return dg.AssetKey(["raw", agency.name])


def _build(agency: Agency) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_asset_key(agency),
        group_name="raw",
        kinds={"duckdb", "parquet"},
        description=f"{agency.title}: every new file in landing/{agency.name}/ appended to "
        + ", ".join(agency.table(e) for e in agency.entities)
        + " with lineage columns; one row per file in raw.deliveries.",
    )
    def _raw(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        settings = lakehouse.settings()
        with lakehouse.connect() as con:
            results = land_agency(con, agency, settings.landing, context.run.run_id, log=log.info)
            snapshot = record_run_snapshot(con, context.run.run_id, context.job_name, context.asset_key.to_user_string())
        by_status = {s: [r for r in results if r.status == s] for s in ("loaded", "duplicate", "rejected")}
        # Metadata carries counts and file names only: never row content.
        return dg.MaterializeResult(
            metadata={
                "files_loaded": len(by_status["loaded"]),
                "rows_loaded": sum(r.rows for r in by_status["loaded"]),
                "files_duplicate": len(by_status["duplicate"]),
                "files_rejected": len(by_status["rejected"]),
                "rejected_files": dg.MetadataValue.json(
                    [{"file": r.file_name, "reason": r.reason} for r in by_status["rejected"]]
                ),
                "lake_snapshot_id": snapshot,
            }
        )

    _raw.__name__ = f"raw_{agency.name}"
    return _raw


RAW_ASSETS = [_build(a) for a in AGENCIES]
