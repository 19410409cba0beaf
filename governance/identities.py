"""The one way the pipeline reads identifiers: from vault.identifiers, decrypted in memory,
renamed to the canonical person-record fields that linkage uses. Nothing is written to disk.

Fields: record_key, agency, entity, delivery_id, vault_status, forename, middle_names,
surname, dob (ISO text), postcode, nhs_number, pnc_id, upn, crn. Rows of shredded deliveries
come back with vault_status 'shredded' and null fields (linkage skips them).
"""
from __future__ import annotations

import duckdb
import polars as pl

from governance.keys import Keyring
from governance.vault import decrypt_identifiers

# vault field (contract column name) -> canonical person-record field
CANONICAL = {"forename": "forename", "forenames": "forename", "middle_names": "middle_names",
             "surname": "surname", "date_of_birth": "dob", "postcode": "postcode", "nhs_number": "nhs_number",
             "pnc_id": "pnc_id", "upn": "upn", "crn": "crn"}
FIELDS = ("forename", "middle_names", "surname", "dob", "postcode", "nhs_number", "pnc_id", "upn", "crn")


def read_identifiers(con: duckdb.DuckDBPyConnection, keyring: Keyring, agencies: list[str] | None = None,
                     delivery_ids: list[str] | None = None, records: pl.DataFrame | None = None) -> pl.DataFrame:
    """Canonical identifiers of the vault's rows (optionally of some agencies or deliveries, or
    of some records: a frame of agency, entity, record_key, delivery_id)."""
    # filters as a join with a registered list: list_contains(?, column) over a million rows
    # took 24 s and 4.7 GB (measured, bench/bench_link.py); the join takes about a second
    wanted = {"agency": agencies, "delivery_id": delivery_ids}
    joins = []
    for column, values in wanted.items():
        if values:
            name = f"_wanted_{column}"
            con.register(name, pl.DataFrame({column: list(dict.fromkeys(values))}, schema={column: pl.String})
                         .to_arrow())
            joins.append(f"JOIN {name} USING ({column})")
    if records is not None:
        con.register("_wanted_records", records.select("agency", "entity", "record_key", "delivery_id").to_arrow())
        joins.append("JOIN _wanted_records USING (agency, entity, record_key, delivery_id)")
    try:
        vault = con.sql(f"SELECT v.* FROM vault.identifiers v {' '.join(joins)}").pl()
    finally:
        for column, values in wanted.items():
            if values:
                con.unregister(f"_wanted_{column}")
        if records is not None:
            con.unregister("_wanted_records")
    # per agency and entity (a bounded share of the vault in memory at once); only the canonical
    # fields decoded, by name: no schema inferred from every row (a delivery's decode 0.03 ->
    # 0.01 s); a field an agency's contract does not have comes back null
    out = [decrypt_identifiers(group, keyring, identifier_cols=tuple(CANONICAL)).frame.select(
        "record_key", "agency", "entity", "delivery_id", "vault_status",
        *(pl.coalesce(src for src, dst in CANONICAL.items() if dst == field).alias(field) for field in FIELDS))
        for _, group in vault.group_by(["agency", "entity"], maintain_order=True)]
    if not out:
        return pl.DataFrame(schema={c: pl.String for c in ("record_key", "agency", "entity", "delivery_id",
                                                            "vault_status", *FIELDS)})
    return pl.concat(out)
