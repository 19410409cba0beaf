"""Land delivered files in the raw zone: one file, one transaction, one ledger row.

Raw keeps every column exactly as delivered (text) plus lineage: _delivery_id, _file_name,
_file_sha256, _row_number (1-based data row), _ingested_at. A file whose SHA-256 is already
loaded is recorded as a duplicate and not loaded again. A file that cannot be read is recorded
as rejected with the reason (file, line, problem) and the other files still load.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from sources.agency import Agency
from sources.readers import ExtractError
from tapestry.lakehouse import set_commit_message

LEDGER = "raw.deliveries"
LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
    delivery_id VARCHAR NOT NULL,
    agency VARCHAR NOT NULL,
    entity VARCHAR,
    file_name VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    file_bytes BIGINT,
    rows_read BIGINT,
    rows_loaded BIGINT,
    status VARCHAR NOT NULL,      -- loaded | duplicate | rejected
    reason VARCHAR,
    received_at TIMESTAMP WITH TIME ZONE,
    loaded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    run_id VARCHAR
)
"""


@dataclass(frozen=True)
class FileResult:
    agency: str
    file_name: str
    entity: str | None
    table: str | None
    status: str
    rows: int
    sha256: str
    reason: str | None = None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute(LEDGER_DDL)
    except duckdb.Error:
        # Another process created it concurrently; it exists now.
        con.execute(f"SELECT 1 FROM {LEDGER} LIMIT 0")


def _ledger_state(con: duckdb.DuckDBPyConnection, agency: str) -> tuple[set[str], set[tuple[str, str]]]:
    """(SHA-256 of loaded files, (file name, SHA-256) of every file already recorded)."""
    rows = con.execute(f"SELECT file_name, file_sha256, status FROM {LEDGER} WHERE agency = ?", [agency]).fetchall()
    return {sha for _, sha, status in rows if status == "loaded"}, {(name, sha) for name, sha, _ in rows}


def land_agency(
    con: duckdb.DuckDBPyConnection,
    agency: Agency,
    landing: Path,
    run_id: str,
    log: Callable[[str], None] = lambda _: None,
) -> list[FileResult]:
    ensure_ledger(con)
    loaded, recorded = _ledger_state(con, agency.name)
    results = []
    # A file already recorded under the same name and content is not a new delivery.
    hashed = ((p, sha256_of(p)) for p in agency.deliveries(landing))
    files = [(p, sha) for p, sha in hashed if (p.name, sha) not in recorded]
    log(f"{agency.name}: {len(files)} new file(s) in {Path(landing) / agency.name}")
    for path, sha in files:
        result = land_file(con, agency, path, sha, run_id, loaded)
        if result.status == "loaded":
            loaded.add(result.sha256)
        log(_describe(result))
        results.append(result)
    return results


def _describe(r: FileResult) -> str:
    if r.status == "loaded":
        return f"{r.agency}/{r.file_name}: {r.rows:,} rows -> {r.table}"
    return f"{r.agency}/{r.file_name}: {r.status.upper()} ({r.reason})"


def land_file(
    con: duckdb.DuckDBPyConnection, agency: Agency, path: Path, sha: str, run_id: str, loaded_hashes: set[str]
) -> FileResult:
    ledger = dict(
        delivery_id=f"{agency.name}:{sha[:16]}",
        agency=agency.name,
        file_name=path.name,
        file_sha256=sha,
        file_bytes=path.stat().st_size,
        received_at=datetime.fromtimestamp(path.stat().st_mtime, timezone.utc),
        run_id=run_id,
    )
    entity = agency.entity_for(path)
    if sha in loaded_hashes:
        return _record(con, ledger, agency, None, "duplicate", 0, 0, "same SHA-256 as a file already loaded")
    if entity is None:
        expected = ", ".join(f"{e.name}_<tag>{e.suffix}" for e in agency.entities)
        return _record(con, ledger, agency, None, "rejected", 0, 0, f"file name matches no {agency.name} extract (expected {expected})")
    try:
        frame = entity.read(path)
    except ExtractError as exc:
        return _record(con, ledger, agency, entity, "rejected", 0, 0, str(exc))
    table = agency.table(entity)
    now = datetime.now(timezone.utc)
    frame = frame.with_columns(
        pl.lit(ledger["delivery_id"]).alias("_delivery_id"),
        pl.lit(path.name).alias("_file_name"),
        pl.lit(sha).alias("_file_sha256"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("_row_number"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("_ingested_at"),
    )
    con.execute("BEGIN")
    try:
        set_commit_message(con, f"run {run_id}: land {agency.name}/{path.name}")
        _append(con, table, frame)
        _insert_ledger(con, ledger, entity.name, "loaded", frame.height, frame.height, None)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return FileResult(agency.name, path.name, entity.name, table, "loaded", frame.height, sha)


def _append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Append by column name; columns new to the table are added (as delivered: text)."""
    con.register("_incoming", frame.to_arrow())
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _incoming LIMIT 0")
        schema, name = table.split(".")
        existing = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'lake' "
            "AND table_schema = ? AND table_name = ?", [schema, name]).fetchall()}
        for column in frame.columns:
            if column not in existing:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" VARCHAR')
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
    finally:
        con.unregister("_incoming")


def _insert_ledger(con, ledger: dict, entity: str | None, status: str, rows_read: int, rows_loaded: int, reason: str | None) -> None:
    con.execute(
        f"INSERT INTO {LEDGER} BY NAME SELECT ? delivery_id, ? agency, ? entity, ? file_name, ? file_sha256, "
        "? file_bytes, ? rows_read, ? rows_loaded, ? status, ? reason, ? received_at, ? loaded_at, ? run_id",
        [ledger["delivery_id"], ledger["agency"], entity, ledger["file_name"], ledger["file_sha256"],
         ledger["file_bytes"], rows_read, rows_loaded, status, reason, ledger["received_at"],
         datetime.now(timezone.utc), ledger["run_id"]],
    )


def _record(con, ledger: dict, agency: Agency, entity, status: str, rows_read: int, rows_loaded: int, reason: str) -> FileResult:
    _insert_ledger(con, ledger, entity.name if entity else None, status, rows_read, rows_loaded, reason)
    return FileResult(agency.name, ledger["file_name"], entity.name if entity else None, None, status, rows_loaded,
                      ledger["file_sha256"], reason)
