"""Standardise canonical person records into the features the linkage model compares.

Input: a polars frame in the canonical person-record schema (``record_id`` required; every
other column optional: source, forename, middle_names, surname, dob, sex, postcode,
nhs_number, pnc_id, upn, crn, source_person_id). Output: one row per record with

===================  =================================================================
unique_id            record_id
source_dataset       source (or "input")
forename_std         first forename, lower-case ASCII, titles removed
middle_std           further forenames + middle names
forename_canon       one canonical form of the forename (nickname / transliteration table)
forename_aliases     every canonical the forename may stand for, sorted (list)
forename_sx          Soundex-style phonetic key of the forename
surname_std          surname, lower-case ASCII, spaces / hyphens / apostrophes removed
surname_first/last   first and last part of a double / hyphenated surname (else null)
surname_sx           phonetic key of the surname
dob                  ISO date string (YYYY-MM-DD) or null
dob_swapped          the same date with day and month exchanged when that is a valid,
                     different date (day <= 12): a day/month swap matches dob = dob_swapped
dob_year             year as text
dob_swap_repaired    True when the delivered value was only valid read the other way round
                     (e.g. ISO ``1990-25-03``): repaired, and kept as evidence
sex                  M / F / null (unknown, not specified)
postcode_std         UK "OUTWARD INWARD", or upper-case alphanumerics for non-UK values
postcode_sector      "RG1 4", postcode_district "RG1" (outward code), postcode_area "RG"
nhs_number ...       identifiers, normalised; an invalid check digit / shape gives null
===================  =================================================================

Everything is vectorised polars; the only Python loops are over the small alias table.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Callable

import polars as pl

from sources.identifiers import PNC_CHECK_LETTERS, UPN_CHECK_LETTERS

REFERENCE = Path(__file__).parent / "reference"
ALIASES_FILE = REFERENCE / "forename_aliases.csv"

TITLES = ("mr", "mrs", "miss", "ms", "mx", "dr", "master", "sir", "dame", "lady", "lord", "rev", "revd", "prof", "fr")
SUFFIXES = ("jr", "jnr", "junior", "sr", "snr", "senior", "ii", "iii", "iv")
# Letters NFKD does not decompose.
_SPECIAL = {"ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe",
            "đ": "d", "Đ": "d", "ð": "d", "þ": "th", "ı": "i"}

OPTIONAL_TEXT = ("source", "forename", "middle_names", "surname", "sex", "postcode", "nhs_number", "pnc_id", "upn",
                 "crn", "source_person_id")

def identity_columns(columns) -> list[str]:
    """The features that make two records one node (``linkage.pipeline.collapse``, repeats in
    ``linkage.incremental.node_keys``, node tokens): all but the id, the aliases (derived from
    forename_std) and how many records a node stands for."""
    return [c for c in columns if c not in ("unique_id", "forename_aliases", "n_records")]


FEATURE_COLUMNS = (
    "unique_id", "source_dataset", "forename_std", "middle_std", "forename_canon", "forename_aliases",
    "forename_sx", "surname_std", "surname_first", "surname_last", "surname_sx", "dob", "dob_swapped",
    "dob_year", "dob_swap_repaired", "sex", "postcode_std", "postcode_sector", "postcode_district",
    "postcode_area", "nhs_number", "pnc_id", "upn", "crn", "source_person_id",
)


# --------------------------------------------------------------------------- names
def clean_text(expr: pl.Expr) -> pl.Expr:
    """Lower-case ASCII words: diacritics folded, punctuation dropped, hyphens -> spaces."""
    e = expr.cast(pl.String)
    for src, dst in _SPECIAL.items():
        e = e.str.replace_all(src, dst, literal=True)
    e = e.str.normalize("NFKD").str.replace_all(r"\p{M}", "").str.to_lowercase()
    e = e.str.replace_all(r"['’`.]", "").str.replace_all(r"[^a-z]+", " ").str.strip_chars()
    return pl.when(e == "").then(None).otherwise(e)


def _drop_words(words: pl.Expr, banned: tuple[str, ...]) -> pl.Expr:
    return words.list.filter(~pl.element().is_in(list(banned)))


def soundex(expr: pl.Expr) -> pl.Expr:
    """American Soundex of a cleaned (lower-case a-z) string, vectorised; null stays null."""
    s = expr.str.replace_all(r"[^a-z]", "")
    first = s.str.slice(0, 1)
    body = s.str.slice(1).str.replace_all(r"[hw]", "")
    code = pl.concat_str(first, body)
    for pattern, digit in (("[bfpv]", "1"), ("[cgjkqsxz]", "2"), ("[dt]", "3"), ("l", "4"), ("[mn]", "5"),
                           ("r", "6"), ("[aeiouy]", "0"), ("[hw]", "9")):
        code = code.str.replace_all(pattern, digit)
    for digit in "0123456":
        code = code.str.replace_all(f"{digit}{{2,}}", digit)
    rest = code.str.slice(1).str.replace_all("0", "")
    key = pl.concat_str(first.str.to_uppercase(), rest, pl.lit("000")).str.slice(0, 4)
    return pl.when(s.str.len_chars() > 0).then(key)


@lru_cache(maxsize=1)
def alias_table() -> pl.DataFrame:
    """(name, canonical) pairs from linkage/reference/forename_aliases.csv, cleaned like the
    data; every canonical also maps to itself."""
    rows: list[tuple[str, str]] = []
    with open(ALIASES_FILE, encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if line.strip() and not line.lstrip().startswith("#"))
        for record in csv.DictReader(lines):
            canonical = record["canonical"]
            rows.append((canonical, canonical))
            rows.extend((alias, canonical) for alias in record["aliases"].split("|") if alias)
    raw = pl.DataFrame(rows, schema={"name": pl.String, "canonical": pl.String}, orient="row")
    cleaned = raw.select(
        clean_text(pl.col("name")).str.replace_all(" ", "").alias("name"),
        clean_text(pl.col("canonical")).str.replace_all(" ", "").alias("canonical"),
    )
    return cleaned.drop_nulls().unique().sort("name", "canonical")


def _with_aliases(frame: pl.DataFrame) -> pl.DataFrame:
    names = frame.select(pl.col("forename_std").alias("name")).drop_nulls().unique()
    grouped = (
        names.join(alias_table(), on="name", how="left")
        .with_columns(canonical=pl.coalesce("canonical", "name"))
        .group_by("name")
        .agg(pl.col("canonical").unique().sort().alias("forename_aliases"))
        .with_columns(forename_canon=pl.col("forename_aliases").list.first())
    )
    return frame.join(grouped, left_on="forename_std", right_on="name", how="left", maintain_order="left")


# --------------------------------------------------------------------------- dates
def _parse_parts(text: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(year, first, second) integer parts of ISO-ish, dd/mm/yyyy-ish or yyyymmdd text."""
    t = text.str.strip_chars().str.slice(0, 10)
    iso = t.str.extract_groups(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
    dmy = t.str.extract_groups(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
    compact = t.str.extract_groups(r"^(\d{4})(\d{2})(\d{2})$")
    year = pl.coalesce(iso.struct.field("1"), dmy.struct.field("3"), compact.struct.field("1")).cast(pl.Int32)
    month = pl.coalesce(iso.struct.field("2"), dmy.struct.field("2"), compact.struct.field("2")).cast(pl.Int32)
    day = pl.coalesce(iso.struct.field("3"), dmy.struct.field("1"), compact.struct.field("3")).cast(pl.Int32)
    return year, month, day


def parse_dob(column: str, dtype: pl.DataType) -> list[pl.Expr]:
    """Expressions for dob (ISO text), dob_swap_repaired (bool) from a column of text or date."""
    if dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
        return [pl.col(column).cast(pl.Date).dt.strftime("%Y-%m-%d").alias("dob"),
                pl.lit(False).alias("dob_swap_repaired")]
    year, month, day = _parse_parts(pl.col(column).cast(pl.String))
    straight = pl.date(year, month, day)
    swapped = pl.date(year, day, month)
    ok_straight = (month.is_between(1, 12)) & day.is_between(1, 31)
    ok_swapped = (day.is_between(1, 12)) & month.is_between(1, 31)
    # pl.date raises on invalid calendar dates, so build via string parse (non-strict -> null)
    fmt = "%Y-%m-%d"
    as_text = lambda y, m, d: pl.format("{}-{}-{}", y, m.cast(pl.String).str.zfill(2), d.cast(pl.String).str.zfill(2))  # noqa: E731
    straight = as_text(year, month, day).str.strptime(pl.Date, fmt, strict=False)
    swapped = as_text(year, day, month).str.strptime(pl.Date, fmt, strict=False)
    straight = pl.when(ok_straight).then(straight)
    swapped = pl.when(ok_swapped).then(swapped)
    date = pl.coalesce(straight, swapped)
    return [
        date.dt.strftime(fmt).alias("dob"),
        (straight.is_null() & swapped.is_not_null()).fill_null(False).alias("dob_swap_repaired"),
    ]


def _dob_features(distinct: pl.DataFrame, column: str) -> pl.DataFrame:
    """``parse_dob`` over distinct values. Values that already are valid ISO dates (most, for
    most agencies) are their own ``dob`` and skip the general parser, whose result for them is
    the same: a 1% delivery, 0.09 -> 0.01 s."""
    dtype = distinct.schema[column]
    if dtype != pl.String:
        return distinct.lazy().with_columns(parse_dob(column, dtype)).collect()
    text = pl.col(column)
    as_is = (text.str.contains(r"^\d{4}-\d{2}-\d{2}$")
             & (text.str.to_date("%Y-%m-%d", strict=False).dt.strftime("%Y-%m-%d") == text)).fill_null(False)
    marked = distinct.with_columns(_as_is=as_is)
    return pl.concat([
        marked.filter("_as_is").select(column, text.alias("dob"), pl.lit(False).alias("dob_swap_repaired")),
        marked.filter(~pl.col("_as_is")).lazy().select(column, *parse_dob(column, dtype)).collect(),
    ])


# --------------------------------------------------------------------------- postcodes
_UK_POSTCODE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][ABD-HJLNP-UW-Z]{2}$"


def postcode_features(expr: pl.Expr) -> list[pl.Expr]:
    compact = expr.cast(pl.String).str.to_uppercase().str.replace_all(r"[^A-Z0-9]", "")
    compact = pl.when(compact == "").then(None).otherwise(compact)
    uk = compact.str.contains(_UK_POSTCODE)
    outward = compact.str.slice(0, compact.str.len_chars() - 3)
    inward = compact.str.slice(-3)
    return [
        pl.when(uk).then(pl.concat_str(outward, pl.lit(" "), inward)).otherwise(compact).alias("postcode_std"),
        pl.when(uk).then(pl.concat_str(outward, pl.lit(" "), inward.str.slice(0, 1))).alias("postcode_sector"),
        pl.when(uk).then(outward).alias("postcode_district"),
        pl.when(uk).then(outward.str.extract(r"^([A-Z]{1,2})")).alias("postcode_area"),
    ]


# --------------------------------------------------------------------------- identifiers
def _digit(s: pl.Expr, i: int) -> pl.Expr:
    return s.str.slice(i, 1).cast(pl.Int64, strict=False)


def valid_nhs_number(expr: pl.Expr) -> pl.Expr:
    """Normalised NHS number (spaces/hyphens removed) when its mod-11 check digit is right, else null.
    Same rule as ``sources.identifiers.is_valid_nhs_number`` (tests assert they agree)."""
    s = expr.cast(pl.String).str.replace_all(r"[\s-]", "")
    total = pl.sum_horizontal([_digit(s, i) * (10 - i) for i in range(9)])
    check = 11 - total % 11
    check = pl.when(check == 11).then(0).otherwise(check)
    ok = s.str.contains(r"^\d{10}$") & (check != 10) & (check == _digit(s, 9))
    return pl.when(ok.fill_null(False)).then(s)


def valid_pnc_id(expr: pl.Expr) -> pl.Expr:
    """Canonical ``YY/NNNNNNNA`` when the mod-23 check letter is right (4-digit years accepted)."""
    parts = expr.cast(pl.String).str.strip_chars().str.to_uppercase().str.extract_groups(
        r"^(\d{2}|\d{4})/(\d{1,7})([A-Z])$"
    )
    yy = parts.struct.field("1").str.slice(-2)
    serial = parts.struct.field("2").str.zfill(7)
    letter = parts.struct.field("3")
    value = pl.concat_str(yy, serial).cast(pl.Int64, strict=False)
    expected = pl.lit(PNC_CHECK_LETTERS).str.slice(value % 23, 1)
    canonical = pl.concat_str(yy, pl.lit("/"), serial, letter)
    return pl.when((expected == letter).fill_null(False)).then(canonical)


def valid_upn(expr: pl.Expr) -> pl.Expr:
    """Permanent UPN when its check letter is right (``sources.identifiers.is_valid_upn``)."""
    s = expr.cast(pl.String).str.strip_chars().str.to_uppercase()
    total = pl.sum_horizontal([_digit(s, i) * (i + 1) for i in range(1, 13)])
    expected = pl.lit(UPN_CHECK_LETTERS).str.slice(total % 23, 1)
    ok = s.str.contains(r"^[A-Z]\d{12}$") & (expected == s.str.slice(0, 1))
    return pl.when(ok.fill_null(False)).then(s)


def valid_crn(expr: pl.Expr) -> pl.Expr:
    s = expr.cast(pl.String).str.strip_chars().str.to_uppercase()
    return pl.when(s.str.contains(r"^[A-Z]\d{6}$").fill_null(False)).then(s)


def _sex(expr: pl.Expr) -> pl.Expr:
    s = expr.cast(pl.String).str.strip_chars().str.to_lowercase()
    return (
        pl.when(s.is_in(["m", "male", "man", "boy", "1"])).then(pl.lit("M"))
        .when(s.is_in(["f", "female", "woman", "girl", "2"])).then(pl.lit("F"))
    )


# --------------------------------------------------------------------------- frame
def _via_unique(frame: pl.DataFrame, column: str, derive: list[pl.Expr] | Callable[[pl.DataFrame], pl.DataFrame]
                ) -> pl.DataFrame:
    """Derive columns from ``column`` once per distinct value (``derive``: expressions, or a
    function of the distinct values' frame) and join them back: names and postcodes repeat a
    lot, and the text clean-up is the costly part. Expressions lazily: an eager
    ``with_columns`` does not share common sub-expressions (each postcode output cleaned the
    text again; a 1% delivery's postcodes 0.067 -> 0.019 s)."""
    distinct = frame.select(pl.col(column)).unique().drop_nulls()
    mapped = derive(distinct) if callable(derive) else distinct.lazy().with_columns(derive).collect()
    return frame.join(mapped, on=column, how="left", maintain_order="left")


def standardise(records: pl.DataFrame) -> pl.DataFrame:
    """Features for linkage (see the module doc), one row per input record, same order."""
    frame = records
    for column in OPTIONAL_TEXT:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(column))
        elif frame.schema[column] != pl.String:
            frame = frame.with_columns(pl.col(column).cast(pl.String))
    if "dob" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("dob"))
    # dates of birth and NHS numbers repeat too: parsed / validated once per distinct value
    frame = _via_unique(frame.rename({"dob": "_dob_raw"}), "_dob_raw", lambda d: _dob_features(d, "_dob_raw"))
    frame = _via_unique(frame, "nhs_number", [valid_nhs_number(pl.col("nhs_number")).alias("_nhs")])

    frame = _via_unique(frame, "forename", [_drop_words(clean_text(pl.col("forename")).str.split(" "), TITLES)
                                            .alias("_fw")])
    frame = _via_unique(frame, "surname", [_drop_words(clean_text(pl.col("surname")).str.split(" "), SUFFIXES)
                                           .alias("_sw")])
    frame = _via_unique(frame, "middle_names", [clean_text(pl.col("middle_names")).alias("_mc")])
    frame = _via_unique(frame, "postcode", postcode_features(pl.col("postcode")))
    fore_words, sur_words = pl.col("_fw"), pl.col("_sw")
    middle = pl.concat_str(fore_words.list.slice(1).list.join(" "), pl.col("_mc").fill_null(""),
                           separator=" ").str.strip_chars()
    # lazily, for the common sub-expressions (see _via_unique)
    out = frame.lazy().select(
        pl.col("record_id").cast(pl.String).alias("unique_id"),
        pl.col("source").cast(pl.String).fill_null("input").alias("source_dataset"),
        fore_words.list.first().alias("forename_std"),
        pl.when(middle == "").then(None).otherwise(middle).alias("middle_std"),
        pl.when(sur_words.list.len() > 0).then(sur_words.list.join("")).alias("surname_std"),
        pl.when(sur_words.list.len() > 1).then(sur_words.list.first()).alias("surname_first"),
        pl.when(sur_words.list.len() > 1).then(sur_words.list.last()).alias("surname_last"),
        pl.col("dob"), pl.col("dob_swap_repaired").fill_null(False),
        _sex(pl.col("sex")).alias("sex"),
        "postcode_std", "postcode_sector", "postcode_district", "postcode_area",
        pl.col("_nhs").alias("nhs_number"),
        valid_pnc_id(pl.col("pnc_id")).alias("pnc_id"),
        valid_upn(pl.col("upn")).alias("upn"),
        valid_crn(pl.col("crn")).alias("crn"),
        pl.col("source_person_id").cast(pl.String),
    )
    out = out.with_columns(
        pl.when(pl.col("forename_std") == "").then(None).otherwise(pl.col("forename_std")).alias("forename_std"),
    )
    year = pl.col("dob").str.slice(0, 4)
    month = pl.col("dob").str.slice(5, 2)
    day = pl.col("dob").str.slice(8, 2)
    swapped = pl.concat_str(year, pl.lit("-"), day, pl.lit("-"), month)
    out = out.with_columns(
        pl.when((day.cast(pl.Int32, strict=False) <= 12) & (day != month)).then(swapped).alias("dob_swapped"),
        year.alias("dob_year"),
    ).collect()
    out = _via_unique(out, "forename_std", [soundex(pl.col("forename_std")).alias("forename_sx")])
    out = _via_unique(out, "surname_std", [soundex(pl.col("surname_std")).alias("surname_sx")])
    out = _with_aliases(out)
    return out.select(FEATURE_COLUMNS)
