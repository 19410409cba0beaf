"""Small end-to-end: `tapestry synth` then `tapestry run` on the embedded lakehouse."""
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from tapestry import lakehouse
from tapestry.cli import main

PERSONS = 400
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tapestry_env):
    landing = tapestry_env.landing
    assert main(["synth", "--persons", str(PERSONS), "--seed", "7", "--out", str(landing), "--months", "6"]) == 0
    # agency deliveries (the public reference geography files stay in landing/reference/)
    files = sorted(p for p in landing.rglob("*") if p.is_file() and "reference" not in p.relative_to(landing).parts)
    return tapestry_env, landing, Path(f"{landing}_truth"), files


def test_synth_then_run_lands_every_extract_row(demo, capsys):
    settings, landing, truth, files = demo
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "Pipeline succeeded" in out and "Lakehouse snapshot after this run" in out
    # every delivery left the landing folder; the public reference files stay
    assert {p.relative_to(landing).parts[0] for p in landing.rglob("*") if p.is_file()} == {"reference"}
    with lakehouse.connect(settings, read_only=True) as con:
        ledger = con.sql("SELECT agency, file_name, status, rows_read, rows_loaded, rows_quarantined "
                         "FROM raw.deliveries").pl()
        assert ledger["status"].unique().to_list() == ["loaded"]
        assert sorted(ledger["file_name"]) == sorted(p.name for p in files)
        # Clean generated data breaks no hard rule of the contracts.
        assert ledger["rows_quarantined"].sum() == 0
        # Every person-bearing raw row traces to a true person, and every true record was landed.
        records = pl.read_parquet(truth / "records.parquet")
        landed = pl.concat([
            con.sql(f"SELECT '{agency}' AS agency, _file_name AS file, _row_number AS row_number "
                    f"FROM raw.{agency}__{entity}").pl()
            for agency, entity in records.select("agency", "entity").unique().iter_rows()])
        truth_keys = records.select("agency", "file", pl.col("row_number").cast(pl.Int64))
        assert landed.height == truth_keys.height
        # ... and each of them left its identifiers in the vault (one ciphertext per row).
        assert con.execute("SELECT count(*) FROM vault.identifiers").fetchone()[0] == landed.height
        assert landed.join(truth_keys, on=["agency", "file", "row_number"], how="anti").height == 0
        # The run recorded its snapshot; time travel to it shows the same row count.
        snap = con.execute("SELECT max(snapshot_id) FROM audit.run_snapshots").fetchone()[0]
        occurrences = con.execute("SELECT count(*) FROM raw.police__occurrences").fetchone()[0]
        assert con.execute(
            f"SELECT count(*) FROM raw.police__occurrences AT (VERSION => {snap})").fetchone()[0] == occurrences > 0
    assert main(["run"]) == 0
    assert "No files were waiting" in capsys.readouterr().out


def test_every_injected_fault_behaves_as_documented(tapestry_env):
    landing = tapestry_env.landing
    assert main(["synth", "--persons", "300", "--seed", "3", "--out", str(landing), "--inject-faults",
                 "--months", "6"]) == 0
    faults = json.loads(Path(f"{landing}_truth", "faults.json").read_text())
    assert main(["run", "--ingest-only"]) == 0
    with lakehouse.connect(tapestry_env, read_only=True) as con:
        ledger = {r["file_name"]: r for r in con.sql("SELECT * FROM raw.deliveries").pl().to_dicts()}
    seen = set()
    for fault in faults:
        name, kind = Path(fault["file"]).name, fault["kind"]
        row = ledger[name]
        seen.add(kind)
        if kind in ("wrong_encoding", "empty_file", "truncated_ndjson", "missing_column"):
            assert row["status"] == "rejected", (kind, row)
            assert row["reason"].startswith(name) and ("line" in row["reason"] or kind == "empty_file")
            assert (tapestry_env.rejected_dir / Path(fault["file"]).parent / f"{name}.reason.txt").exists()
        elif kind == "duplicate_delivery":
            original = fault["description"].split("copy of ")[1].split()[0]
            assert (ledger[Path(original).name]["status"], row["status"]) == ("loaded", "duplicate")
        elif kind == "unparseable_dates":
            assert row["status"] == "loaded" and row["rows_quarantined"] + row["rows_with_warnings"] >= fault["rows_affected"]
            assert row["rows_read"] == row["rows_loaded"] + row["rows_quarantined"]
        elif kind == "invalid_check_digit":
            assert row["status"] == "loaded" and row["rows_with_warnings"] >= fault["rows_affected"] > 0
        else:
            pytest.fail(f"fault kind {kind} has no expected behaviour")
    assert seen == {"wrong_encoding", "empty_file", "truncated_ndjson", "missing_column", "duplicate_delivery",
                    "unparseable_dates", "invalid_check_digit"}


def test_asset_checks_report_expectations_and_conservation(demo):
    settings, _, _, _ = demo
    from orchestration.definitions import defs
    from orchestration.deliveries import plan_run
    from orchestration.instance import prepare_dagster_home
    from sources.registry import BY_NAME

    prepare_dagster_home(settings)
    with dg.DagsterInstance.get() as instance:
        tags = plan_run(instance, BY_NAME["childrens_social_care"], settings)
        result = defs.resolve_job_def("ingest_childrens_social_care").execute_in_process(instance=instance, tags=tags)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["rows_conserved"].passed
    conserved = checks["rows_conserved"].metadata
    assert conserved["rows_read"].value == conserved["rows_in_raw"].value > 0
    expectations = checks["contract_expectations"].metadata
    assert expectations["deliveries_checked"].value == len(json.loads(json.dumps(
        expectations["per_delivery"].value))) > 0
    assert expectations["expectations"].value > 20


def test_concurrent_agency_loads_in_separate_processes(demo):
    """The UI's runs are separate processes: three agencies load at once on the SQLite catalog."""
    settings, landing, _, files = demo
    from orchestration.deliveries import plan_run
    from orchestration.instance import prepare_dagster_home
    from sources.registry import AGENCIES

    env = {**os.environ, "DAGSTER_HOME": prepare_dagster_home(settings)}
    with dg.DagsterInstance.get() as instance:
        plans = {a.name: plan_run(instance, a, settings) for a in AGENCIES
                 if a.name in ("police", "childrens_social_care", "adult_social_care")}
    dagster = Path(sys.executable).parent / "dagster"
    procs = [subprocess.Popen([str(dagster), "job", "execute", "-m", "orchestration.definitions",
                               "-j", f"ingest_{name}", "--tags", json.dumps(tags)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name, tags in plans.items() if tags]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [e[-2000:] for e in errors]
    with lakehouse.connect(settings, read_only=True) as con:
        expected = sum(1 for p in files if p.parent.name in plans)
        assert dict(con.execute("SELECT status, count(*) FROM raw.deliveries GROUP BY ALL").fetchall()) == {
            "loaded": expected}
        assert con.execute("SELECT count(DISTINCT asset_key) FROM audit.run_snapshots").fetchone()[0] == len(procs)
