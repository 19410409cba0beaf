"""Raw landing: contracts type the rows, hard-rule breakers go to quarantine with a reason,
bad files are rejected by name and line, duplicates and re-deliveries are recorded."""
import json
import os

import polars as pl
import pytest

from governance.keys import Keyring
from governance.vault import decrypt_identifiers
from sources.agency import entity_of
from sources.landing import conservation, land_agency
from sources.readers import ExtractError, read_csv_text, read_json_records
from sources.registry import BY_NAME
from tapestry import lakehouse

HEADER = ("OccurrenceRef,InvolvementRef,RecordedDateTime,OccurrenceType,HOClassCode,HOClassDescription,"
          "DomesticAbuseFlag,KnifeFlag,Latitude,Longitude,BeatCode,LocationDescription,PersonRole,PersonRef,"
          "Surname,Forenames,DateOfBirth,Gender,Address,Postcode,PNCId,NHSNumber,SelfDefinedEthnicity")


def _row(ref: str, when="02/03/2025 19:56", role="VICTIM", dob="11/08/1975", pnc="", nhs="9434765919") -> str:
    return (f"432500000458,{ref},{when},CRIME,8N,Assault without injury,Y,N,51.71,-1.44,WES35,Dwelling,{role},"
            f"TVP1,Smith,Ann,{dob},Female,1 Wren Way,OX28 6BX,{pnc},{nhs},W1")


def _write(path, data: bytes, received: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if received is not None:  # arrival order is modification time
        os.utime(path, (received, received))
    return path


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


@pytest.mark.parametrize("name,entity", [
    ("occurrences_2025-03.csv", "occurrences"),
    ("occurrences_2025-03-resend.csv", "occurrences"),
    ("assessment_factors_2025-Q1.csv", "assessment_factors"),
    ("Patient_001.ndjson", "patient"),
    ("caseload_2025-03-31.xlsx", "caseload"),
])
def test_entity_from_file_name(name, entity):
    assert entity_of(name) == entity


def test_person_bearing_contracts_pseudonymise_their_ids():
    from sources.nhs.contract import ENCOUNTER
    from sources.police.contract import STREET
    from sources.streetsafe.contract import REPORTS

    # An Encounter carries no name, but its patient id points at a person: keyed like the Patient.
    assert ENCOUNTER.person_bearing and ENCOUNTER.key_columns() == {"encounter_id": "record_key",
                                                                     "patient_id": "person_key"}
    assert not STREET.person_bearing and not REPORTS.person_bearing  # no persons: nothing to split
    for agency in BY_NAME.values():
        for entity in agency.entities:
            contract = entity.contract
            if contract.person_bearing:
                assert contract.record_id in contract.vault_columns()
                assert not set(contract.personal_columns) & set(contract.raw_ddl().split('"')[1::2])


def test_police_street_feed_is_recognised():
    police = BY_NAME["police"]
    assert police.entity_for("2018-10-thames-valley-street.csv").name == "street"
    assert police.entity_for("occurrences_2018-10.csv").name == "occurrences"
    assert police.entity_for("notes.txt") is None


def test_land_police_deliveries(tapestry_env):
    settings, landing = tapestry_env, tapestry_env.landing
    police = BY_NAME["police"]
    _write(landing / "police/occurrences_2025-01.csv",
           _csv(_row("INV1"), _row("INV2", when="31/02/2025 10:00"), _row("INV3", role="BYSTANDER"),
                _row("INV4", dob="not known", pnc="03/8124453A"), _row("INV1")), received=1_000)
    _write(landing / "police/occurrences_2025-02.csv", _csv(_row("INV9")), received=2_000)
    _write(landing / "police/occurrences_2025-02-copy.csv", _csv(_row("INV9")), received=3_000)  # same bytes, later
    _write(landing / "police/occurrences_2025-03.csv", _csv(_row("INV5")).replace(b"Ann", b"Ren\xe9e"), received=4_000)
    _write(landing / "police/occurrences_2025-04.csv", b"", received=5_000)
    _write(landing / "police/occurrences_2025-05.csv", _csv(_row("INV6"), header=HEADER.replace(",DateOfBirth", "")).replace(b"11/08/1975,", b""), received=6_000)
    _write(landing / "police/notes.txt", b"hello", received=7_000)
    with lakehouse.connect(settings) as con:
        results = {r.file_name: r for r in land_agency(con, police, settings, "run-a")}
        assert {n: r.status for n, r in results.items()} == {
            "occurrences_2025-01.csv": "loaded", "occurrences_2025-02.csv": "loaded",
            "occurrences_2025-02-copy.csv": "duplicate", "occurrences_2025-03.csv": "rejected",
            "occurrences_2025-04.csv": "rejected", "occurrences_2025-05.csv": "rejected", "notes.txt": "rejected"}
        assert results["occurrences_2025-03.csv"].reason.startswith("occurrences_2025-03.csv, line 2: not valid UTF-8")
        assert "empty" in results["occurrences_2025-04.csv"].reason
        assert results["occurrences_2025-05.csv"].reason == (
            "occurrences_2025-05.csv, line 1: missing required column(s): DateOfBirth")
        assert "matches no police extract" in results["notes.txt"].reason
        jan = results["occurrences_2025-01.csv"]
        assert (jan.rows_read, jan.rows_loaded, jan.rows_quarantined) == (5, 2, 3)
        raw = con.sql("SELECT * FROM raw.police__occurrences WHERE _file_name = 'occurrences_2025-01.csv' "
                      "ORDER BY _row_number").pl()
        # Raw is pseudonymous: identifiers and ids are replaced by keys and coarse attributes.
        assert not {"involvement_ref", "person_ref", "surname", "forenames", "date_of_birth", "address",
                    "postcode", "pnc_id", "nhs_number"} & set(raw.columns)
        assert raw["record_key"].str.len_chars().to_list() == [64, 64]
        assert raw["birth_year"].to_list() == [1975, None]  # unparseable DOB: soft rule, row kept
        assert raw["postcode_district"].to_list() == ["OX28", "OX28"]
        assert raw["recorded_at"][0].isoformat() == "2025-03-02T19:56:00"
        assert raw["domestic_abuse"].to_list() == [True, True]
        assert raw["_warnings"].to_list()[0] == []
        assert set(raw["_warnings"].to_list()[1]) == {"date_of_birth:type", "pnc_id:check_digit"}
        # The identifiers are in the vault, encrypted, and come back only through the keyring.
        keyring = Keyring.open(settings)
        vault = con.sql("SELECT * FROM vault.identifiers WHERE delivery_id = ?", params=[jan.delivery_id]).pl()
        clear = decrypt_identifiers(vault, keyring).frame
        assert sorted(clear["involvement_ref"].to_list()) == ["INV1", "INV4"]
        assert set(clear["surname"]) == {"Smith"}
        quarantine = con.sql("SELECT * FROM quarantine.police ORDER BY _row_number").pl()
        assert quarantine["_row_number"].to_list() == [2, 3, 5]
        assert quarantine["original_row"].null_count() == 3  # person data: kept only encrypted
        by_row = {r["_row_number"]: r for r in quarantine.to_dicts()}
        assert by_row[2]["rules"] == ["recorded_at:type"]
        assert by_row[2]["reason"] == "RecordedDateTime: not a valid datetime (expected %d/%m/%Y %H:%M or %d/%m/%Y %H:%M:%S)"
        assert by_row[3]["rules"] == ["person_role:code"]
        assert "11/08/1975" not in by_row[3]["reason"]  # reasons never carry values
        sealed = quarantine.select(pl.format("row:{}", "_row_number").alias("record_key"), "_delivery_id",
                                   "original_row_key_id", "original_row_nonce", "original_row_ciphertext")
        sealed.columns = ["record_key", "delivery_id", "key_id", "nonce", "ciphertext"]
        originals = decrypt_identifiers(sealed, keyring).frame["original_row"].to_list()
        assert json.loads(originals[1])["PersonRole"] == "BYSTANDER"
        assert by_row[5]["rules"] == ["involvement_ref:duplicate"]
        # Conservation holds, counted from the tables.
        conserved = conservation(con, police, [r.delivery_id for r in results.values() if r.status == "loaded"])
        assert conserved["holds"].all() and conserved["rows_read"].to_list() == [5, 1]
    # Files left landing: loaded/duplicate to the archive, rejected to the rejected area with a reason.
    assert not list((landing / "police").iterdir())
    reason = settings.rejected_dir / "police" / "occurrences_2025-04.csv.reason.txt"
    assert "empty" in reason.read_text()
    # Delivered files are kept only encrypted (they hold identifiers in clear).
    archived = list((settings.archive_dir / "police").rglob("*.csv.enc"))
    assert len(archived) == 3 and all(b"Smith" not in p.read_bytes() for p in archived)
    assert not list(settings.rejected_dir.rglob("*.csv"))


def test_redelivery_under_the_same_name_supersedes(tapestry_env):
    settings, landing = tapestry_env, tapestry_env.landing
    police = BY_NAME["police"]
    with lakehouse.connect(settings) as con:
        _write(landing / "police/occurrences_2025-01.csv", _csv(_row("INV1"), _row("INV2")))
        [first] = land_agency(con, police, settings, "run-1")
        _write(landing / "police/occurrences_2025-01.csv", _csv(_row("INV1"), _row("INV2"), _row("INV3")))
        [second] = land_agency(con, police, settings, "run-2")
        assert second.status == "loaded" and second.superseded == first.delivery_id
        ledger = dict(con.execute("SELECT delivery_id, status FROM raw.deliveries").fetchall())
        assert ledger == {first.delivery_id: "superseded", second.delivery_id: "loaded"}
        current = con.execute("SELECT count(*) FROM raw.police__occurrences WHERE _delivery_id IN "
                              "(SELECT delivery_id FROM raw.current_deliveries)").fetchone()[0]
        assert current == 3
        assert con.execute("SELECT count(*) FROM raw.police__occurrences").fetchone()[0] == 5  # append-only


def test_rejected_delivery_can_be_retried(tapestry_env):
    settings, landing = tapestry_env, tapestry_env.landing
    police = BY_NAME["police"]
    _write(landing / "police/occurrences_2025-01.csv", b"")
    with lakehouse.connect(settings) as con:
        [rejected] = land_agency(con, police, settings, "run-1")
        assert rejected.status == "rejected"
        # An operator puts a corrected file in the rejected spot; re-materialising that partition retries it.
        (settings.rejected_dir / "police" / "occurrences_2025-01.csv.enc").unlink()
        (settings.rejected_dir / "police" / "occurrences_2025-01.csv").write_bytes(_csv(_row("INV1")))
        [retried] = land_agency(con, police, settings, "run-2", only={"occurrences_2025-01.csv"}, retry_rejected=True)
        assert retried.status == "loaded" and retried.rows_loaded == 1


def test_csv_reader_refuses_duplicate_header(tmp_path):
    with pytest.raises(ExtractError, match="line 1"):
        read_csv_text(_write(tmp_path / "x_1.csv", b"a,a\n1,2\n"))


def test_json_records_keep_lists_as_json_text(tmp_path):
    frame = read_json_records(_write(tmp_path / "reports_1.json",
                                     b'[{"id":"r1","reasons":["badly lit"]},{"id":"r2","lat":51.5}]'))
    assert frame.to_dicts() == [{"id": "r1", "reasons": '["badly lit"]', "lat": None},
                                {"id": "r2", "reasons": None, "lat": "51.5"}]


def test_xlsx_caseload_is_typed(tapestry_env):
    path = tapestry_env.landing / "probation" / "caseload_2025-03-31.xlsx"
    path.parent.mkdir(parents=True)
    pl.DataFrame({"CRN": ["X123456", "bad"], "PNC Number": [None, None], "Surname": ["A", "B"], "Forename": ["C", "D"],
                  "Date of Birth": ["1990-01-31", "1991-02-28"], "Gender": ["M", "F"], "Postcode": [None, None],
                  "Sentence Type": ["Licence", "Licence"], "Supervision Start Date": [None, None],
                  "OASys RoSH": ["High", "Low"], "MAPPA Category": ["2", None], "MAPPA Level": ["1", None],
                  "Probation Delivery Unit": ["Reading", "Reading"]}).write_excel(path, worksheet="Caseload")
    with lakehouse.connect(tapestry_env) as con:
        [result] = land_agency(con, BY_NAME["probation"], tapestry_env, "run-x")
        assert (result.rows_loaded, result.rows_quarantined) == (1, 1)  # "bad" is not a CRN: hard rule
        row = con.sql("SELECT birth_year, mappa_category, rosh FROM raw.probation__caseload").fetchall()
        assert row == [(1990, 2, "High")]
