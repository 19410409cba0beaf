"""dbt builds on every catalog kind the lakehouse supports (the profile has one output per kind).
The SQLite default is covered with the whole pipeline in test_dbt_lakehouse.py; here a few
deliveries are landed directly (no linkage: int_events builds and warns that nothing is linked),
and probation has delivered nothing yet (its raw tables are created empty, as ingestion would)."""
import pytest

from orchestration.dbt_project import run_dbt
from sources.landing import land_agency
from sources.registry import AGENCIES
from sources.synthetic import generate
from tapestry import lakehouse
from tapestry.config import Settings
from tests.postgres_server import throwaway_postgres


def _build_on(settings: Settings) -> None:
    generate(150, 3, settings.landing, months=6)
    with lakehouse.connect(settings) as con:
        for agency in AGENCIES:
            if agency.name != "probation":
                land_agency(con, agency, settings, "run-catalog")
    result = run_dbt(["build", "--select", "+int_events"], settings=settings, capture=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "int_events_person_bearing_events_linked" in result.stdout and "WARN" in result.stdout
    with lakehouse.connect(settings, read_only=True) as con:
        events = con.execute("SELECT count(*) FROM staging.int_events").fetchone()[0]
        assert con.execute("SELECT count(*) FROM staging.int_events WHERE agency = 'probation'").fetchone()[0] == 0
        current = sum(con.execute(f"SELECT count(*) FROM {e.contract.table} WHERE _delivery_id IN "
                                  "(SELECT delivery_id FROM raw.current_deliveries)").fetchone()[0]
                      for a in AGENCIES for e in a.entities if e.contract.table != "raw.nhs__patient")
    assert events == current > 0


@pytest.mark.slow  # the catalogs themselves are tested in tests/test_lakehouse.py
def test_dbt_on_a_duckdb_file_catalog(tapestry_env, monkeypatch):
    monkeypatch.setenv("TAPESTRY_CATALOG", "duckdb")
    _build_on(Settings.from_env())


@pytest.mark.slow
@pytest.mark.postgres
def test_dbt_on_a_postgres_catalog(tapestry_env, monkeypatch):
    with throwaway_postgres() as dsn:
        if dsn is None:
            pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) on this machine")
        monkeypatch.setenv("TAPESTRY_CATALOG", "postgres")
        monkeypatch.setenv("TAPESTRY_POSTGRES_DSN", dsn)
        monkeypatch.setenv("TAPESTRY_DATA_PATH", str(tapestry_env.home / "pgdata"))
        _build_on(Settings.from_env())
