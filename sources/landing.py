"""Land deliveries in the raw zone, exactly once, with nothing lost.

For each delivered file: read it (the agency's reader), check the header against the
contract, validate every row (sources/contract.py), then in ONE lakehouse transaction append
the valid rows to raw.<agency>__<entity> (typed, plus lineage), the rows that broke a hard
rule to quarantine.<agency> (with the original row and the reason) and a ledger row to
raw.deliveries. A killed load therefore leaves nothing of that delivery visible, and the
next run loads it again. Afterwards the file leaves the landing folder: to the archive when
loaded (or a duplicate), to the rejected area with a .reason.txt when it could not be read.

Exactly once: a file whose SHA-256 was already loaded is a duplicate (recorded, not loaded).
A file delivered again under the same name with different content supersedes the earlier
delivery: the earlier ledger row becomes 'superseded' (its rows stay, raw is append-only;
`raw.current_deliveries` lists the deliveries in force).
"""
from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from governance.split import VAULT_DDL, VAULT_TABLE, Splitter
from sources.reference.locator import Locator
from sources.agency import Agency, Entity
from sources.readers import ExtractError
from tapestry.config import Settings
from tapestry.lakehouse import set_commit_message

LEDGER = "raw.deliveries"
LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
    delivery_id VARCHAR NOT NULL,      -- <agency>/<file name>@<first 12 hex of SHA-256>
    agency VARCHAR NOT NULL,
    entity VARCHAR,
    file_name VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    file_bytes BIGINT,
    rows_read BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    rows_with_warnings BIGINT,
    status VARCHAR NOT NULL,           -- loaded | duplicate | superseded | rejected
    reason VARCHAR,
    superseded_by VARCHAR,
    received_at TIMESTAMP WITH TIME ZONE,
    loaded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    run_id VARCHAR
)
"""
CURRENT_VIEW = f"""
CREATE VIEW IF NOT EXISTS raw.current_deliveries AS
SELECT * FROM {LEDGER} WHERE status = 'loaded'
"""
QUARANTINE_COLUMNS = """(
    entity VARCHAR NOT NULL,
    _delivery_id VARCHAR NOT NULL,
    _file_name VARCHAR NOT NULL,
    _file_sha256 VARCHAR NOT NULL,
    _row_number BIGINT NOT NULL,
    rules VARCHAR[] NOT NULL,          -- rule ids, e.g. referral_date:type
    reason VARCHAR NOT NULL,           -- readable: column and rule, never the value
    original_row VARCHAR,              -- the row as delivered (JSON), only where it holds no person data
    original_row_key_id VARCHAR,       -- otherwise: encrypted under the delivery's data key
    original_row_nonce BLOB,
    original_row_ciphertext BLOB,
    _ingested_at TIMESTAMP WITH TIME ZONE NOT NULL
)"""


@dataclass(frozen=True)
class FileResult:
    agency: str
    file_name: str
    delivery_id: str
    entity: str | None
    table: str | None
    status: str  # loaded | duplicate | rejected | already_loaded
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    sha256: str
    reason: str | None = None
    rule_counts: dict | None = None  # rule id -> rows breaking it (hard and soft)
    superseded: str | None = None  # delivery id this one replaced


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def delivery_id(agency: str, file_name: str, sha: str) -> str:
    return f"{agency}/{file_name}@{sha[:12]}"


def ensure_tables(con: duckdb.DuckDBPyConnection, agency: Agency) -> None:
    con.execute(LEDGER_DDL)
    con.execute(CURRENT_VIEW)
    con.execute(VAULT_DDL)
    con.execute(f"CREATE TABLE IF NOT EXISTS {agency.quarantine_table} {QUARANTINE_COLUMNS}")
    for entity in agency.entities:
        con.execute(entity.contract.raw_ddl())
        _add_new_columns(con, entity.contract)


def _add_new_columns(con: duckdb.DuckDBPyConnection, contract) -> None:
    """Additive schema evolution: columns a newer contract or policy adds (e.g. a coarse
    attribute) are added to an existing raw table, null for rows loaded before."""
    schema, table = contract.table.split(".")
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'lake' AND table_schema = ? "
        "AND table_name = ?", [schema, table]).fetchall()}
    for name, kind in contract.coarse_columns().items():
        if name not in have:
            con.execute(f'ALTER TABLE {contract.table} ADD COLUMN "{name}" {kind}')


def _ledger(con: duckdb.DuckDBPyConnection, agency: str) -> pl.DataFrame:
    return con.sql(
        f"SELECT delivery_id, file_name, file_sha256, status FROM {LEDGER} WHERE agency = ?", params=[agency]
    ).pl()


def land_agency(
    con: duckdb.DuckDBPyConnection,
    agency: Agency,
    settings: Settings,
    run_id: str,
    only: set[str] | None = None,
    retry_rejected: bool = False,
    inspect: Callable[[Entity, pl.DataFrame, str], None] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> list[FileResult]:
    """Land the agency's waiting files (or only those named in `only`; with `retry_rejected`,
    those files are taken back from the rejected area too). `inspect(entity, delivered, delivery_id)`
    sees each readable delivery as delivered (the Great Expectations suite runs there)."""
    ensure_tables(con, agency)
    splitter = Splitter.open(settings)
    locator = Locator.from_lake(con)
    if locator is None and any(e.contract.coarse_columns().keys() & {"lsoa_code", "residence_lsoa_code"}
                               for e in agency.entities):
        log(f"{agency.name}: no reference geography loaded (reference.lsoa): LSOA attributes stay empty")
    files = [p for p in agency.deliveries(settings.landing) if only is None or p.name in only]
    if only and retry_rejected:
        waiting = {p.name for p in files}
        for name in sorted(only - waiting):
            files += _take_back_rejected(settings, splitter, agency, name)
    log(f"{agency.name}: {len(files)} file(s) to load from {settings.landing / agency.name}")
    results = []
    for path in files:
        result = land_file(con, agency, path, sha256_of(path), run_id, splitter, inspect, locator)
        _move_out(settings, splitter, agency, path, result)
        log(_describe(result))
        results.append(result)
    return results


def _describe(r: FileResult) -> str:
    if r.status == "loaded":
        extra = f", {r.rows_quarantined:,} quarantined" if r.rows_quarantined else ""
        extra += f", supersedes {r.superseded}" if r.superseded else ""
        return f"{r.agency}/{r.file_name}: {r.rows_loaded:,} rows -> {r.table}{extra}"
    if r.status == "already_loaded":
        return f"{r.agency}/{r.file_name}: already loaded (moved to the archive)"
    return f"{r.agency}/{r.file_name}: {r.status.upper()} ({r.reason})"


def _move_out(settings: Settings, splitter: Splitter, agency: Agency, path: Path, result: FileResult) -> None:
    """The file leaves landing once its outcome is committed (so a crash before this only
    means it is seen again and recognised as already loaded). Delivered files hold
    identifiers in clear: they are kept only encrypted under the delivery's data key."""
    if result.status == "rejected":
        target = settings.rejected_dir / agency.name / f"{path.name}.enc"
        Path(settings.rejected_dir / agency.name / f"{path.name}.reason.txt").parent.mkdir(parents=True, exist_ok=True)
        Path(settings.rejected_dir / agency.name / f"{path.name}.reason.txt").write_text(
            f"{result.reason}\ndelivery: {result.delivery_id}\n", encoding="utf-8")
    else:
        target = settings.archive_dir / agency.name / result.delivery_id.split("@")[1] / f"{path.name}.enc"
    splitter.encrypt_file(path, target, result.delivery_id)
    path.unlink()


def _take_back_rejected(settings: Settings, splitter: Splitter, agency: Agency, name: str) -> list[Path]:
    """Re-materialising a rejected delivery: decrypt it back into landing (plain files put in
    the rejected area by an operator are taken as they are)."""
    folder = settings.rejected_dir / agency.name
    target = settings.landing / agency.name / name
    reason = folder / f"{name}.reason.txt"
    sealed, plain = folder / f"{name}.enc", folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if plain.is_file():
        shutil.move(plain, target)
    elif sealed.is_file():
        did = next(line.split(": ", 1)[1] for line in reason.read_text().splitlines() if line.startswith("delivery: "))
        target.write_bytes(splitter.decrypt_file(sealed, did))
        sealed.unlink()
    else:
        return []
    reason.unlink(missing_ok=True)
    return [target]


def land_file(con: duckdb.DuckDBPyConnection, agency: Agency, path: Path, sha: str, run_id: str,
              splitter: Splitter, inspect: Callable[[Entity, pl.DataFrame, str], None] | None = None,
              locator: Locator | None = None) -> FileResult:
    did = delivery_id(agency.name, path.name, sha)
    stat = path.stat()
    base = dict(delivery_id=did, agency=agency.name, file_name=path.name, file_sha256=sha, file_bytes=stat.st_size,
                received_at=datetime.fromtimestamp(stat.st_mtime, timezone.utc), run_id=run_id)
    ledger = _ledger(con, agency.name)
    if ledger.filter((pl.col("delivery_id") == did) & (pl.col("status") != "rejected")).height:
        return FileResult(agency.name, path.name, did, None, None, "already_loaded", 0, 0, 0, sha)
    entity = agency.entity_for(path)
    if ledger.filter((pl.col("file_sha256") == sha) & (pl.col("status") == "loaded")).height:
        first = ledger.filter((pl.col("file_sha256") == sha) & (pl.col("status") == "loaded"))["delivery_id"][0]
        reason = f"same content (SHA-256) as delivery {first}"
        _commit_ledger(con, run_id, base, entity, "duplicate", reason=reason)
        return FileResult(agency.name, path.name, did, entity.name if entity else None, None, "duplicate", 0, 0, 0,
                          sha, reason)
    if entity is None:
        expected = ", ".join(e.file_pattern for e in agency.entities)
        return _reject(con, run_id, base, None, f"{path.name}: the name matches no {agency.name} extract "
                                                f"(expected {expected})")
    try:
        delivered = entity.read(path)
        entity.contract.check_header(path, delivered.columns)
    except ExtractError as exc:
        return _reject(con, run_id, base, entity, str(exc))
    if inspect is not None:
        inspect(entity, delivered, did)
    checked = entity.contract.validate(delivered)
    earlier = ledger.filter((pl.col("file_name") == path.name) & (pl.col("status") == "loaded"))["delivery_id"]
    superseded = earlier[0] if earlier.len() else None
    now = datetime.now(timezone.utc)
    lineage = [pl.lit(did).alias("_delivery_id"), pl.lit(path.name).alias("_file_name"), pl.lit(sha).alias("_file_sha256"),
               pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("_ingested_at")]
    split = splitter.split(entity.contract, checked.valid, did, locator)
    valid = split.content.with_columns(lineage)
    quarantined = checked.quarantined.with_columns(pl.lit(entity.name).alias("entity"), *lineage)
    if entity.contract.person_bearing and quarantined.height:
        sealed = splitter.encrypt_rows(quarantined["original_row"], quarantined["_row_number"], did)
        quarantined = quarantined.drop("original_row").with_columns(
            sealed["key_id"].alias("original_row_key_id"), sealed["nonce"].alias("original_row_nonce"),
            sealed["ciphertext"].alias("original_row_ciphertext"))
    warned = int(valid.select(pl.col("_warnings").list.len().gt(0).sum()).item()) if valid.height else 0
    con.execute("BEGIN")
    try:
        set_commit_message(con, f"run {run_id}: land {did}")
        _append(con, entity.contract.table, valid)
        if split.vault is not None:
            _append(con, VAULT_TABLE, split.vault)
        _append(con, agency.quarantine_table, quarantined)
        if superseded:
            con.execute(f"UPDATE {LEDGER} SET status = 'superseded', superseded_by = ? WHERE delivery_id = ?",
                        [did, superseded])
        _insert_ledger(con, base, entity.name, "loaded", checked.rows_read, valid.height, quarantined.height, warned,
                       reason=_extra_columns_note(checked.extra_columns))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return FileResult(agency.name, path.name, did, entity.name, entity.contract.table, "loaded", checked.rows_read,
                      valid.height, quarantined.height, sha, None, checked.rule_counts, superseded)


def _extra_columns_note(extra: tuple[str, ...]) -> str | None:
    return f"columns not in the contract were not loaded: {', '.join(extra)}" if extra else None


def _append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    if not frame.height:
        return
    con.register("_incoming", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
    finally:
        con.unregister("_incoming")


def _insert_ledger(con, base: dict, entity: str | None, status: str, rows_read=0, rows_loaded=0, rows_quarantined=0,
                   rows_warned=0, reason: str | None = None) -> None:
    con.execute(
        f"INSERT INTO {LEDGER} (delivery_id, agency, entity, file_name, file_sha256, file_bytes, rows_read, "
        "rows_loaded, rows_quarantined, rows_with_warnings, status, reason, received_at, loaded_at, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [base["delivery_id"], base["agency"], entity, base["file_name"], base["file_sha256"], base["file_bytes"],
         rows_read, rows_loaded, rows_quarantined, rows_warned, status, reason, base["received_at"],
         datetime.now(timezone.utc), base["run_id"]],
    )


def _commit_ledger(con, run_id: str, base: dict, entity: Entity | None, status: str, reason: str) -> None:
    con.execute("BEGIN")
    try:
        set_commit_message(con, f"run {run_id}: {status} {base['delivery_id']}")
        _insert_ledger(con, base, entity.name if entity else None, status, reason=reason)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _reject(con, run_id: str, base: dict, entity: Entity | None, reason: str) -> FileResult:
    _commit_ledger(con, run_id, base, entity, "rejected", reason)
    return FileResult(base["agency"], base["file_name"], base["delivery_id"], entity.name if entity else None, None,
                      "rejected", 0, 0, 0, base["file_sha256"], reason)


def conservation(con: duckdb.DuckDBPyConnection, agency: Agency, delivery_ids: list[str]) -> pl.DataFrame:
    """Per loaded delivery: rows read (ledger) against rows found in raw + quarantine, counted
    afresh from the tables (not from what the loader believed it wrote)."""
    if not delivery_ids:
        return pl.DataFrame(schema={"delivery_id": pl.String, "rows_read": pl.Int64, "in_raw": pl.Int64,
                                    "in_quarantine": pl.Int64, "holds": pl.Boolean})
    con.register("_ids", pl.DataFrame({"delivery_id": delivery_ids}).to_arrow())
    try:
        raw_counts = " UNION ALL ".join(
            f"SELECT _delivery_id, count(*) n FROM {e.contract.table} WHERE _delivery_id IN (SELECT delivery_id FROM _ids) "
            "GROUP BY ALL" for e in agency.entities)
        return con.sql(f"""
            WITH raw_rows AS (SELECT _delivery_id, sum(n) n FROM ({raw_counts}) GROUP BY ALL),
                 q_rows AS (SELECT _delivery_id, count(*) n FROM {agency.quarantine_table}
                            WHERE _delivery_id IN (SELECT delivery_id FROM _ids) GROUP BY ALL)
            SELECT d.delivery_id, d.rows_read::BIGINT rows_read, coalesce(r.n, 0)::BIGINT in_raw,
                   coalesce(q.n, 0)::BIGINT in_quarantine, d.rows_read = coalesce(r.n, 0) + coalesce(q.n, 0) holds
            FROM {LEDGER} d LEFT JOIN raw_rows r ON r._delivery_id = d.delivery_id
            LEFT JOIN q_rows q ON q._delivery_id = d.delivery_id
            WHERE d.delivery_id IN (SELECT delivery_id FROM _ids) AND d.status IN ('loaded', 'superseded')
            ORDER BY 1""").pl()
    finally:
        con.unregister("_ids")
