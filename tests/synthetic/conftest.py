from __future__ import annotations

import pytest

from sources.synthetic import generate

N_PERSONS = 3000
SEED = 20241


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> dict:
    """One generated landing + truth folder with faults, shared by the read-only tests."""
    base = tmp_path_factory.mktemp("synth")
    messages: list[str] = []
    summary = generate(N_PERSONS, SEED, base / "landing", inject_faults=True, progress=messages.append)
    return {"out": base / "landing", "truth": base / "landing_truth", "summary": summary, "messages": messages}
