"""Error model: how an agency mis-records a person's details.

``corrupt(rng, df, agency, scale)`` takes a frame of true details (forename, surname,
previous_surname, dob, sex, postcode, previous_postcode) and returns the recorded
details plus an ``errors`` column listing which corruptions were applied (kept in truth
records for evaluation). Rates come from config.ERROR_RATES x scale (capped at 0.95).
Loops run only over the rows selected for a given corruption.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import polars as pl

from sources.synthetic import config as C
from sources.synthetic.population import name_tables

_KEYBOARD = {
    "a": "qsz",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "w",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "x": "zc",
    "y": "tu",
    "z": "x",
}


def rate(kind: str, agency: str, scale: float) -> float:
    return min(0.95, C.ERROR_RATES[kind].get(agency, 0.0) * scale)


def strip_diacritics(s: str) -> str:
    out = unicodedata.normalize("NFKD", s)
    out = "".join(c for c in out if not unicodedata.combining(c))
    return out.replace("Ł", "L").replace("ł", "l").replace("ø", "o").replace("Ø", "O")


def typo(s: str, u: np.ndarray) -> str:
    """One keyboard-style error chosen by u[0]; positions by u[1], u[2]."""
    if not s or len(s) < 2:
        return s
    i = int(u[1] * (len(s) - 1))
    kind = int(u[0] * 4)
    if kind == 0:  # transposition of adjacent characters
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    if kind == 1:  # deletion
        j = max(1, i)
        return s[:j] + s[j + 1 :]
    if kind == 2:  # duplication
        return s[: i + 1] + s[i] + s[i + 1 :]
    c = s[i].lower()
    near = _KEYBOARD.get(c)
    if not near:
        return s[:i] + s[i + 1 :] if i > 0 else s
    r = near[int(u[2] * len(near)) % len(near)]
    r = r.upper() if s[i].isupper() else r
    return s[:i] + r + s[i + 1 :]


def _mask(rng, n, p):
    return rng.random(n) < p


def corrupt(rng: np.random.Generator, df: pl.DataFrame, agency: str, scale: float) -> pl.DataFrame:
    n = df.height
    fore = df["forename"].to_numpy().astype(object).copy()
    sur = df["surname"].to_numpy().astype(object).copy()
    prev_sur = df["previous_surname"].to_numpy().astype(object)
    dob = df["dob"].to_numpy().astype("datetime64[D]").copy()
    sex = df["sex"].to_numpy().astype(object).copy()
    pc = df["postcode"].to_numpy().astype(object).copy()
    prev_pc = df["previous_postcode"].to_numpy().astype(object)
    errs = [[] for _ in range(n)]

    def mark(idx, tag):
        for i in idx:
            errs[i].append(tag)

    nick = name_tables().nicknames
    idx = np.flatnonzero(_mask(rng, n, rate("nickname", agency, scale)))
    ch = rng.random(idx.size)
    for i, u in zip(idx, ch):
        v = nick.get(fore[i])
        if v:
            fore[i] = v[int(u * len(v)) % len(v)]
            errs[i].append("nickname")
    idx = np.flatnonzero(_mask(rng, n, rate("previous_surname", agency, scale)) & (prev_sur != None))  # noqa: E711
    sur[idx] = prev_sur[idx]
    mark(idx, "previous_surname")
    for kind, arr in (("typo_forename", fore), ("typo_surname", sur)):
        idx = np.flatnonzero(_mask(rng, n, rate(kind, agency, scale)))
        us = rng.random((idx.size, 3))
        for i, u in zip(idx, us):
            arr[i] = typo(arr[i], u)
        mark(idx, kind)
    idx = np.flatnonzero(_mask(rng, n, rate("name_swap", agency, scale)))
    fore[idx], sur[idx] = sur[idx].copy(), fore[idx].copy()
    mark(idx, "name_swap")

    # dates of birth
    years = dob.astype("datetime64[Y]")
    month = (dob.astype("datetime64[M]") - years.astype("datetime64[M]")).astype(int) + 1
    day = (dob - dob.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
    swap = np.flatnonzero(_mask(rng, n, rate("dob_day_month_swap", agency, scale)) & (day <= 12) & (day != month))
    for i in swap:
        dob[i] = np.datetime64(f"{str(years[i])}-{day[i]:02d}-{month[i]:02d}")
    mark(swap, "dob_day_month_swap")
    idx = np.flatnonzero(_mask(rng, n, rate("dob_typo", agency, scale)))
    shift = rng.choice([-365, 365, -1, 1, -10, 10, -3650, 3650], idx.size)
    dob[idx] = dob[idx] + shift.astype("timedelta64[D]")
    mark(idx, "dob_typo")
    idx = np.flatnonzero(_mask(rng, n, rate("dob_missing", agency, scale)))
    dob[idx] = np.datetime64("NaT")
    mark(idx, "dob_missing")
    idx = np.flatnonzero(_mask(rng, n, rate("sex_error", agency, scale)))
    sex[idx] = np.where(rng.random(idx.size) < 0.5, "U", np.where(sex[idx] == "M", "F", "M"))
    mark(idx, "sex_error")

    # postcodes
    idx = np.flatnonzero(_mask(rng, n, rate("old_postcode", agency, scale)) & (prev_pc != None))  # noqa: E711
    pc[idx] = prev_pc[idx]
    mark(idx, "old_postcode")
    idx = np.flatnonzero(_mask(rng, n, rate("postcode_format", agency, scale)) & (pc != None))  # noqa: E711
    kinds = rng.integers(0, 3, idx.size)
    for i, k in zip(idx, kinds):
        pc[i] = pc[i].replace(" ", "") if k == 0 else (pc[i].lower() if k == 1 else pc[i].replace(" ", "  "))
    mark(idx, "postcode_format")
    idx = np.flatnonzero(_mask(rng, n, rate("postcode_missing", agency, scale)))
    pc[idx] = None
    mark(idx, "postcode_missing")

    # diacritics and case/whitespace
    idx = np.flatnonzero(_mask(rng, n, rate("strip_diacritics", agency, scale)))
    for i in idx:
        a, b = strip_diacritics(fore[i]), strip_diacritics(sur[i])
        if a != fore[i] or b != sur[i]:
            fore[i], sur[i] = a, b
            errs[i].append("strip_diacritics")
    idx = np.flatnonzero(_mask(rng, n, rate("case_whitespace", agency, scale)))
    kinds = rng.integers(0, 4, idx.size)
    for i, k in zip(idx, kinds):
        if k == 0:
            sur[i] = sur[i].upper()
        elif k == 1:
            fore[i], sur[i] = fore[i].upper(), sur[i].upper()
        elif k == 2:
            sur[i] = sur[i] + " "
        else:
            fore[i] = " " + fore[i].lower()
    mark(idx, "case_whitespace")
    return df.with_columns(
        rec_forename=pl.Series(fore.tolist(), dtype=pl.String),
        rec_surname=pl.Series(sur.tolist(), dtype=pl.String),
        rec_dob=pl.Series(dob).cast(pl.Date),
        rec_sex=pl.Series(sex.tolist(), dtype=pl.String),
        rec_postcode=pl.Series(pc.tolist(), dtype=pl.String),
        errors=pl.Series([";".join(e) for e in errs], dtype=pl.String),
    )
