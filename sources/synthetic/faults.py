"""Deliberately bad deliveries (inject_faults=True), each in its own extra file.

Every fault file obeys the entity naming rule (stem minus a trailing ``_<token starting
with a digit>``), so it lands in the same raw table as the clean files and must be caught
by the reader/contract. The list written to ``<truth>/faults.json`` documents each one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from sources import identifiers as ids
from sources.synthetic import extracts as X
from sources.synthetic.extracts import _str

BAD_DATES = ["31/02/2024", "2024-13-45", "unknown", "00/00/0000", "12/31/2010", "2024/06/31", "N/K"]


def _rows(chunk0: list[X.Rows], agency: str, entity: str) -> pl.DataFrame | None:
    for r in chunk0:
        if r.agency == agency and r.entity == entity and r.df.height:
            return r.df
    return None


def _rec(df: pl.DataFrame, agency: str, entity: str, rel: str, uid: np.ndarray, errors: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "agency": _str([agency] * df.height),
            "file": _str([rel.split("/", 1)[1]] * df.height),
            "entity": _str([entity] * df.height),
            "row_number": pl.Series(np.arange(1, df.height + 1), dtype=pl.Int64),
            "source_record_id": df["_record_id"].cast(pl.String),
            "source_person_id": df["_person_id"].cast(pl.String),
            "person_uid": _str(uid[df["_pidx"].to_numpy()]),
            "event_id": _str([None] * df.height),
            "errors": _str([errors] * df.height),
        }
    )


def _bad_check(value: str, kind: str) -> str:
    if kind == "nhs":
        for d in range(1, 10):
            v = value[:9] + str((int(value[9]) + d) % 10)
            if not ids.is_valid_nhs_number(v):
                return v
    if kind == "pnc":
        letters = ids.PNC_CHECK_LETTERS
        return value[:-1] + letters[(letters.index(value[-1]) + 5) % 23]
    if kind == "upn":
        letters = ids.UPN_CHECK_LETTERS
        return letters[(letters.index(value[0]) + 7) % 23] + value[1:]
    raise ValueError(kind)


def inject_faults(out: Path, chunk0: list[X.Rows], landing, period, seed: int) -> tuple[list[dict], list[pl.DataFrame]]:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 666])))
    uid = landing.chunk0_uid
    faults: list[dict] = []
    recs: list[pl.DataFrame] = []
    month = str(period.start.astype("datetime64[M]"))
    quarter = f"{str(period.start)[:4]}-Q{(int(str(period.start)[5:7]) - 1) // 3 + 1}"

    def add(rel, kind, rows, desc):
        faults.append({"file": rel, "kind": kind, "rows_affected": int(rows), "description": desc})

    police = _rows(chunk0, "police", "occurrences")
    cols = X.COLUMNS[("police", "occurrences")]
    if police is not None:
        # 1. wrong encoding (cp1252 bytes, invalid as UTF-8)
        non_ascii = police.filter(
            pl.concat_str(["Forenames", "Surname"], ignore_nulls=True).str.contains(r"[^\x00-\x7F]")
        )
        sample = (
            pl.concat([non_ascii.head(100), police.head(200)])
            .unique("_record_id", keep="first", maintain_order=True)
            .head(200)
        )
        if not sample["Forenames"].fill_null("").str.contains(r"[^\x00-\x7F]").any():
            sample = sample.with_columns(
                pl.when(pl.int_range(pl.len()) == 0)
                .then(pl.lit("Zoë"))
                .otherwise(pl.col("Forenames"))
                .alias("Forenames")
            )
        rel = f"police/occurrences_{month}-legacy.csv"
        text = sample.select(cols).write_csv()
        (out / rel).write_bytes(text.encode("cp1252", errors="replace"))
        n_bad = int(
            sample["Forenames"].fill_null("").str.contains(r"[^\x00-\x7F]").sum()
            + sample["Surname"].fill_null("").str.contains(r"[^\x00-\x7F]").sum()
        )
        add(
            rel,
            "wrong_encoding",
            n_bad,
            "re-sent in Windows-1252 (cp1252) instead of UTF-8: accented names are not valid "
            "UTF-8; characters outside cp1252 (e.g. Ł) were replaced by '?'",
        )
        recs.append(_rec(sample, "police", "occurrences", rel, uid, "fault:wrong_encoding"))
        # 2. missing required column
        rel = f"police/occurrences_{month}-nodob.csv"
        part = police.head(150)
        part.select([c for c in cols if c != "DateOfBirth"]).write_csv(out / rel)
        add(rel, "missing_column", part.height, "the DateOfBirth column is absent from the header and every row")
        recs.append(_rec(part, "police", "occurrences", rel, uid, "fault:missing_column"))
        # 3. invalid PNC check letters
        with_pnc = police.filter(pl.col("PNCId").is_not_null()).head(60)
        if with_pnc.height:
            rel = f"police/occurrences_{month}-badids.csv"
            bad = with_pnc.with_columns(PNCId=_str([_bad_check(v, "pnc") for v in with_pnc["PNCId"]]))
            bad.select(cols).write_csv(out / rel)
            add(
                rel,
                "invalid_check_digit",
                bad.height,
                "PNCId check letters altered: every PNC ID in this file fails the mod-23 check",
            )
            recs.append(_rec(bad, "police", "occurrences", rel, uid, "fault:invalid_pnc"))
        # 4. duplicated delivery: byte-identical copy of the first month
        src = out / landing.tracked_file
        if src.exists():
            rel = landing.tracked_file.replace(".csv", "-resend.csv")
            shutil.copyfile(src, out / rel)
            st = src.stat()  # the resend arrives later than the original (mtime only; bytes are identical)
            os.utime(out / rel, (st.st_atime, st.st_mtime + 3600))
            tracked = pl.concat(landing.tracked_records) if landing.tracked_records else None
            add(
                rel,
                "duplicate_delivery",
                tracked.height if tracked is not None else 0,
                f"byte-identical copy of {landing.tracked_file} delivered again under another name",
            )
            if tracked is not None:
                recs.append(
                    tracked.with_columns(file=pl.lit(rel.split("/", 1)[1]), errors=pl.lit("fault:duplicate_delivery"))
                )

    refs = _rows(chunk0, "childrens_social_care", "referrals")
    rcols = X.COLUMNS[("childrens_social_care", "referrals")]
    if refs is not None:
        # 5. unparseable dates
        part = refs.head(120)
        bad_idx = rng.random(part.height) < 0.25
        bad_idx[0] = True
        bad_dob = np.where(bad_idx, rng.choice(BAD_DATES, part.height), part["DateOfBirth"].to_numpy())
        bad_ref = np.where(
            bad_idx & (rng.random(part.height) < 0.5),
            rng.choice(BAD_DATES, part.height),
            part["ReferralDate"].to_numpy(),
        )
        part = part.with_columns(DateOfBirth=_str(bad_dob), ReferralDate=_str(bad_ref))
        rel = f"childrens_social_care/referrals_{quarter}-amended.csv"
        part.select(rcols).write_csv(out / rel)
        add(
            rel,
            "unparseable_dates",
            int(bad_idx.sum()),
            "DateOfBirth (and sometimes ReferralDate) holds impossible or "
            "non-date text such as 31/02/2024, 2024-13-45, unknown",
        )
        recs.append(_rec(part, "childrens_social_care", "referrals", rel, uid, "fault:unparseable_dates"))
        # 6. invalid UPN check letters
        with_upn = refs.filter(pl.col("UPN").is_not_null()).head(60)
        if with_upn.height:
            rel = f"childrens_social_care/referrals_{quarter}-badids.csv"
            bad = with_upn.with_columns(UPN=_str([_bad_check(v, "upn") for v in with_upn["UPN"]]))
            bad.select(rcols).write_csv(out / rel)
            add(
                rel,
                "invalid_check_digit",
                bad.height,
                "UPN check letters altered: every UPN in this file fails the DfE mod-23 check",
            )
            recs.append(_rec(bad, "childrens_social_care", "referrals", rel, uid, "fault:invalid_upn"))
    # 7. empty file
    rel = f"childrens_social_care/cp_plans_{quarter}-empty.csv"
    (out / rel).write_bytes(b"")
    add(rel, "empty_file", 0, "zero-byte delivery (no header, no rows)")

    pats = _rows(chunk0, "nhs", "patient")
    if pats is not None:
        # 8. invalid NHS numbers (copies of real patients with a corrupted check digit, new resource ids)
        part = pats.filter(pl.col("_line").str.contains("nhs-number")).head(60)
        if part.height:
            lines = []
            for line in part["_line"].to_list():
                import json

                res = json.loads(line)
                res["id"] = res["id"][:-4] + "ffff"
                ident = res["identifier"][0]
                ident["value"] = _bad_check(ident["value"], "nhs")
                lines.append(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
            rel = "nhs/Patient_900-badids.ndjson"
            (out / rel).write_text("\n".join(lines) + "\n", encoding="utf-8")
            add(
                rel,
                "invalid_check_digit",
                len(lines),
                "NHS numbers with a wrong mod-11 check digit (patients otherwise copied from Patient_001)",
            )
            recs.append(
                _rec(
                    part.with_columns(
                        _record_id=pl.Series([json.loads(x)["id"] for x in lines]),
                        _person_id=pl.Series([json.loads(x)["id"] for x in lines]),
                    ),
                    "nhs",
                    "patient",
                    rel,
                    uid,
                    "fault:invalid_nhs_number",
                )
            )
    enc = _rows(chunk0, "nhs", "encounter")
    if enc is not None:
        # 9. truncated last NDJSON line
        part = enc.head(50)
        lines = part["_line"].to_list()
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
        rel = "nhs/Encounter_900-truncated.ndjson"
        (out / rel).write_text("\n".join(lines), encoding="utf-8")
        add(
            rel,
            "truncated_ndjson",
            1,
            "the last line is cut half-way (invalid JSON, no trailing newline); the other lines are copies of Encounter_001",
        )
        recs.append(_rec(part, "nhs", "encounter", rel, uid, "fault:truncated_ndjson"))
    return faults, recs
