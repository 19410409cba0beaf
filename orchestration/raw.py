"""Raw zone assets: one per agency, partitioned by delivery (group ``raw``), with asset checks:
the contract's Great Expectations suite and row conservation (read = raw + quarantine)."""
import logging
from collections import defaultdict

import dagster as dg

from orchestration.deliveries import PARTITIONS
from orchestration.resources import LakehouseResource
from sources.agency import Agency
from sources.expectations import validate_delivery
from sources.landing import conservation, land_agency
from sources.registry import AGENCIES
from tapestry.lakehouse import record_run_snapshot

log = logging.getLogger("tapestry")


def raw_asset_key(agency: Agency) -> dg.AssetKey:
    return dg.AssetKey(["raw", agency.name])


def _expectation_summary(per_delivery: dict[str, list[dict]]) -> tuple[bool, dict]:
    totals: dict[str, dict] = defaultdict(lambda: {"failed_deliveries": 0, "unexpected_rows": 0})
    for summaries in per_delivery.values():
        for s in summaries:
            key = f"{s['expectation']}({s['column']})"
            totals[key]["failed_deliveries"] += 0 if s["success"] else 1
            totals[key]["unexpected_rows"] += s["unexpected"]
    failed = {k: v for k, v in totals.items() if v["failed_deliveries"]}
    return not failed, {
        "deliveries_checked": len(per_delivery),
        "expectations": len(totals),
        "expectations_failed": len(failed),
        "failures": dg.MetadataValue.json(failed),
        "per_delivery": dg.MetadataValue.json(
            {d: {"passed": sum(s["success"] for s in ss), "failed": sum(not s["success"] for s in ss)}
             for d, ss in per_delivery.items()}),
    }


def _build(agency: Agency) -> dg.AssetsDefinition:
    key = raw_asset_key(agency)
    tables = ", ".join(e.contract.table for e in agency.entities)

    @dg.asset(
        key=key,
        group_name="raw",
        kinds={"duckdb", "parquet"},
        partitions_def=PARTITIONS[agency.name],
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec("contract_expectations", asset=key,
                              description="The contract's Great Expectations suite on every delivery (warn)."),
            dg.AssetCheckSpec("rows_conserved", asset=key, blocking=True,
                              description="Every delivered row is in raw or in quarantine."),
        ],
        description=f"{agency.title}: each delivery (partition = file name) typed by its contract into "
        f"{tables}; rows breaking a hard rule to {agency.quarantine_table}; one ledger row in raw.deliveries.",
    )
    def _raw(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        settings = lakehouse.settings()
        names = set(context.partition_keys)
        expectations: dict[str, list[dict]] = {}

        def inspect(entity, delivered, delivery_id):
            expectations[delivery_id] = validate_delivery(entity.contract, delivered)

        with lakehouse.connect() as con:
            results = land_agency(con, agency, settings, context.run.run_id, only=names,
                                  retry_rejected=len(names) == 1, inspect=inspect, log=log.info)
            loaded = [r for r in results if r.status == "loaded"]
            conserved = conservation(con, agency, [r.delivery_id for r in loaded])
            snapshot = record_run_snapshot(con, context.run.run_id, context.job_name, key.to_user_string())
        count = lambda status: sum(r.status == status for r in results)  # noqa: E731
        # Metadata carries counts, file names and rule ids only: never row content.
        yield dg.MaterializeResult(metadata={
            "files_loaded": count("loaded"),
            "rows_loaded": sum(r.rows_loaded for r in loaded),
            "rows_quarantined": sum(r.rows_quarantined for r in loaded),
            "files_duplicate": count("duplicate"),
            "files_rejected": count("rejected"),
            "rejected_files": dg.MetadataValue.json([{"file": r.file_name, "reason": r.reason}
                                                     for r in results if r.status == "rejected"]),
            "superseded": dg.MetadataValue.json({r.delivery_id: r.superseded for r in loaded if r.superseded}),
            "lake_snapshot_id": snapshot,
        })
        passed, metadata = _expectation_summary(expectations)
        yield dg.AssetCheckResult(check_name="contract_expectations", passed=passed,
                                  severity=dg.AssetCheckSeverity.WARN, metadata=metadata)
        broken = conserved.filter(~conserved["holds"])
        yield dg.AssetCheckResult(check_name="rows_conserved", passed=broken.height == 0, metadata={
            "deliveries": conserved.height,
            "rows_read": int(conserved["rows_read"].sum() or 0),
            "rows_in_raw": int(conserved["in_raw"].sum() or 0),
            "rows_in_quarantine": int(conserved["in_quarantine"].sum() or 0),
            "broken": dg.MetadataValue.json(broken.to_dicts()),
        })
        if broken.height:
            raise dg.Failure(f"rows not conserved for {broken.height} delivery(ies): "
                             + ", ".join(broken["delivery_id"].to_list()))

    _raw.__name__ = f"raw_{agency.name}"
    return _raw


RAW_ASSETS = [_build(a) for a in AGENCIES]
