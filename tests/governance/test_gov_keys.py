import base64
import json
import os
import stat

import pytest

from governance import keys as keys_module
from governance.keys import Keyring, KeyringError, KeyShredded, NoDataKey, MasterKey
from governance.vault import decrypt_identifiers, encrypt_identifiers

from conftest import IDENTIFIERS


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_private_files(keyring, tapestry_env):
    keyring.data_key("police:aaaa")
    root = tapestry_env.secrets
    files = [p for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"master.json", "pseudonym.json", "police%3Aaaaa.json"}
    assert all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}
    assert all(mode(p) == 0o700 for p in [root, *[d for d in root.rglob("*") if d.is_dir()]])
    assert keyring.status().problems == []


def test_keys_are_stable_across_opens_and_stored_only_wrapped(keyring, tapestry_env):
    key = keyring.data_key("police:aaaa")
    again = Keyring.open(tapestry_env, env={})
    assert again.master_key_id == keyring.master_key_id
    assert again.data_key("police:aaaa", create=False) == key
    assert again.pseudonym_key() == keyring.pseudonym_key()
    for name in ("datakeys/police%3Aaaaa.json", "pseudonym.json"):
        text = (tapestry_env.secrets / name).read_text()
        assert base64.b64encode(key).decode() not in text
        assert base64.b64encode(keyring.pseudonym_key()).decode() not in text
    assert len(key) == 32 and key != keyring.data_key("police:bbbb")


def test_missing_data_key_without_create(keyring):
    with pytest.raises(NoDataKey):
        keyring.data_key("police:none", create=False)
    assert not keyring.has_data_key("police:none")


def test_renamed_data_key_file_does_not_unwrap_for_another_delivery(keyring, tapestry_env):
    keyring.data_key("police:aaaa")
    folder = tapestry_env.secrets / "datakeys"
    document = json.loads((folder / "police%3Aaaaa.json").read_text())
    document["delivery_id"] = "police:bbbb"
    (folder / "police%3Abbbb.json").write_text(json.dumps(document))
    with pytest.raises(KeyringError, match="does not unwrap"):
        Keyring.open(tapestry_env, env={}).data_key("police:bbbb", create=False)


def test_shred_destroys_exactly_one_key_and_blocks_recreation(keyring, tapestry_env):
    kept = keyring.data_key("police:keep")
    keyring.data_key("police:gone")
    assert keyring.shred("police:gone") is True
    assert not keyring.has_data_key("police:gone") and keyring.is_shredded("police:gone")
    for ring in (keyring, Keyring.open(tapestry_env, env={})):
        with pytest.raises(KeyShredded):
            ring.data_key("police:gone", create=True)  # never silently replaced by a new key
        assert ring.data_key("police:keep", create=False) == kept
    tombstone = json.loads((tapestry_env.secrets / "shredded" / "police%3Agone.json").read_text())
    assert set(tombstone) == {"delivery_id", "key_id", "shredded_at", "reason"}


def test_rotation_rewraps_without_touching_data(keyring, tapestry_env, keyed):
    frame = keyed("police", 50)
    vault = encrypt_identifiers(frame, "police:d1", "record_key", IDENTIFIERS, keyring)
    keyring.data_key("nhs:d2")
    old_master = json.loads((tapestry_env.secrets / "master.json").read_text())
    old_pseudonym = keyring.pseudonym_key()

    report = keyring.rotate_master()

    assert report.old_key_id == old_master["key_id"] != report.new_key_id
    assert report.data_keys_rewrapped == 2 and report.pseudonym_key_rewrapped
    reopened = Keyring.open(tapestry_env, env={})
    assert reopened.master_key_id == report.new_key_id
    assert reopened.pseudonym_key() == old_pseudonym  # record keys do not change
    for path in (tapestry_env.secrets / "datakeys").glob("*.json"):
        assert json.loads(path.read_text())["master_key_id"] == report.new_key_id
    decrypted = decrypt_identifiers(vault, reopened, IDENTIFIERS)
    assert decrypted.readable == 50
    assert decrypted.frame.select(IDENTIFIERS).equals(frame.select(IDENTIFIERS))

    # The old master is gone: only a tombstone without key material remains, and the old key
    # (captured before rotation) cannot unwrap the new wraps.
    tombstone_text = (tapestry_env.secrets / "retired" / f"{report.old_key_id}.json").read_text()
    assert old_master["key"] not in tombstone_text
    assert old_master["key"] not in "".join(p.read_text() for p in tapestry_env.secrets.rglob("*.json"))
    old = MasterKey.from_bytes(base64.b64decode(old_master["key"]), "file")
    path = tapestry_env.secrets / "datakeys" / "police%3Ad1.json"
    with pytest.raises(KeyringError, match="does not unwrap"):
        keys_module._unwrap(old, json.loads(path.read_text()), "datakey\x1fpolice:d1", path)
    assert reopened.status().retired_master_keys == [report.old_key_id]


def test_interrupted_rotation_is_readable_and_finished_by_the_next(keyring, tapestry_env, monkeypatch):
    for i in range(4):
        keyring.data_key(f"police:d{i}")
    expected = {f"police:d{i}": keyring.data_key(f"police:d{i}") for i in range(4)}
    real_wrap, calls = keys_module._wrap, []

    def failing_wrap(master, key, label):
        calls.append(label)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real_wrap(master, key, label)

    monkeypatch.setattr(keys_module, "_wrap", failing_wrap)
    with pytest.raises(OSError):
        keyring.rotate_master()
    monkeypatch.setattr(keys_module, "_wrap", real_wrap)

    half = Keyring.open(tapestry_env, env={})
    assert half.status().rotation_pending
    assert {d: half.data_key(d, create=False) for d in expected} == expected  # mixed wraps still readable
    report = half.rotate_master()
    assert report.resumed and report.data_keys_rewrapped == 2
    done = Keyring.open(tapestry_env, env={})
    assert not done.status().rotation_pending and done.status().problems == []
    assert {d: done.data_key(d, create=False) for d in expected} == expected


def test_master_key_from_environment(tapestry_env):
    master = base64.b64encode(os.urandom(32)).decode()
    ring = Keyring.open(tapestry_env, env={"TAPESTRY_MASTER_KEY": master})
    key = ring.data_key("police:env")
    assert not (tapestry_env.secrets / "master.json").exists()
    assert ring.status().master_source == "env"
    with pytest.raises(KeyringError, match="TAPESTRY_MASTER_KEY_NEW"):
        ring.rotate_master()
    new = base64.b64encode(os.urandom(32)).decode()
    report = Keyring.open(tapestry_env, env={"TAPESTRY_MASTER_KEY": master,
                                             "TAPESTRY_MASTER_KEY_NEW": new}).rotate_master()
    assert report.data_keys_rewrapped == 1
    after = Keyring.open(tapestry_env, env={"TAPESTRY_MASTER_KEY": new})
    assert after.data_key("police:env", create=False) == key
    with pytest.raises(KeyringError, match="wrapped under master key"):
        Keyring.open(tapestry_env, env={"TAPESTRY_MASTER_KEY": master}).data_key("police:env", create=False)


def test_bad_environment_key_is_reported_without_its_value(tapestry_env):
    with pytest.raises(KeyringError) as raised:
        Keyring.open(tapestry_env, env={"TAPESTRY_MASTER_KEY": base64.b64encode(b"short").decode()})
    assert "32 bytes" in str(raised.value) and "c2hvcnQ" not in str(raised.value)


def test_status_flags_loose_permissions(keyring, tapestry_env):
    os.chmod(tapestry_env.secrets / "master.json", 0o644)
    assert any("master.json" in p for p in keyring.status().problems)
