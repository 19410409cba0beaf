"""UK public-sector person identifiers: check-digit rules, validators and generators.

Pure functions, no I/O, no third-party imports except numpy (for the vectorised
generators only). The validators are shared by the synthetic generator, the source
contracts and linkage standardisation, so they accept exactly the canonical
written form (after ``normalise_*``) and never raise on bad input: they return False.

Rules implemented
-----------------
NHS number (NHS Data Dictionary): 10 digits. Multiply digits 1-9 by weights 10..2,
sum, remainder = sum mod 11, check = 11 - remainder; check 11 -> 0; check 10 means the
number is never issued (invalid). Spaces/hyphens are tolerated by ``normalise_nhs_number``
("485 777 3456" -> "4857773456").

PNC ID (Police National Computer person id): ``YY/NNNNNNNA`` -- 2-digit year of
creation, '/', serial (1-7 digits, conventionally zero-padded to 7), check letter.
Check letter = "ZABCDEFGHJKLMNPQRTUVWXY"[int(YY + serial zero-padded to 7) mod 23]
(the letters I, O and S are never used). The long form with a 4-digit year
(``2001/0123456A``) is accepted by ``normalise_pnc_id`` and reduced to the short form
(the check uses the 2-digit year).

UPN (DfE Unique Pupil Number, permanent form): 13 characters: check letter, 3-digit DfE
LA number, 4-digit establishment number, 2-digit year of allocation, 3-digit serial.
Check letter: sum of digit(i) * i for character positions i = 2..13 (weights 2..13),
remainder mod 23 indexes "ABCDEFGHJKLMNPQRTUVWXYZ" (0 -> A ... 22 -> Z).
Temporary UPNs (13th character a letter) are NOT accepted here.

CRN (probation case reference number, nDelius): one upper-case letter followed by six
digits (e.g. ``X123456``); no check character (format check only).
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "PNC_CHECK_LETTERS",
    "UPN_CHECK_LETTERS",
    "nhs_check_digit",
    "is_valid_nhs_number",
    "normalise_nhs_number",
    "make_nhs_number",
    "pnc_check_letter",
    "is_valid_pnc_id",
    "normalise_pnc_id",
    "make_pnc_id",
    "upn_check_letter",
    "is_valid_upn",
    "make_upn",
    "is_valid_crn",
    "make_crn",
    "nhs_numbers_from_index",
    "pnc_ids_from_index",
    "upns_from_index",
    "crns_from_index",
]

PNC_CHECK_LETTERS = "ZABCDEFGHJKLMNPQRTUVWXY"  # 23 letters, index = value mod 23
UPN_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # 23 letters, index = remainder mod 23

_NHS_RE = re.compile(r"^[0-9]{10}$")
_PNC_RE = re.compile(r"^([0-9]{2})/([0-9]{1,7})([A-Z])$")
_PNC_LONG_RE = re.compile(r"^([0-9]{2}|[0-9]{4})/([0-9]{1,7})([A-Za-z])$")
_UPN_RE = re.compile(r"^[A-Z][0-9]{12}$")
_CRN_RE = re.compile(r"^[A-Z][0-9]{6}$")  # ASCII digits only: \d would admit other scripts' digits


# --------------------------------------------------------------------------- NHS number
def nhs_check_digit(first9: str) -> int | None:
    """Check digit for the first 9 digits, or None when the remainder rule gives 10."""
    if len(first9) != 9 or not first9.isdigit():
        raise ValueError("need exactly 9 digits")
    total = sum(int(d) * w for d, w in zip(first9, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise_nhs_number(value: object) -> str | None:
    """Strip spaces and hyphens; return None for empty input."""
    if value is None:
        return None
    s = re.sub(r"[\s-]", "", str(value))
    return s or None


def is_valid_nhs_number(value: object) -> bool:
    """True for a 10-digit NHS number with a correct mod-11 check digit.

    Accepts the canonical form only (10 digits, no separators); call
    ``normalise_nhs_number`` first for display forms like ``485 777 3456``.
    """
    if not isinstance(value, str) or not _NHS_RE.match(value):
        return False
    check = nhs_check_digit(value[:9])
    return check is not None and check == int(value[9])


def make_nhs_number(first9: str) -> str:
    """Append the check digit; ValueError if these 9 digits cannot form a valid number."""
    check = nhs_check_digit(first9)
    if check is None:
        raise ValueError("these 9 digits give check 10: never issued")
    return first9 + str(check)


# --------------------------------------------------------------------------- PNC ID
def pnc_check_letter(yy: str | int, serial: str | int) -> str:
    """Check letter for a 2-digit year and a serial (<= 7 digits)."""
    yy_s = f"{int(yy):02d}"
    serial_i = int(serial)
    if not 0 <= int(yy_s) <= 99 or not 0 <= serial_i <= 9_999_999:
        raise ValueError("year must be 2 digits and serial at most 7 digits")
    return PNC_CHECK_LETTERS[int(f"{yy_s}{serial_i:07d}") % 23]


def normalise_pnc_id(value: object) -> str | None:
    """Canonical short form ``YY/NNNNNNNA`` (serial zero-padded to 7, upper-case letter).

    Accepts a 4-digit year (``2001/123456A`` -> ``01/0123456A``). Returns None when the
    value does not have the PNC shape at all (the check letter is not verified here).
    """
    if value is None:
        return None
    m = _PNC_LONG_RE.match(str(value).strip())
    if not m:
        return None
    year, serial, letter = m.groups()
    return f"{year[-2:]}/{int(serial):07d}{letter.upper()}"


def is_valid_pnc_id(value: object) -> bool:
    """True for ``YY/N{1,7}A`` whose letter matches the mod-23 check.

    The canonical form is ``YY/NNNNNNNA``; unpadded serials are accepted because
    they carry the same number. Use ``normalise_pnc_id`` for 4-digit years.
    """
    if not isinstance(value, str):
        return False
    m = _PNC_RE.match(value)
    if not m:
        return False
    yy, serial, letter = m.groups()
    return pnc_check_letter(yy, serial) == letter


def make_pnc_id(yy: int, serial: int) -> str:
    return f"{yy % 100:02d}/{serial:07d}{pnc_check_letter(yy % 100, serial)}"


# --------------------------------------------------------------------------- UPN
def upn_check_letter(digits12: str) -> str:
    """Check letter for the 12 digits that follow it (positions 2..13)."""
    if len(digits12) != 12 or not digits12.isdigit():
        raise ValueError("need exactly 12 digits")
    total = sum(int(d) * w for d, w in zip(digits12, range(2, 14)))
    return UPN_CHECK_LETTERS[total % 23]


def is_valid_upn(value: object) -> bool:
    """True for a permanent 13-character UPN with a correct check letter."""
    if not isinstance(value, str) or not _UPN_RE.match(value):
        return False
    return upn_check_letter(value[1:]) == value[0]


def make_upn(la_number: int, establishment: int, year: int, serial: int) -> str:
    digits = f"{la_number:03d}{establishment:04d}{year % 100:02d}{serial:03d}"
    return upn_check_letter(digits) + digits


# --------------------------------------------------------------------------- CRN
def is_valid_crn(value: object) -> bool:
    """True for a probation case reference number: one letter A-Z then 6 digits."""
    return isinstance(value, str) and bool(_CRN_RE.match(value))


def make_crn(letter: str, number: int) -> str:
    if len(letter) != 1 or not letter.isalpha() or not 0 <= number <= 999_999:
        raise ValueError("CRN is one letter and a number 0..999999")
    return f"{letter.upper()}{number:06d}"


# --------------------------------------------------------------------------- vectorised
# Generators map a global, non-negative person index to a unique identifier through an
# affine bijection (a*i + b) mod M (a coprime with M), so chunks can be generated
# independently and identifiers never collide. ``salt`` varies the mapping per seed.


def _affine(index: np.ndarray, modulus: int, salt: int, a: int) -> np.ndarray:
    idx = np.asarray(index, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= modulus):
        raise ValueError("person index out of range for identifier space")
    b = (salt * 2_654_435_761) % modulus
    # a < 2**31 and idx < 2**31: the product fits in int64
    return (np.int64(a) * idx + np.int64(b)) % np.int64(modulus)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Digit matrix (n, width) of non-negative ints."""
    v = np.asarray(values, dtype=np.int64)
    pows = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (v[:, None] // pows[None, :]) % 10


NHS_INDEX_LIMIT = 10_000_000


def nhs_numbers_from_index(index: np.ndarray, salt: int = 0) -> np.ndarray:
    """Unique valid NHS numbers (strings) for person indexes < 10,000,000.

    Stems are drawn from the ranges NHS England issues (400 000 000-499 999 999 and
    600 000 000-799 999 999): v = bijection(index) over 3e8 values, stem = 4e8 + v for
    v < 1e8 else 5e8 + v. When a stem's check would be 10, the stem of index + k*10^7
    (k = 1, 2, ...) is used instead, which can never belong to another person because
    indexes are < 10^7.
    """
    idx = np.asarray(index, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= NHS_INDEX_LIMIT):
        raise ValueError("person index must be in 0..9,999,999")
    out = np.empty(idx.size, dtype=object)
    pending = np.arange(idx.size)
    k = 0
    weights = np.arange(10, 1, -1, dtype=np.int64)
    while pending.size:
        v = _affine(idx[pending] + k * NHS_INDEX_LIMIT, 300_000_000, salt, 254_435_761)
        stems = np.where(v < 100_000_000, 400_000_000 + v, 500_000_000 + v)
        d = _digits(stems, 9)
        check = 11 - (d * weights).sum(axis=1) % 11
        check[check == 11] = 0
        ok = check != 10
        for j, s, c in zip(pending[ok], stems[ok], check[ok]):
            out[j] = f"{s}{c}"
        pending = pending[~ok]
        k += 1
    return out


def pnc_ids_from_index(index: np.ndarray, years: np.ndarray, salt: int = 0) -> np.ndarray:
    """Unique valid PNC IDs; ``years`` are 4- or 2-digit years of first arrest."""
    serial = _affine(index, 10_000_000, salt + 7, 7_368_787)
    yy = np.asarray(years, dtype=np.int64) % 100
    val = yy * 10_000_000 + serial
    letters = np.array(list(PNC_CHECK_LETTERS))[val % 23]
    return np.array([f"{y:02d}/{s:07d}{c}" for y, s, c in zip(yy, serial, letters)], dtype=object)


def upns_from_index(index: np.ndarray, la_numbers: np.ndarray, years: np.ndarray, salt: int = 0) -> np.ndarray:
    """Unique valid permanent UPNs for person indexes < 9,000,000.

    Establishment (1000-9999) and serial (000-999) come from a bijection of the index.
    """
    v = _affine(index, 9_000_000, salt + 11, 4_999_999)
    est = 1000 + v // 1000
    serial = v % 1000
    digits = [f"{la:03d}{e:04d}{y % 100:02d}{s:03d}" for la, e, y, s in zip(la_numbers, est, years, serial)]
    out = np.empty(len(digits), dtype=object)
    w = np.arange(2, 14, dtype=np.int64)
    if digits:
        mat = np.array([[int(c) for c in d] for d in digits], dtype=np.int64)
        rem = (mat * w).sum(axis=1) % 23
        for i, (d, r) in enumerate(zip(digits, rem)):
            out[i] = UPN_CHECK_LETTERS[r] + d
    return out


def crns_from_index(index: np.ndarray, salt: int = 0) -> np.ndarray:
    """Unique CRNs (letter A-Y + 6 digits) for person indexes < 25,000,000.

    The letter Z is left unused so callers can mint extra CRNs (e.g. duplicate cases)
    that can never collide with these.
    """
    v = _affine(index, 25_000_000, salt + 13, 9_999_991)
    return np.array([f"{chr(65 + x // 1_000_000)}{x % 1_000_000:06d}" for x in v], dtype=object)


# --------------------------------------------------------------------------- polars validators
# Vectorised forms of the is_valid_* rules, for contracts and linkage on whole columns
# (no per-row Python). tests/test_identifiers_vectorised.py checks they agree with the
# scalar validators above.
def _pl():
    import polars as pl  # local import: the generator path needs numpy only

    return pl


def nhs_number_is_valid(expr):
    """Polars expression: True where the text is a 10-digit NHS number with a valid check digit."""
    pl = _pl()
    digit = [expr.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(10)]
    total = pl.sum_horizontal([digit[i] * (10 - i) for i in range(9)])
    check = (11 - total % 11) % 11  # 11 -> 0; 10 stays 10 (never issued)
    return (expr.str.contains(r"^[0-9]{10}$") & (check != 10) & (check == digit[9])).fill_null(False)


def pnc_id_is_valid(expr):
    """Polars expression: True where the text is ``YY/N{1,7}A`` with a correct mod-23 check letter."""
    pl = _pl()
    parts = expr.str.extract_groups(r"^([0-9]{2})/([0-9]{1,7})([A-Z])$")
    value = parts.struct.field("1").cast(pl.Int64, strict=False) * 10_000_000 + parts.struct.field("2").cast(
        pl.Int64, strict=False)
    expected = (value % 23).replace_strict(list(range(23)), list(PNC_CHECK_LETTERS), default=None,
                                           return_dtype=pl.String)
    return (expected == parts.struct.field("3")).fill_null(False)


def upn_is_valid(expr):
    """Polars expression: True where the text is a permanent UPN with a correct check letter."""
    pl = _pl()
    digits = [expr.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(1, 13)]
    total = pl.sum_horizontal([d * w for d, w in zip(digits, range(2, 14))])
    expected = (total % 23).replace_strict(list(range(23)), list(UPN_CHECK_LETTERS), default=None,
                                           return_dtype=pl.String)
    return (expr.str.contains(r"^[A-Z][0-9]{12}$") & (expected == expr.str.slice(0, 1))).fill_null(False)


def crn_is_valid(expr):
    """Polars expression: True where the text is a CRN (one letter, six digits)."""
    return expr.str.contains(r"^[A-Z][0-9]{6}$").fill_null(False)


VALIDATORS = {"nhs_number": nhs_number_is_valid, "pnc_id": pnc_id_is_valid, "upn": upn_is_valid, "crn": crn_is_valid}
