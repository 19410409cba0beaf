"""Small end-to-end: `tapestry synth` then `tapestry run` on the embedded lakehouse."""
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tapestry import lakehouse
from tapestry.cli import main

PERSONS = 400


@pytest.fixture
def demo(tapestry_env, tmp_path):
    landing = tapestry_env.landing
    assert main(["synth", "--persons", str(PERSONS), "--seed", "7", "--out", str(landing)]) == 0
    return tapestry_env, landing, Path(f"{landing}_truth")


def _files(landing: Path) -> list[Path]:
    return sorted(p for p in landing.rglob("*") if p.is_file())


def test_synth_then_run_lands_every_extract_row(demo, capsys):
    settings, landing, truth = demo
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out and "Lakehouse snapshot after this run" in out
    with lakehouse.connect(settings, read_only=True) as con:
        ledger = con.sql("SELECT agency, file_name, status, rows_loaded FROM raw.deliveries").pl()
        assert ledger["status"].unique().to_list() == ["loaded"]
        assert sorted(ledger["file_name"]) == sorted(p.name for p in _files(landing))
        # Every person-bearing raw row traces to a true person, and every true record was landed.
        records = pl.read_parquet(truth / "records.parquet")
        raw_rows = []
        for agency, entity in records.select("agency", "entity").unique().iter_rows():
            raw_rows.append(con.sql(
                f"SELECT '{agency}' AS agency, _file_name AS file, _row_number AS row_number "
                f"FROM raw.{agency}__{entity}").pl())
        landed = pl.concat(raw_rows)
        truth_keys = records.select("agency", pl.col("file"), pl.col("row_number").cast(pl.Int64))
        assert landed.height == truth_keys.height
        assert landed.join(truth_keys, on=["agency", "file", "row_number"], how="anti").height == 0
        # The run recorded its snapshot; time travel to it shows the same row count.
        snap = con.execute("SELECT max(snapshot_id) FROM audit.run_snapshots").fetchone()[0]
        occurrences = con.execute("SELECT count(*) FROM raw.police__occurrences").fetchone()[0]
        assert con.execute(
            f"SELECT count(*) FROM raw.police__occurrences AT (VERSION => {snap})").fetchone()[0] == occurrences > 0
    # A second run loads nothing again.
    assert main(["run"]) == 0
    with lakehouse.connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.police__occurrences").fetchone()[0] == occurrences
    assert "No new files" in capsys.readouterr().out


def test_faulty_files_are_rejected_by_name_and_the_rest_loads(tapestry_env, capsys):
    landing = tapestry_env.landing
    assert main(["synth", "--persons", "300", "--seed", "3", "--out", str(landing), "--inject-faults"]) == 0
    faults = json.loads(Path(f"{landing}_truth", "faults.json").read_text())
    assert main(["run"]) == 0
    with lakehouse.connect(tapestry_env, read_only=True) as con:
        ledger = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT file_name, status, reason FROM raw.deliveries").fetchall()}
    kinds = {f["kind"]: Path(f["file"]).name for f in faults}
    for kind in ("wrong_encoding", "empty_file", "truncated_ndjson"):
        assert ledger[kinds[kind]][0] == "rejected", (kind, ledger[kinds[kind]])
    assert "line" in ledger[kinds["wrong_encoding"]][1] and "line" in ledger[kinds["truncated_ndjson"]][1]
    # Of a byte-identical pair, the one received later is the recorded duplicate.
    resend = kinds["duplicate_delivery"]
    original = next(f["description"].split("copy of ")[1].split()[0] for f in faults
                    if f["kind"] == "duplicate_delivery")
    assert (ledger[Path(original).name][0], ledger[resend][0]) == ("loaded", "duplicate")
    statuses = [status for status, _ in ledger.values()]
    assert statuses.count("rejected") == 3 and statuses.count("duplicate") == 1
    assert len(ledger) == len(_files(landing))


def test_multiprocess_dagster_run_on_the_sqlite_catalog(demo):
    """The UI launches runs with Dagster's multiprocess executor: steps write concurrently."""
    settings, landing, _ = demo
    from orchestration.instance import prepare_dagster_home

    env = {**os.environ, "DAGSTER_HOME": prepare_dagster_home(settings)}
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run([str(dagster), "job", "execute", "-m", "orchestration.definitions", "-j", "everything"],
                            cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with lakehouse.connect(settings, read_only=True) as con:
        statuses = con.execute("SELECT status, count(*) FROM raw.deliveries GROUP BY ALL").fetchall()
        assert dict(statuses) == {"loaded": len(_files(landing))}
        assert con.execute("SELECT count(DISTINCT asset_key) FROM audit.run_snapshots").fetchone()[0] == 6
