"""Load a reference folder into the lakehouse: ``reference.lsoa`` and
``reference.postcode_lsoa``, both replaced whole in one transaction (one snapshot).

Idempotent: each table's comment records a SHA-256 of its content; loading content equal
to what the tables hold writes nothing (no new snapshot, no new files).
"""
from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import polars as pl

from sources.reference.reader import LSOA_SCHEMA, POSTCODE_SCHEMA, ReferenceData, read_reference
from tapestry.lakehouse import set_commit_message

SCHEMA = "reference"

# table -> (description, [(column, SQL type, not null, description)]); columns as the reader gives them
TABLES: dict[str, tuple[str, list[tuple[str, str, bool, str]]]] = {
    "lsoa": ("one row per LSOA of the reference area", [
        ("lsoa_code", "VARCHAR", True, "LSOA code (2021, or 2011 for a 2011-only folder)"),
        ("lsoa_name", "VARCHAR", True, "LSOA name (the code when no source names it)"),
        ("la_code", "VARCHAR", True, "local authority district covering it now"),
        ("la_name", "VARCHAR", True, "local authority district name"),
        ("ward_code", "VARCHAR", False, "electoral ward most of its postcodes are in (needs a postcode lookup)"),
        ("population", "INTEGER", False, "all ages, IoD 2019 denominators (mid-2015)"),
        ("population_0_15", "INTEGER", False, "children aged 0-15, IoD 2019 denominators"),
        ("population_16_plus", "INTEGER", False, "aged 16 and over, IoD 2019 denominators"),
        ("imd_decile", "TINYINT", False, "IMD 2019 decile, 1 = most deprived 10% of England"),
        ("latitude", "DOUBLE", True, "centroid latitude (WGS84)"),
        ("longitude", "DOUBLE", True, "centroid longitude (WGS84)"),
        ("lsoa11_code", "VARCHAR", False, "the 2011 LSOA its IMD decile comes from"),
    ]),
    "postcode_lsoa": ("one row per postcode of the reference area", [
        ("postcode", "VARCHAR", True, "upper case, one space before the inward code: RG1 1AA"),
        ("lsoa_code", "VARCHAR", True, "the LSOA the postcode is in"),
        ("la_code", "VARCHAR", True, "the local authority of that LSOA"),
    ]),
}


assert [c[0] for c in TABLES["lsoa"][1]] == list(LSOA_SCHEMA)
assert [c[0] for c in TABLES["postcode_lsoa"][1]] == list(POSTCODE_SCHEMA)


def load_reference(con: duckdb.DuckDBPyConnection, folder: Path | str, *, la_codes: Iterable[str] | None = None,
                   vintage: str | None = None) -> dict:
    """Read ``folder`` (see :func:`sources.reference.reader.read_reference`) and replace the
    reference tables with it. ``con``: a writable lakehouse connection
    (``tapestry.lakehouse.connect()``), not inside a transaction. Returns lsoas, postcodes
    (row counts), vintage, notes (what was left out or estimated; counts only) and changed
    (False when the tables already held exactly this)."""
    return write_reference_tables(con, read_reference(folder, la_codes=la_codes, vintage=vintage))


def write_reference_tables(con: duckdb.DuckDBPyConnection, data: ReferenceData) -> dict:
    frames = {
        "lsoa": data.lsoa.sort("lsoa_code"),
        "postcode_lsoa": data.postcode_lsoa.sort("postcode"),
    }
    schemas = {"lsoa": LSOA_SCHEMA, "postcode_lsoa": POSTCODE_SCHEMA}
    frames = {name: f.select([pl.col(c).cast(t) for c, t in schemas[name].items()]) for name, f in frames.items()}
    summary = {"lsoas": data.lsoa.height, "postcodes": data.postcode_lsoa.height, "vintage": data.vintage,
               "notes": list(data.notes)}
    comments = {name: f"{TABLES[name][0]} (LSOA {data.vintage}); content sha256:{_fingerprint(f)}"
                for name, f in frames.items()}
    if all(_comment(con, name) == comments[name] for name in frames):
        return {**summary, "changed": False}
    views = {name: f"_tapestry_ref_{name}_{uuid.uuid4().hex[:8]}" for name in frames}
    for name, frame in frames.items():
        con.register(views[name], frame.to_arrow())
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            for name in frames:
                description, columns = TABLES[name]
                ddl = ", ".join(f"{c} {sql}{' NOT NULL' if not_null else ''}" for c, sql, not_null, _ in columns)
                con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{name} ({ddl})")
                con.execute(f"INSERT INTO {SCHEMA}.{name} SELECT * FROM {views[name]}")
                con.execute(f"COMMENT ON TABLE {SCHEMA}.{name} IS {_literal(comments[name])}")
                for column, _, _, text in columns:
                    con.execute(f"COMMENT ON COLUMN {SCHEMA}.{name}.{column} IS {_literal(text)}")
            set_commit_message(con, f"reference geography: {summary['lsoas']} LSOAs, {summary['postcodes']} postcodes")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        for view in views.values():
            con.unregister(view)
    return {**summary, "changed": True}


def _fingerprint(frame: pl.DataFrame) -> str:
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _comment(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    row = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ?", [SCHEMA, name]).fetchone()
    return row[0] if row else None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
