"""Re-identification: the only way a person sees identifiers, one case at a time.

``reidentify(settings, actor, role, purpose, case_ref, record_keys)``:
1. requires an actor, a purpose and a case reference, and at most MAX_RECORDS keys (this is
   case work, not bulk export);
2. looks up which agencies the record keys belong to (the vault's clear ``agency`` column);
3. asks the policy whether the role has the identifiable level for every such agency, for that
   purpose; one refusal refuses the call;
4. decrypts in memory (governance.vault) and returns a DataFrame;
5. audits every call, allowed or denied, in audit.access_log before any data is returned (if
   the audit cannot be written, nothing is returned).

The role is as asserted by the caller: authentication belongs to the front end (the portal).
The audit entry names the record keys (pseudonymous) so a DPO can see exactly what was viewed.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

import duckdb
import polars as pl

from governance import audit
from governance.keys import Keyring
from governance.policy import Policy
from governance.vault import decrypt_identifiers
from tapestry import lakehouse
from tapestry.config import Settings

VAULT_TABLE = "vault.identifiers"
MAX_RECORDS = 200
ACTION = "reidentify"
_RECORD_KEY = re.compile(r"^[0-9a-f]{64}$")


class AccessDenied(PermissionError):
    """The call was refused (and audited). The message says why, without personal data."""


def reidentify(
    settings: Settings,
    actor: str,
    role: str,
    purpose: str,
    case_ref: str,
    record_keys: Iterable[str],
    *,
    policy: Policy | None = None,
    keyring: Keyring | None = None,
    vault_table: str = VAULT_TABLE,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Identifiers of `record_keys`: record_key, agency, delivery_id, vault_status, identifier fields.

    Raises AccessDenied (after auditing it) when the request is refused. `con`: an open writable
    lakehouse connection to use (e.g. a long-running service's); by default one is opened.
    """
    policy = policy or Policy.load()
    keys = sorted(set(record_keys or ()))
    obj = f"{vault_table}[{','.join(keys[:MAX_RECORDS])}{',...' if len(keys) > MAX_RECORDS else ''}]"
    with contextlib.ExitStack() as stack:
        if con is None:
            con = stack.enter_context(lakehouse.connect(settings))

        def log(outcome: str, rows: int) -> None:
            audit.record(con, actor=actor or "(none)", role=role or None, purpose=purpose or None,
                         case_ref=case_ref or None, action=ACTION, object=obj, row_count=rows,
                         outcome=outcome, settings=settings)

        def deny(reason: str) -> AccessDenied:
            log(f"denied: {reason}", 0)
            return AccessDenied(f"re-identification refused: {reason}")

        if not actor or not str(actor).strip():
            raise deny("no actor")
        if not purpose or not str(purpose).strip():
            raise deny("a purpose is required")
        if not case_ref or not str(case_ref).strip():
            raise deny("a case reference is required")
        if not keys:
            raise deny("no record keys given")
        if len(keys) > MAX_RECORDS:
            raise deny(f"{len(keys)} records asked for; at most {MAX_RECORDS} per call")
        malformed = sum(1 for k in keys if not _RECORD_KEY.match(k))
        if malformed:
            raise deny(f"{malformed} malformed record key(s)")

        if not policy.agencies_for(role, "identifiable", purpose):
            # Refuse before looking anything up: the answer must not depend on what exists.
            raise deny(f"role '{role}' may not re-identify anyone's records for purpose '{purpose}'")

        try:
            rows = con.execute(
                f"SELECT record_key, agency, delivery_id, key_id, nonce, ciphertext FROM {vault_table} "
                "WHERE record_key IN (SELECT unnest(?::VARCHAR[]))", [keys]
            ).pl()
        except Exception as exc:
            log(f"error: {type(exc).__name__}", 0)
            raise
        for agency in sorted(set(rows["agency"].to_list())):
            decision = policy.decide(role, agency, "identifiable", purpose)
            if not decision.allowed:
                raise deny(decision.reason)
        if rows.is_empty():
            log("allowed: no matching records", 0)
            return pl.DataFrame(schema={"record_key": pl.String, "agency": pl.String, "delivery_id": pl.String,
                                        "vault_status": pl.String})
        try:
            decrypted = decrypt_identifiers(rows, keyring or Keyring.open(settings))
        except Exception as exc:
            log(f"error: {type(exc).__name__}", 0)
            raise
        outcome = "allowed" if not decrypted.unreadable else (
            "allowed: " + ", ".join(f"{n} {status}" for status, n in sorted(decrypted.by_status.items()) if status != "ok"))
        log(outcome, decrypted.readable)  # before returning: no audit entry, no data
        return decrypted.frame.sort("record_key", "delivery_id")
