"""Person-bearing extract rows of a landing folder, mapped to the canonical person-record schema.

The canonical schema is what linkage reads (and what ``tapestry link`` accepts):

    record_id (unique), source, forename, middle_names, surname, dob (ISO YYYY-MM-DD), sex,
    postcode, nhs_number, pnc_id, upn, crn

plus, from agency extracts, ``source_person_id`` (the agency's own person id, prefixed with
the agency: strong evidence within one agency) and the lineage columns ``agency``,
``entity``, ``file`` and ``row_number`` (1-based data row / NDJSON line), which join to the
generator's truth ``records.parquet`` (agency, file, row_number).

``record_id`` is ``<agency>:<entity>:<source record id>``; when the same source record id is
delivered in more than one file (probation snapshots list the same CRN every quarter, a
resent delivery repeats its rows) it becomes ``<agency>:<entity>:<id>@<file name>``.

Rows that carry no person details of their own (NHS Encounter, CSC assessment factors) take
forename / surname / dob / sex / postcode from the agency's person record with the same
source person id (the Patient resource, the child's referral): the agency's own link.

Files that fail to read (wrong encoding, truncated NDJSON, empty, ...) are skipped and
counted, never fatal: ``canonical_records(..., skipped=list)`` receives (file, problem).
Nothing here prints or logs row content.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import polars as pl

from sources.readers import ExtractError

CANONICAL_COLUMNS = (
    "record_id",
    "source",
    "forename",
    "middle_names",
    "surname",
    "dob",
    "sex",
    "postcode",
    "nhs_number",
    "pnc_id",
    "upn",
    "crn",
)
LINEAGE_COLUMNS = ("source_person_id", "agency", "entity", "file", "row_number")

_DMY = "%d/%m/%Y"
_ISO = "%Y-%m-%d"

# (agency, entity) -> (record id column, person id column, field -> (column, how))
# how: "text" as delivered; a strftime format for dates; "cin_sex" CIN census gender codes;
# "forenames" a forenames column whose first word is the forename and the rest middle names.
_MAPS: dict[tuple[str, str], tuple[str, str, dict[str, tuple[str, str]]]] = {
    ("police", "occurrences"): (
        "InvolvementRef",
        "PersonRef",
        {
            "forename": ("Forenames", "forenames"),
            "surname": ("Surname", "text"),
            "dob": ("DateOfBirth", _DMY),
            "sex": ("Gender", "text"),
            "postcode": ("Postcode", "text"),
            "pnc_id": ("PNCId", "text"),
            "nhs_number": ("NHSNumber", "text"),
        },
    ),
    ("childrens_social_care", "referrals"): (
        "ReferralID",
        "ChildID",
        {
            "upn": ("UPN", "text"),
            "forename": ("Forename", "text"),
            "surname": ("Surname", "text"),
            "dob": ("DateOfBirth", _ISO),
            "sex": ("Gender", "cin_sex"),
            "postcode": ("Postcode", "text"),
            "nhs_number": ("NHSNumber", "text"),
        },
    ),
    ("childrens_social_care", "assessment_factors"): ("AssessmentFactorID", "ChildID", {"upn": ("UPN", "text")}),
    ("childrens_social_care", "cp_plans"): (
        "CPPlanID",
        "ChildID",
        {
            "upn": ("UPN", "text"),
            "forename": ("Forename", "text"),
            "surname": ("Surname", "text"),
            "dob": ("DateOfBirth", _ISO),
            "sex": ("Gender", "cin_sex"),
            "postcode": ("Postcode", "text"),
        },
    ),
    ("adult_social_care", "s42_enquiries"): (
        "EnquiryID",
        "PersonID",
        {
            "nhs_number": ("NHSNumber", "text"),
            "forename": ("FirstName", "text"),
            "surname": ("LastName", "text"),
            "dob": ("DateOfBirth", _DMY),
            "sex": ("Gender", "text"),
            "postcode": ("Postcode", "text"),
        },
    ),
    ("probation", "caseload"): (
        "CRN",
        "CRN",
        {
            "crn": ("CRN", "text"),
            "pnc_id": ("PNC Number", "text"),
            "forename": ("Forename", "text"),
            "surname": ("Surname", "text"),
            "dob": ("Date of Birth", "excel_date"),
            "sex": ("Gender", "text"),
            "postcode": ("Postcode", "text"),
        },
    ),
}
_DETAIL_COLUMNS = ("forename", "middle_names", "surname", "dob", "sex", "postcode", "nhs_number", "pnc_id", "upn", "crn")


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    stripped = expr.cast(pl.String).str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def _date_iso(expr: pl.Expr, fmt: str) -> pl.Expr:
    text = _blank_to_null(expr)
    if fmt == "excel_date":  # calamine gives "YYYY-MM-DD 00:00:00"; text cells may be dd/mm/yyyy
        parsed = pl.coalesce(
            text.str.slice(0, 10).str.strptime(pl.Date, _ISO, strict=False),
            text.str.strptime(pl.Date, _DMY, strict=False),
        )
    else:
        parsed = text.str.strptime(pl.Date, fmt, strict=False)
    return parsed.dt.strftime(_ISO)


def _map_tabular(frame: pl.DataFrame, agency: str, entity: str) -> pl.DataFrame:
    id_col, person_col, fields = _MAPS[(agency, entity)]
    cols = set(frame.columns)
    out: dict[str, pl.Expr] = {}
    for target, (column, how) in fields.items():
        if column not in cols:  # a delivery missing a column: the field is unknown, not fatal
            continue
        if how == "text":
            out[target] = _blank_to_null(pl.col(column))
        elif how == "forenames":
            words = _blank_to_null(pl.col(column)).str.split(" ")
            out["forename"] = words.list.first()
            out["middle_names"] = _blank_to_null(words.list.slice(1).list.join(" "))
        elif how == "cin_sex":
            out[target] = pl.col(column).replace_strict({"1": "M", "2": "F"}, default=None, return_dtype=pl.String)
        else:
            out[target] = _date_iso(pl.col(column), how)
    if id_col not in cols:
        raise ExtractError(Path(entity), f"no record id column {id_col!r}")
    return frame.select(
        _blank_to_null(pl.col(id_col)).alias("_id"),
        (_blank_to_null(pl.col(person_col)) if person_col in cols else pl.lit(None, pl.String)).alias("_pid"),
        **out,
    )


def _map_fhir(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """NHS rows: either flattened by the NHS reader (id, nhs_number, family, given,
    middle_names, gender, birthDate, postalCode / patient_id) or raw resource JSON text."""
    if "resource" not in frame.columns:
        return _map_fhir_flat(frame, entity)
    con = duckdb.connect()
    try:
        con.register("resources", frame.select("resource").to_arrow())
        if entity == "patient":
            sql = """
            SELECT j->>'$.id' AS _id, j->>'$.id' AS _pid,
                   (SELECT x->>'$.value' FROM unnest(CAST(j->'$.identifier' AS JSON[])) AS t(x)
                     WHERE x->>'$.system' = 'https://fhir.nhs.uk/Id/nhs-number' LIMIT 1) AS nhs_number,
                   j->>'$.name[0].family' AS surname,
                   j->>'$.name[0].given[0]' AS forename,
                   nullif(array_to_string(list_slice(CAST(j->'$.name[0].given' AS VARCHAR[]), 2, 99), ' '), '')
                       AS middle_names,
                   j->>'$.gender' AS sex,
                   j->>'$.birthDate' AS dob,
                   j->>'$.address[0].postalCode' AS postcode
            FROM (SELECT CAST(resource AS JSON) AS j FROM resources)
            """
        else:  # encounter: the subject is the person
            sql = """
            SELECT j->>'$.id' AS _id,
                   regexp_replace(j->>'$.subject.reference', '^Patient/', '') AS _pid
            FROM (SELECT CAST(resource AS JSON) AS j FROM resources)
            """
        mapped = pl.from_arrow(con.execute(sql).arrow())
    finally:
        con.close()
    if "dob" in mapped.columns:
        mapped = mapped.with_columns(dob=_date_iso(pl.col("dob"), _ISO))
    return mapped


def _map_fhir_flat(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    cols = set(frame.columns)

    def col(name: str) -> pl.Expr:
        return _blank_to_null(pl.col(name)) if name in cols else pl.lit(None, pl.String)

    if entity == "patient":
        return frame.select(
            col("id").alias("_id"),
            col("id").alias("_pid"),
            col("nhs_number").alias("nhs_number"),
            col("family").alias("surname"),
            col("given").alias("forename"),
            col("middle_names").alias("middle_names"),
            col("gender").alias("sex"),
            _date_iso(col("birthDate"), _ISO).alias("dob"),
            col("postalCode").alias("postcode"),
        )
    return frame.select(col("id").alias("_id"), col("patient_id").alias("_pid"))


def canonical_records(landing: Path, *, skipped: list | None = None) -> pl.DataFrame:
    """Every person-bearing row of every readable delivery in ``landing`` in the canonical schema
    (see the module doc). ``skipped`` (optional list) receives ``(file, problem)`` per file
    that could not be read; a warning gives their count."""
    from sources.registry import AGENCIES  # late: keeps this module importable on its own

    landing = Path(landing)
    parts: list[pl.DataFrame] = []
    problems: list[tuple[str, str]] = []
    for agency in AGENCIES:
        if not agency.person_bearing:
            continue
        for path in agency.deliveries(landing):
            entity = agency.entity_for(path)
            if entity is None:
                continue
            key = (agency.name, entity.name)
            if key not in _MAPS and agency.name != "nhs":
                continue
            try:
                frame = entity.read(path)
                if agency.name == "nhs":
                    if entity.name not in ("patient", "encounter"):
                        continue
                    mapped = _map_fhir(frame, entity.name)
                else:
                    mapped = _map_tabular(frame, agency.name, entity.name)
            except (ExtractError, duckdb.Error, pl.exceptions.PolarsError) as exc:
                problems.append((f"{agency.name}/{path.name}", str(exc).split(": ", 1)[-1][:200]))
                continue
            parts.append(
                mapped.with_columns(
                    agency=pl.lit(agency.name),
                    entity=pl.lit(entity.name),
                    file=pl.lit(path.name),
                    row_number=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
                )
            )
    if skipped is not None:
        skipped.extend(problems)
    if problems:
        warnings.warn(f"canonical_records: {len(problems)} file(s) could not be read and were skipped", stacklevel=2)
    if not parts:
        return empty_canonical()
    records = pl.concat(parts, how="diagonal_relaxed")
    for column in (*CANONICAL_COLUMNS, "_pid"):
        if column not in records.columns:
            records = records.with_columns(pl.lit(None, pl.String).alias(column))
    base_id = pl.concat_str(pl.col("agency"), pl.lit(":"), pl.col("entity"), pl.lit(":"), pl.col("_id"))
    repeated = pl.len().over(base_id) > 1
    records = records.with_columns(
        record_id=pl.when(repeated).then(pl.concat_str(base_id, pl.lit("@"), pl.col("file"))).otherwise(base_id),
        source=pl.col("agency"),
        source_person_id=pl.when(pl.col("_pid").is_not_null()).then(
            pl.concat_str(pl.col("agency"), pl.lit(":"), pl.col("_pid"))
        ),
    ).filter(pl.col("_id").is_not_null())
    # A record id repeated inside one file (a resend concatenated, a corrupt row): keep the first row.
    records = records.unique(subset="record_id", keep="first", maintain_order=True)
    records = _inherit_person_details(records)
    return records.select(*CANONICAL_COLUMNS, *LINEAGE_COLUMNS)


def _inherit_person_details(records: pl.DataFrame) -> pl.DataFrame:
    """Rows with no name and no dob take the details of the first row of the same agency
    person id that has them (Encounter -> its Patient, assessment factor -> the referral)."""
    has_details = pl.any_horizontal(pl.col(c).is_not_null() for c in ("forename", "surname", "dob"))
    donors = (
        records.filter(has_details & pl.col("source_person_id").is_not_null())
        .unique(subset="source_person_id", keep="first", maintain_order=True)
        .select("source_person_id", *[pl.col(c).alias(f"_donor_{c}") for c in _DETAIL_COLUMNS])
    )
    joined = records.join(donors, on="source_person_id", how="left", maintain_order="left")
    needs = ~has_details
    return joined.with_columns(
        [pl.when(needs).then(pl.coalesce(c, f"_donor_{c}")).otherwise(pl.col(c)).alias(c) for c in _DETAIL_COLUMNS]
    ).drop([f"_donor_{c}" for c in _DETAIL_COLUMNS])


def empty_canonical() -> pl.DataFrame:
    schema = {c: pl.String for c in CANONICAL_COLUMNS} | {c: pl.String for c in LINEAGE_COLUMNS}
    schema["row_number"] = pl.Int64
    return pl.DataFrame(schema=schema)
