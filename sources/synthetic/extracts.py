"""Turn true events into agency extract rows, in each agency's own conventions.

Every builder returns ``Rows`` objects: the extract columns (exactly the documented
header, see README.md) plus hidden columns used for ground truth and file routing:
``_token`` (the file's period token), ``_sort``, ``_record_id``, ``_person_id``,
``_pidx``, ``_event_id``, ``_errors``. Hidden columns are never written to landing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from sources.synthetic import config as C
from sources.synthetic.events import FACTOR_LABELS, HO, INCIDENTS, Period
from sources.synthetic.geography import LAS
from sources.synthetic.noise import corrupt, rate

# column lists: the landing contract (tests assert headers equal these)
COLUMNS = {
    ("police", "occurrences"): [
        "OccurrenceRef",
        "InvolvementRef",
        "RecordedDateTime",
        "OccurrenceType",
        "HOClassCode",
        "HOClassDescription",
        "DomesticAbuseFlag",
        "KnifeFlag",
        "Latitude",
        "Longitude",
        "BeatCode",
        "LocationDescription",
        "PersonRole",
        "PersonRef",
        "Surname",
        "Forenames",
        "DateOfBirth",
        "Gender",
        "Address",
        "Postcode",
        "PNCId",
        "NHSNumber",
        "SelfDefinedEthnicity",
    ],
    ("childrens_social_care", "referrals"): [
        "ReferralID",
        "ChildID",
        "UPN",
        "Forename",
        "Surname",
        "DateOfBirth",
        "Gender",
        "Ethnicity",
        "Postcode",
        "LACode",
        "ReferralDate",
        "ReferralSource",
        "PrimaryNeedCode",
        "NHSNumber",
    ],
    ("childrens_social_care", "assessment_factors"): [
        "AssessmentFactorID",
        "AssessmentID",
        "ReferralID",
        "ChildID",
        "UPN",
        "LACode",
        "AssessmentActualStartDate",
        "AssessmentAuthorisationDate",
        "FactorCode",
        "FactorDescription",
    ],
    ("childrens_social_care", "cp_plans"): [
        "CPPlanID",
        "ChildID",
        "UPN",
        "Forename",
        "Surname",
        "DateOfBirth",
        "Gender",
        "Postcode",
        "LACode",
        "ReferralID",
        "CPPlanStartDate",
        "CPPlanEndDate",
        "InitialCategoryOfAbuse",
    ],
    ("adult_social_care", "s42_enquiries"): [
        "EnquiryID",
        "PersonID",
        "NHSNumber",
        "FirstName",
        "LastName",
        "DateOfBirth",
        "Gender",
        "Postcode",
        "LACode",
        "EnquiryStartDate",
        "EnquiryEndDate",
        "TypeOfAbuse",
        "LocationOfRisk",
        "SourceOfRisk",
        "RiskOutcome",
    ],
    ("probation", "caseload"): [
        "CRN",
        "PNC Number",
        "Surname",
        "Forename",
        "Date of Birth",
        "Gender",
        "Postcode",
        "Sentence Type",
        "Supervision Start Date",
        "OASys RoSH",
        "MAPPA Category",
        "MAPPA Level",
        "Probation Delivery Unit",
    ],
}
# which columns hold the per-row record id and the agency's person id
ID_COLUMNS = {
    ("police", "occurrences"): ("InvolvementRef", "PersonRef"),
    ("childrens_social_care", "referrals"): ("ReferralID", "ChildID"),
    ("childrens_social_care", "assessment_factors"): ("AssessmentFactorID", "ChildID"),
    ("childrens_social_care", "cp_plans"): ("CPPlanID", "ChildID"),
    ("adult_social_care", "s42_enquiries"): ("EnquiryID", "PersonID"),
    ("probation", "caseload"): ("CRN", "CRN"),
    ("nhs", "patient"): ("id", "id"),
    ("nhs", "encounter"): ("id", "subject.reference"),
}

SDE = {
    "white_british": "W1",
    "east_european": "W9",
    "south_asian_indian": "A1",
    "south_asian_pakistani": "A2",
    "black_african": "B2",
    "black_caribbean": "B1",
    "east_asian": "A4",
    "mixed": "M9",
    "other": "O9",
}
CIN_ETH = {
    "white_british": "WBRI",
    "east_european": "WOTH",
    "south_asian_indian": "AIND",
    "south_asian_pakistani": "APKN",
    "black_african": "BAFR",
    "black_caribbean": "BCRB",
    "east_asian": "CHNE",
    "mixed": "MOTH",
    "other": "OOTH",
}
ED_TRUST = {  # LA -> (ODS code, trust name)
    "E06000038": ("RHW", "Royal Berkshire NHS Foundation Trust"),
    "E06000037": ("RHW", "Royal Berkshire NHS Foundation Trust"),
    "E06000041": ("RHW", "Royal Berkshire NHS Foundation Trust"),
    "E06000039": ("RDU", "Frimley Health NHS Foundation Trust"),
    "E06000040": ("RDU", "Frimley Health NHS Foundation Trust"),
    "E06000036": ("RDU", "Frimley Health NHS Foundation Trust"),
    "E06000042": ("RD8", "Milton Keynes University Hospital NHS Foundation Trust"),
    "E06000060": ("RXQ", "Buckinghamshire Healthcare NHS Trust"),
}
OUH = ("RTH", "Oxford University Hospitals NHS Foundation Trust")
FHIR_EXT = "https://fhir.tapestry.example/StructureDefinition/"
FHIR_CS = "https://fhir.tapestry.example/CodeSystem/"
LA_SHORT = {k: v[0][:3].upper() for k, v in LAS.items()}


def _str(values) -> pl.Series:
    """String series from a numpy/object array or list (None -> null)."""
    return pl.Series(values.tolist() if isinstance(values, np.ndarray) else list(values), dtype=pl.String)


@dataclass
class Rows:
    agency: str
    entity: str
    df: pl.DataFrame  # extract columns + hidden columns


class Counters:
    """Global sequential counters, advanced chunk by chunk (deterministic)."""

    def __init__(self, base: dict[str, int]):
        self.v = dict(base)

    def take(self, name: str, k: int) -> np.ndarray:
        s = self.v.setdefault(name, 0)
        self.v[name] = s + k
        return np.arange(s, s + k, dtype=np.int64)


def _quarter(d: pl.Expr) -> pl.Expr:
    return d.dt.year().cast(pl.String) + "-Q" + d.dt.quarter().cast(pl.String)


def _truth_frame(P: pl.DataFrame, pidx: np.ndarray) -> pl.DataFrame:
    return (
        P[pidx]
        .select(
            "forename",
            "middle_names",
            "surname",
            "previous_surname",
            "dob",
            "sex",
            "postcode",
            "previous_postcode",
            "address",
            "previous_address",
            "town",
            "nhs_number",
            "pnc_id",
            "upn",
            "crn",
            "ethnic_group",
            "person_uid",
            "la_code",
            "age_at_start",
        )
        .with_columns(_pidx=pl.Series(pidx))
    )


def _personas(
    rng,
    P: pl.DataFrame,
    pidx_rows: np.ndarray,
    agency: str,
    scale: float,
    counters: Counters,
    id_fmt,
    noisy: bool = True,
):
    """One persona per person (plus a duplicate persona for some); returns (personas, persona index per row)."""
    uniq = np.unique(pidx_rows)
    dup = rng.random(uniq.size) < rate("duplicate_person", agency, scale)
    who = np.concatenate([uniq, uniq[dup]])
    kind = np.concatenate([np.zeros(uniq.size, np.int8), np.ones(dup.sum(), np.int8)])
    base = _truth_frame(P, who)
    per = corrupt(rng, base, agency, scale) if noisy else base
    ids = counters.take(f"{agency}_person", who.size)
    ids = ids[rng.permutation(ids.size)]
    per = per.with_columns(_persona_kind=pl.Series(kind), _person_id=_str([id_fmt(i) for i in ids]))
    # row -> persona: primary, or the duplicate (40%) when one exists
    pos = np.searchsorted(uniq, pidx_rows)
    has_dup = np.zeros(uniq.size, bool)
    has_dup[dup] = True
    dup_pos = np.full(uniq.size, -1)
    dup_pos[np.flatnonzero(dup)] = uniq.size + np.arange(dup.sum())
    use_dup = has_dup[pos] & (rng.random(pidx_rows.size) < 0.4)
    row_persona = np.where(use_dup, dup_pos[pos], pos)
    return per, row_persona


def _fmt_date(expr: pl.Expr, fmt: str) -> pl.Expr:
    return expr.dt.strftime(fmt)


def _ids_present(rng, values: pl.Series, p) -> pl.Series:
    keep = rng.random(values.len()) < p
    return _str(np.where(keep, values.to_numpy(), None))


# ------------------------------------------------------------------ police
def police_rows(rng, P, A, occ, inv, counters: Counters, scale: float, gi) -> list[Rows]:
    if not occ.height or not inv.height:
        return []
    occ_ids = counters.take("police_occurrence", occ.height)
    occ = occ.with_columns(_occ_global=pl.Series(occ_ids))
    df = inv.join(occ, on="occ", how="left").sort("time", "occ", "role", "pidx")
    n = df.height
    pidx = df["pidx"].to_numpy()
    per, row_persona = _personas(
        rng, P, pidx, "police", scale, counters, lambda i: f"TVP{10_000_000 + i:08d}", noisy=False
    )
    person_id = per["_person_id"].to_numpy()[row_persona]
    truth = _truth_frame(P, pidx)
    rec = corrupt(rng, truth, "police", scale)  # officers re-key details on each occurrence
    inv_ids = counters.take("police_involvement", n)
    year = df["time"].dt.year().to_numpy() % 100
    occ_ref = [f"43{y:02d}{o:08d}" for y, o in zip(year, df["_occ_global"].to_numpy())]
    role = df["role"].to_numpy()
    offender_role = np.isin(role, ["SUSPECT", "OFFENDER"])
    pnc_p = np.where(
        offender_role,
        C.IDENTIFIER_PRESENCE["police"]["pnc_id_offender_role"],
        C.IDENTIFIER_PRESENCE["police"]["pnc_id_other_role"],
    )
    lsoa_i = df["lsoa_i"].to_numpy()
    la = gi.la_code[lsoa_i]
    beat = [f"{LA_SHORT[a]}{(i % 40) + 1:02d}" for a, i in zip(la, lsoa_i)]
    place = df["place"].to_numpy()
    street = rec["address"].to_numpy()
    loc_desc = np.where(
        place == "home",
        "Dwelling - " + np.array([s.split(", ")[-1].split(" ", 1)[-1] for s in street], dtype=object),
        "Public place near " + np.array([s.split(", ")[-1].split(" ", 1)[-1] for s in street], dtype=object),
    )
    use_old_addr = (
        rec["errors"].str.contains("old_postcode").to_numpy() & rec["previous_address"].is_not_null().to_numpy()
    )
    address = np.where(use_old_addr, rec["previous_address"].to_numpy(), rec["address"].to_numpy())
    address = np.where(rec["rec_postcode"].is_null().to_numpy() & (rng.random(n) < 0.5), None, address)
    code = df["code"].to_numpy()
    out = pl.DataFrame(
        {
            "OccurrenceRef": occ_ref,
            "InvolvementRef": [f"INV{i:09d}" for i in inv_ids],
            "RecordedDateTime": df["time"].dt.strftime("%d/%m/%Y %H:%M"),
            "OccurrenceType": df["kind"],
            "HOClassCode": _str(np.where(np.isin(code, list(INCIDENTS)), None, code)),
            "HOClassDescription": _str([HO.get(c) or INCIDENTS[c] for c in code]),
            "DomesticAbuseFlag": np.where(df["domestic"].to_numpy(), "Y", "N"),
            "KnifeFlag": np.where(df["knife"].to_numpy(), "Y", "N"),
            "Latitude": [f"{x:.6f}" for x in df["lat"].to_numpy()],
            "Longitude": [f"{x:.6f}" for x in df["lon"].to_numpy()],
            "BeatCode": beat,
            "LocationDescription": _str(loc_desc),
            "PersonRole": role,
            "PersonRef": _str(person_id),
            "Surname": rec["rec_surname"],
            "Forenames": rec["rec_forename"],
            "DateOfBirth": rec["rec_dob"].dt.strftime("%d/%m/%Y"),
            "Gender": rec["rec_sex"].replace_strict({"M": "Male", "F": "Female", "U": "Unknown"}, default="Unknown"),
            "Address": _str(address),
            "Postcode": rec["rec_postcode"],
            "PNCId": _str(np.where(rng.random(n) < pnc_p, truth["pnc_id"].to_numpy(), None)),
            "NHSNumber": _ids_present(rng, truth["nhs_number"], C.IDENTIFIER_PRESENCE["police"]["nhs_number"]),
            "SelfDefinedEthnicity": _str(
                np.where(rng.random(n) < 0.8, [SDE[g] for g in truth["ethnic_group"].to_numpy()], "NS")
            ),
        }
    )
    out = out.with_columns(
        _token=df["time"].dt.strftime("%Y-%m"),
        _sort=df["time"],
        _record_id=out["InvolvementRef"],
        _person_id=out["PersonRef"],
        _pidx=pl.Series(pidx),
        _errors=rec["errors"],
        _event_type=pl.lit("police_involvement"),
        _event_code=_str(code),
        _event_date=df["time"].dt.date(),
        _event_lsoa=_str(gi.lsoa_code[lsoa_i]),
        _event_role=df["role"],
    )
    return [Rows("police", "occurrences", out)]


# ------------------------------------------------------------------ children's social care
def csc_rows(rng, P, A, refs, facs, cps, counters: Counters, scale: float) -> list[Rows]:
    if not refs.height:
        return []
    agency = "childrens_social_care"
    all_p = refs["pidx"].to_numpy()
    per, _ = _personas(rng, P, all_p, agency, scale, counters, lambda i: f"LCS{1_000_000 + i:07d}")
    uniq = np.unique(all_p)
    # UPN presence per persona
    upn = per["upn"].to_numpy()
    age = per["age_at_start"].to_numpy()
    p_upn = np.where(
        age >= 5, C.IDENTIFIER_PRESENCE[agency]["upn_school_age"], C.IDENTIFIER_PRESENCE[agency]["upn_under_5"]
    )
    per = per.with_columns(
        rec_upn=_str(np.where(rng.random(per.height) < p_upn, upn, None)),
        rec_nhs=_ids_present(rng, per["nhs_number"], C.IDENTIFIER_PRESENCE[agency]["nhs_number"]),
        rec_la=_str([LAS[c][10] for c in per["la_code"].to_numpy()]),
    )

    def persona_for(pidx):
        pos = np.searchsorted(uniq, pidx)
        n_dup = per.height - uniq.size
        dup_of = per["_pidx"].to_numpy()[uniq.size :]
        dup_map = {p: uniq.size + j for j, p in enumerate(dup_of)}
        use = np.array([dup_map.get(p, -1) for p in pidx]) if n_dup else np.full(pidx.size, -1)
        use = np.where((use >= 0) & (rng.random(pidx.size) < 0.4), use, pos)
        return per[use]

    ref_ids = counters.take("csc_referral", refs.height)
    ref_id_of = np.array([f"REF{i:08d}" for i in ref_ids], dtype=object)
    r = persona_for(all_p)
    out = []
    ref_df = pl.DataFrame(
        {
            "ReferralID": _str(ref_id_of),
            "ChildID": r["_person_id"],
            "UPN": r["rec_upn"],
            "Forename": r["rec_forename"],
            "Surname": r["rec_surname"],
            "DateOfBirth": r["rec_dob"].dt.strftime("%Y-%m-%d"),
            "Gender": r["rec_sex"].replace_strict({"M": "1", "F": "2", "U": "0"}, default="9"),
            "Ethnicity": _str([CIN_ETH[g] for g in r["ethnic_group"].to_numpy()]),
            "Postcode": r["rec_postcode"],
            "LACode": r["rec_la"],
            "ReferralDate": refs["date"].dt.strftime("%Y-%m-%d"),
            "ReferralSource": refs["source"],
            "PrimaryNeedCode": refs["need"],
            "NHSNumber": r["rec_nhs"],
        }
    )
    ref_df = ref_df.with_columns(
        _token=_quarter(refs["date"]),
        _sort=refs["date"].cast(pl.Datetime("ms")),
        _record_id=ref_df["ReferralID"],
        _person_id=ref_df["ChildID"],
        _pidx=refs["pidx"],
        _errors=r["errors"],
        _event_type=pl.lit("csc_referral"),
        _event_code=refs["kind"],
        _event_date=refs["date"],
        _event_lsoa=pl.lit(None, pl.String),
        _event_role=pl.lit("CHILD"),
    )
    out.append(Rows(agency, "referrals", ref_df))
    child_of_ref = ref_df["ChildID"].to_numpy()
    upn_of_ref = ref_df["UPN"].to_numpy()
    la_of_ref = ref_df["LACode"].to_numpy()
    if facs.height:
        fi = facs["ref"].to_numpy()
        ass_ids = counters.take("csc_assessment", refs.height)
        f_ids = counters.take("csc_factor", facs.height)
        f_df = pl.DataFrame(
            {
                "AssessmentFactorID": [f"AF{i:09d}" for i in f_ids],
                "AssessmentID": [f"ASM{ass_ids[i]:08d}" for i in fi],
                "ReferralID": _str(ref_id_of[fi]),
                "ChildID": _str(child_of_ref[fi]),
                "UPN": _str(upn_of_ref[fi]),
                "LACode": _str(la_of_ref[fi]),
                "AssessmentActualStartDate": facs["assess_start"].dt.strftime("%Y-%m-%d"),
                "AssessmentAuthorisationDate": facs["assess_auth"].dt.strftime("%Y-%m-%d"),
                "FactorCode": facs["code"],
                "FactorDescription": _str([FACTOR_LABELS[c] for c in facs["code"].to_numpy()]),
            }
        )
        f_df = f_df.with_columns(
            _token=_quarter(facs["assess_start"]),
            _sort=facs["assess_start"].cast(pl.Datetime("ms")),
            _record_id=f_df["AssessmentFactorID"],
            _person_id=f_df["ChildID"],
            _pidx=facs["pidx"],
            _errors=pl.lit(""),
            _event_type=pl.lit("csc_assessment_factor"),
            _event_code=facs["code"],
            _event_date=facs["assess_start"],
            _event_lsoa=pl.lit(None, pl.String),
            _event_role=pl.lit("CHILD"),
        )
        out.append(Rows(agency, "assessment_factors", f_df))
    if cps.height:
        ci = cps["ref"].to_numpy()
        cp_ids = counters.take("csc_cp_plan", cps.height)
        c = r[ci]
        c_df = pl.DataFrame(
            {
                "CPPlanID": [f"CPP{i:07d}" for i in cp_ids],
                "ChildID": c["_person_id"],
                "UPN": c["rec_upn"],
                "Forename": c["rec_forename"],
                "Surname": c["rec_surname"],
                "DateOfBirth": c["rec_dob"].dt.strftime("%Y-%m-%d"),
                "Gender": c["rec_sex"].replace_strict({"M": "1", "F": "2", "U": "0"}, default="9"),
                "Postcode": c["rec_postcode"],
                "LACode": c["rec_la"],
                "ReferralID": _str(ref_id_of[ci]),
                "CPPlanStartDate": cps["start"].dt.strftime("%Y-%m-%d"),
                "CPPlanEndDate": cps["end"].dt.strftime("%Y-%m-%d"),
                "InitialCategoryOfAbuse": cps["category"],
            }
        )
        c_df = c_df.with_columns(
            _token=_quarter(cps["start"]),
            _sort=cps["start"].cast(pl.Datetime("ms")),
            _record_id=c_df["CPPlanID"],
            _person_id=c_df["ChildID"],
            _pidx=cps["pidx"],
            _errors=c["errors"],
            _event_type=pl.lit("csc_cp_plan"),
            _event_code=cps["category"],
            _event_date=cps["start"],
            _event_lsoa=pl.lit(None, pl.String),
            _event_role=pl.lit("CHILD"),
        )
        out.append(Rows(agency, "cp_plans", c_df))
    return out


# ------------------------------------------------------------------ adult social care
def asc_rows(rng, P, A, s42, counters: Counters, scale: float) -> list[Rows]:
    if not s42.height:
        return []
    agency = "adult_social_care"
    pidx = s42["pidx"].to_numpy()
    per, row_persona = _personas(rng, P, pidx, agency, scale, counters, lambda i: f"{2_000_000 + i:07d}")
    per = per.with_columns(rec_nhs=_ids_present(rng, per["nhs_number"], C.IDENTIFIER_PRESENCE[agency]["nhs_number"]))
    r = per[row_persona]
    ids = counters.take("asc_enquiry", s42.height)
    df = pl.DataFrame(
        {
            "EnquiryID": [f"S42-{i:07d}" for i in ids],
            "PersonID": r["_person_id"],
            "NHSNumber": r["rec_nhs"],
            "FirstName": r["rec_forename"],
            "LastName": r["rec_surname"],
            "DateOfBirth": r["rec_dob"].dt.strftime("%d/%m/%Y"),
            "Gender": r["rec_sex"].replace_strict({"M": "Male", "F": "Female", "U": "Unknown"}, default="Unknown"),
            "Postcode": r["rec_postcode"],
            "LACode": _str([LAS[c][10] for c in r["la_code"].to_numpy()]),
            "EnquiryStartDate": s42["start"].dt.strftime("%d/%m/%Y"),
            "EnquiryEndDate": s42["end"].dt.strftime("%d/%m/%Y"),
            "TypeOfAbuse": s42["abuse"],
            "LocationOfRisk": s42["location"],
            "SourceOfRisk": s42["source_of_risk"],
            "RiskOutcome": s42["outcome"].replace("", None),
        }
    )
    df = df.with_columns(
        _token=_quarter(s42["start"]),
        _sort=s42["start"].cast(pl.Datetime("ms")),
        _record_id=df["EnquiryID"],
        _person_id=df["PersonID"],
        _pidx=s42["pidx"],
        _errors=r["errors"],
        _event_type=pl.lit("s42_enquiry"),
        _event_code=s42["abuse"],
        _event_date=s42["start"],
        _event_lsoa=pl.lit(None, pl.String),
        _event_role=pl.lit("ADULT_AT_RISK"),
    )
    return [Rows(agency, "s42_enquiries", df)]


# ------------------------------------------------------------------ probation
def snapshot_dates(period: Period) -> list[np.datetime64]:
    m0 = period.start.astype("datetime64[M]")
    return [(m0 + 3 * q).astype("datetime64[D]") for q in range((period.months + 2) // 3)]


def probation_rows(rng, P, A, sup, counters: Counters, scale: float, period: Period) -> list[Rows]:
    if not sup.height:
        return []
    agency = "probation"
    pidx = sup["pidx"].to_numpy()
    truth = _truth_frame(P, pidx)
    crn = truth["crn"].to_numpy()
    per = corrupt(rng, truth, agency, scale)
    pnc = np.where(rng.random(pidx.size) < C.IDENTIFIER_PRESENCE[agency]["pnc_id"], truth["pnc_id"].to_numpy(), None)
    # a few persons hold a second (duplicate) CRN used in later snapshots
    dup = rng.random(pidx.size) < rate("duplicate_person", agency, scale)
    dup_crn_num = counters.take("probation_dup_crn", int(dup.sum()))
    dup_crn = np.full(pidx.size, None, dtype=object)
    dup_crn[dup] = [f"Z{900_000 + i % 100_000:06d}" for i in dup_crn_num]
    pdu = np.array([LAS[c][0] for c in per["la_code"].to_numpy()], dtype=object)
    frames = []
    start, end = sup["start"].to_numpy(), sup["end"].to_numpy()
    for si, snap in enumerate(snapshot_dates(period)):
        act = np.flatnonzero((start <= snap) & (end > snap))
        if not act.size:
            continue
        use_crn = np.where(dup[act] & (si % 2 == 1), dup_crn[act], crn[act])
        r = per[act]
        f = pl.DataFrame(
            {
                "CRN": _str(use_crn),
                "PNC Number": _str(pnc[act]),
                "Surname": r["rec_surname"],
                "Forename": r["rec_forename"],
                "Date of Birth": r["rec_dob"],
                "Gender": r["rec_sex"].replace_strict({"M": "M", "F": "F", "U": "N"}, default="N"),
                "Postcode": r["rec_postcode"],
                "Sentence Type": sup["sentence"].to_numpy()[act],
                "Supervision Start Date": sup["start"].to_numpy()[act],
                "OASys RoSH": sup["rosh"].to_numpy()[act],
                "MAPPA Category": _str(sup["mappa_category"].to_numpy()[act]),
                "MAPPA Level": _str(sup["mappa_level"].to_numpy()[act]),
                "Probation Delivery Unit": _str(pdu[act]),
            }
        ).with_columns(pl.col("Supervision Start Date").cast(pl.Date))
        f = f.with_columns(
            _token=pl.lit(str(snap)),
            _sort=pl.col("Supervision Start Date").cast(pl.Datetime("ms")),
            _record_id=f["CRN"],
            _person_id=f["CRN"],
            _pidx=pl.Series(pidx[act]),
            _errors=r["errors"],
            _event_type=pl.lit("probation_supervision"),
            _event_code=f["Sentence Type"],
            _event_date=f["Supervision Start Date"],
            _event_lsoa=pl.lit(None, pl.String),
            _event_role=pl.lit("SUPERVISED"),
        )
        frames.append(f)
    return [Rows(agency, "caseload", pl.concat(frames))] if frames else []


# ------------------------------------------------------------------ NHS (FHIR R4 bulk NDJSON)
def _uuid(rng, n):
    b = rng.integers(0, 2**32, size=(n, 4), dtype=np.uint64)
    out = []
    for row in b:
        h = "".join(f"{int(x):08x}" for x in row)
        h = h[:12] + "4" + h[13:16] + "89ab"[int(h[16], 16) % 4] + h[17:]
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}")
    return out


def nhs_rows(rng, P, A, ed, counters: Counters, scale: float) -> list[Rows]:
    if not ed.height:
        return []
    agency = "nhs"
    pidx = ed["pidx"].to_numpy()
    per, row_persona = _personas(rng, P, pidx, agency, scale, counters, lambda i: "")
    pat_ids = _uuid(rng, per.height)
    per = per.with_columns(_person_id=_str(pat_ids))
    nhs_present = rng.random(per.height) < C.IDENTIFIER_PRESENCE[agency]["nhs_number"]
    lines = []
    dumps = json.dumps
    for i, row in enumerate(per.iter_rows(named=True)):
        res = {
            "resourceType": "Patient",
            "id": pat_ids[i],
            "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
        }
        if nhs_present[i] and row["nhs_number"]:
            res["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": row["nhs_number"]}]
        given = [g for g in (row["rec_forename"], row["middle_names"]) if g and g.strip()]
        name = {"use": "official"}
        if row["rec_surname"] and row["rec_surname"].strip():
            name["family"] = row["rec_surname"]
        if given:
            name["given"] = given
        res["name"] = [name]
        res["gender"] = {"M": "male", "F": "female"}.get(row["rec_sex"], "unknown")
        if row["rec_dob"] is not None:
            res["birthDate"] = row["rec_dob"].isoformat()
        addr = {
            "use": "home",
            "line": [
                row["previous_address"]
                if "old_postcode" in row["errors"] and row["previous_address"]
                else row["address"]
            ],
            "city": row["town"],
        }
        if row["rec_postcode"]:
            addr["postalCode"] = row["rec_postcode"]
        res["address"] = [addr]
        lines.append(dumps(res, ensure_ascii=False, separators=(",", ":")))
    pat = pl.DataFrame(
        {
            "_line": lines,
            "_record_id": _str(pat_ids),
            "_person_id": _str(pat_ids),
            "_pidx": per["_pidx"],
            "_errors": per["errors"],
        }
    ).with_columns(
        _token=pl.lit(""),
        _sort=pl.lit(0),
        _event_type=pl.lit(None, pl.String),
        _event_code=pl.lit(None, pl.String),
        _event_date=pl.lit(None, pl.Date),
        _event_lsoa=pl.lit(None, pl.String),
        _event_role=pl.lit(None, pl.String),
    )
    # encounters
    enc_ids = _uuid(rng, ed.height)
    subj = np.array(pat_ids, dtype=object)[row_persona]
    la = P["la_code"].to_numpy()[pidx]
    t0 = ed["time"].dt.strftime("%Y-%m-%dT%H:%M:00Z").to_list()
    t1 = ed["end"].dt.strftime("%Y-%m-%dT%H:%M:00Z").to_list()
    intents = ed["intent"].to_list()
    places = ed["place"].to_list()
    methods = ed["method"].to_list()
    complaints = ed["complaint"].to_list()
    lines = []
    for j in range(ed.height):
        ods, trust = ED_TRUST.get(la[j], OUH)
        res = {
            "resourceType": "Encounter",
            "id": enc_ids[j],
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "EMER",
                "display": "emergency",
            },
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "4525004",
                            "display": "Emergency department patient visit",
                        }
                    ]
                }
            ],
            "subject": {"reference": f"Patient/{subj[j]}"},
            "period": {"start": t0[j], "end": t1[j]},
            "reasonCode": [
                {
                    "coding": [
                        {
                            "system": FHIR_CS + "ed-chief-complaint",
                            "code": complaints[j].lower().replace(" ", "-"),
                            "display": complaints[j],
                        }
                    ],
                    "text": complaints[j],
                }
            ],
            "serviceProvider": {
                "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods},
                "display": trust,
            },
        }
        ext = []
        if intents[j]:
            ext.append(
                {
                    "url": FHIR_EXT + "injury-intent",
                    "valueCoding": {"system": FHIR_CS + "injury-intent", "code": intents[j]},
                }
            )
            if places[j]:
                ext.append({"url": FHIR_EXT + "injury-place", "valueString": places[j]})
            if methods[j]:
                ext.append({"url": FHIR_EXT + "assault-method", "valueString": methods[j]})
        if ext:
            res["extension"] = ext
        lines.append(dumps(res, ensure_ascii=False, separators=(",", ":")))
    enc = pl.DataFrame(
        {
            "_line": lines,
            "_record_id": _str(enc_ids),
            "_person_id": _str(subj),
            "_pidx": pl.Series(pidx),
            "_event_code": _str([i or "non-injury" for i in intents]),
            "_event_date": ed["time"].dt.date(),
        }
    ).with_columns(
        _token=pl.lit(""),
        _sort=pl.lit(0),
        _errors=pl.lit(""),
        _event_type=pl.lit("ed_attendance"),
        _event_lsoa=pl.lit(None, pl.String),
        _event_role=pl.lit("PATIENT"),
    )
    return [Rows(agency, "patient", pat), Rows(agency, "encounter", enc)]
