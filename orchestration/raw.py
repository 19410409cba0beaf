"""Raw zone assets: one per agency, partitioned by delivery (group ``raw``), with asset checks:
the contract's Great Expectations suite and row conservation (read = raw + quarantine)."""
import logging
import warnings
from collections import defaultdict

import dagster as dg

from orchestration.deliveries import PARTITIONS
from orchestration.resources import LakehouseResource
from sources.agency import Agency
from sources.expectations import ExpectationBatches
from sources.landing import conservation, land_agency
from sources.registry import AGENCIES
from tapestry.lakehouse import record_run_snapshot

log = logging.getLogger("tapestry")
# single-run backfills are "beta" in Dagster 1.13; we rely on them knowingly (one run per batch of deliveries)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def raw_asset_key(agency: Agency) -> dg.AssetKey:
    return dg.AssetKey(["raw", agency.name])


def _expectation_summary(batches: ExpectationBatches, results) -> tuple[bool, dict]:
    totals: dict[str, dict] = defaultdict(lambda: {"passed": 0, "failed": 0, "unexpected_rows": 0, "rows": 0})
    for entity, summaries in batches.summaries.items():
        for s in summaries:
            t = totals[f"{entity}: {s['expectation']}({s['column']})"]
            t["passed" if s["success"] else "failed"] += 1
            t["unexpected_rows"] += s["unexpected"]
            t["rows"] += s["checked"]
    failed = {k: v for k, v in totals.items() if v["failed"]}
    loaded = [r for r in results if r.status == "loaded"]
    return not failed, {
        "deliveries_checked": batches.deliveries,
        "rows_checked": batches.rows,
        "expectations": len(totals),
        "expectations_failed": len(failed),
        "failures": dg.MetadataValue.json(failed),
        # per delivery, the contract's own rule counts (rule id -> rows), hard and soft
        "per_delivery": dg.MetadataValue.json(
            {r.delivery_id: {k: v for k, v in (r.rule_counts or {}).items() if v} for r in loaded}),
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
        expectations = ExpectationBatches()
        with lakehouse.connect() as con:
            results = land_agency(con, agency, settings, context.run.run_id, only=names,
                                  retry_rejected=len(names) == 1, inspect=expectations.add, log=log.info)
            loaded = [r for r in results if r.status == "loaded"]
            conserved = conservation(con, agency, [r.delivery_id for r in loaded])
            snapshot = record_run_snapshot(con, context.run.run_id, context.job_name, key.to_user_string())
        expectations.flush()
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
        passed, metadata = _expectation_summary(expectations, results)
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
