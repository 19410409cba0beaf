"""Tamper-evident audit log: ``audit.access_log``, an append-only hash chain in the lakehouse.

Each entry's ``entry_hash`` is SHA-256 over a canonical JSON serialisation of the entry
(every column except entry_hash, including ``prev_hash``, the previous entry's hash; the first
entry's prev_hash is 64 zeros). ``verify`` recomputes the chain and reports the first broken
link: a changed field breaks that entry's hash; a removed, inserted or reordered entry breaks
entry ids (1, 2, 3, ... with no gaps) or the prev_hash links.

The anchor. A chain alone cannot show that its LAST entries were removed, nor that someone
with write access rewrote the whole table with recomputed hashes. So every append also
records the head (entry count and hash) in ``<TAPESTRY_SECRETS>/audit/anchor.json`` (0600):
outside the lakehouse, in the place that already holds the keys. Tampering then needs write
access to both. The anchor is written ahead of the lakehouse commit (``pending``) and
confirmed after it, so a crash between the two is recognised as such and is not a break.

Serialised appends. Entry ids and prev_hash come from the current head, so two concurrent
appends must not both read the same head (a fork). ``record`` holds an exclusive lock file
next to the anchor for the whole read-head/insert/commit/anchor sequence. With the SQLite and
DuckDB catalogs the writable lakehouse connection already serialises writers; the lock also
covers the PostgreSQL catalog on one host. A multi-host PostgreSQL deployment must put
TAPESTRY_SECRETS on storage with working POSIX locks (e.g. NFSv4) or serialise appends in the
database (an advisory lock); ``verify`` detects a fork either way (duplicate entry id).

Fail closed: if the table's head does not match the anchor, ``record`` refuses to append
(raises AuditChainBroken) so an audited action (e.g. re-identification) cannot proceed on a
tampered log; run ``tapestry audit verify`` and investigate.

Entries hold pseudonymous keys, role and case references, never identifiers.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from tapestry.config import Settings

TABLE = "audit.access_log"
GENESIS = "0" * 64
FIELDS = ("entry_id", "at", "actor", "role", "purpose", "case_ref", "action", "object", "row_count",
          "outcome", "prev_hash")
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    entry_id BIGINT NOT NULL,
    "at" TIMESTAMP WITH TIME ZONE NOT NULL,
    actor VARCHAR NOT NULL,
    role VARCHAR,
    purpose VARCHAR,
    case_ref VARCHAR,
    action VARCHAR NOT NULL,
    object VARCHAR,
    row_count BIGINT,
    outcome VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL
)
"""
# `at` is read back as epoch microseconds: exact, and independent of the session time zone.
_SELECT = f"""SELECT entry_id, epoch_us("at"), actor, role, purpose, case_ref, action, object, row_count,
    outcome, prev_hash, entry_hash FROM {TABLE}"""


class AuditError(RuntimeError):
    pass


class AuditChainBroken(AuditError):
    """The log's head does not match its anchor: refuse to append until investigated."""


@dataclass(frozen=True)
class AuditEntry:
    entry_id: int
    at_us: int  # microseconds since 1970-01-01 UTC
    actor: str
    role: str | None
    purpose: str | None
    case_ref: str | None
    action: str
    object: str | None
    row_count: int | None
    outcome: str
    prev_hash: str
    entry_hash: str

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_us / 1_000_000, tz=timezone.utc)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_broken_entry_id: int | None
    problem: str | None
    anchored_entries: int | None = None  # what the anchor says (None: no anchor yet)
    note: str | None = None  # e.g. an interrupted append that was recognised, not a break


def canonical(values: dict) -> bytes:
    """The bytes that are hashed: JSON with sorted keys, no spaces, UTF-8; times in microseconds."""
    return json.dumps({k: values[k] for k in FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _hash_of(entry_id, at_us, actor, role, purpose, case_ref, action, obj, row_count, outcome, prev_hash) -> str:
    return hashlib.sha256(canonical({
        "entry_id": entry_id, "at": at_us, "actor": actor, "role": role, "purpose": purpose, "case_ref": case_ref,
        "action": action, "object": obj, "row_count": row_count, "outcome": outcome, "prev_hash": prev_hash,
    })).hexdigest()


# -- the anchor -----------------------------------------------------------------------------
def _anchor_dir(settings: Settings) -> Path:
    folder = settings.secrets / "audit"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.secrets, 0o700)
    os.chmod(folder, 0o700)
    return folder


def read_anchor(settings: Settings) -> dict | None:
    path = _anchor_dir(settings) / "anchor.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise AuditError(f"{path} is damaged (not JSON)") from None


def _write_anchor(settings: Settings, anchor: dict) -> None:
    path = _anchor_dir(settings) / "anchor.json"
    tmp = path.with_name(f".anchor.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(anchor, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _append_lock(settings: Settings) -> Iterator[None]:
    path = _anchor_dir(settings) / "append.lock"
    with open(path, "a+") as handle:
        os.chmod(path, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _anchor_heads(anchor: dict | None) -> list[tuple[int, str]]:
    """Heads the table may legitimately have: the confirmed one, or a pending (written-ahead) one."""
    if anchor is None:
        return [(0, GENESIS)]
    heads = [(int(anchor["entries"]), anchor["head_hash"])]
    if anchor.get("pending"):
        heads.append((int(anchor["pending"]["entries"]), anchor["pending"]["head_hash"]))
    return heads


# -- appending ------------------------------------------------------------------------------
def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute(DDL)
    except duckdb.Error:  # created concurrently by another process
        con.execute(f"SELECT 1 FROM {TABLE} LIMIT 0")


def _table_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    row = con.execute(f"SELECT count(*), max(entry_id) FROM {TABLE}").fetchone()
    count, last_id = row[0], row[1]
    if not count:
        return 0, GENESIS
    if last_id != count:
        raise AuditChainBroken(f"the audit log has {count} entries but its last entry id is {last_id}; "
                               "run `tapestry audit verify`")
    return count, con.execute(f"SELECT entry_hash FROM {TABLE} WHERE entry_id = ?", [last_id]).fetchone()[0]


def record(
    con: duckdb.DuckDBPyConnection,
    *,
    actor: str,
    action: str,
    outcome: str,
    role: str | None = None,
    purpose: str | None = None,
    case_ref: str | None = None,
    object: str | None = None,  # noqa: A002 - the column's name
    row_count: int | None = None,
    settings: Settings | None = None,
) -> AuditEntry:
    """Append one entry and commit it. Call outside a transaction on a writable connection."""
    if not actor or not action or not outcome:
        raise AuditError("an audit entry needs an actor, an action and an outcome")
    settings = settings or Settings.from_env()
    ensure_table(con)
    with _append_lock(settings):
        anchor = read_anchor(settings)
        count, head = _table_head(con)
        if (count, head) not in _anchor_heads(anchor):
            raise AuditChainBroken(
                f"the audit log's head (entry {count}) does not match its anchor (entry "
                f"{anchor['entries'] if anchor else 0}); refusing to append: run `tapestry audit verify`")
        at = datetime.now(timezone.utc)
        at_us = int(at.timestamp()) * 1_000_000 + at.microsecond
        values = (count + 1, at_us, actor, role, purpose, case_ref, action, object, row_count, outcome, head)
        digest = _hash_of(*values)
        # Write-ahead: the anchor names the head the commit is about to create.
        _write_anchor(settings, {"entries": count, "head_hash": head,
                                 "pending": {"entries": count + 1, "head_hash": digest}})
        con.execute("BEGIN")
        try:
            con.execute(
                f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [values[0], at, *values[2:], digest])
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            _write_anchor(settings, {"entries": count, "head_hash": head})
            raise
        _write_anchor(settings, {"entries": count + 1, "head_hash": digest,
                                 "updated_at": at.isoformat(timespec="seconds")})
    return AuditEntry(*values, digest)


# -- verifying ------------------------------------------------------------------------------
def entries(con: duckdb.DuckDBPyConnection) -> Iterator[AuditEntry]:
    """Every entry in entry_id order (streamed); none if the log was never written."""
    if not _table_exists(con):
        return
    cursor = con.execute(f"{_SELECT} ORDER BY entry_id")
    while batch := cursor.fetchmany(10_000):
        for row in batch:
            yield AuditEntry(*row)


def _table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'audit' AND table_name = 'access_log'"
    ).fetchone()[0])


def verify(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> VerifyResult:
    """Recompute the chain and compare its head with the anchor. Never raises for tampering."""
    settings = settings or Settings.from_env()
    anchor = read_anchor(settings)
    anchored = anchor["entries"] if anchor else None
    count, prev = 0, GENESIS
    for entry in entries(con):
        expected_id = count + 1
        if entry.entry_id != expected_id:
            if entry.entry_id == count:
                problem = f"entry {entry.entry_id} appears twice (inserted entry or forked chain)"
            elif entry.entry_id > expected_id:
                problem = f"entry {expected_id} is missing (removed), next is {entry.entry_id}"
            else:
                problem = f"unexpected entry id {entry.entry_id} after {count}"
            return VerifyResult(False, count, expected_id, problem, anchored)
        if entry.prev_hash != prev:
            return VerifyResult(False, count, entry.entry_id,
                                f"entry {entry.entry_id} does not link to entry {count} "
                                "(entries removed, inserted or reordered before it)", anchored)
        recomputed = _hash_of(entry.entry_id, entry.at_us, entry.actor, entry.role, entry.purpose,
                              entry.case_ref, entry.action, entry.object, entry.row_count, entry.outcome,
                              entry.prev_hash)
        if recomputed != entry.entry_hash:
            return VerifyResult(False, count, entry.entry_id,
                                f"entry {entry.entry_id} was changed after it was written (hash mismatch)",
                                anchored)
        count, prev = entry.entry_id, entry.entry_hash
    heads = _anchor_heads(anchor)
    if (count, prev) in heads:
        note = None
        if anchor and anchor.get("pending"):
            note = ("an append was interrupted; the log is consistent with "
                    + ("its completed" if (count, prev) == heads[1] else "its state before the") + " entry")
        return VerifyResult(True, count, None, None, anchored, note)
    if anchor is None:
        return VerifyResult(False, count, 1, "the audit log has entries but no anchor (anchor file deleted, or the "
                                             "log was written without the audit API)", None)
    if count < anchored:
        return VerifyResult(False, count, count + 1,
                            f"entries {count + 1}..{anchored} are missing: the anchor records {anchored} entries", anchored)
    if count > anchored + (1 if anchor.get("pending") else 0):
        return VerifyResult(False, count, anchored + 1,
                            f"entries after {anchored} were added without the audit API (the anchor records "
                            f"{anchored})", anchored)
    return VerifyResult(False, count, count,
                        "the chain is internally consistent but its head differs from the anchor (log rewritten "
                        "with recomputed hashes)", anchored)
