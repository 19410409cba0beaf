"""The identity vault's envelope encryption: one AES-256-GCM ciphertext per record.

A record's identifier fields are serialised as one JSON object (all values as text) and
encrypted under its delivery's data key (see governance.keys). The associated data (AAD) is
``vault-v1 \\x1f delivery_id \\x1f record_key``: a ciphertext moved to another row or another
delivery fails authentication instead of silently re-identifying the wrong person.

Nonces are 96 random bits per row; a data key encrypts one delivery (far below the 2**32
messages NIST allows per key with random nonces).

Decryption happens in memory only and never raises per row: each row comes back with a
``vault_status`` (ok / shredded / no_key / key_mismatch / tampered) and null identifiers when
it is not ok, so one shredded delivery does not stop a linkage run.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.keys import Keyring, KeyShredded, NoDataKey

VAULT_COLUMNS = ("record_key", "delivery_id", "key_id", "nonce", "ciphertext")
STATUS_OK, STATUS_SHREDDED, STATUS_NO_KEY, STATUS_KEY_MISMATCH, STATUS_TAMPERED = (
    "ok", "shredded", "no_key", "key_mismatch", "tampered")
_AAD_PREFIX = b"vault-v1\x1f"
_MAX_ROWS_PER_KEY = 2**32  # random-nonce limit for one AES-GCM key


class VaultError(ValueError):
    """Bad input to the vault (names columns and counts, never values)."""


def _aad(delivery_id: str, record_key: str) -> bytes:
    return _AAD_PREFIX + delivery_id.encode() + b"\x1f" + record_key.encode()


def encrypt_identifiers(
    frame: pl.DataFrame,
    delivery_id: str,
    record_key_col: str,
    identifier_cols: list[str] | tuple[str, ...],
    keyring: Keyring,
) -> pl.DataFrame:
    """Rows (record_key, delivery_id, key_id, nonce, ciphertext), one per input row."""
    missing = [c for c in (record_key_col, *identifier_cols) if c not in frame.columns]
    if missing:
        raise VaultError(f"columns not in the frame: {', '.join(missing)}")
    if not identifier_cols:
        raise VaultError("no identifier columns given")
    if frame[record_key_col].null_count():
        raise VaultError(f"{frame[record_key_col].null_count()} rows have no {record_key_col}")
    if frame.height >= _MAX_ROWS_PER_KEY:
        raise VaultError("too many rows for one data key")
    key_id, key = keyring.data_key_with_id(delivery_id, create=True)
    aead = AESGCM(key)  # one cipher object per data key: the per-row cost is then just the C call
    # Serialise in Rust (polars), encrypt in one tight loop; all identifiers as text so that
    # decryption has one schema.
    payloads = frame.select(
        pl.struct([pl.col(c).cast(pl.String) for c in identifier_cols]).struct.json_encode()
    ).to_series().to_list()
    record_keys = frame[record_key_col].cast(pl.String).to_list()
    n = len(payloads)
    randomness = os.urandom(12 * n)
    nonces = [randomness[i:i + 12] for i in range(0, 12 * n, 12)]
    prefix = _AAD_PREFIX + delivery_id.encode() + b"\x1f"
    encrypt = aead.encrypt
    ciphertexts = [
        encrypt(nonce, payload.encode(), prefix + rk.encode())
        for nonce, payload, rk in zip(nonces, payloads, record_keys)
    ]
    return pl.DataFrame(
        {
            "record_key": pl.Series(record_keys, dtype=pl.String),
            "nonce": pl.Series(nonces, dtype=pl.Binary),
            "ciphertext": pl.Series(ciphertexts, dtype=pl.Binary),
        }
    ).select(
        "record_key",
        pl.lit(delivery_id, dtype=pl.String).alias("delivery_id"),
        pl.lit(key_id, dtype=pl.String).alias("key_id"),
        "nonce",
        "ciphertext",
    )


@dataclass(frozen=True)
class Decrypted:
    """Identifiers in memory: ``frame`` has the vault frame's non-crypto columns, ``vault_status``,
    and one String column per identifier field (null unless the status is ok)."""

    frame: pl.DataFrame
    readable: int
    unreadable: int
    by_status: dict[str, int]

    @property
    def shredded(self) -> int:
        return self.by_status.get(STATUS_SHREDDED, 0)


def decrypt_identifiers(
    vault_frame: pl.DataFrame,
    keyring: Keyring,
    identifier_cols: list[str] | tuple[str, ...] | None = None,
) -> Decrypted:
    """Decrypt a vault frame in memory. Unreadable rows get a status, not an exception.

    identifier_cols fixes the output columns (fields absent from a row are null); without it
    they are the union of the fields found.
    """
    missing = [c for c in VAULT_COLUMNS if c not in vault_frame.columns]
    if missing:
        raise VaultError(f"not a vault frame: missing {', '.join(missing)}")
    ciphers: dict[str, tuple[str, AESGCM | None, str]] = {}  # delivery -> (key id, cipher, status)
    for delivery_id in vault_frame["delivery_id"].unique().to_list():
        try:
            key_id, key = keyring.data_key_with_id(delivery_id, create=False)
            ciphers[delivery_id] = (key_id, AESGCM(key), STATUS_OK)
        except KeyShredded:
            ciphers[delivery_id] = ("", None, STATUS_SHREDDED)
        except NoDataKey:
            ciphers[delivery_id] = ("", None, STATUS_NO_KEY)

    plaintexts: list[bytes] = []  # one JSON object per row; b"{}" stands in for an unreadable row
    statuses: list[str] = []
    unreadable = b"{}"
    columns = [vault_frame[c].to_list() for c in VAULT_COLUMNS]
    for record_key, delivery_id, key_id, nonce, ciphertext in zip(*columns):
        expected_id, aead, status = ciphers[delivery_id]
        if aead is None:
            plaintexts.append(unreadable)
            statuses.append(status)
        elif key_id != expected_id:
            plaintexts.append(unreadable)
            statuses.append(STATUS_KEY_MISMATCH)
        else:
            try:
                plaintexts.append(aead.decrypt(nonce, ciphertext, _aad(delivery_id, record_key)))
                statuses.append(STATUS_OK)
            except InvalidTag:  # swapped, altered or foreign ciphertext
                plaintexts.append(unreadable)
                statuses.append(STATUS_TAMPERED)

    fields = _decode(plaintexts, identifier_cols)
    keep = [c for c in vault_frame.columns if c not in ("key_id", "nonce", "ciphertext")]
    parts = [vault_frame.select(keep), pl.DataFrame({"vault_status": statuses}, schema={"vault_status": pl.String})]
    frame = pl.concat(parts + ([fields] if fields.width else []), how="horizontal")
    counts = dict(Counter(statuses))
    readable = counts.get(STATUS_OK, 0)
    return Decrypted(frame, readable, len(statuses) - readable, counts)


def _decode(payloads: list[bytes], identifier_cols) -> pl.DataFrame:
    """JSON objects -> columns, in Rust. JSON escapes newlines, so one object is one line."""
    if not payloads:
        return pl.DataFrame(schema={c: pl.String for c in identifier_cols or ()})
    lines = io.BytesIO(b"\n".join(payloads))
    if identifier_cols is not None:
        return pl.read_ndjson(lines, schema={c: pl.String for c in identifier_cols})
    decoded = pl.read_ndjson(lines, infer_schema_length=None)
    return decoded.with_columns(pl.all().cast(pl.String))


# -- sealed frames ------------------------------------------------------------------------
# A whole frame derived from one delivery's identifiers (linkage's standardised features of
# the records it delivered), sealed in one AES-256-GCM message under that delivery's data key:
# shredding the delivery's key makes the derived copy unreadable too, in every backup.
_SEAL_AAD = b"sealed-frame-v1\x1f"


@dataclass
class SealedFrame:
    delivery_id: str
    key_id: str
    nonce: bytes
    ciphertext: bytes
    rows: int


def _seal_aad(purpose: str, delivery_id: str) -> bytes:
    return _SEAL_AAD + purpose.encode() + b"\x1f" + delivery_id.encode()


def seal_frame(frame: pl.DataFrame, delivery_id: str, purpose: str, keyring: Keyring) -> SealedFrame:
    """Encrypt a frame (Parquet, lz4: the quickest to read back of the formats measured) under the
    delivery's data key; ``purpose`` is bound in as associated data."""
    key_id, key = keyring.data_key_with_id(delivery_id, create=False)
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="lz4")
    nonce = os.urandom(12)
    return SealedFrame(delivery_id, key_id, nonce,
                       AESGCM(key).encrypt(nonce, buffer.getvalue(), _seal_aad(purpose, delivery_id)), frame.height)


def open_frame(sealed: SealedFrame, purpose: str, keyring: Keyring) -> pl.LazyFrame | None:
    """The frame (decrypted now, read lazily: many frames are read faster, and with less CPU, as
    one ``pl.concat`` of their scans than one by one), or None when its delivery's key is gone or
    does not fit (shredded, rotated away, tampered): the caller treats the rows as unavailable."""
    try:
        key_id, key = keyring.data_key_with_id(sealed.delivery_id, create=False)
    except (KeyShredded, NoDataKey):
        return None
    if key_id != sealed.key_id:
        return None
    try:
        plain = AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, _seal_aad(purpose, sealed.delivery_id))
    except InvalidTag:
        return None
    return pl.scan_parquet(io.BytesIO(plain))
