"""Retention: deliveries past their agency's retention are crypto-shredded and their
person-level rows leave the lakehouse, current snapshot and files alike."""
from datetime import date

from governance import audit
from governance.keys import Keyring
from governance.retention import apply_retention
from governance.vault import decrypt_identifiers
from sources.landing import land_agency
from sources.registry import BY_NAME
from tapestry import lakehouse
from tests.test_landing import _csv, _row, _write

OLD, RECENT = 1_420_070_400, 1_735_689_600  # received 2015-01-01 and 2025-01-01


def test_retention_shreds_expired_deliveries_only(tapestry_env):
    settings = tapestry_env
    _write(settings.landing / "police/occurrences_2014-12.csv", _csv(_row("INV1"), _row("INV2")), received=OLD)
    _write(settings.landing / "police/occurrences_2024-12.csv", _csv(_row("INV3")), received=RECENT)
    with lakehouse.connect(settings) as con:
        old, recent = sorted(land_agency(con, BY_NAME["police"], settings, "run-1"), key=lambda r: r.file_name)
    assert (settings.archive_dir / "police" / old.delivery_id.split("@")[1]).exists()
    from linkage.lake import DDL
    with lakehouse.connect(settings) as con:  # each record linked to a person of its own
        con.execute(DDL["person_record"])
        con.execute("INSERT INTO linked.person_record SELECT record_key, 'police', 'occurrences', 'P-' || "
                    "record_key[:8], 1.0, 'new', 'r1', 1 FROM raw.police__occurrences")
        con.execute(DDL["node_features"])  # linkage's sealed features (stand-in row)
        con.execute("INSERT INTO linked.node_features VALUES (?, 'r1', 'k', 'n'::BLOB, 'c'::BLOB, 2)",
                    [old.delivery_id])
        # and a derived person-level mart row per record
        con.execute("CREATE TABLE marts.mash_chronology AS SELECT 'P-' || record_key[:8] AS person_id, "
                    "'police' AS agency, record_key FROM raw.police__occurrences")
        con.execute("CREATE TABLE marts.mash_person AS SELECT DISTINCT person_id FROM linked.person_record")

    dry = apply_retention(settings, as_of=date(2026, 11, 22), dry_run=True)
    assert dry.expired == [old.delivery_id]  # police keep 6 years
    report = apply_retention(settings, as_of=date(2026, 11, 22))
    assert report.expired == [old.delivery_id] and report.rows_removed == 2 and report.linked_removed == 2

    keyring = Keyring.open(settings)
    assert keyring.is_shredded(old.delivery_id) and not keyring.is_shredded(recent.delivery_id)
    with lakehouse.connect(settings, read_only=True) as con:
        assert con.execute("SELECT DISTINCT _delivery_id FROM raw.police__occurrences").fetchall() == [
            (recent.delivery_id,)]
        vault = con.sql("SELECT * FROM vault.identifiers").pl()
        assert set(vault["delivery_id"]) == {recent.delivery_id}
        assert con.execute("SELECT record_key FROM linked.person_record").fetchall() == con.execute(
            "SELECT record_key FROM raw.police__occurrences").fetchall()
        assert con.execute("SELECT count(*) FROM linked.node_features").fetchone()[0] == 0  # all sealed features
        for table in ("marts.mash_chronology", "marts.mash_person"):  # derived rows went with them
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1
        assert decrypt_identifiers(vault, keyring).frame["involvement_ref"].to_list() == ["INV3"]
        assert dict(con.execute("SELECT delivery_id, status FROM raw.deliveries").fetchall()) == {
            old.delivery_id: "expired", recent.delivery_id: "loaded"}
        # No file of the lake still holds the deleted rows (older snapshots were expired).
        rows = con.execute("SELECT count(*) FROM read_parquet(?, union_by_name => true) WHERE _delivery_id = ?",
                           [f"{settings.data_path}/raw/**/*.parquet", old.delivery_id]).fetchone()[0]
        assert rows == 0
    with lakehouse.connect(settings) as con:
        result = audit.verify(con, settings=settings)
        assert result.ok
        shredded = [e for e in audit.entries(con) if e.action == "retention.shred"]
        assert [e.object for e in shredded] == [old.delivery_id]
    assert not (settings.archive_dir / "police" / old.delivery_id.split("@")[1]).exists()
    # A second run has nothing left to do.
    assert apply_retention(settings, as_of=date(2026, 11, 22)).expired == []
