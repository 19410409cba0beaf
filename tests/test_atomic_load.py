"""A load killed half-way (SIGKILL, a real process) leaves nothing of its delivery visible,
and the next run completes it."""
import os
import signal
import subprocess
import sys
import textwrap
import time

from tapestry import lakehouse

LOADER = textwrap.dedent("""
    from sources.landing import land_agency
    from sources.registry import BY_NAME
    from tapestry import lakehouse
    from tapestry.config import Settings
    settings = Settings.from_env()
    with lakehouse.connect(settings) as con:
        land_agency(con, BY_NAME["police"], settings, "run-kill")
    print("DONE")
""")

HEADER = ("OccurrenceRef,InvolvementRef,RecordedDateTime,OccurrenceType,HOClassCode,HOClassDescription,"
          "DomesticAbuseFlag,KnifeFlag,Latitude,Longitude,BeatCode,LocationDescription,PersonRole,PersonRef,"
          "Surname,Forenames,DateOfBirth,Gender,Address,Postcode,PNCId,NHSNumber,SelfDefinedEthnicity\n")
ROWS = 400_000


def _big_delivery(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(HEADER)
        for i in range(ROWS):
            handle.write(f"4325{i:08d},INV{i:09d},02/03/2025 19:56,CRIME,8N,Assault,Y,N,51.7,-1.4,WES35,Dwelling,"
                         f"VICTIM,TVP{i:08d},Smith,Ann,11/08/1975,Female,1 Wren Way,OX28 6BX,,,W1\n")


def _visible(settings) -> tuple[int, int, int]:
    try:
        with lakehouse.connect(settings, read_only=True) as con:
            exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' "
                                 "AND table_name = 'police__occurrences'").fetchone()[0]
            if not exists:
                return 0, 0, 0
            rows = con.execute("SELECT count(*) FROM raw.police__occurrences").fetchone()[0]
            ledger = con.execute("SELECT count(*), coalesce(sum(rows_loaded), 0) FROM raw.deliveries "
                                 "WHERE status = 'loaded'").fetchone()
            return rows, ledger[0], ledger[1]
    except lakehouse.LakehouseError:  # no catalog yet, or the kill came while it was being created
        return 0, 0, 0


def test_killed_load_leaves_nothing_then_rerun_completes(tapestry_env):
    settings = tapestry_env
    delivery = settings.landing / "police" / "occurrences_2025-01.csv"
    _big_delivery(delivery)
    env = dict(os.environ)
    killed_mid_load = 0
    for delay in (1.0, 2.0, 3.0, 4.5, 6.0):
        proc = subprocess.Popen([sys.executable, "-c", LOADER], env=env, stdout=subprocess.PIPE, text=True)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_mid_load += 1
            rows, deliveries, ledger_rows = _visible(settings)
            # All or nothing: never a partial delivery, never rows without their ledger row.
            assert (rows, deliveries, ledger_rows) in {(0, 0, 0), (ROWS, 1, ROWS)}, (delay, rows, deliveries)
            if rows:
                break  # it had committed just before the kill; the file is recognised on the next run
        else:
            break
    assert killed_mid_load >= 1, "the loader finished before any kill: make the delivery bigger"
    finished = subprocess.run([sys.executable, "-c", LOADER], env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0 and "DONE" in finished.stdout, finished.stderr[-2000:]
    assert _visible(settings) == (ROWS, 1, ROWS)
    assert not delivery.exists()  # moved to the archive once committed
