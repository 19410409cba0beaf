import contextlib

import polars as pl
import pytest

from governance import audit
from governance.keys import Keyring
from governance.pseudonyms import Pseudonymiser
from governance.reidentify import AccessDenied, reidentify
from governance.vault import encrypt_identifiers
from tapestry import lakehouse
from tapestry.config import Settings

from conftest import IDENTIFIERS

vault_stack = contextlib.ExitStack()  # lets the last test close the module's connection early


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    """vault.identifiers with a police delivery, a children's social care delivery and a
    shredded police delivery. Returns (settings, keyring, {name: frame with record_key})."""
    base = tmp_path_factory.mktemp("reid")
    settings = Settings.from_env({"TAPESTRY_HOME": str(base / "home"), "TAPESTRY_SECRETS": str(base / "secrets")})
    keyring = Keyring.open(settings, env={})
    pseudonymiser = Pseudonymiser.from_keyring(keyring)
    frames, parts = {}, []
    for name, agency, delivery, start in [("police", "police", "police:d1", 0), ("csc", "childrens_social_care", "csc:d2", 100),
                                          ("old", "police", "police:d0", 200)]:
        frame = pl.DataFrame({"source_id": [f"R{i}" for i in range(start, start + 4)],
                              "forename": [f"Fore{i}" for i in range(start, start + 4)],
                              "surname": [f"Sur{i}" for i in range(start, start + 4)],
                              "date_of_birth": ["2010-01-01"] * 4, "postcode": ["ZZ1 1ZZ"] * 4})
        frame = frame.with_columns(pseudonymiser.record_keys(agency, frame["source_id"]))
        frames[name] = frame
        parts.append(encrypt_identifiers(frame, delivery, "record_key", IDENTIFIERS, keyring)
                     .with_columns(pl.lit(agency).alias("agency")))
    keyring.shred("police:d0")
    rows = pl.concat(parts)  # noqa: F841 - read by DuckDB below
    with contextlib.ExitStack() as stack:
        con = stack.enter_context(lakehouse.connect(settings))
        vault_stack.callback(stack.close)
        con.execute("CREATE TABLE vault.identifiers AS SELECT record_key, agency, delivery_id, key_id, nonce, "
                    "ciphertext FROM rows")
        yield settings, keyring, frames, con


def log_entries(con, settings):
    assert audit.verify(con, settings).ok
    return list(audit.entries(con))


def test_safeguarding_lead_with_purpose_and_case_sees_identifiers_and_is_audited(vault):
    settings, keyring, frames, con = vault
    before = len(log_entries(con, settings))
    keys = frames["police"]["record_key"].to_list()[:2] + frames["csc"]["record_key"].to_list()[:1]
    out = reidentify(settings, "alice", "safeguarding_lead", "safeguarding_assessment", "MASH-2025-001", keys,
                     keyring=keyring, con=con)
    assert out.height == 3 and set(out["vault_status"]) == {"ok"}
    expected = {rk: s for rk, s in zip(frames["police"]["record_key"], frames["police"]["surname"])}
    expected.update(zip(frames["csc"]["record_key"], frames["csc"]["surname"]))
    assert dict(zip(out["record_key"], out["surname"])) == {k: expected[k] for k in keys}
    assert sorted(out["agency"].unique()) == ["childrens_social_care", "police"]
    entries = log_entries(con, settings)
    assert len(entries) == before + 1
    last = entries[-1]
    assert (last.actor, last.role, last.purpose, last.case_ref, last.action, last.row_count, last.outcome) == (
        "alice", "safeguarding_lead", "safeguarding_assessment", "MASH-2025-001", "reidentify", 3, "allowed")
    assert all(k in last.object for k in keys)
    assert "Sur" not in last.object and "Fore" not in last.object  # no identifiers in the log


def test_commissioner_is_denied_and_audited(vault):
    settings, keyring, frames, con = vault
    before = len(log_entries(con, settings))
    with pytest.raises(AccessDenied, match="commissioner"):
        reidentify(settings, "bob", "commissioner", "commissioning", "COMM-1", frames["police"]["record_key"].to_list(),
                   keyring=keyring, con=con)
    last = log_entries(con, settings)[-1]
    assert last.entry_id == before + 1
    assert (last.actor, last.role, last.row_count) == ("bob", "commissioner", 0)
    assert last.outcome.startswith("denied:")


@pytest.mark.parametrize("purpose, case_ref, problem", [
    ("", "MASH-1", "purpose"), ("safeguarding_assessment", "", "case reference"),
    ("safeguarding_assessment", "   ", "case reference"), ("commissioning", "MASH-1", "may not re-identify"),
])
def test_purpose_and_case_reference_are_required(vault, purpose, case_ref, problem):
    settings, keyring, frames, con = vault
    with pytest.raises(AccessDenied, match=problem):
        reidentify(settings, "alice", "safeguarding_lead", purpose, case_ref, frames["police"]["record_key"].to_list(),
                   keyring=keyring, con=con)
    assert log_entries(con, settings)[-1].outcome.startswith("denied:")


def test_role_with_identifiable_for_one_agency_only_is_denied_for_another(vault):
    settings, keyring, frames, con = vault
    keys = frames["police"]["record_key"].to_list()[:1] + frames["csc"]["record_key"].to_list()[:1]
    with pytest.raises(AccessDenied, match="childrens_social_care"):
        reidentify(settings, "carol", "police_analyst", "operational_policing", "OP-7", keys, keyring=keyring, con=con)
    out = reidentify(settings, "carol", "police_analyst", "operational_policing", "OP-7", keys[:1], keyring=keyring, con=con)
    assert out["surname"].to_list() == [frames["police"]["surname"][0]]


def test_shredded_records_come_back_unreadable_and_counted(vault):
    settings, keyring, frames, con = vault
    keys = frames["old"]["record_key"].to_list() + frames["police"]["record_key"].to_list()[:1]
    out = reidentify(settings, "alice", "safeguarding_lead", "safeguarding_assessment", "MASH-2", keys, keyring=keyring, con=con)
    assert out.filter(pl.col("vault_status") == "shredded").height == 4
    assert out.filter(pl.col("vault_status") == "shredded")["surname"].null_count() == 4
    last = log_entries(con, settings)[-1]
    assert (last.row_count, last.outcome) == (1, "allowed: 4 shredded")


def test_bulk_requests_are_refused(vault):
    settings, keyring, _, con = vault
    with pytest.raises(AccessDenied, match="at most"):
        reidentify(settings, "alice", "safeguarding_lead", "safeguarding_assessment", "MASH-3",
                   [f"{i:064x}" for i in range(1000)], keyring=keyring, con=con)


def test_opens_its_own_connection_by_default(vault):
    """Every other test passes the module's connection (opening one costs ~1 s); this one doesn't."""
    settings, keyring, frames, con = vault
    vault_stack.close()  # release the module connection (and the writer lock); keep this test last
    key = frames["csc"]["record_key"][0]
    out = reidentify(settings, "dan", "safeguarding_lead", "safeguarding_assessment", "MASH-0", [key], keyring=keyring)
    assert out["surname"].to_list() == [frames["csc"]["surname"][0]]
