import subprocess
import sys
import textwrap

import duckdb
import pytest

from tapestry import lakehouse
from tapestry.config import Settings
from tests.postgres_server import throwaway_postgres


def _with_catalog(settings: Settings, kind: str, **extra) -> Settings:
    env = {"TAPESTRY_HOME": str(settings.home), "TAPESTRY_SECRETS": str(settings.secrets),
           "TAPESTRY_CATALOG": kind, **extra}
    return Settings.from_env(env)


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_zones_exist_and_time_travel_by_recorded_snapshot(tapestry_env, kind):
    settings = _with_catalog(tapestry_env, kind)
    with lakehouse.connect(settings) as con:
        schemas = {r[0] for r in con.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = 'lake'").fetchall()}
        assert set(lakehouse.ZONES) <= schemas
        con.execute("CREATE TABLE raw.t AS SELECT 1 AS v")
        first = lakehouse.record_run_snapshot(con, "run-1", "everything", "raw/t")
        con.execute("INSERT INTO raw.t VALUES (2), (3)")
        lakehouse.record_run_snapshot(con, "run-2", "everything", "raw/t")
    with lakehouse.connect(settings, read_only=True) as con:
        recorded = con.execute("SELECT snapshot_id FROM audit.run_snapshots WHERE run_id = 'run-1'").fetchone()[0]
        assert recorded == first
        assert con.execute(f"SELECT sum(v) FROM raw.t AT (VERSION => {recorded})").fetchone()[0] == 1
        assert con.execute("SELECT sum(v) FROM raw.t").fetchone()[0] == 6
    # Data lives in Parquet files under the data path (inlining is off).
    assert list((settings.home / "lake" / "data").rglob("*.parquet"))


def test_a_catalog_cut_short_reads_as_no_lakehouse_and_the_next_writer_sets_it_up(tapestry_env):
    """The first load killed while it created the catalog file: readers get a clear error, not
    DuckDB's; the next writer initialises the catalog."""
    tapestry_env.catalog_path.parent.mkdir(parents=True, exist_ok=True)
    tapestry_env.catalog_path.touch()
    with pytest.raises(lakehouse.LakehouseError, match="never initialised"):
        with lakehouse.connect(tapestry_env, read_only=True):
            pass
    with lakehouse.connect(tapestry_env) as con:
        con.execute("CREATE TABLE raw.t AS SELECT 1 AS x")
    with lakehouse.connect(tapestry_env, read_only=True) as con:
        assert con.execute("SELECT x FROM raw.t").fetchone() == (1,)


def test_read_only_connection_refuses_writes(tapestry_env):
    with lakehouse.connect(tapestry_env) as con:
        con.execute("CREATE TABLE raw.t AS SELECT 1 AS v")
    with lakehouse.connect(tapestry_env, read_only=True) as con:
        with pytest.raises(duckdb.Error, match="read-only|attached in read-only|Cannot execute"):
            con.execute("INSERT INTO raw.t VALUES (2)")


WRITER = textwrap.dedent("""
    import sys, time
    from tapestry import lakehouse
    from tapestry.config import Settings
    tag = sys.argv[1]
    with lakehouse.connect(Settings.from_env()) as con:
        for i in range(15):
            con.execute("INSERT INTO raw.shared SELECT ?, range FROM range(100)", [tag])
            time.sleep(0.02)
""")
READER = textwrap.dedent("""
    import time
    from tapestry import lakehouse
    from tapestry.config import Settings
    seen = []
    for i in range(10):
        with lakehouse.connect(Settings.from_env(), read_only=True) as con:
            seen.append(con.execute("SELECT count(*) FROM raw.shared").fetchone()[0])
        time.sleep(0.05)
    assert seen == sorted(seen), seen
    print(seen[-1])
""")


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_concurrent_processes_write_and_read(tapestry_env, kind, monkeypatch):
    """Two writer processes and a reader at once: nothing fails, nothing is lost.

    sqlite: all three attach together (DuckLake retries conflicting commits);
    duckdb: the file catalog admits one process, so connections queue on the lakehouse lock.
    """
    monkeypatch.setenv("TAPESTRY_CATALOG", kind)
    settings = Settings.from_env()
    with lakehouse.connect(settings) as con:
        con.execute("CREATE TABLE raw.shared (tag VARCHAR, i BIGINT)")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, tag], stderr=subprocess.PIPE, text=True)
             for tag in ("a", "b")]
    reader = subprocess.run([sys.executable, "-c", READER], capture_output=True, text=True, timeout=300)
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert reader.returncode == 0, reader.stderr
    with lakehouse.connect(settings, read_only=True) as con:
        counts = dict(con.execute("SELECT tag, count(*) FROM raw.shared GROUP BY tag").fetchall())
    assert counts == {"a": 1500, "b": 1500}


OTHER_WRITER = textwrap.dedent("""
    from tapestry import lakehouse
    from tapestry.config import Settings
    lakehouse.LOCK_WAIT_SECONDS = 1
    try:
        with lakehouse.connect(Settings.from_env()) as con:
            print("wrote")
    except lakehouse.LakehouseError:
        print("waited")
""")


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_writer_lock_is_reentrant_in_its_thread_only(tapestry_env, kind, monkeypatch):
    """dbt's step records its snapshot inside the lock it held for dbt: no other writer between."""
    monkeypatch.setenv("TAPESTRY_CATALOG", kind)
    monkeypatch.setattr(lakehouse, "LOCK_WAIT_SECONDS", 1)
    settings = Settings.from_env()
    with lakehouse.connect(settings) as con:
        con.execute("CREATE TABLE raw.t AS SELECT 1 AS v")
    with lakehouse.writer_lock(settings):
        with lakehouse.connect(settings) as con:  # the holder itself: no wait
            con.execute("INSERT INTO raw.t VALUES (2)")
        other = subprocess.run([sys.executable, "-c", OTHER_WRITER], capture_output=True, text=True, timeout=120)
        assert other.stdout.strip() == "waited", other.stderr  # another process: still excluded
    other = subprocess.run([sys.executable, "-c", OTHER_WRITER], capture_output=True, text=True, timeout=120)
    assert other.stdout.strip() == "wrote", other.stderr


@pytest.mark.postgres
def test_postgres_catalog(tapestry_env):
    with throwaway_postgres() as dsn:
        if dsn is None:
            pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) on this machine")
        settings = _with_catalog(tapestry_env, "postgres", TAPESTRY_POSTGRES_DSN=dsn,
                                 TAPESTRY_DATA_PATH=str(tapestry_env.home / "pgdata"))
        with lakehouse.connect(settings) as con:
            con.execute("CREATE TABLE raw.t AS SELECT range AS v FROM range(10)")
            snap = lakehouse.record_run_snapshot(con, "run-pg", None, "raw/t")
        with lakehouse.connect(settings, read_only=True) as con:
            assert con.execute(f"SELECT sum(v) FROM raw.t AT (VERSION => {snap})").fetchone()[0] == 45
        assert "PostgreSQL" in lakehouse.describe(settings) and dsn not in lakehouse.describe(settings)
        assert list((tapestry_env.home / "pgdata").rglob("*.parquet"))


def test_sql_command_is_read_only_and_prints_any_type(tapestry_env, capsys):
    from tapestry.cli import main

    with lakehouse.connect(tapestry_env) as con:
        con.execute("CREATE TABLE audit.t AS SELECT 1 AS n, INTERVAL 90 MINUTE AS took")
    assert main(["sql", "SELECT n, took FROM audit.t", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1,01:30:00"  # INTERVAL shown as text
    assert main(["sql", "DROP TABLE audit.t"]) == 2
    assert main(["sql", "SELECT 1; DROP TABLE audit.t"]) == 2
    assert "several statements" in capsys.readouterr().err


def test_extensions_are_signature_checked_once_per_process_unless_their_file_changed(tapestry_env):
    def checks_signatures() -> bool:
        with lakehouse.connect(tapestry_env, read_only=True) as con:
            return not con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0]

    with lakehouse.connect(tapestry_env):
        pass  # creates the lakehouse (and has DuckDB check the extensions, if this process had not)
    names = lakehouse.lake_extensions(tapestry_env)
    assert set(names) <= set(lakehouse._verified)
    assert not checks_signatures()  # the same files, checked before
    path, identity = lakehouse._verified[names[0]]
    lakehouse._verified[names[0]] = (path, (0, 0, 0, 0))  # as if the file had been replaced since
    assert checks_signatures()
    assert lakehouse._verified[names[0]] == (path, identity)  # checked again, recorded again
