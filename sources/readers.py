"""Format readers shared by the agency packages: every delivered file becomes a polars
DataFrame of text columns, exactly as delivered (typing and rules are the contracts' job).

Whole-file problems raise `ExtractError` naming the file, the line and the problem, never
the content of a row (rows hold personal data).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import polars as pl


class ExtractError(ValueError):
    def __init__(self, path: Path, problem: str, line: int | None = None):
        self.path, self.problem, self.line = Path(path), problem, line
        where = f"{self.path.name}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {problem}")


def _first_bad_utf8_line(path: Path) -> int | None:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise ExtractError(path, "the file is empty (0 bytes)")


def read_csv_text(path: Path) -> pl.DataFrame:
    """A UTF-8 CSV with a header row; all columns as text."""
    path = Path(path)
    _check_not_empty(path)
    bad = _first_bad_utf8_line(path)
    if bad is not None:
        raise ExtractError(path, "not valid UTF-8 (wrong encoding?); deliveries must be UTF-8", bad)
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except pl.exceptions.PolarsError as exc:
        raise ExtractError(path, f"unreadable CSV ({type(exc).__name__})") from None
    _check_header(path, _csv_header(path))
    return frame


def _csv_header(path: Path) -> list[str]:
    # polars silently renames repeated names; read the header as delivered.
    with open(path, encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), [])


def _check_header(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for name in columns:
        if not name.strip():
            raise ExtractError(path, "the header has an empty column name", 1)
        if name in seen:
            raise ExtractError(path, f"the header repeats column {name!r}", 1)
        seen.add(name)


def read_xlsx_text(path: Path, sheet: str) -> pl.DataFrame:
    """One named sheet of an XLSX workbook; all columns as text."""
    path = Path(path)
    _check_not_empty(path)
    try:
        frame = pl.read_excel(path, sheet_name=sheet, engine="calamine", infer_schema_length=0)
    except Exception as exc:  # fastexcel raises its own types for corrupt workbooks / missing sheets
        raise ExtractError(path, f"unreadable workbook or no sheet {sheet!r} ({type(exc).__name__})") from None
    _check_header(path, frame.columns)
    return frame.select(pl.all().cast(pl.String))


def read_ndjson_flattened(path: Path, columns: dict[str, str]) -> pl.DataFrame:
    """NDJSON (e.g. FHIR Bulk Data): one JSON object per line, flattened by DuckDB JSON
    expressions over the object ``json`` (name -> SQL expression); all columns as text."""
    path = Path(path)
    _check_not_empty(path)
    bad = _first_bad_utf8_line(path)
    if bad is not None:
        raise ExtractError(path, "not valid UTF-8; NDJSON must be UTF-8", bad)
    select = ", ".join(f'CAST({expr} AS VARCHAR) AS "{name}"' for name, expr in columns.items())
    con = duckdb.connect()
    try:
        table = con.execute(f"SELECT {select} FROM read_ndjson_objects(?)", [str(path)]).arrow()
    except duckdb.Error:
        raise ExtractError(path, "a line is not a complete JSON object (truncated?)", _first_bad_json_line(path)) from None
    finally:
        con.close()
    return pl.from_arrow(table)


def _first_bad_json_line(path: Path) -> int | None:
    # Only on the error path: find the line to name it.
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError:
                    return number
    return None


def read_json_records(path: Path) -> pl.DataFrame:
    """A JSON array of flat-ish objects -> one row per object; nested values as JSON text."""
    path = Path(path)
    _check_not_empty(path)
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except UnicodeDecodeError:
        raise ExtractError(path, "not valid UTF-8", _first_bad_utf8_line(path)) from None
    except json.JSONDecodeError as exc:
        raise ExtractError(path, f"invalid JSON ({exc.msg})", exc.lineno) from None
    if isinstance(records, dict):  # tolerate {"reports": [...]} wrappers
        lists = [v for v in records.values() if isinstance(v, list)]
        records = lists[0] if len(lists) == 1 else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ExtractError(path, "expected a JSON array of objects")
    columns: dict[str, list[str | None]] = {}
    for index, record in enumerate(records):
        for key in record:
            columns.setdefault(key, [None] * index)
        for key, values in columns.items():
            value = record.get(key)
            values.append(None if value is None else value if isinstance(value, str) else json.dumps(value))
    return pl.DataFrame(columns, schema={k: pl.String for k in columns})
