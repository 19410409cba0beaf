import json
import multiprocessing

import pytest

from governance import audit
from tapestry import lakehouse
from tapestry.config import Settings


def append(con, settings, n, start=0):
    for i in range(start, start + n):
        audit.record(con, actor=f"user{i}", role="safeguarding_lead", purpose="safeguarding_assessment",
                     case_ref=f"CASE-{i}", action="reidentify", object="vault.identifiers[ab]", row_count=i,
                     outcome="allowed", settings=settings)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """One lakehouse for the module (creating one costs seconds); `log` resets it per test."""
    base = tmp_path_factory.mktemp("audit")
    settings = Settings.from_env({"TAPESTRY_HOME": str(base / "home"), "TAPESTRY_SECRETS": str(base / "secrets")})
    with lakehouse.connect(settings) as con:
        audit.ensure_table(con)
        yield con, settings


@pytest.fixture
def log(lake):
    """A fresh 5-entry audit log; yields (connection, settings)."""
    con, settings = lake
    con.execute("DELETE FROM audit.access_log")
    (settings.secrets / "audit" / "anchor.json").unlink(missing_ok=True)
    append(con, settings, 5)
    return con, settings


def test_intact_chain_verifies(log):
    con, settings = log
    result = audit.verify(con, settings)
    assert (result.ok, result.entries, result.first_broken_entry_id, result.anchored_entries) == (True, 5, None, 5)
    rows = con.execute("SELECT entry_id, prev_hash, entry_hash FROM audit.access_log ORDER BY entry_id").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0][1] == audit.GENESIS and all(rows[i][1] == rows[i - 1][2] for i in range(1, 5))
    anchor = json.loads((settings.secrets / "audit" / "anchor.json").read_text())
    assert (anchor["entries"], anchor["head_hash"], anchor.get("pending")) == (5, rows[-1][2], None)


def test_empty_log_verifies(lake):
    con, settings = lake
    con.execute("DELETE FROM audit.access_log")
    (settings.secrets / "audit" / "anchor.json").unlink(missing_ok=True)
    assert audit.verify(con, settings).ok


@pytest.mark.parametrize("column, value", [("row_count", 999), ("actor", "someone_else"), ("outcome", "denied"),
                                           ("case_ref", None), ("at", "2001-01-01 00:00:00+00")])
def test_edited_field_is_detected(log, column, value):
    con, settings = log
    con.execute(f'UPDATE audit.access_log SET "{column}" = ? WHERE entry_id = 3', [value])
    result = audit.verify(con, settings)
    assert (result.ok, result.first_broken_entry_id) == (False, 3)
    assert "changed" in result.problem


def test_deleted_middle_entry_is_detected(log):
    con, settings = log
    con.execute("DELETE FROM audit.access_log WHERE entry_id = 2")
    result = audit.verify(con, settings)
    assert (result.ok, result.first_broken_entry_id) == (False, 2)
    assert "entry 2 is missing" in result.problem


def test_deleted_middle_entry_with_renumbering_is_detected(log):
    con, settings = log
    con.execute("DELETE FROM audit.access_log WHERE entry_id = 2")
    con.execute("UPDATE audit.access_log SET entry_id = entry_id - 1 WHERE entry_id > 2")
    result = audit.verify(con, settings)
    assert (result.ok, result.first_broken_entry_id) == (False, 2)


def test_deleted_last_entry_is_detected_by_the_anchor(log):
    con, settings = log
    con.execute("DELETE FROM audit.access_log WHERE entry_id = 5")
    result = audit.verify(con, settings)
    assert (result.ok, result.entries, result.first_broken_entry_id) == (False, 4, 5)
    assert "missing" in result.problem and "anchor records 5" in result.problem


def test_reordered_entries_are_detected(log):
    con, settings = log
    con.execute("UPDATE audit.access_log SET entry_id = CASE entry_id WHEN 2 THEN 3 ELSE 2 END "
                "WHERE entry_id IN (2, 3)")
    result = audit.verify(con, settings)
    assert (result.ok, result.first_broken_entry_id) == (False, 2)
    assert "does not link" in result.problem


def test_inserted_entry_is_detected(log):
    con, settings = log
    con.execute("INSERT INTO audit.access_log SELECT * FROM audit.access_log WHERE entry_id = 3")
    result = audit.verify(con, settings)
    assert (result.ok, result.first_broken_entry_id) == (False, 4)
    assert "twice" in result.problem


def test_rewritten_chain_with_recomputed_hashes_is_detected(log):
    """An attacker who recomputes every hash after an edit still cannot match the anchor."""
    con, settings = log
    rows = list(audit.entries(con))
    con.execute("DELETE FROM audit.access_log")
    prev = audit.GENESIS
    for e in rows:
        row_count = 0 if e.entry_id == 2 else e.row_count
        digest = audit._hash_of(e.entry_id, e.at_us, e.actor, e.role, e.purpose, e.case_ref, e.action, e.object,
                                row_count, e.outcome, prev)
        con.execute("INSERT INTO audit.access_log VALUES (?, make_timestamp(?::BIGINT)::TIMESTAMPTZ, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [e.entry_id, e.at_us, e.actor, e.role, e.purpose, e.case_ref, e.action, e.object, row_count,
                     e.outcome, prev, digest])
        prev = digest
    result = audit.verify(con, settings)
    assert not result.ok and "differs from the anchor" in result.problem


def test_appended_without_the_api_or_deleted_anchor_is_detected(log):
    con, settings = log
    (settings.secrets / "audit" / "anchor.json").unlink()
    result = audit.verify(con, settings)
    assert not result.ok and "no anchor" in result.problem


def test_record_refuses_to_extend_a_tampered_log(log):
    con, settings = log
    con.execute("DELETE FROM audit.access_log WHERE entry_id = 5")
    with pytest.raises(audit.AuditChainBroken):
        append(con, settings, 1)
    assert con.execute("SELECT count(*) FROM audit.access_log").fetchone()[0] == 4


def test_interrupted_append_is_not_a_break(log):
    """Crash after the write-ahead anchor but before the commit: anchor pending, table unchanged."""
    con, settings = log
    path = settings.secrets / "audit" / "anchor.json"
    anchor = json.loads(path.read_text())
    path.write_text(json.dumps({**anchor, "pending": {"entries": 6, "head_hash": "f" * 64}}))
    result = audit.verify(con, settings)
    assert result.ok and result.note
    append(con, settings, 1, start=5)  # and the log carries on
    assert audit.verify(con, settings).entries == 6


def _append_in_process(env: dict, worker: int) -> None:
    import os
    os.environ.update(env)
    settings = Settings.from_env()
    with lakehouse.connect(settings) as con:
        for i in range(5):
            audit.record(con, actor=f"worker{worker}", action="test", outcome="ok", row_count=i, settings=settings)


def test_concurrent_appends_from_processes_do_not_fork(tapestry_env):
    env = {"TAPESTRY_HOME": str(tapestry_env.home), "TAPESTRY_SECRETS": str(tapestry_env.secrets)}
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_in_process, args=(env, w)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    with lakehouse.connect(tapestry_env, read_only=True) as con:
        result = audit.verify(con, tapestry_env)
        actors = con.execute("SELECT actor, count(*) FROM audit.access_log GROUP BY ALL ORDER BY 1").fetchall()
    assert (result.ok, result.entries) == (True, 10), result
    assert actors == [("worker0", 5), ("worker1", 5)]
