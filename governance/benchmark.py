"""Time the governance primitives on synthetic rows: `uv run python -m governance.benchmark --rows 1000000`.

Uses a throw-away keyring in a temporary folder; prints seconds per step (no data).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from governance.keys import Keyring
from governance.pseudonyms import Pseudonymiser
from governance.vault import decrypt_identifiers, encrypt_identifiers
from tapestry.config import Settings

IDENTIFIERS = ["forename", "surname", "date_of_birth", "postcode", "nhs_number", "address"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    n = parser.parse_args(argv).rows
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        settings = Settings.from_env({"TAPESTRY_HOME": str(base / "home"), "TAPESTRY_SECRETS": str(base / "secrets")})
        keyring = Keyring.open(settings, env={})
        pseudonymiser = Pseudonymiser.from_keyring(keyring)
        ids = pl.Series([f"OCC{i:09d}" for i in range(n)])
        frame = pl.DataFrame({
            "forename": [f"Forename{i % 3000}" for i in range(n)],
            "surname": [f"Surname{i % 5000}" for i in range(n)],
            "date_of_birth": [f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}" for i in range(n)],
            "postcode": [f"ZZ{i % 99} {i % 9}ZZ" for i in range(n)],
            "nhs_number": [str(9_000_000_000 + i) for i in range(n)],
            "address": [f"{i % 300} Long Street, Testtown" for i in range(n)],
        })
        timings = {}
        start = time.perf_counter()
        record_keys = pseudonymiser.record_keys("police", ids)
        timings["record_key HMAC-SHA256"] = time.perf_counter() - start
        frame = frame.with_columns(record_keys)
        start = time.perf_counter()
        vault = encrypt_identifiers(frame, "police:bench", "record_key", IDENTIFIERS, keyring)
        timings["encrypt identifiers (AES-256-GCM)"] = time.perf_counter() - start
        start = time.perf_counter()
        decrypted = decrypt_identifiers(vault, keyring, IDENTIFIERS)
        timings["decrypt identifiers"] = time.perf_counter() - start
        assert decrypted.readable == n
        start = time.perf_counter()
        pseudonymiser.recipient_pseudonyms(record_keys, "export:benchmark")
        timings["recipient pseudonyms"] = time.perf_counter() - start
    print(f"{n:,} rows")
    for step, seconds in timings.items():
        print(f"  {step:<36} {seconds:6.2f} s  ({n / seconds / 1e6:.2f} M rows/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
