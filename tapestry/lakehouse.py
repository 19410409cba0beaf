"""The one place that opens the DuckLake lakehouse.

Nobody else builds connection strings or ATTACH statements: ask `connect()` for a DuckDB
connection with the lakehouse attached as ``lake`` (and selected with ``USE``), so SQL
elsewhere says ``raw.police__occurrences`` or ``lake.raw.police__occurrences``.

Catalogs (TAPESTRY_CATALOG, see tapestry.config):
- ``sqlite`` (default): an embedded file (WAL mode) that several local processes may attach
  at once (Dagster runs steps in separate processes; users query while loads run).
  Concurrent SQLite writers can deadlock on a read-to-write lock upgrade ("database is
  locked", which DuckLake does not always retry), so writable connections take an
  inter-process writer lock for their lifetime: one writer at a time, readers any time.
- ``duckdb``: an embedded DuckDB file; it admits ONE process at a time, so every
  connection, reader or writer, holds the lock for its lifetime (others wait for it).
- ``postgres``: the multi-user catalog, for a shared deployment.
Data files are Parquet under ``Settings.data_path`` in every case.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from tapestry.config import Settings

log = logging.getLogger("tapestry")

ALIAS = "lake"
ZONES = ("raw", "quarantine", "vault", "reference", "linked", "staging", "marts", "audit")

# Extensions come from PyPI wheels (nothing is downloaded at run time). Map: DuckDB name -> module.
_EXTENSION_WHEELS = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
}
_CATALOG_EXTENSIONS = {"sqlite": ("sqlite_scanner",), "duckdb": (), "postgres": ("postgres_scanner",)}
_installed: set[str] = set()

LOCK_WAIT_SECONDS = 3600  # a long load holds the writer lock; wait for it


class LakehouseError(RuntimeError):
    pass


def extension_file(name: str) -> Path:
    module = importlib.import_module(_EXTENSION_WHEELS[name])
    root = Path(module.__file__).parent
    found = sorted(root.rglob(f"v{duckdb.__version__}/*.duckdb_extension"))
    if not found:
        raise LakehouseError(
            f"the {name} extension wheel ({_EXTENSION_WHEELS[name]}) has no build for DuckDB "
            f"{duckdb.__version__}; pin both to the same version"
        )
    return found[0]


def install_extensions(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """Install (once per process) and load extensions from their wheels, by path."""
    checked = not _unsigned_allowed(con)  # DuckDB checks their signatures as it loads them
    for name in names:
        if name not in _installed:
            # try loading first: asking duckdb_extensions() whether it is installed costs ~1.4 s
            try:
                con.load_extension(name)
            except duckdb.Error:
                con.install_extension(str(extension_file(name)))
                con.load_extension(name)
            _installed.add(name)
        else:
            con.load_extension(name)
        if checked:
            path = con.execute("SELECT install_path FROM duckdb_extensions() WHERE extension_name = ?",
                               [name]).fetchone()[0]
            _verified[name] = (path, _file_identity(path))


# DuckDB checks an extension's signature each time a database loads it: ~0.13 s for each 35 MB
# binary, on every connect(). A process lets DuckDB check each extension once; its later
# connections load the same file, if unchanged (device, inode, size, mtime), without the check.
_verified: dict[str, tuple[str, tuple[int, ...]]] = {}  # name -> (installed file, its identity when checked)


def _file_identity(path: str) -> tuple[int, ...]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _unsigned_allowed(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0] in (True, "true")


def _new_database(names: tuple[str, ...]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that loads ``names`` without re-checking their signatures when this
    process has had DuckDB check the same, unchanged files."""
    def unchanged(name: str) -> bool:
        path, identity = _verified.get(name, (None, None))
        try:
            return path is not None and _file_identity(path) == identity
        except OSError:
            return False

    if names and all(unchanged(name) for name in names):
        return duckdb.connect(config={"allow_unsigned_extensions": "true"})
    return duckdb.connect()


def lake_extensions(settings: Settings) -> tuple[str, ...]:
    """The extensions a connection to this lakehouse needs (DuckLake + its catalog's scanner)."""
    return ("ducklake", *_CATALOG_EXTENSIONS[settings.catalog])


def catalog_uri(settings: Settings) -> str:
    if settings.catalog == "sqlite":
        return f"ducklake:sqlite:{settings.catalog_path}"
    if settings.catalog == "duckdb":
        return f"ducklake:{settings.catalog_path}"
    return f"ducklake:postgres:{settings.postgres_dsn}"


def describe(settings: Settings) -> str:
    """Where the lakehouse lives, without credentials (safe to print)."""
    where = settings.catalog_path if settings.catalog != "postgres" else "PostgreSQL (TAPESTRY_POSTGRES_DSN)"
    return f"DuckLake catalog: {settings.catalog} at {where}; data files: {settings.data_path}"


_held = threading.local()  # lock path -> depth, for the writer locks this thread holds


@contextlib.contextmanager
def _process_lock(settings: Settings, read_only: bool) -> Iterator[None]:
    if settings.catalog == "postgres" or (settings.catalog == "sqlite" and read_only):
        yield
        return
    lock_path = Path(str(settings.catalog_path) + ".lock")
    if not hasattr(_held, "depth"):
        _held.depth = {}
    held = _held.depth
    if held.get(lock_path):  # re-entrant in the thread that holds it (e.g. dbt's step recording its snapshot)
        held[lock_path] += 1
        try:
            yield
        finally:
            held[lock_path] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        deadline, waited = time.monotonic() + LOCK_WAIT_SECONDS, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("waiting for the lakehouse: another process is writing")
                    waited = True
                if time.monotonic() > deadline:
                    raise LakehouseError(
                        f"the lakehouse catalog {settings.catalog_path} stayed locked by another "
                        f"process for {LOCK_WAIT_SECONDS}s (see {lock_path})"
                    ) from None
                time.sleep(0.2)
        held[lock_path] = 1
        try:
            yield
        finally:
            held.pop(lock_path, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Hold the lakehouse writer lock while another tool (dbt) writes through its own
    connection: no-op for PostgreSQL catalogs, as for ``connect(read_only=False)``. Re-entrant
    within the holding thread: ``connect()`` inside it does not wait for itself."""
    with _process_lock(settings, read_only=False):
        yield


@contextlib.contextmanager
def connect(settings: Settings | None = None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the lakehouse attached as ``lake`` and zones created."""
    settings = settings or Settings.from_env()
    if read_only and settings.catalog_path is not None and not settings.catalog_path.exists():
        raise LakehouseError(f"no lakehouse at {settings.catalog_path} yet: load something first (tapestry run)")
    with _process_lock(settings, read_only):
        con = _new_database(lake_extensions(settings))
        try:
            install_extensions(con, lake_extensions(settings))
            con.execute("SET ducklake_max_retry_count = 100")
            con.execute("SET ducklake_retry_wait_ms = 50")
            con.execute("SET ducklake_retry_backoff = 1.5")
            if settings.catalog_path is not None:
                settings.catalog_path.parent.mkdir(parents=True, exist_ok=True)
            if "://" not in settings.data_path:
                Path(settings.data_path).mkdir(parents=True, exist_ok=True)
            data_path = settings.data_path.rstrip("/") + "/"
            # Inlining off: every row lives in Parquet under data_path, none in the catalog
            # database, so there is exactly one place where table data can be found.
            options = [f"DATA_PATH '{_quote(data_path)}'", "DATA_INLINING_ROW_LIMIT 0"]
            if read_only:
                options.append("READ_ONLY")
            elif settings.catalog == "sqlite":
                options += ["META_JOURNAL_MODE 'WAL'", "META_BUSY_TIMEOUT 30000"]
            try:
                con.execute(f"ATTACH '{_quote(catalog_uri(settings))}' AS {ALIAS} ({', '.join(options)})")
            except duckdb.InvalidInputException as error:
                # a catalog file whose creation was cut short (the first load killed): nothing to
                # read yet; the next writer initialises it
                if read_only and "does not exist" in str(error):
                    raise LakehouseError(f"no lakehouse at {catalog_uri(settings)} yet: its catalog was never "
                                         "initialised (load something first: tapestry run)") from None
                raise
            if not read_only:
                existing = {r[0] for r in con.execute(
                    "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = ?", [ALIAS]
                ).fetchall()}
                for zone in ZONES:
                    if zone not in existing:
                        con.execute(f"CREATE SCHEMA IF NOT EXISTS {ALIAS}.{zone}")
            con.execute(f"USE {ALIAS}")
            yield con
        finally:
            con.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT id FROM ducklake_current_snapshot('{ALIAS}')").fetchone()[0]


def tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every ``schema.table`` of the lakehouse at the snapshot ``con`` reads (inside a transaction:
    the transaction's), from DuckLake's own catalog tables (``ducklake_schema``, ``ducklake_table``
    of the DuckLake spec): ~3 ms, where ``duckdb_tables()`` took ~35 ms at 1M persons (it loads
    every table's metadata), a tenth of an incremental link run's budget."""
    meta = f"__ducklake_metadata_{ALIAS}"
    current = "{0}.begin_snapshot <= n.id AND ({0}.end_snapshot IS NULL OR {0}.end_snapshot > n.id)"
    return {r[0] for r in con.execute(f"""
        SELECT s.schema_name || '.' || t.table_name
        FROM {meta}.ducklake_table t JOIN {meta}.ducklake_schema s USING (schema_id),
             (SELECT id FROM ducklake_current_snapshot('{ALIAS}')) n
        WHERE {current.format("s")} AND {current.format("t")}""").fetchall()}


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Is ``lake.<schema>.<table>`` there?"""
    return f"{schema}.{table}" in tables(con)


def set_commit_message(con: duckdb.DuckDBPyConnection, message: str) -> None:
    """Label the snapshot the current transaction will produce (shown by lake.snapshots())."""
    con.execute(f"CALL {ALIAS}.set_commit_message('tapestry', ?)", [message])


RUN_SNAPSHOTS_DDL = """
CREATE TABLE IF NOT EXISTS audit.run_snapshots (
    run_id VARCHAR NOT NULL,
    job_name VARCHAR,
    asset_key VARCHAR NOT NULL,
    snapshot_id BIGINT NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL
)
"""


def record_run_snapshot(con: duckdb.DuckDBPyConnection, run_id: str, job_name: str | None, asset_key: str) -> int:
    """Record the snapshot an asset's writes produced, for time travel by run.

    Call after the asset's data commit. The record itself commits one more snapshot; the
    recorded id is the data snapshot, so ``AT (VERSION => id)`` shows exactly what the run wrote.
    """
    snapshot_id = current_snapshot(con)
    con.execute(RUN_SNAPSHOTS_DDL)
    con.execute(
        "INSERT INTO audit.run_snapshots VALUES (?, ?, ?, ?, ?)",
        [run_id, job_name, asset_key, snapshot_id, datetime.now(timezone.utc)],
    )
    return snapshot_id
