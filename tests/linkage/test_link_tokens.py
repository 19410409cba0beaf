"""Keyed tokens of linkage features (linkage/tokens.py)."""
import hashlib
import os

import polars as pl
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.tokens import token_key, tokens


def _reference(message: str, key: bytes) -> int:
    digest = hashlib.md5(message.encode()).digest()
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(digest)
    return int.from_bytes(block[:8], "little") & (2**63 - 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=30))
def test_tokens_are_aes_of_the_md5_digest(values):
    key = os.urandom(32)
    got = tokens(pl.Series("m", values, dtype=pl.String), key).to_list()
    assert got == [None if v is None else _reference(v, key) for v in values]


def test_tokens_depend_on_the_key_and_the_message():
    messages = pl.Series("m", ["dob+surname_sx\x1f1990-01-02\x1fS530", "dob+surname_sx\x1f1990-02-01\x1fS530"])
    a, b = token_key(b"k" * 32), token_key(b"j" * 32)
    assert len(set(tokens(messages, a).to_list())) == 2  # different messages, different tokens
    assert set(tokens(messages, a).to_list()).isdisjoint(tokens(messages, b).to_list())  # another key
    assert tokens(messages, a).to_list() == tokens(messages, a).to_list()  # deterministic
