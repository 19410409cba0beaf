"""Retention by crypto-shredding: `tapestry retention apply [--as-of DATE]`.

For every delivery older than its agency's retention period (governance/policy.yaml):
1. destroy its data key (the vault rows, the quarantined originals and the archived file
   become unreadable at once, wherever copies of them are);
2. remove its person-level rows from the lakehouse (raw content, vault ciphertexts,
   quarantine) and its encrypted archive file, mark the ledger row `expired`;
3. audit each delivery shredded.
Deleted rows would live on in older DuckLake snapshots, so the run then expires the snapshots
before it and deletes the files only they used: time travel does not reach back past a
retention run (recorded in the run's audit entry).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import polars as pl

from governance import audit
from governance.keys import Keyring
from governance.policy import Policy
from sources.registry import BY_NAME
from tapestry import lakehouse
from tapestry.config import Settings


@dataclass
class RetentionReport:
    as_of: date
    expired: list[str] = field(default_factory=list)  # delivery ids shredded by this run
    rows_removed: int = 0
    linked_removed: int = 0  # linked.person_record rows of removed records
    dry_run: bool = False


def expired_deliveries(con, policy: Policy, as_of: date) -> list[tuple[str, str]]:
    """(delivery_id, agency) past retention on `as_of`, by the date each delivery was received."""
    rows = con.execute("SELECT delivery_id, agency, received_at FROM raw.deliveries "
                       "WHERE status <> 'expired' ORDER BY received_at").fetchall()
    return [(did, agency) for did, agency, received in rows
            if received is not None and policy.retention(agency).expires(received.date()) <= as_of]


def apply_retention(settings: Settings, as_of: date | None = None, actor: str = "tapestry-retention",
                    dry_run: bool = False, policy: Policy | None = None) -> RetentionReport:
    as_of = as_of or datetime.now(timezone.utc).date()
    policy = policy or Policy.load()
    report = RetentionReport(as_of, dry_run=dry_run)
    with lakehouse.connect(settings) as con:
        expired = expired_deliveries(con, policy, as_of)
        report.expired = [did for did, _ in expired]
        if dry_run or not expired:
            return report
        keyring = Keyring.open(settings)
        for did, agency in expired:
            keyring.shred(did, reason=f"retention ({policy.retention(agency)}) as of {as_of.isoformat()}")
        # Which tables exist, asked before the transaction: catalog look-ups inside a DuckLake
        # transaction on a SQLite catalog wait on the transaction's own lock.
        existing = lakehouse.tables(con)
        con.execute("BEGIN")
        try:
            lakehouse.set_commit_message(con, f"retention as of {as_of.isoformat()}: {len(expired)} deliveries")
            con.register("_expired", pl.DataFrame({"delivery_id": report.expired}).to_arrow())
            for name in {agency for _, agency in expired}:
                agency = BY_NAME[name]
                for entity in agency.entities:
                    report.rows_removed += _delete(con, existing, entity.contract.table, "_delivery_id")
                _delete(con, existing, agency.quarantine_table, "_delivery_id")
            _delete(con, existing, "vault.identifiers", "delivery_id")
            report.linked_removed = _delete_unlinked(con, existing, {agency for _, agency in expired})
            con.execute("UPDATE raw.deliveries SET status = 'expired', reason = 'retention: data key destroyed "
                        f"on {as_of.isoformat()}' WHERE delivery_id IN (SELECT delivery_id FROM _expired)")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        # Old snapshots still reference the deleted rows: expire them and delete their files.
        con.execute(f"CALL ducklake_expire_snapshots('{lakehouse.ALIAS}', older_than => now())")
        con.execute(f"CALL ducklake_cleanup_old_files('{lakehouse.ALIAS}', cleanup_all => true)")
        for did, agency in expired:
            shutil.rmtree(settings.archive_dir / agency / did.split("@")[1], ignore_errors=True)
            audit.record(con, actor=actor, action="retention.shred", outcome="done", role="data_engineer",
                         purpose="pipeline_operations", object=did, settings=settings,
                         row_count=None)
    return report


def _delete(con, existing: set[str], table: str, column: str) -> int:
    if table not in existing:
        return 0
    return con.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT delivery_id FROM _expired)").fetchone()[0]


def _delete_unlinked(con, existing: set[str], agencies: set[str]) -> int:
    """Person-level linkage rows of records no longer in raw (marts re-derive on their next build)."""
    for table in ("linked.node_features", "linked.node_edge"):
        if table in existing:
            # linkage's stored state (sealed features, scored pairs): some derive from removed
            # records (or took their details), so all goes; the next link run is a full one
            con.execute(f"DELETE FROM {table}")
    if "linked.person_record" not in existing:
        return 0
    removed = 0
    for name in agencies:
        for entity in BY_NAME[name].entities:
            if entity.contract.table not in existing or not entity.contract.person_bearing:
                continue
            gone = (f"agency = '{name}' AND entity = '{entity.name}' AND record_key NOT IN "
                    f"(SELECT record_key FROM {entity.contract.table} WHERE record_key IS NOT NULL)")
            removed += con.execute(f"DELETE FROM linked.person_record WHERE {gone}").fetchone()[0]
            if "linked.review_queue" in existing:
                for side in ("l", "r"):
                    con.execute("DELETE FROM linked.review_queue WHERE "
                                + gone.replace("agency =", f"agency_{side} =").replace("entity =", f"entity_{side} =")
                                .replace("record_key NOT IN", f"record_key_{side} NOT IN"))
    # person-level tables derived from them (dbt rebuilds them whole on its next run; until then
    # they must not keep what retention removed)
    for name in agencies:
        keys = " UNION ALL ".join(f"SELECT record_key FROM {e.contract.table}" for e in BY_NAME[name].entities
                                  if e.contract.table in existing and e.contract.person_bearing) or "SELECT NULL"
        for table in ("staging.int_events", "marts.mash_chronology", "marts.mash_indicators"):
            if table in existing:
                con.execute(f"DELETE FROM {table} WHERE agency = '{name}' AND record_key IS NOT NULL "
                            f"AND record_key NOT IN ({keys})")
    for table in ("staging.int_person_profile", "marts.mash_person"):
        if table in existing:
            con.execute(f"DELETE FROM {table} WHERE person_id NOT IN (SELECT person_id FROM linked.person_record)")
    return removed
