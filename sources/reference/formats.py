"""The public reference files: where each lives in a reference folder, the headers it is
published with, and the column names (and aliases) it is read by. One place for both the
reader and the writer, so the synthetic files can never drift from what the reader accepts.

A column is found by the first alias present in the header (case-insensitive, surrounding
spaces and a UTF-8 byte-order mark ignored); an alias starting ``re:`` is a regular
expression that must match the whole header name.
"""
from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sources.readers import ExtractError, _first_bad_utf8_line

# ------------------------------------------------------------------ locations (relative)
CENTROIDS = "geography/lsoa_latlong_england.csv"
LA_CODES = "geography/la_all_codes.csv"
BOUNDARIES = {"2021": "geography/lsoa21", "2011": "geography/lsoa11"}  # *.geojson, one or more
LSOA_LOOKUP_DIR = "geography"  # any *.csv there whose header has LSOA11CD and LSOA21CD
IMD_DECILES = ("imd2019", "File_1*.csv*")
IMD_POPULATION = ("imd2019", "File_6*.csv*")
POSTCODES_DIR = "postcodes"  # every *.csv / *.csv.gz there (one national file or per-area files)

# ------------------------------------------------------------------ published headers
CENTROID_HEADER = ["LSOACD", "latitude", "longitude", "lsoa11cd"]
LA_HEADER = [
    "LADCD", "LADNM", "LADCD_ACTIVE", "LADNM_ACTIVE", "UTLACD", "UTLANM", "CAUTHCD", "CAUTHNM",
    "RGNCD", "RGNNM", "CTRYCD", "CTRYNM", "EWCD", "EWNM", "GBCD", "GBNM", "UKCD", "UKNM",
    "Current", "LAD20CD", "LAD20NM",
]
IMD_FILE_1_NAME = "File_1_-_IMD2019_Index_of_Multiple_Deprivation.csv.gz"
IMD_FILE_1_HEADER = [
    "LSOA code (2011)", "LSOA name (2011)", "Local Authority District code (2019)",
    "Local Authority District name (2019)", "Index of Multiple Deprivation (IMD) Rank",
    "Index of Multiple Deprivation (IMD) Decile",
]
IMD_FILE_6_NAME = "File_6_-_IoD2019_Population_Denominators.csv.gz"
IMD_FILE_6_HEADER = [
    "LSOA code (2011)", "LSOA name (2011)", "Local Authority District code (2019)",
    "Local Authority District name (2019)", "Total population: mid 2015 (excluding prisoners)",
    "Dependent Children aged 0-15: mid 2015 (excluding prisoners)",
    "Population aged 16-59: mid 2015 (excluding prisoners)",
    "Older population aged 60 and over: mid 2015 (excluding prisoners)",
    "Working age population 18-59/64: for use with Employment Deprivation Domain (excluding prisoners)",
]
LSOA_LOOKUP_NAME = "LSOA11_LSOA21_LAD22_lookup.csv"  # ONS "LSOA (2011) to LSOA (2021) to LAD (2022)"
LSOA_LOOKUP_HEADER = ["LSOA11CD", "LSOA11NM", "CHGIND", "LSOA21CD", "LSOA21NM", "LAD22CD", "LAD22NM", "LAD22NMW"]
# The NSPL columns the synthetic lookup carries (a real NSPL/ONSPD has ~40 more; they are ignored).
NSPL_HEADER = [
    "pcd", "pcd2", "pcds", "dointr", "doterm", "usertype", "laua", "ward", "ctry", "rgn",
    "lsoa11", "msoa11", "lat", "long", "imd", "lsoa21", "msoa21",
]


# ------------------------------------------------------------------ column specs
@dataclass(frozen=True)
class Column:
    name: str  # the name in the frame the reader returns
    aliases: tuple[str, ...]
    required: bool = True


CENTROID_COLUMNS = (
    Column("lsoa_code", ("LSOACD", "LSOA21CD", "LSOA11CD", "lsoa_code")),
    Column("latitude", ("latitude", "lat")),
    Column("longitude", ("longitude", "long", "lon")),
    Column("lsoa11", ("lsoa11cd",), required=False),
)
LA_COLUMNS = (
    Column("la_code", ("LADCD", r"re:lad\d\dcd")),
    Column("la_name", ("LADNM", r"re:lad\d\dnm")),
    Column("active_code", ("LADCD_ACTIVE",), required=False),
    Column("active_name", ("LADNM_ACTIVE",), required=False),
)
_LSOA11 = ("LSOA code (2011)", "LSOA11CD")
IMD_DECILE_COLUMNS = (
    Column("lsoa11", _LSOA11),
    Column("lsoa_name", ("LSOA name (2011)", "LSOA11NM"), required=False),
    Column("la_code", (r"re:local authority district code.*", r"re:lad\d\dcd")),
    Column("la_name", (r"re:local authority district name.*", r"re:lad\d\dnm"), required=False),
    Column("imd_decile", (r"re:index of multiple deprivation \(imd\) decile.*", r"re:imd.*decile.*")),
)
IMD_POPULATION_COLUMNS = (
    Column("lsoa11", _LSOA11),
    Column("population", (r"re:total population.*",)),
    Column("population_0_15", (r"re:dependent children aged 0-15.*",), required=False),
    Column("population_16_59", (r"re:population aged 16-59.*",), required=False),
    Column("population_60_plus", (r"re:older population aged 60 and over.*",), required=False),
)
LSOA_LOOKUP_COLUMNS = (
    Column("lsoa11", ("LSOA11CD",)),
    Column("lsoa_code", ("LSOA21CD",)),
    Column("lsoa_name", ("LSOA21NM",), required=False),
    Column("la_code", (r"re:lad\d\dcd",), required=False),
)
POSTCODE_COLUMNS = (
    Column("postcode", ("pcds", "pcd", "pcd2", "pcd7", "pcd8", "postcode")),
    Column("lsoa21", ("lsoa21cd", "lsoa21"), required=False),
    Column("lsoa11", ("lsoa11cd", "lsoa11"), required=False),
    Column("la_code", ("oslaua", "laua", "lad", "ladcd", r"re:lad\d\dcd"), required=False),
    Column("ward_code", ("osward", "ward", "wd", r"re:wd\d\dcd"), required=False),
    Column("latitude", ("lat", "latitude"), required=False),
    Column("longitude", ("long", "longitude", "lon"), required=False),
)


# ------------------------------------------------------------------ reading
def header(path: Path) -> list[str]:
    """The header row of a CSV (plain or .gz), BOM and surrounding spaces removed."""
    try:
        with (gzip.open(path, "rb") if _gz(path) else open(path, "rb")) as handle:
            first = handle.readline()
    except (OSError, EOFError) as exc:
        raise ExtractError(path, f"unreadable file ({type(exc).__name__})") from None
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExtractError(path, "the header is not valid UTF-8", 1) from None
    row = next(csv.reader([text]), [])
    if not row:
        raise ExtractError(path, "the file is empty (no header row)")
    return [name.strip() for name in row]


def _gz(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _matches(alias: str, name: str) -> bool:
    if alias.startswith("re:"):
        return re.fullmatch(alias[3:], name, flags=re.IGNORECASE) is not None
    return alias.lower() == name.lower()


def resolve(path: Path, names: list[str], columns: tuple[Column, ...]) -> dict[str, int]:
    """Column name -> index in the header; a missing required column raises ExtractError."""
    found: dict[str, int] = {}
    for column in columns:
        index = next((i for alias in column.aliases for i, n in enumerate(names)
                      if i not in found.values() and _matches(alias, n)), None)
        if index is None and column.required:
            wanted = " or ".join(repr(a.removeprefix("re:")) for a in column.aliases)
            raise ExtractError(path, f"no {column.name} column (expected {wanted})", 1)
        if index is not None:
            found[column.name] = index
    return found


def read_csv(path: Path, columns: tuple[Column, ...]) -> tuple[pl.DataFrame, dict[str, str]]:
    """The wanted columns of a public CSV as text (trimmed, empty -> null), renamed to the
    spec's names, plus ``_line`` (the line number in the file, header = line 1). Returns the
    frame and name -> header name as published (for error messages)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file not found: {path}")
    if path.stat().st_size == 0:
        raise ExtractError(path, "the file is empty (0 bytes)")
    names = header(path)
    found = resolve(path, names, columns)
    order = sorted(found.items(), key=lambda kv: kv[1])
    try:
        frame = pl.read_csv(
            path, infer_schema=False, has_header=True, columns=[i for _, i in order], encoding="utf8",
        )
        frame.columns = [n for n, _ in order]
    except pl.exceptions.ComputeError as exc:
        line = None if _gz(path) else _first_bad_utf8_line(path)
        problem = "not valid UTF-8" if line or "utf" in str(exc).lower() else f"unreadable CSV ({type(exc).__name__})"
        raise ExtractError(path, problem, line) from None
    except pl.exceptions.PolarsError as exc:
        raise ExtractError(path, f"unreadable CSV ({type(exc).__name__})") from None
    frame = frame.with_columns(
        pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c).str.strip_chars()).alias(c) for c in frame.columns
    ).with_row_index("_line", offset=2)
    for column in columns:  # optional columns the file lacks: all null
        if column.name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(column.name))
    return frame, {n: names[i] for n, i in found.items()}


def fail_first(frame: pl.DataFrame, bad: pl.Expr, path: Path, problem) -> None:
    """Raise ExtractError for the first row where ``bad`` holds; ``problem(row) -> str``."""
    hits = frame.filter(bad.fill_null(False))
    if hits.height:
        row = hits.row(0, named=True)
        raise ExtractError(path, problem(row), int(row["_line"]))


def number(frame: pl.DataFrame, column: str, path: Path, header_name: str, *, integer: bool = False) -> pl.Expr:
    """``column`` parsed as a number (thousands separators allowed); a present value that is
    not one raises ExtractError naming the file, line and column."""
    text = pl.col(column).str.replace_all(",", "")
    parsed = text.cast(pl.Float64, strict=False)
    kind = "a whole number" if integer else "a number"
    bad = pl.col(column).is_not_null() & (parsed.is_null() | ~parsed.is_finite())
    if integer:
        bad = bad | (parsed.is_not_null() & (parsed != parsed.round(0)))
    fail_first(frame, bad, path, lambda r: f"{header_name} {r[column]!r} is not {kind}")
    return parsed.cast(pl.Int64) if integer else parsed


def write_csv(frame: pl.DataFrame, path: Path, *, bom: bool = False) -> None:
    """Write a public-format CSV (``.gz`` compressed deterministically: no time stamp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    frame.write_csv(buffer, quote_style="necessary")
    data = ("\ufeff".encode() if bom else b"") + buffer.getvalue()
    path.write_bytes(gzip.compress(data, mtime=0) if _gz(path) else data)
