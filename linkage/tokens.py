"""Keyed 63-bit tokens of linkage features: what the ``linked`` zone stores instead of the
features themselves, so an incremental run can find a delivery's candidate persons without
decrypting the population.

token(message) = first 63 bits of AES-256-ECB_K(MD5(message)). MD5 only compresses the message
to one 16-byte block (collisions of honest data are the 2^-64 kind, and a collision only adds a
candidate that Splink then scores on the real features); the secret key K makes the token a
keyed pseudorandom function, so nobody without K can test a guessed name or date of birth
against a stored token. K is derived (HKDF-SHA256) from the keyring's pseudonymisation key, the
key behind ``record_key`` (never rotated, so stored tokens stay comparable).

Vectorised: DuckDB computes the digests, one AES call encrypts all blocks (about 10M tokens in
a few seconds on 2 cores).
"""
from __future__ import annotations

import functools

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEPARATOR = "\x1f"
NULL = "\x00"  # stands for a null part in a node's feature message
_MASK = np.uint64(2**63 - 1)
_INFO = b"tapestry linkage tokens v1"


def token_key(pseudonym_key: bytes) -> bytes:
    """The 32-byte token key derived from the keyring's pseudonymisation key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(pseudonym_key)


def tokens(messages: pl.Series, key: bytes) -> pl.Series:
    """Int64 token per message (null for a null message)."""
    if len(key) != 32:
        raise ValueError("the token key must be 32 bytes")
    out = np.zeros(len(messages), dtype=np.int64)
    valid = messages.is_not_null().to_numpy()
    present = messages.filter(messages.is_not_null())
    if len(present):
        con = _digests().cursor()
        try:
            con.register("_messages", pa.table({"m": present.cast(pl.String).to_arrow()}))
            # md5_number is the digest read as a little-endian 128-bit number: its two halves,
            # little-endian again, are the digest's 16 bytes (tested against hashlib)
            halves = con.execute("SELECT (h & 18446744073709551615::UHUGEINT)::UBIGINT AS lo, "
                                 "(h >> 64)::UBIGINT AS hi FROM (SELECT md5_number(m) AS h FROM _messages)").fetchnumpy()
        finally:
            con.close()
        blocks = np.empty((len(present), 2), dtype="<u8")
        blocks[:, 0], blocks[:, 1] = halves["lo"], halves["hi"]
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        encrypted = encryptor.update(blocks.tobytes()) + encryptor.finalize()
        out[valid] = (np.frombuffer(encrypted, dtype="<u8")[::2] & _MASK).astype(np.int64)
    series = pl.Series(messages.name, out, dtype=pl.Int64)
    return series.scatter(np.flatnonzero(~valid), None) if not valid.all() else series


@functools.lru_cache(maxsize=1)
def _digests() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for the digests, each call on its own cursor: opening a database
    costs ~7 ms, and a run computes tokens several times."""
    return duckdb.connect()


def message(name: str, columns: list[str] | tuple[str, ...], *, nulls_as_marker: bool = False) -> pl.Expr:
    """``name`` + the columns' values, unit-separated. Null if a column is null, unless
    ``nulls_as_marker`` (then a null part is written as NUL: the whole-feature message of a node)."""
    parts = [pl.col(c).cast(pl.String) for c in columns]
    if nulls_as_marker:
        parts = [p.fill_null(NULL) for p in parts]
    return pl.concat_str([pl.lit(name), *parts], separator=SEPARATOR)
