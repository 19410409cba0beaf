"""Linkage's read of identifiers: decrypted in memory from the vault, canonical field names."""
from governance.identities import FIELDS, read_identifiers
from governance.keys import Keyring
from sources.landing import land_agency
from sources.registry import BY_NAME
from tapestry import lakehouse
from tests.test_landing import _csv, _row, _write


def test_read_identifiers_in_canonical_form(tapestry_env):
    settings = tapestry_env
    _write(settings.landing / "police/occurrences_2025-01.csv", _csv(_row("INV1", pnc="03/8124453X"), _row("INV2")))
    with lakehouse.connect(settings) as con:
        [loaded] = land_agency(con, BY_NAME["police"], settings, "run-1")
        files_after_load = {p for p in settings.home.rglob("*") if p.is_file()}
        keyring = Keyring.open(settings)
        frame = read_identifiers(con, keyring, agencies=["police"])
        assert frame.columns == ["record_key", "agency", "entity", "delivery_id", "vault_status", *FIELDS]
        assert frame.height == 2 and set(frame["vault_status"]) == {"ok"}
        assert set(frame["surname"]) == {"Smith"} and set(frame["dob"]) == {"1975-08-11"}
        assert set(frame["postcode"]) == {"OX28 6BX"} and frame["upn"].null_count() == 2
        raw_keys = {r[0] for r in con.execute("SELECT record_key FROM raw.police__occurrences").fetchall()}
        assert set(frame["record_key"]) == raw_keys  # joins to the pseudonymous content
        assert {p for p in settings.home.rglob("*") if p.is_file()} == files_after_load  # nothing written
        keyring.shred(loaded.delivery_id)
        shredded = read_identifiers(con, Keyring.open(settings))
        assert set(shredded["vault_status"]) == {"shredded"} and shredded["surname"].null_count() == 2
