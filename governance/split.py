"""The split at ingestion: a delivery's identifiers go to the vault, encrypted under the
delivery's data key; the content that goes to raw carries keyed pseudonyms instead.

- record_key = HMAC-SHA256(pseudonymisation key, agency + source record id); the agency's
  person id and cross-references (e.g. a referral id) get keys the same way, so raw rows can
  still be joined (an Encounter's person_key equals its Patient's record_key).
- Identifiers (names, date of birth, address, postcode, NHS number, PNC ID, UPN, CRN, ...) and
  the clear ids are encrypted per row (governance.vault) into vault.identifiers.
- Raw keeps coarse attributes only: birth_year, postcode_district (outward code).
- The quarantined original row and the delivered file are encrypted under the same data key,
  so shredding that key (retention) makes all of them unreadable at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.keys import Keyring
from governance.pseudonyms import Pseudonymiser
from governance.vault import encrypt_identifiers

VAULT_TABLE = "vault.identifiers"
VAULT_DDL = f"""CREATE TABLE IF NOT EXISTS {VAULT_TABLE} (
    record_key VARCHAR NOT NULL, agency VARCHAR NOT NULL, entity VARCHAR NOT NULL,
    delivery_id VARCHAR NOT NULL, key_id VARCHAR NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL)"""
_FILE_AAD = b"archive-v1\x1f"


@dataclass(frozen=True)
class Split:
    content: pl.DataFrame  # for raw: pseudonymous
    vault: pl.DataFrame | None  # for vault.identifiers


class Splitter:
    """Holds the keyring and the pseudonymiser for one load."""

    def __init__(self, keyring: Keyring):
        self.keyring = keyring
        self.pseudonymiser = Pseudonymiser.from_keyring(keyring)

    @classmethod
    def open(cls, settings) -> "Splitter":
        return cls(Keyring.open(settings))

    def split(self, contract, valid: pl.DataFrame, delivery_id: str, locator=None) -> Split:
        """``locator`` (sources.reference.locator.Locator) places postcodes and points in LSOAs;
        without one (no reference geography loaded) the LSOA attributes stay null."""
        coarse = _coarse(contract, valid, locator)
        if not contract.person_bearing:
            return Split(valid.with_columns(coarse), None)
        keys = contract.key_columns()
        pseudonyms = [self.pseudonymiser.record_keys(contract.agency, valid[column]).alias(name)
                      for column, name in keys.items()]
        with_keys = valid.with_columns(*pseudonyms, *coarse)
        vault = encrypt_identifiers(with_keys, delivery_id, "record_key", list(contract.vault_columns()),
                                    self.keyring).with_columns(pl.lit(contract.agency).alias("agency"),
                                                               pl.lit(contract.entity).alias("entity"))
        return Split(with_keys.drop(list(contract.vault_columns())), vault)

    def encrypt_rows(self, texts: pl.Series, row_numbers: pl.Series, delivery_id: str) -> pl.DataFrame:
        """Encrypt quarantined original rows (AAD binds each to its delivery and row number)."""
        frame = pl.DataFrame({"record_key": ("row:" + row_numbers.cast(pl.String)), "original_row": texts})
        return encrypt_identifiers(frame, delivery_id, "record_key", ["original_row"], self.keyring).select(
            "key_id", "nonce", "ciphertext")

    def encrypt_file(self, source: Path, target: Path, delivery_id: str) -> None:
        """The delivered file, encrypted under the delivery's data key (nonce + ciphertext)."""
        key_id, key = self.keyring.data_key_with_id(delivery_id, create=True)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, source.read_bytes(), _FILE_AAD + delivery_id.encode())
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(key_id.encode() + b"\n" + nonce + sealed)
        partial.replace(target)

    def decrypt_file(self, source: Path, delivery_id: str) -> bytes:
        key_id, rest = source.read_bytes().split(b"\n", 1)
        key = self.keyring.data_key(delivery_id, create=False)
        return AESGCM(key).decrypt(rest[:12], rest[12:], _FILE_AAD + delivery_id.encode())


def _coarse(contract, valid: pl.DataFrame, locator) -> list[pl.Series | pl.Expr]:
    """The coarse attributes the policy keeps in place of identifiers (Contract.coarse_columns)."""
    wanted = contract.coarse_columns()
    out: list[pl.Series | pl.Expr] = []
    if "birth_year" in wanted:
        out.append(pl.col("date_of_birth").dt.year().cast(pl.Int32).alias("birth_year"))
    if "postcode_district" in wanted:
        compact = pl.col("postcode").str.to_uppercase().str.replace_all(r"\s", "")
        # outward code = all but the 3-character inward code; non-UK shapes give null
        out.append(compact.str.extract(r"^([A-Z]{1,2}[0-9][0-9A-Z]?)[0-9][A-Z]{2}$").alias("postcode_district"))
    if "residence_lsoa_code" in wanted:
        out.append(locator.lsoa_for_postcodes(valid["postcode"]).alias("residence_lsoa_code") if locator
                   else pl.lit(None, pl.String).alias("residence_lsoa_code"))
    if "lsoa_code" in wanted:
        out.append(locator.lsoa_for_points(valid["latitude"], valid["longitude"]).alias("lsoa_code") if locator
                   else pl.lit(None, pl.String).alias("lsoa_code"))
    return out
