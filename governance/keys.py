"""The keyring: a master key, the pseudonymisation key and per-delivery data keys.

Envelope encryption. Identifiers in the vault are encrypted under a *data key* per delivery;
each data key is stored only *wrapped* (AES-256-GCM) under the *master key*. So:
- deleting one small file, ``datakeys/<delivery>.json``, crypto-shreds that delivery;
- rotating the master key re-wraps the data keys (a few bytes each) and never touches data.

Layout under ``Settings.secrets`` (directories 0700, files 0600, created on first use)::

    master.json              the master key (absent when TAPESTRY_MASTER_KEY supplies it)
    master.next.json         only while a rotation is in progress (resumed by the next rotation)
    pseudonym.json           the pseudonymisation HMAC key, wrapped by the master key
    datakeys/<delivery>.json one wrapped data key per delivery, naming its master key id
    shredded/<delivery>.json tombstone of a shredded delivery: key id and time, no key material
    retired/<key id>.json    tombstone of a retired master key: ids and times, no key material
    keyring.lock             shared by key creation/shredding, exclusive during rotation

Retired master keys are destroyed, not kept: a kept old master would unwrap any backup copy
of a data-key file, so a "shredded" delivery could be resurrected from an old backup.

In production the master key comes from the environment (``TAPESTRY_MASTER_KEY``, base64 of
32 bytes, e.g. injected from a secrets manager); then nothing under ``secrets`` is usable
without it. Rotating such a key needs the new one in ``TAPESTRY_MASTER_KEY_NEW``.

Key material never appears in logs, exceptions or reports: only key ids (a keyed fingerprint).
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets as _random
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tapestry.config import Settings

log = logging.getLogger("tapestry.governance")

KEY_BYTES = 32  # AES-256 / HMAC-SHA256
MASTER_KEY_ENV = "TAPESTRY_MASTER_KEY"
NEW_MASTER_KEY_ENV = "TAPESTRY_MASTER_KEY_NEW"
_WRAP_VERSION = 1


class KeyringError(RuntimeError):
    """A keyring problem; messages carry ids and paths, never key material."""


class KeyShredded(KeyringError):
    """The delivery's data key was destroyed (retention): its identifiers are unrecoverable."""


class NoDataKey(KeyringError):
    """No data key exists for the delivery (and one was not asked to be created)."""


def key_id_of(key: bytes, kind: str) -> str:
    """A stable, public fingerprint of a key: HMAC under the key itself, so it reveals nothing."""
    tag = hmac.new(key, f"tapestry key id {kind}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"{kind}-{tag}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise KeyringError(f"{what} is not valid base64") from None


def _file_name(delivery_id: str) -> str:
    """Delivery ids look like 'police:3f2a...'; percent-encode them into one safe file name."""
    if not delivery_id or delivery_id in (".", ".."):
        raise KeyringError("a delivery id must be a non-empty string")
    return urllib.parse.quote(delivery_id, safe="") + ".json"


def _write_private(path: Path, document: dict, exclusive: bool = False) -> bool:
    """Write JSON atomically with mode 0600. exclusive: only if absent (returns False if it exists)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        if exclusive:
            try:
                os.link(tmp, path)  # atomic create-if-absent: two first users cannot both win
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise KeyringError(f"{path} is not valid JSON (damaged key file)") from None


def _destroy(path: Path) -> None:
    """Overwrite, then unlink. Best effort: journaling/copy-on-write file systems and backups may
    keep old blocks, so the secrets folder must not be backed up with file history."""
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    source: str  # "file" | "env"
    key: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, key: bytes, source: str) -> "MasterKey":
        if len(key) != KEY_BYTES:
            raise KeyringError(f"a master key must be {KEY_BYTES} bytes (got {len(key)})")
        return cls(key_id_of(key, "mk"), source, key)


def _wrap(master: MasterKey, key: bytes, label: str) -> dict:
    """AES-256-GCM under the master key; AAD binds the wrap to its purpose (e.g. the delivery id),
    so a wrapped-key file renamed to another delivery does not unwrap."""
    nonce = os.urandom(12)
    aad = f"tapestry-wrap-v{_WRAP_VERSION}\x1f{label}".encode()
    return {
        "version": _WRAP_VERSION,
        "master_key_id": master.key_id,
        "nonce": _b64(nonce),
        "wrapped": _b64(AESGCM(master.key).encrypt(nonce, key, aad)),
    }


def _unwrap(master: MasterKey, document: dict, label: str, where: Path) -> bytes:
    aad = f"tapestry-wrap-v{document.get('version', _WRAP_VERSION)}\x1f{label}".encode()
    try:
        return AESGCM(master.key).decrypt(
            _unb64(document["nonce"], f"{where} nonce"), _unb64(document["wrapped"], f"{where} key"), aad
        )
    except InvalidTag:
        raise KeyringError(
            f"{where} does not unwrap under master key {master.key_id} (wrong key, or the file was altered or renamed)"
        ) from None
    except KeyError as missing:
        raise KeyringError(f"{where} lacks field {missing}") from None


@dataclass(frozen=True)
class RotationReport:
    old_key_id: str
    new_key_id: str
    data_keys_rewrapped: int
    pseudonym_key_rewrapped: bool
    retired: str  # what happened to the old master key
    resumed: bool = False  # an interrupted rotation was finished


@dataclass(frozen=True)
class KeyringStatus:
    secrets: Path
    master_key_id: str
    master_source: str
    pseudonym_key_id: str
    data_keys: int
    data_keys_by_master: dict[str, int]
    shredded: int
    retired_master_keys: list[str]
    rotation_pending: bool
    problems: list[str]


class Keyring:
    """Open with ``Keyring.open(settings)``; creates what is missing on first use."""

    def __init__(self, root: Path, master: MasterKey, env: dict[str, str]):
        self.root = root
        self._master = master
        self._env = env
        self._data_keys: dict[str, tuple[str, bytes]] = {}  # delivery id -> (key id, key); in memory only
        self._pseudonym_key: bytes | None = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings | None = None, env: dict[str, str] | None = None) -> "Keyring":
        settings = settings or Settings.from_env()
        env = dict(os.environ if env is None else env)
        root = settings.secrets
        for folder in (root, root / "datakeys", root / "shredded", root / "retired"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        keyring = cls(root, cls._load_master(root, env), env)
        keyring._ensure_pseudonym_key()
        return keyring

    @staticmethod
    def _load_master(root: Path, env: dict[str, str]) -> MasterKey:
        supplied = env.get(MASTER_KEY_ENV)
        if supplied:
            return MasterKey.from_bytes(_unb64(supplied.strip(), MASTER_KEY_ENV), "env")
        path = root / "master.json"
        if not path.exists():
            key = os.urandom(KEY_BYTES)
            fresh = MasterKey.from_bytes(key, "file")
            _write_private(path, {"key_id": fresh.key_id, "key": _b64(key), "created_at": _now()}, exclusive=True)
            # If another process created it first, the exclusive write lost; read the winner's.
        document = _read_json(path)
        master = MasterKey.from_bytes(_unb64(document.get("key", ""), str(path)), "file")
        if document.get("key_id") != master.key_id:
            raise KeyringError(f"{path}: key id does not match the key (damaged file)")
        return master

    def _reload_master(self) -> None:
        """Another process may have rotated the master key since this keyring was opened."""
        if self._master.source == "file":
            self._master = self._load_master(self.root, self._env)

    def _pending_master(self) -> MasterKey | None:
        path = self.root / "master.next.json"
        if not path.exists():
            return None
        document = _read_json(path)
        return MasterKey.from_bytes(_unb64(document["key"], str(path)), document.get("source", "file"))

    def _master_for(self, key_id: str, where: Path) -> MasterKey:
        if key_id == self._master.key_id:
            return self._master
        self._reload_master()
        if key_id == self._master.key_id:
            return self._master
        pending = self._pending_master()
        if pending is not None and key_id == pending.key_id:
            return pending
        if self._master.source == "env":
            next_key = self._env.get(NEW_MASTER_KEY_ENV)
            if next_key:
                candidate = MasterKey.from_bytes(_unb64(next_key.strip(), NEW_MASTER_KEY_ENV), "env")
                if candidate.key_id == key_id:
                    return candidate
        raise KeyringError(
            f"{where} is wrapped under master key {key_id}, but the master key available is "
            f"{self._master.key_id} ({self._master.source})"
        )

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        with open(self.root / "keyring.lock", "a+") as handle:
            os.chmod(self.root / "keyring.lock", 0o600)
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- ids -----------------------------------------------------------------------------
    @property
    def master_key_id(self) -> str:
        return self._master.key_id

    @property
    def pseudonym_key_id(self) -> str:
        return key_id_of(self.pseudonym_key(), "pk")

    # -- the pseudonymisation key --------------------------------------------------------
    def _ensure_pseudonym_key(self) -> None:
        path = self.root / "pseudonym.json"
        if not path.exists():
            with self._lock(exclusive=False):
                self._reload_master()
                key = os.urandom(KEY_BYTES)
                document = {"key_id": key_id_of(key, "pk"), "created_at": _now(), **_wrap(self._master, key, "pseudonym")}
                _write_private(path, document, exclusive=True)

    def pseudonym_key(self) -> bytes:
        """The HMAC key behind record_key and recipient pseudonyms. Never rotated: rotating it
        would change every record_key (the lake's join key); it is re-wrapped with the master."""
        if self._pseudonym_key is None:
            path = self.root / "pseudonym.json"
            document = _read_json(path)
            self._pseudonym_key = _unwrap(self._master_for(document["master_key_id"], path), document, "pseudonym", path)
        return self._pseudonym_key

    # -- data keys -----------------------------------------------------------------------
    def _data_key_path(self, delivery_id: str) -> Path:
        return self.root / "datakeys" / _file_name(delivery_id)

    def _shredded_path(self, delivery_id: str) -> Path:
        return self.root / "shredded" / _file_name(delivery_id)

    def has_data_key(self, delivery_id: str) -> bool:
        return self._data_key_path(delivery_id).exists()

    def is_shredded(self, delivery_id: str) -> bool:
        return self._shredded_path(delivery_id).exists()

    def data_key(self, delivery_id: str, create: bool = True) -> bytes:
        return self.data_key_with_id(delivery_id, create)[1]

    def data_key_with_id(self, delivery_id: str, create: bool = True) -> tuple[str, bytes]:
        """(data key id, 32-byte data key) for a delivery; created and stored wrapped if absent."""
        cached = self._data_keys.get(delivery_id)
        if cached is not None:
            if self.has_data_key(delivery_id):
                return cached
            self._data_keys.pop(delivery_id, None)  # shredded by another process
        path = self._data_key_path(delivery_id)
        if not path.exists():
            if self.is_shredded(delivery_id):
                raise KeyShredded(f"the data key of delivery {delivery_id} was shredded")
            if not create:
                raise NoDataKey(f"no data key for delivery {delivery_id}")
            with self._lock(exclusive=False):  # not while a rotation is re-wrapping
                if self.is_shredded(delivery_id):  # re-check under the lock
                    raise KeyShredded(f"the data key of delivery {delivery_id} was shredded")
                self._reload_master()
                key = os.urandom(KEY_BYTES)
                document = {
                    "delivery_id": delivery_id,
                    "key_id": key_id_of(key, "dk"),
                    "created_at": _now(),
                    **_wrap(self._master, key, f"datakey\x1f{delivery_id}"),
                }
                _write_private(path, document, exclusive=True)  # lost a race: use the winner's
        try:
            document = _read_json(path)
        except FileNotFoundError:
            raise KeyShredded(f"the data key of delivery {delivery_id} was shredded") from None
        key = _unwrap(self._master_for(document["master_key_id"], path), document, f"datakey\x1f{delivery_id}", path)
        if key_id_of(key, "dk") != document.get("key_id"):
            raise KeyringError(f"{path}: key id does not match the unwrapped key (damaged file)")
        self._data_keys[delivery_id] = (document["key_id"], key)
        return document["key_id"], key

    def shred(self, delivery_id: str, reason: str = "retention") -> bool:
        """Destroy a delivery's data key. Returns False if there was none. Irreversible."""
        path = self._data_key_path(delivery_id)
        with self._lock(exclusive=False):
            key_id = None
            if path.exists():
                with contextlib.suppress(KeyringError):
                    key_id = _read_json(path).get("key_id")
            tombstone = {"delivery_id": delivery_id, "key_id": key_id, "shredded_at": _now(), "reason": reason}
            _write_private(self._shredded_path(delivery_id), tombstone)  # first: blocks re-creation
            existed = path.exists()
            _destroy(path)
        self._data_keys.pop(delivery_id, None)
        return existed

    def delivery_ids(self) -> list[str]:
        return sorted(
            urllib.parse.unquote(p.name[: -len(".json")])
            for p in (self.root / "datakeys").glob("*.json")
        )

    # -- rotation ------------------------------------------------------------------------
    def rotate_master(self, new_key: bytes | None = None) -> RotationReport:
        """Re-wrap every data key and the pseudonymisation key under a new master key, then
        destroy the old master (a tombstone in retired/ keeps its id and dates).

        Crash-safe: the new key is first saved as master.next.json; every wrapped file names its
        master key id, so a half-done rotation is readable and the next call finishes it.
        With TAPESTRY_MASTER_KEY the new key must be given (TAPESTRY_MASTER_KEY_NEW); afterwards
        the operator replaces TAPESTRY_MASTER_KEY with it and destroys the old value.
        """
        with self._lock(exclusive=True):
            self._reload_master()
            old = self._master
            pending = self._pending_master()
            resumed = pending is not None and new_key is None
            if resumed:
                new = pending
            else:
                if new_key is None:
                    if old.source == "env":
                        supplied = self._env.get(NEW_MASTER_KEY_ENV)
                        if not supplied:
                            raise KeyringError(
                                f"the master key comes from {MASTER_KEY_ENV}; put the new key (base64 of "
                                f"{KEY_BYTES} random bytes) in {NEW_MASTER_KEY_ENV} to rotate"
                            )
                        new_key = _unb64(supplied.strip(), NEW_MASTER_KEY_ENV)
                    else:
                        new_key = os.urandom(KEY_BYTES)
                new = MasterKey.from_bytes(new_key, old.source)
                if new.key_id == old.key_id:
                    raise KeyringError("the new master key is the current one")
                if old.source == "file":
                    _write_private(self.root / "master.next.json",
                                   {"key_id": new.key_id, "key": _b64(new.key), "created_at": _now(), "source": "file"})
            rewrapped = 0
            for path in sorted((self.root / "datakeys").glob("*.json")):
                document = _read_json(path)
                if document.get("master_key_id") == new.key_id:
                    continue  # done before an interruption
                label = f"datakey\x1f{document['delivery_id']}"
                key = _unwrap(self._master_for(document["master_key_id"], path), document, label, path)
                _write_private(path, {**document, **_wrap(new, key, label), "rewrapped_at": _now()})
                rewrapped += 1
            pseudonym_path = self.root / "pseudonym.json"
            document = _read_json(pseudonym_path)
            pseudonym_rewrapped = document.get("master_key_id") != new.key_id
            if pseudonym_rewrapped:
                key = _unwrap(self._master_for(document["master_key_id"], pseudonym_path), document, "pseudonym", pseudonym_path)
                _write_private(pseudonym_path, {**document, **_wrap(new, key, "pseudonym"), "rewrapped_at": _now()})
            _write_private(self.root / "retired" / f"{old.key_id}.json", {
                "key_id": old.key_id, "source": old.source, "retired_at": _now(), "replaced_by": new.key_id,
                "note": "key material destroyed at retirement; this file holds no key",
            })
            if old.source == "file":
                # Promote: the atomic replace is the commit point of the rotation.
                os.replace(self.root / "master.next.json", self.root / "master.json")
                retired = "destroyed (file overwritten and removed)"
            else:
                retired = f"no longer needed: replace {MASTER_KEY_ENV} with the new key and destroy the old value"
            self._master = new
            self._data_keys.clear()
        log.info("master key rotated: %s -> %s, %d data keys re-wrapped", old.key_id, new.key_id, rewrapped)
        return RotationReport(old.key_id, new.key_id, rewrapped, pseudonym_rewrapped, retired, resumed)

    # -- status --------------------------------------------------------------------------
    def status(self) -> KeyringStatus:
        problems: list[str] = []
        by_master: dict[str, int] = {}
        for path in (self.root / "datakeys").glob("*.json"):
            master_id = _read_json(path).get("master_key_id", "?")
            by_master[master_id] = by_master.get(master_id, 0) + 1
        for path in [self.root, *[p for p in self.root.rglob("*") if not p.name.startswith(".")]]:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                problems.append(f"{path} is accessible to other users (mode {mode:o}); expected "
                                f"{'700' if path.is_dir() else '600'}")
        stale = sorted(set(by_master) - {self._master.key_id})
        if stale:
            problems.append(f"data keys wrapped under master key(s) {', '.join(stale)}: rotation unfinished, "
                            f"run `tapestry keys rotate`")
        return KeyringStatus(
            secrets=self.root,
            master_key_id=self._master.key_id,
            master_source=self._master.source,
            pseudonym_key_id=self.pseudonym_key_id,
            data_keys=sum(by_master.values()),
            data_keys_by_master=by_master,
            shredded=len(list((self.root / "shredded").glob("*.json"))),
            retired_master_keys=sorted(p.stem for p in (self.root / "retired").glob("*.json")),
            rotation_pending=(self.root / "master.next.json").exists(),
            problems=problems,
        )
