"""Leak test: plant canary identifiers in delivered files, run the pipeline, then scan every
file under TAPESTRY_HOME and the landing folder (Parquet of every snapshot decoded, catalog,
Dagster storage and logs, archive, rejected area): the canaries appear nowhere in clear.
"""
import csv
import io
import json
import zipfile

import polars as pl
from tapestry.cli import main

CANARIES = {"Quillonia", "Xandervelt", "Canarywharf Nook", "9876543210", "11/9876543P", "D871432119987"}


def _append_csv_row(path, values: dict) -> None:
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([values.get(h, "") for h in header])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())


def _plant(landing) -> None:
    police = sorted((landing / "police").glob("occurrences_*.csv"))[0]
    _append_csv_row(police, {"OccurrenceRef": "432599999999", "InvolvementRef": "INV999999999",
                             "RecordedDateTime": "02/03/2025 19:56", "OccurrenceType": "CRIME", "HOClassCode": "8N",
                             "PersonRole": "VICTIM", "PersonRef": "TVP99999999", "Surname": "Xandervelt",
                             "Forenames": "Quillonia", "DateOfBirth": "19/07/1983", "Gender": "Female",
                             "Address": "77 Canarywharf Nook", "Postcode": "RG1 9ZZ", "PNCId": "11/9876543P",
                             "NHSNumber": "9876543210"})
    # a second copy of the canary in a row that breaks a hard rule: it goes to quarantine
    _append_csv_row(police, {"OccurrenceRef": "432599999998", "InvolvementRef": "INV999999998",
                             "RecordedDateTime": "31/02/2025 19:56", "OccurrenceType": "CRIME", "PersonRole": "VICTIM",
                             "PersonRef": "TVP99999999", "Surname": "Xandervelt", "Forenames": "Quillonia",
                             "Address": "77 Canarywharf Nook"})
    referrals = sorted((landing / "childrens_social_care").glob("referrals_*.csv"))[0]
    _append_csv_row(referrals, {"ReferralID": "REF99999999", "ChildID": "LCS9999999", "UPN": "D871432119987",
                                "Forename": "Quillonia", "Surname": "Xandervelt", "DateOfBirth": "2012-07-19",
                                "Gender": "2", "LACode": "E06000038", "ReferralDate": "2025-01-10",
                                "NHSNumber": "9876543210"})
    patients = sorted((landing / "nhs").glob("Patient_*.ndjson"))[0]
    with open(patients, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"resourceType": "Patient", "id": "canary-patient-1",
                                 "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9876543210"}],
                                 "name": [{"family": "Xandervelt", "given": ["Quillonia"]}], "gender": "female",
                                 "birthDate": "1983-07-19",
                                 "address": [{"line": ["77 Canarywharf Nook"], "postalCode": "RG1 9ZZ"}]}) + "\n")


def _hits_in_parquet(path) -> set[str]:
    frame = pl.read_parquet(path)
    found = set()
    for name, dtype in frame.schema.items():
        column = frame[name]
        if dtype == pl.Binary:
            blob = b"".join(v for v in column.drop_nulls().to_list())
            found |= {c for c in CANARIES if c.encode() in blob}
            continue
        if dtype == pl.String:
            text = column
        elif dtype.is_nested():
            text = pl.Series([json.dumps(v, default=str) for v in column.to_list()])
        else:
            text = column.cast(pl.String, strict=False)
        for canary in CANARIES:
            if text.str.contains(canary, literal=True).any():
                found.add(canary)
    return found


def _scan(root) -> dict[str, set[str]]:
    leaks = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found = _hits_in_parquet(path) if data[:4] == b"PAR1" else set()
        if data[:4] == b"PK\x03\x04":  # zip (an xlsx export): scan what it holds, inflated
            with zipfile.ZipFile(path) as archive:
                data += b"".join(archive.read(name) for name in archive.namelist())
        lowered = data.lower()
        found |= {c for c in CANARIES if c.lower().encode() in lowered}
        if found:
            leaks[str(path.relative_to(root))] = found
    return leaks


def test_no_canary_identifier_survives_in_clear(tmp_path, monkeypatch):
    home, secrets, landing = tmp_path / "home", tmp_path / "secrets", tmp_path / "delivered"
    monkeypatch.setenv("TAPESTRY_HOME", str(home))
    monkeypatch.setenv("TAPESTRY_SECRETS", str(secrets))
    monkeypatch.setenv("TAPESTRY_LANDING", str(landing))
    assert main(["synth", "--persons", "300", "--seed", "11", "--months", "6", "--out", str(landing),
                 "--truth", str(tmp_path / "truth")]) == 0
    _plant(landing)
    assert _scan(landing), "the canaries were not planted"
    assert main(["run"]) == 0
    from tapestry import lakehouse
    with lakehouse.connect(read_only=True) as con:  # the canary rows really went through the pipeline
        assert con.execute("SELECT count(*) FROM quarantine.police").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM vault.identifiers WHERE agency = 'nhs'").fetchone()[0] > 0
        # ... and through linkage: persons linked, model and charts written under TAPESTRY_HOME
        assert con.execute("SELECT count(*) FROM linked.person_record").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM marts.mash_chronology").fetchone()[0] > 0  # dbt ran
    assert list(home.glob("linkage/runs/*/model.json")) and list(home.glob("linkage/runs/*/charts/*.html"))
    assert list(home.glob("dbt/target/*/run_results.json"))
    # exports, person-level and aggregate, in every format
    (home / "exports").mkdir()
    for role, table, fmt in (("safeguarding_lead", "mash_chronology", "xlsx"), ("safeguarding_lead", "mash_person",
                             "csv"), ("commissioner", "area_risk", "parquet")):
        purpose = ["--purpose", "safeguarding_assessment"] if role == "safeguarding_lead" else []
        assert main(["export", "--role", role, "--table", table, "--format", fmt,
                     "--out", str(home / "exports" / f"{table}.{fmt}"), *purpose]) == 0
    assert _scan(home) == {}
    assert _scan(landing) == {}


def test_the_scan_finds_canaries_inside_compressed_parquet_and_xlsx(tmp_path):
    pl.DataFrame({"a": ["x", "Quillonia"], "b": [["Xandervelt"], []], "c": [b"9876543210", b""]}).write_parquet(
        tmp_path / "t.parquet", compression="zstd")
    pl.DataFrame({"a": ["Quillonia"]}).write_excel(tmp_path / "t.xlsx")
    assert _scan(tmp_path) == {"t.parquet": {"Quillonia", "Xandervelt", "9876543210"}, "t.xlsx": {"Quillonia"}}
