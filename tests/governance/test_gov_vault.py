import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from governance.vault import VaultError, decrypt_identifiers, encrypt_identifiers

from conftest import IDENTIFIERS


def test_roundtrip_keeps_every_identifier_including_nulls(keyring, keyed):
    frame = keyed("police", 40)
    vault = encrypt_identifiers(frame, "police:d1", "record_key", IDENTIFIERS, keyring)
    assert vault.columns == ["record_key", "delivery_id", "key_id", "nonce", "ciphertext"]
    assert vault["delivery_id"].unique().to_list() == ["police:d1"]
    assert vault["key_id"].unique().to_list() == [keyring.data_key_with_id("police:d1")[0]]
    assert vault["nonce"].n_unique() == 40  # a fresh nonce per row
    assert not any(b"Surname1" in c for c in vault["ciphertext"].to_list())
    decrypted = decrypt_identifiers(vault, keyring, IDENTIFIERS)
    assert (decrypted.readable, decrypted.unreadable) == (40, 0)
    assert decrypted.frame["record_key"].to_list() == frame["record_key"].to_list()
    assert decrypted.frame.select(IDENTIFIERS).equals(frame.select(IDENTIFIERS))
    assert decrypted.frame["postcode"].null_count() == 8


def test_shredding_makes_exactly_that_delivery_unreadable(keyring, keyed):
    police, nhs = keyed("police", 30), keyed("nhs", 20)
    vault = pl.concat([
        encrypt_identifiers(police.head(15), "police:d1", "record_key", IDENTIFIERS, keyring),
        encrypt_identifiers(nhs, "nhs:d2", "record_key", IDENTIFIERS, keyring),
        encrypt_identifiers(police.tail(15), "police:d3", "record_key", IDENTIFIERS, keyring),
    ])
    keyring.shred("police:d1")
    decrypted = decrypt_identifiers(vault, keyring, IDENTIFIERS)
    assert decrypted.by_status == {"shredded": 15, "ok": 35}
    assert decrypted.shredded == 15 and decrypted.unreadable == 15
    frame = decrypted.frame
    gone = frame.filter(pl.col("delivery_id") == "police:d1")
    assert gone["vault_status"].unique().to_list() == ["shredded"]
    assert gone.select(IDENTIFIERS).null_count().sum_horizontal().item() == 15 * len(IDENTIFIERS)
    kept = frame.filter(pl.col("delivery_id") != "police:d1")
    assert kept["vault_status"].unique().to_list() == ["ok"]
    assert kept["surname"].to_list() == nhs["surname"].to_list() + police.tail(15)["surname"].to_list()


def test_aad_stops_swapped_ciphertexts(keyring, keyed):
    frame = keyed("police", 5)
    vault = encrypt_identifiers(frame, "police:d1", "record_key", IDENTIFIERS, keyring)
    # Give row 0 the ciphertext (and nonce) of row 1: same delivery, same key, valid ciphertext.
    nonce, cipher = vault["nonce"].to_list(), vault["ciphertext"].to_list()
    nonce[0], cipher[0] = nonce[1], cipher[1]
    swapped = vault.with_columns(pl.Series("nonce", nonce), pl.Series("ciphertext", cipher))
    decrypted = decrypt_identifiers(swapped, keyring, IDENTIFIERS)
    assert decrypted.frame["vault_status"].to_list() == ["tampered", "ok", "ok", "ok", "ok"]
    assert decrypted.frame["surname"][0] is None
    # Moving a row to another delivery with the same key id fails as well.
    moved = vault.with_columns(pl.lit("police:d9").alias("delivery_id"))
    keyring.data_key("police:d9")
    assert decrypt_identifiers(moved, keyring, IDENTIFIERS).by_status == {"key_mismatch": 5}


def test_flipped_bit_is_tampered_not_an_exception(keyring, keyed):
    vault = encrypt_identifiers(keyed("police", 3), "police:d1", "record_key", IDENTIFIERS, keyring)
    cipher = vault["ciphertext"].to_list()
    cipher[2] = cipher[2][:-1] + bytes([cipher[2][-1] ^ 1])
    decrypted = decrypt_identifiers(vault.with_columns(pl.Series("ciphertext", cipher)), keyring)
    assert decrypted.frame["vault_status"].to_list() == ["ok", "ok", "tampered"]


def test_unknown_delivery_is_no_key(keyring, keyed, tapestry_env):
    vault = encrypt_identifiers(keyed("police", 3), "police:d1", "record_key", IDENTIFIERS, keyring)
    (tapestry_env.secrets / "datakeys" / "police%3Ad1.json").unlink()  # lost, not shredded
    from governance.keys import Keyring
    assert decrypt_identifiers(vault, Keyring.open(tapestry_env, env={})).by_status == {"no_key": 3}


def test_bad_input_names_columns_not_values(keyring, keyed):
    frame = keyed("police", 3)
    with pytest.raises(VaultError, match="phone"):
        encrypt_identifiers(frame, "police:d1", "record_key", ["phone"], keyring)
    nulls = frame.with_columns(pl.when(pl.int_range(3) == 0).then(None).otherwise(pl.col("record_key")).alias("record_key"))
    with pytest.raises(VaultError, match="1 rows have no record_key"):
        encrypt_identifiers(nulls, "police:d1", "record_key", IDENTIFIERS, keyring)


def test_empty_frame(keyring, keyed):
    vault = encrypt_identifiers(keyed("police", 0), "police:d1", "record_key", IDENTIFIERS, keyring)
    assert vault.height == 0
    assert decrypt_identifiers(vault, keyring, IDENTIFIERS).frame.height == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(st.text(), st.one_of(st.none(), st.text())), min_size=1, max_size=8))
def test_any_text_roundtrips(keyring, values):
    frame = pl.DataFrame({
        "record_key": [f"{i:064x}" for i in range(len(values))],
        "name": [v[0] for v in values],
        "address": [v[1] for v in values],
    }, schema={"record_key": pl.String, "name": pl.String, "address": pl.String})
    vault = encrypt_identifiers(frame, "streetsafe:h", "record_key", ["name", "address"], keyring)
    for cols in (["name", "address"], None):
        out = decrypt_identifiers(vault, keyring, cols).frame
        assert out["name"].to_list() == frame["name"].to_list()
        if cols or out.width > 4:
            assert out["address"].to_list() == frame["address"].to_list()


def test_sealed_frame_opens_only_with_its_delivery_key_and_purpose(keyring, keyed):
    from dataclasses import replace

    from governance.vault import open_frame, seal_frame

    frame = keyed("police", 25).with_columns(tags=pl.lit(["a", "b"]))  # list columns survive too
    keyring.data_key_with_id("police:d1")
    keyring.data_key_with_id("police:d2")
    sealed = seal_frame(frame, "police:d1", "linked.node_features", keyring)
    assert sealed.rows == 25 and sealed.delivery_id == "police:d1"
    assert b"Surname1" not in sealed.ciphertext
    assert open_frame(sealed, "linked.node_features", keyring).collect().equals(frame)
    assert open_frame(sealed, "something else", keyring) is None  # purpose is bound in
    assert open_frame(replace(sealed, delivery_id="police:d2"), "linked.node_features", keyring) is None
    flipped = bytearray(sealed.ciphertext)
    flipped[10] ^= 1
    assert open_frame(replace(sealed, ciphertext=bytes(flipped)), "linked.node_features", keyring) is None
    keyring.shred("police:d1")  # crypto-shredding the delivery shreds what was derived from it
    assert open_frame(sealed, "linked.node_features", keyring) is None


def test_sealing_needs_an_existing_data_key(keyring, keyed):
    from governance.keys import NoDataKey
    from governance.vault import seal_frame

    with pytest.raises(NoDataKey):
        seal_frame(keyed("police", 2), "police:never-delivered", "linked.node_features", keyring)
