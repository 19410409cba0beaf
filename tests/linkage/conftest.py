"""Tiny hand-made person files for linkage tests (no personal data: invented names)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sources.identifiers import nhs_numbers_from_index

FORENAMES = ["oliver", "amelia", "george", "isla", "harry", "ava", "jack", "mia", "noah", "sophia", "leo", "grace",
             "mohammed", "fatima", "william", "elizabeth", "james", "margaret", "thomas", "aisha"]
SURNAMES = ["smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel", "khan",
            "wright", "walker", "thompson", "white", "hughes", "edwards", "green", "hall", "wood", "harris"]
NICK = {"william": "bill", "elizabeth": "liz", "james": "jim", "margaret": "maggie", "thomas": "tom",
        "mohammed": "muhammad"}


def _persons(n: int, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        dob = np.datetime64("1950-01-01") + int(rng.integers(0, 25_000))
        rows.append({
            "person": f"T{i:04d}",
            "forename": FORENAMES[rng.integers(len(FORENAMES))],
            "surname": SURNAMES[rng.integers(len(SURNAMES))],
            "dob": str(dob),
            "sex": ["M", "F"][int(rng.integers(2))],
            "postcode": f"RG{int(rng.integers(1, 40))} {int(rng.integers(1, 9))}{'ABDEFGHJ'[int(rng.integers(8))]}"
                        f"{'LNPQRSTU'[int(rng.integers(8))]}",
            "nhs_number": str(nhs_numbers_from_index([i], salt=seed)[0]) if rng.random() < 0.5 else None,
        })
    return pl.DataFrame(rows)


def variant(row: dict, rng, k: int) -> dict:
    out = dict(row)
    kind = k % 5
    if kind == 1:
        out["forename"] = NICK.get(row["forename"], row["forename"]).upper()
    elif kind == 2:
        out["dob"] = row["dob"][:5] + row["dob"][8:10] + row["dob"][4:7] if int(row["dob"][8:10]) <= 12 else row["dob"]
    elif kind == 3:
        out["surname"] = row["surname"][:-1] + ("e" if row["surname"][-1] != "e" else "a")
    elif kind == 4:
        out["postcode"] = None
        out["surname"] = " " + row["surname"].title() + " "
    return out


@pytest.fixture(scope="session")
def small_people() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records in the canonical schema, truth record_id -> person): 150 persons, 2-3 records each
    from two sources, with nicknames, dob swaps, typos, blanks."""
    rng = np.random.default_rng(11)
    persons = _persons(150)
    records, truth = [], []
    n = 0
    for k, row in enumerate(persons.iter_rows(named=True)):
        copies = 2 + (k % 2)
        for c in range(copies):
            rec = variant(row, rng, k + c) if c else dict(row)
            n += 1
            rid = f"R{n:05d}"
            records.append({"record_id": rid, "source": "alpha" if c % 2 == 0 else "beta",
                            **{f: rec[f] for f in ("forename", "surname", "dob", "sex", "postcode", "nhs_number")}})
            truth.append({"record_id": rid, "person": row["person"]})
    return pl.DataFrame(records), pl.DataFrame(truth)
