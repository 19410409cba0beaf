"""`tapestry export`: one mart table as a file for one role, under the sharing policy.

    result = export(settings, "commissioner", "area_risk", "csv", "area_risk.csv")
    result = export(settings, "safeguarding_lead", "mash_chronology", "parquet", "chron.parquet",
                    purpose="safeguarding_assessment", actor="alice")

1. The role's view is decided from the catalog and the policy (``marts.catalog.access``); a
   refusal raises ExportRefused (the CLI exits 2) after it is audited as ``denied: <reason>``.
2. The table is read through a read-only lakehouse connection, at one snapshot (named in the
   audit entry, so "what did that file hold" is answered by time travel), in batches: rows the
   role may not see are filtered in SQL, the rest of the view is applied per batch.
3. Person-level exports replace ``person_id`` and ``record_key`` with recipient pseudonyms
   (``person_pseudonym``, ``record_pseudonym``; HMAC under a key derived for the domain
   ``export:<role>``): one role's files join with each other, never with another role's, nor
   with the lake. They are written with mode 0600.
4. The file is written beside ``out`` under a temporary name, the export is audited (actor,
   role, purpose, case reference, ``export``, ``marts.<table>@<snapshot> -> <format>``, rows,
   outcome), and only then renamed into place: no audit entry, no file.

Formats: csv, parquet (lists stay lists), xlsx (one sheet; at most 1,048,575 rows). In csv and
xlsx a list (mash_person.agencies) is written as ``a;b``.
"""
from __future__ import annotations

import contextlib
import getpass
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from governance import audit
from governance.keys import Keyring
from governance.policy import Policy, default_policy
from governance.pseudonyms import Pseudonymiser
from marts import catalog
from marts.catalog import Access, MartTable
from tapestry import lakehouse
from tapestry.config import Settings

FORMATS = ("csv", "parquet", "xlsx")
ACTION = "export"
BATCH_ROWS = 100_000
XLSX_MAX_ROWS = 1_048_575  # an Excel sheet's rows, less the header
LIST_SEPARATOR = ";"
PSEUDONYM_NAMES = {"person": "person_pseudonym", "record": "record_pseudonym"}


class ExportError(Exception):
    """The export could not be made (bad input, missing table). Names what and why; no row content."""


class ExportRefused(ExportError):
    """The policy does not let the role have the table (audited as denied)."""


@dataclass(frozen=True)
class ExportResult:
    table: str
    role: str
    purpose: str | None
    fmt: str
    out: Path
    rows: int
    columns: tuple[str, ...]
    snapshot_id: int
    access: Access


def recipient_domain(role: str) -> str:
    """Recipient pseudonyms are per role: files for two roles cannot be joined."""
    return f"export:{role}"


def format_for(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one the file name says (.csv, .parquet, .xlsx)."""
    fmt = (fmt or Path(out).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}' (expected one of {', '.join(FORMATS)}); "
                          "give --format or a file name ending .csv, .parquet or .xlsx")
    return fmt


def output_columns(mart: MartTable) -> tuple[str, ...]:
    """The exported file's columns: the catalog's, with pseudonyms renamed for person-level tables."""
    if mart.kind == "aggregate":
        return mart.column_names
    return tuple(PSEUDONYM_NAMES.get(c.treat, c.name) for c in mart.columns)


def list_tables(role: str, purpose: str | None = None, policy: Policy | None = None) -> list[dict]:
    """What `role` may export: per table (person-level: per purpose of the role, or for `purpose`)."""
    policy = policy or default_policy()
    views = (catalog.grants(role, policy) if not purpose
             else [catalog.access(role, name, purpose, policy) for name in catalog.TABLES])
    return [{"table": v.table.name, "kind": v.table.kind,
             "purpose": v.purpose if v.table.kind == "person" or purpose else None,
             "allowed": v.allowed, "detail": v.describe(), "description": v.table.description} for v in views]


def export(
    settings: Settings,
    role: str,
    table: str,
    fmt: str | None,
    out: str | Path,
    purpose: str | None = None,
    actor: str | None = None,
    *,
    case_ref: str | None = None,
    policy: Policy | None = None,
    keyring: Keyring | None = None,
) -> ExportResult:
    """Export `table` for `role` into `out` (see the module docstring). Raises ExportRefused
    (audited) or ExportError (bad input; audited when it concerns the lake's table)."""
    policy = policy or default_policy()
    actor = actor or getpass.getuser()
    out = Path(out)
    fmt = format_for(out, fmt)
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")

    def log(outcome: str, obj: str, rows: int) -> None:
        with lakehouse.connect(settings) as con:
            audit.record(con, actor=actor, role=role, purpose=view_purpose, case_ref=case_ref or None,
                         action=ACTION, object=obj, row_count=rows, outcome=outcome, settings=settings)

    view_purpose = purpose
    if table not in catalog.TABLES:
        log("denied: unknown table", f"{catalog.SCHEMA}.{table}", 0)
        raise ExportRefused(f"unknown table '{table}' (tables: {', '.join(catalog.TABLES)})")
    view = catalog.access(role, table, purpose, policy)
    view_purpose = view.purpose
    mart = view.table
    if not view.allowed:
        log(f"denied: {view.reason}", mart.qualified, 0)
        raise ExportRefused(f"{role} may not export {mart.qualified}: {view.reason}")

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        try:
            rows, snapshot = _write(settings, view, fmt, tmp, keyring)
        except ExportError as exc:
            log(f"error: {exc}", mart.qualified, 0)
            raise
        obj = f"{mart.qualified}@{snapshot} -> {fmt}"
        log("allowed" if not view.hidden else f"allowed: without {', '.join(view.hidden)}", obj, rows)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return ExportResult(table, role, view.purpose, fmt, out, rows, output_columns(mart), snapshot, view)


# -- reading and writing ----------------------------------------------------------------------
def _write(settings: Settings, view: Access, fmt: str, tmp: Path, keyring: Keyring | None) -> tuple[int, int]:
    mart = view.table
    pseudonymiser = None
    if mart.kind == "person":
        pseudonymiser = Pseudonymiser.from_keyring(keyring or Keyring.open(settings))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mart.kind == "person" else 0o644))
    try:
        with lakehouse.connect(settings, read_only=True) as con:
            snapshot = lakehouse.current_snapshot(con)
            frames = (_finish(_view_frame(frame, view, pseudonymiser), fmt) for frame in _read(con, view, snapshot))
            empty = _finish(_view_frame(_read_empty(con, mart), view, pseudonymiser), fmt)
            rows = _WRITERS[fmt](frames, tmp, empty)
    except lakehouse.LakehouseError as exc:
        raise ExportError(str(exc)) from None
    return rows, snapshot


def _read(con, view: Access, snapshot: int) -> Iterator[pl.DataFrame]:
    """The table's rows the role may see (filtered in SQL), in batches, at `snapshot`."""
    mart = view.table
    where, params = catalog.row_filter_sql(view)
    # Person-level rows are ordered by a hash of the person salted with the recipient's domain:
    # two recipients' files (or a file and the lake) cannot be aligned by row order.
    order = [f'md5(? || "{c}")' if c == mart.person_column else f'"{c}"' for c in mart.order_by]
    params += [recipient_domain(view.role)] * sum(c == mart.person_column for c in mart.order_by)
    columns = ", ".join(f'"{c}"' for c in mart.column_names)
    reader = con.execute(f"SELECT {columns} FROM {mart.qualified} AT (VERSION => {int(snapshot)}) WHERE {where}"
                         + (f" ORDER BY {', '.join(order)}" if order else ""), params).to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        yield pl.from_arrow(batch)


def _read_empty(con, mart: MartTable) -> pl.DataFrame:
    """No rows, the table's types: checks the table and its columns, shapes an empty file."""
    try:
        catalog.require_in_lake(con, mart)
    except catalog.MartMissing as exc:
        raise ExportError(str(exc)) from None
    columns = ", ".join(f'"{c}"' for c in mart.column_names)
    return con.execute(f"SELECT {columns} FROM {mart.qualified} LIMIT 0").pl()


def _view_frame(frame: pl.DataFrame, view: Access, pseudonymiser: Pseudonymiser | None) -> pl.DataFrame:
    """The role's view of the rows, pseudonyms replaced by the recipient's."""
    frame = catalog.apply_view(frame, view)
    if pseudonymiser is None:
        return frame
    domain = recipient_domain(view.role)
    return frame.select(
        pseudonymiser.recipient_pseudonyms(frame[c.name], domain).alias(PSEUDONYM_NAMES[c.treat])
        if c.treat in PSEUDONYM_NAMES else pl.col(c.name)
        for c in view.table.columns)


def _finish(frame: pl.DataFrame, fmt: str) -> pl.DataFrame:
    if fmt == "parquet":
        return frame
    lists = [n for n, t in frame.schema.items() if isinstance(t, pl.List)]
    return frame.with_columns(pl.col(n).list.join(LIST_SEPARATOR) for n in lists) if lists else frame


def _write_csv(frames, path: Path, empty: pl.DataFrame) -> int:
    rows, header = 0, True
    with open(path, "wb") as handle:
        for frame in frames:
            if frame.height:
                frame.write_csv(handle, include_header=header)
                header, rows = False, rows + frame.height
        if header:
            empty.write_csv(handle)
    return rows


def _write_parquet(frames, path: Path, empty: pl.DataFrame) -> int:
    rows, writer = 0, None
    try:
        for frame in frames:
            if not frame.height:
                continue
            table = frame.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            rows += frame.height
        if writer is None:
            empty.write_parquet(path)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_xlsx(frames, path: Path, empty: pl.DataFrame) -> int:
    parts, rows = [], 0
    for frame in frames:
        rows += frame.height
        if rows > XLSX_MAX_ROWS:
            raise ExportError(f"more than {XLSX_MAX_ROWS:,} rows do not fit an Excel sheet; use csv or parquet")
        parts.append(frame)
    frame = pl.concat(parts) if parts else empty
    buffer = io.BytesIO()
    frame.write_excel(buffer, worksheet="data", autofit=True)
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return rows


_WRITERS = {"csv": _write_csv, "parquet": _write_parquet, "xlsx": _write_xlsx}
