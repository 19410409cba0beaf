import polars as pl
import pytest

from governance.keys import Keyring
from governance.pseudonyms import Pseudonymiser

IDENTIFIERS = ["forename", "surname", "date_of_birth", "postcode"]


@pytest.fixture
def keyring(tapestry_env):
    return Keyring.open(tapestry_env, env={})


@pytest.fixture
def people():
    """A small delivery: (agency, source ids, identifiers) - synthetic, obviously fake."""
    def make(agency: str, n: int, start: int = 0) -> pl.DataFrame:
        return pl.DataFrame({
            "source_id": [f"{agency[:3].upper()}{i:06d}" for i in range(start, start + n)],
            "forename": [f"Forename{i}" for i in range(start, start + n)],
            "surname": [f"Surname{i}" for i in range(start, start + n)],
            "date_of_birth": [f"19{50 + i % 50:02d}-01-{1 + i % 28:02d}" for i in range(start, start + n)],
            "postcode": [None if i % 5 == 0 else f"ZZ{i % 9} 9ZZ" for i in range(start, start + n)],
        })
    return make


@pytest.fixture
def keyed(keyring, people):
    """people(...) with a record_key column computed with the keyring's pseudonymisation key."""
    def make(agency: str, n: int, start: int = 0) -> pl.DataFrame:
        frame = people(agency, n, start)
        return frame.with_columns(Pseudonymiser.from_keyring(keyring).record_keys(agency, frame["source_id"]))
    return make
