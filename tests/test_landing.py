"""Raw landing: one transaction per file, lineage, duplicates skipped, bad files rejected by name and line."""
import os

import polars as pl
import pytest

from sources.agency import entity_of
from sources.landing import land_agency
from sources.readers import ExtractError, read_csv_text, read_fhir_ndjson, read_json_records
from sources.registry import BY_NAME
from tapestry import lakehouse


def _write(path, data: bytes, received: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if received is not None:  # arrival order is modification time
        os.utime(path, (received, received))
    return path


@pytest.mark.parametrize("name,entity", [
    ("occurrences_2025-03.csv", "occurrences"),
    ("occurrences_2025-03-resend.csv", "occurrences"),
    ("assessment_factors_2025-Q1.csv", "assessment_factors"),
    ("Patient_001.ndjson", "patient"),
    ("caseload_2025-03-31.xlsx", "caseload"),
])
def test_entity_from_file_name(name, entity):
    assert entity_of(name) == entity


def test_land_police_files(tapestry_env):
    landing = tapestry_env.landing
    _write(landing / "police/occurrences_2025-01.csv", b"OccRef,Forename\nP1,Ann\nP2,Zo\xc3\xab\n")
    _write(landing / "police/occurrences_2025-02.csv", b"OccRef,Forename,Extra\nP3,Bo,x\n", received=2_000_000_000)
    # the same bytes again, received earlier: this one loads, the later one is the duplicate
    _write(landing / "police/occurrences_2025-02-copy.csv", b"OccRef,Forename,Extra\nP3,Bo,x\n", received=1_000_000_000)
    _write(landing / "police/occurrences_2025-03.csv", b"OccRef,Forename\nP4,Caf\xe9\n")  # latin-1
    _write(landing / "police/occurrences_2025-04.csv", b"")
    _write(landing / "police/notes.txt", b"hello")
    with lakehouse.connect(tapestry_env) as con:
        results = land_agency(con, BY_NAME["police"], landing, "run-a")
        status = {r.file_name: r.status for r in results}
        assert status == {
            "occurrences_2025-01.csv": "loaded", "occurrences_2025-02-copy.csv": "loaded",
            "occurrences_2025-02.csv": "duplicate", "occurrences_2025-03.csv": "rejected",
            "occurrences_2025-04.csv": "rejected", "notes.txt": "rejected",
        }
        reasons = {r.file_name: r.reason for r in results if r.reason}
        assert reasons["occurrences_2025-03.csv"].startswith("occurrences_2025-03.csv, line 2: not valid UTF-8")
        assert "empty" in reasons["occurrences_2025-04.csv"]
        assert "matches no police extract" in reasons["notes.txt"]
        raw = con.sql("SELECT * FROM raw.police__occurrences ORDER BY OccRef").pl()
        assert raw["OccRef"].to_list() == ["P1", "P2", "P3"]
        assert raw["Forename"].to_list() == ["Ann", "Zoë", "Bo"]  # as delivered
        assert raw["Extra"].to_list() == [None, None, "x"]  # column added by the later file
        assert raw["_row_number"].to_list() == [1, 2, 1]
        assert raw.filter(pl.col("OccRef") == "P3")["_file_name"][0] == "occurrences_2025-02-copy.csv"
        assert raw["_file_sha256"].str.len_chars().to_list() == [64, 64, 64]
        # A second run loads nothing twice.
        # A second run finds nothing new: files already recorded are not looked at again.
        assert land_agency(con, BY_NAME["police"], landing, "run-b") == []
        assert con.execute("SELECT count(*) FROM raw.police__occurrences").fetchone()[0] == 3
        ledger = con.sql("SELECT file_name, status, rows_loaded FROM raw.deliveries WHERE run_id = 'run-a' "
                         "ORDER BY file_name").fetchall()
        assert ("occurrences_2025-01.csv", "loaded", 2) in ledger and len(ledger) == 6


def test_ndjson_reader_names_the_truncated_line(tmp_path):
    good = b'{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n'
    frame = read_fhir_ndjson(_write(tmp_path / "Patient_1.ndjson", good))
    assert frame["resource_id"].to_list() == ["a", "b"]
    assert frame["resource_type"].to_list() == ["Patient", "Patient"]
    with pytest.raises(ExtractError) as info:
        read_fhir_ndjson(_write(tmp_path / "Patient_2.ndjson", good + b'{"resourceType":"Pat'))
    assert info.value.line == 3 and "Patient_2.ndjson, line 3" in str(info.value)


def test_csv_reader_refuses_duplicate_header(tmp_path):
    with pytest.raises(ExtractError, match="line 1"):
        read_csv_text(_write(tmp_path / "x_1.csv", b"a,a\n1,2\n"))


def test_json_records_keep_lists_as_json_text(tmp_path):
    frame = read_json_records(_write(tmp_path / "reports_1.json",
                                     b'[{"id":"r1","reasons":["badly lit"]},{"id":"r2","lat":51.5}]'))
    assert frame.to_dicts() == [{"id": "r1", "reasons": '["badly lit"]', "lat": None},
                                {"id": "r2", "reasons": None, "lat": "51.5"}]


def test_xlsx_caseload(tapestry_env):
    path = tapestry_env.landing / "probation" / "caseload_2025-03-31.xlsx"
    path.parent.mkdir(parents=True)
    pl.DataFrame({"CRN": ["X123456", "Y654321"], "Tier": [1, 2]}).write_excel(path, worksheet="Caseload")
    with lakehouse.connect(tapestry_env) as con:
        [result] = land_agency(con, BY_NAME["probation"], tapestry_env.landing, "run-x")
        assert result.status == "loaded" and result.rows == 2
        assert con.execute("SELECT list(CRN ORDER BY CRN), list(Tier ORDER BY CRN) FROM raw.probation__caseload"
                           ).fetchone() == (["X123456", "Y654321"], ["1", "2"])
