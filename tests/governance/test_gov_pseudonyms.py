import hashlib
import hmac
import os

import polars as pl
import pytest
from hypothesis import given, strategies as st

from governance.pseudonyms import PseudonymError, Pseudonymiser

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def reference(key: bytes, agency: str, source_id: str) -> str:
    return hmac.new(key, f"{agency}\x1f{source_id}".encode(), hashlib.sha256).hexdigest()


@given(ids=st.lists(st.one_of(st.none(), st.text()), max_size=20))
def test_record_keys_match_the_hmac_definition(ids):
    out = Pseudonymiser(KEY).record_keys("police", pl.Series(ids, dtype=pl.String))
    assert out.to_list() == [None if i is None else reference(KEY, "police", i) for i in ids]


@given(key=st.binary(min_size=32, max_size=100), source_id=st.text())
def test_fast_hmac_equals_standard_library_for_any_key_length(key, source_id):
    p = Pseudonymiser(key)
    assert p.record_key("nhs", source_id) == reference(key, "nhs", source_id)
    assert p.record_keys("nhs", pl.Series([source_id])).to_list() == [reference(key, "nhs", source_id)]


def test_record_key_is_deterministic_and_keyed():
    ids = pl.Series(["A1", "A2", "A1"])
    first = Pseudonymiser(KEY).record_keys("police", ids).to_list()
    assert first == Pseudonymiser(KEY).record_keys("police", ids).to_list()
    assert first[0] == first[2] != first[1] and len(first[0]) == 64
    other = Pseudonymiser(OTHER_KEY).record_keys("police", ids).to_list()
    assert set(first).isdisjoint(other)
    assert Pseudonymiser(KEY).record_key("probation", "A1") != first[0]  # agency is part of the key


def test_agency_must_be_a_plain_name():
    for bad in ("Police", "police\x1fx", "", "po lice"):
        with pytest.raises(PseudonymError):
            Pseudonymiser(KEY).record_key(bad, "1")


def test_keyring_key_is_used(keyring):
    p = Pseudonymiser.from_keyring(keyring)
    assert p.record_key("police", "X") == reference(keyring.pseudonym_key(), "police", "X")
    assert "key hidden" in repr(p)


def test_recipient_pseudonyms_differ_per_domain_and_are_stable():
    p = Pseudonymiser(KEY)
    persons = pl.Series([f"person-{i}" for i in range(200)])
    a = p.recipient_pseudonyms(persons, "export:commissioning")
    b = p.recipient_pseudonyms(persons, "role:police_analyst")
    assert a.to_list() == p.recipient_pseudonyms(persons, "export:commissioning").to_list()
    assert set(a.to_list()).isdisjoint(b.to_list())  # nothing to join on
    assert a.n_unique() == 200 and all(len(x) == 32 for x in a.to_list())
    assert p.recipient_pseudonym("person-7", "export:commissioning") == a[7]
    assert Pseudonymiser(OTHER_KEY).recipient_pseudonym("person-7", "export:commissioning") != a[7]
    # Not the plain HMAC of the person id under the pseudonymisation key: domain keys are derived.
    assert hmac.new(KEY, b"person-7", hashlib.sha256).hexdigest()[:32] != a[7]


def test_recipient_domain_must_be_canonical():
    for bad in ("Export", "", " export", "a" * 200):
        with pytest.raises(PseudonymError):
            Pseudonymiser(KEY).recipient_pseudonym("p", bad)


def test_short_key_rejected():
    with pytest.raises(PseudonymError):
        Pseudonymiser(os.urandom(16))
