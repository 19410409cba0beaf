"""Linkage inside the pipeline: person records from the lakehouse (raw + the vault, decrypted in
memory through ``governance.identities``) -> link -> the ``linked`` zone.

Tables written (all keyed by pseudonyms; no identifier ever leaves memory):

=======================  ==================================================================
linked.person_record     one row per current person-bearing record (agency, entity,
                         record_key) -> person_id, match_confidence, id_status, run_id.
                         ``record_key`` joins to the raw tables' ``record_key``.
linked.person_lineage    old person id -> new person id, reason (merged / split / retired),
                         run_id: what happened to ids between runs.
linked.review_queue      uncertain pairs (``linkage.cluster.REVIEW_BAND``) with the match
                         weight of every compared field as JSON (``evidence``), for a
                         clerical-review screen.
linked.runs              one row per link run: mode (full / incremental), counts, timings,
                         the model file and the metrics as JSON.
linked.node_features     the standardised features of the linked records, sealed under the
                         data key of the delivery they came from (linkage/stored_state.py):
                         what an incremental run scores a delivery against.
linked.delivery          the deliveries whose records are linked.
linked.node_edge         the scored pairs of nodes (node ids, match probability >= the predict
                         threshold): an incremental run re-clusters the persons it touches
                         from them instead of re-scoring them.
=======================  ==================================================================

A record is (agency, entity, record_key): a record re-delivered in a later file (probation
snapshots list the same case every quarter) is one record, with the identifiers of its latest
current delivery. Rows that carry no person details of their own (NHS Encounter, children's
assessment factors) take the details of the agency's record with the same ``person_key`` (the
Patient, the referral): the agency's own link.

Full or incremental (``_plan``; the reason is kept in the run's metrics): a run is incremental
when a saved model and the sealed features exist, only new deliveries arrived since the last run,
and their new records are at most ``INCREMENTAL_MAX_SHARE`` of the population. It then reads only
those records from the vault and scores them against the sealed features (``_link_incremental``).
Otherwise (or with ``full=True``) the model is re-trained on everything, ids are kept stable
against the previous assignment, records no longer current leave linked.person_record, and the
features are sealed afresh (``_link_full``).
"""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from governance.identities import read_identifiers
from governance.keys import Keyring
from linkage import stored_state
from linkage.incremental import (LinkState, candidate_existing, delivery_nodes, link_increment, model_rules,
                                 population_key_hashes, prepare_delivery_scoring, score_delivery, tf_from_counts,
                                 value_counts)
from linkage.pipeline import link_records
from linkage.stored_state import node_tokens, seal_nodes, with_person_tokens
from linkage.tokens import token_key
from sources.registry import AGENCIES
from tapestry import lakehouse
from tapestry.config import Settings

INCREMENTAL_MAX_SHARE = 0.2  # above this share of new records, re-train and re-link everything
DETAIL_COLUMNS = ("forename", "middle_names", "surname", "dob", "sex", "postcode", "nhs_number", "pnc_id", "upn",
                  "crn")

DDL = {
    "person_record": """CREATE TABLE IF NOT EXISTS linked.person_record (
        record_key VARCHAR NOT NULL, agency VARCHAR NOT NULL, entity VARCHAR NOT NULL, person_id VARCHAR NOT NULL,
        match_confidence DOUBLE, id_status VARCHAR, run_id VARCHAR NOT NULL, node_id BIGINT)""",
    "node_features": stored_state.DDL,
    "delivery": """CREATE TABLE IF NOT EXISTS linked.delivery (delivery_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL)""",
    "node_edge": """CREATE TABLE IF NOT EXISTS linked.node_edge (
        node_l BIGINT NOT NULL, node_r BIGINT NOT NULL, match_probability DOUBLE NOT NULL, run_id VARCHAR NOT NULL)""",
    "person_lineage": """CREATE TABLE IF NOT EXISTS linked.person_lineage (
        old_person_id VARCHAR NOT NULL, new_person_id VARCHAR, reason VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
        recorded_at TIMESTAMP WITH TIME ZONE NOT NULL)""",
    "review_queue": """CREATE TABLE IF NOT EXISTS linked.review_queue (
        run_id VARCHAR NOT NULL, agency_l VARCHAR, entity_l VARCHAR, record_key_l VARCHAR,
        agency_r VARCHAR, entity_r VARCHAR, record_key_r VARCHAR, person_id_l VARCHAR, person_id_r VARCHAR,
        same_person BOOLEAN, match_probability DOUBLE, match_weight DOUBLE, evidence VARCHAR,
        status VARCHAR NOT NULL)""",
    "runs": """CREATE TABLE IF NOT EXISTS linked.runs (
        run_id VARCHAR NOT NULL, mode VARCHAR NOT NULL, started_at TIMESTAMP WITH TIME ZONE NOT NULL,
        finished_at TIMESTAMP WITH TIME ZONE NOT NULL, records BIGINT, new_records BIGINT, persons BIGINT,
        model_file VARCHAR, metrics VARCHAR)""",
}


RECORD_COLUMNS = ("record_id", "source", *DETAIL_COLUMNS, "source_person_id", "agency", "entity", "record_key",
                  "delivery_id")
LAKE_ONLY = ("agency", "entity", "record_key", "delivery_id")  # dropped before linkage


def record_id_expr() -> pl.Expr:
    return pl.concat_str(pl.col("agency"), pl.lit(":"), pl.col("entity"), pl.lit(":"), pl.col("record_key"))


_ROW_SCHEMA = {"agency": pl.String, "entity": pl.String, "record_key": pl.String, "person_key": pl.String,
               "sex": pl.String, "delivery_id": pl.String, "file_name": pl.String, "row_number": pl.Int64,
               "loaded_at": pl.Datetime("us", "UTC")}


def current_rows(con: duckdb.DuckDBPyConnection, *, delivery_ids: list[str] | None = None,
                 person_keys: pl.DataFrame | None = None, existing: set[str] | None = None) -> pl.DataFrame:
    """Every current person-bearing raw row: agency, entity, record_key, person_key, sex,
    delivery_id, file_name, row_number, loaded_at (the lineage back to the delivered file).
    Optionally only rows of some deliveries, or of some agency persons (agency, key: the row's
    person_key, or its record_key when it is the person). One query over every person-bearing
    table (``existing``: ``lakehouse.tables``, when the caller has it)."""
    if person_keys is not None:
        con.register("_f_persons", person_keys.select("agency", "key").to_arrow())
    try:
        return _current_rows(con, delivery_ids, person_keys is not None,
                             existing if existing is not None else lakehouse.tables(con))
    finally:
        if person_keys is not None:
            con.unregister("_f_persons")


def _current_rows(con: duckdb.DuckDBPyConnection, delivery_ids: list[str] | None, by_person: bool,
                  existing: set[str]) -> pl.DataFrame:
    agencies = [a.name for a in AGENCIES]
    params: dict[str, str] = {}
    if delivery_ids is not None:
        # the ids as parameters, not a joined list: DuckLake then reads only those deliveries'
        # files (a 1% delivery at 1M persons: 0.24 -> 0.06 s)
        params = {f"delivery_{i}": d for i, d in enumerate(delivery_ids)}
        wanted = ", ".join(f"${name}" for name in params) or "NULL"
        agencies = [r[0] for r in con.execute(f"SELECT DISTINCT agency FROM raw.deliveries WHERE delivery_id IN "
                                              f"({wanted})", params).fetchall()]
    selects = []
    for agency in AGENCIES:
        if agency.name not in agencies:
            continue
        for entity in agency.entities:
            contract = entity.contract
            if not contract.person_bearing or contract.table not in existing:
                continue
            person = "r.person_key" if "person_key" in contract.key_columns().values() else "NULL"
            sex = "r.gender" if any(c.name == "gender" for c in contract.columns) else "NULL"
            where = ["r.record_key IS NOT NULL"]
            if delivery_ids is not None:
                where.append(f"r._delivery_id IN ({wanted})")
            if by_person:
                where.append(f"coalesce({person}, r.record_key) IN (SELECT key FROM _f_persons "
                             f"WHERE agency = '{agency.name}')")
            selects.append(f"""
                SELECT '{agency.name}' AS agency, '{entity.name}' AS entity, r.record_key,
                       {person}::VARCHAR AS person_key, {sex}::VARCHAR AS sex, r._delivery_id AS delivery_id,
                       r._file_name AS file_name, r._row_number::BIGINT AS row_number, d.loaded_at
                FROM {contract.table} r JOIN raw.current_deliveries d ON d.delivery_id = r._delivery_id
                WHERE {' AND '.join(where)}""")
    if not selects:
        return pl.DataFrame(schema=_ROW_SCHEMA)
    return con.execute(" UNION ALL ".join(selects), params).pl().cast(_ROW_SCHEMA)


_HAS_DETAILS = pl.any_horizontal(pl.col(c).is_not_null() for c in ("forename", "surname", "dob"))


def person_records(con: duckdb.DuckDBPyConnection, keyring: Keyring, rows: pl.DataFrame | None = None,
                   existing: set[str] | None = None) -> pl.DataFrame:
    """Canonical person records of the lakehouse (``linkage.cli`` schema + agency, entity,
    record_key), identifiers decrypted in memory. One per (agency, entity, record_key). With
    ``rows`` (some of ``current_rows``), only those records; their agency's own link (details of
    the same agency person) is read as well where they need it."""
    if rows is None:
        return inherit_person_details(_decrypted(con, keyring, current_rows(con), subset=False)).select(RECORD_COLUMNS)
    records = _decrypted(con, keyring, rows, subset=True)
    needy = records.filter(~_HAS_DETAILS)
    if needy.height == 0:  # nothing to inherit (a police delivery: 0.03 s saved)
        return records.select(RECORD_COLUMNS)
    keys = needy.select("agency", key=pl.coalesce("person_key", "record_key")).unique()
    donor_rows = current_rows(con, person_keys=keys, existing=existing).join(
        records.select("agency", "entity", "record_key"), on=["agency", "entity", "record_key"], how="anti")
    if donor_rows.height:
        pool = pl.concat([records, _decrypted(con, keyring, donor_rows, subset=True)], how="diagonal_relaxed")
        return inherit_person_details(pool).join(records.select("record_id"), on="record_id", how="semi").select(
            RECORD_COLUMNS)
    return inherit_person_details(records).select(RECORD_COLUMNS)


def _decrypted(con: duckdb.DuckDBPyConnection, keyring: Keyring, rows: pl.DataFrame, *, subset: bool
               ) -> pl.DataFrame:
    latest = rows.sort("loaded_at", "delivery_id").unique(["agency", "entity", "record_key"], keep="last")
    if subset:
        ids = read_identifiers(con, keyring, records=latest.select("agency", "entity", "record_key", "delivery_id"))
    else:
        ids = read_identifiers(con, keyring, delivery_ids=latest["delivery_id"].unique().to_list())
    ids = ids.filter(pl.col("vault_status") == "ok").drop("vault_status")
    records = latest.join(ids, on=["agency", "entity", "record_key", "delivery_id"], how="inner")
    return records.with_columns(
        record_id=record_id_expr(),
        source=pl.col("agency"),
        # a record without a person id column is the person (Patient, probation case): its own
        # record_key is what its dependants' person_key equals
        source_person_id=pl.concat_str(pl.col("agency"), pl.lit(":"),
                                       pl.coalesce("person_key", "record_key")),
    )


def inherit_person_details(records: pl.DataFrame) -> pl.DataFrame:
    """Rows with no name and no dob take the details of the first row of the same agency
    person that has them (Encounter -> its Patient, assessment factor -> the referral)."""
    has_details = _HAS_DETAILS
    donors = (
        records.filter(has_details & pl.col("source_person_id").is_not_null())
        .sort("record_id").unique(subset="source_person_id", keep="first")
        .select("source_person_id", *[pl.col(c).alias(f"_donor_{c}") for c in DETAIL_COLUMNS])
    )
    joined = records.join(donors, on="source_person_id", how="left", maintain_order="left")
    needs = ~has_details
    return joined.with_columns(
        [pl.when(needs).then(pl.coalesce(c, f"_donor_{c}")).otherwise(pl.col(c)).alias(c) for c in DETAIL_COLUMNS]
    ).drop([f"_donor_{c}" for c in DETAIL_COLUMNS])


def truth_persons(rows: pl.DataFrame, truth: Path) -> pl.DataFrame:
    """record_id -> person_uid from the generator's truth (records.parquet keyed by agency,
    file, row_number), for evaluation on generated data only."""
    truth_rows = pl.read_parquet(Path(truth) / "records.parquet", columns=["agency", "file", "row_number",
                                                                            "person_uid"])
    joined = rows.join(truth_rows, left_on=["agency", "file_name", "row_number"],
                       right_on=["agency", "file", "row_number"], how="inner")
    return joined.select(record_id_expr().alias("record_id"), "person_uid").unique("record_id", keep="first")


@dataclass
class LakeLink:
    run_id: str
    mode: str
    metrics: dict
    run_dir: Path
    evaluation: dict | None = None
    model_path: Path | None = None  # the model this run scored with (an incremental run: the last full run's)


def run_dir_for(settings: Settings, run_id: str) -> Path:
    return settings.home / "linkage" / "runs" / run_id


def _latest_model(con: duckdb.DuckDBPyConnection, existing: set[str]) -> Path | None:
    if "linked.runs" not in existing:
        return None
    row = con.execute("SELECT model_file FROM linked.runs WHERE model_file IS NOT NULL "
                      "ORDER BY finished_at DESC LIMIT 1").fetchone()
    return Path(row[0]) if row and Path(row[0]).is_file() else None


def _last_run(con: duckdb.DuckDBPyConnection, existing: set[str]) -> str | None:
    if "linked.runs" not in existing:
        return None
    row = con.execute("SELECT run_id FROM linked.runs ORDER BY finished_at DESC, run_id DESC LIMIT 1").fetchone()
    return row[0] if row else None


class ConcurrentLinkRun(RuntimeError):
    """Another link run wrote the linked zone while this one was linking: its result is stale."""


def _previous(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The stored assignment: record_id, person_id, match_confidence."""
    if not lakehouse.table_exists(con, "linked", "person_record"):
        return pl.DataFrame(schema={"record_id": pl.String, "person_id": pl.String, "match_confidence": pl.Float64})
    return con.sql("SELECT agency, entity, record_key, person_id, match_confidence FROM linked.person_record").pl(
    ).select(record_id_expr().alias("record_id"), "person_id", "match_confidence")


@dataclass
class _Plan:
    mode: str  # full / incremental
    reason: str
    model_file: Path | None
    new_deliveries: list[str]
    last_run: str | None = None  # the linked zone this run builds on (checked again before writing)


def _plan(con: duckdb.DuckDBPyConnection, full: bool, existing: set[str]) -> _Plan:
    """Full or incremental, and why. Incremental needs a saved model and the sealed features of
    the linked nodes; a linked delivery that is no longer current (superseded: its records may
    have changed or gone; or removed by retention) makes a full re-link."""
    model_file, last_run = _latest_model(con, existing), _last_run(con, existing)
    current = [r[0] for r in con.execute("SELECT delivery_id FROM raw.current_deliveries").fetchall()]
    plan = _Plan("full", "asked for a full re-link", model_file, current, last_run)
    if full:
        return plan
    if model_file is None:
        return replace(plan, reason="no saved model yet")
    if not {"linked.node_features", "linked.node_edge"} <= existing or not con.execute(
            "SELECT count(*) FROM linked.node_features").fetchone()[0]:
        return replace(plan, reason="no stored link state (first run since retention, or before sealed features)")
    linked = {r[0] for r in con.execute("SELECT delivery_id FROM linked.delivery").fetchall()}
    if linked - set(current):
        return replace(plan, reason="a linked delivery was superseded or removed")
    return _Plan("incremental", "new deliveries", model_file, [d for d in current if d not in linked], last_run)


def _new_rows(con: duckdb.DuckDBPyConnection, deliveries: list[str], existing: set[str]) -> pl.DataFrame:
    """Current rows of these deliveries whose record is not linked yet (a re-delivered record
    keeps its person)."""
    rows = current_rows(con, delivery_ids=deliveries, existing=existing)
    if rows.height == 0:
        return rows
    con.register("_delivered", rows.select("agency", "entity", "record_key").to_arrow())
    # per (agency, entity) as parameters: linked.person_record is partitioned by them, so only
    # those partitions' files are read
    kinds = rows.select("agency", "entity").unique().rows()
    params = {f"{c}_{i}": v for i, kind in enumerate(kinds) for c, v in zip(("agency", "entity"), kind)}
    try:
        linked = con.execute(" UNION ALL ".join(
            f"SELECT agency, entity, record_key FROM linked.person_record WHERE agency = $agency_{i} AND "
            f"entity = $entity_{i} AND record_key IN (SELECT record_key FROM _delivered)" for i in range(len(kinds))),
            params).pl()
    finally:
        con.unregister("_delivered")
    return rows.join(linked, on=["agency", "entity", "record_key"], how="anti")


def _linked_records(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM linked.person_record").fetchone()[0]


def link_lake(settings: Settings, *, full: bool = False, truth: Path | None = None, progress=print) -> LakeLink:
    """Link the lakehouse's current person records and write the ``linked`` zone."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        seconds[name] = round(time.perf_counter() - t0 - sum(seconds.values()), 2)

    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    run_dir = run_dir_for(settings, run_id)
    keyring = Keyring.open(settings)
    key = token_key(keyring.pseudonym_key())
    out = None
    # An incremental run takes seconds: it plans, links and writes on one writer connection (with
    # file catalogs, other writers wait that long). A full run reads without the writer lock, so
    # that ingestion can go on while it links, and checks before writing that no other link run
    # wrote meanwhile (ConcurrentLinkRun).
    with lakehouse.connect(settings) as con:
        # planning and reading in one transaction: one snapshot of the lake for all of it (and
        # DuckLake looks the snapshot up once, not at every query: ~1.5 ms less per query)
        con.execute("BEGIN TRANSACTION")
        existing = lakehouse.tables(con)
        plan = _plan(con, full, existing)
        if plan.mode == "incremental":
            # the delivery's rows first: a delivery too large for an incremental run does not open
            # the population, and their queries do not share the cores with its opening
            new_rows = _new_rows(con, plan.new_deliveries, existing)
            population = _linked_records(con)
            if new_rows.height > INCREMENTAL_MAX_SHARE * population:
                plan = replace(plan, mode="full", reason=f"{new_rows.height:,} new records: over "
                               f"{INCREMENTAL_MAX_SHARE:.0%} of the {population:,} linked")
            else:
                with _opening_population(con, keyring, json.loads(plan.model_file.read_text())) as opening:
                    out = _link_incremental(con, keyring, key, plan, new_rows, population, run_id, progress, opening,
                                            existing)
                if out is None:  # sealed features unreadable (a key shredded meanwhile) or of older features
                    plan = replace(plan, mode="full", reason="sealed features unreadable or outdated")
        con.execute("ROLLBACK")  # nothing written yet: _write commits in its own transaction
        if out is not None:
            lap("link")
            out.metrics |= {"mode": plan.mode, "mode_reason": plan.reason}
            _write(con, run_id, plan, started, out, existing)
            lap("write")
    if out is None:
        with lakehouse.connect(settings, read_only=True) as con:
            out = _link_full(con, keyring, key, plan, run_dir, run_id, progress, seconds, t0)
        lap("link")
        out.metrics |= {"mode": plan.mode, "mode_reason": plan.reason}
        with lakehouse.connect(settings) as con:  # holds the writer lock (file catalogs) until the commit
            _write(con, run_id, plan, started, out, lakehouse.tables(con))
        lap("write")
    metrics = out.metrics
    evaluation = None
    if truth is not None and Path(truth, "records.parquet").is_file():
        t_truth = time.perf_counter()
        with lakehouse.connect(settings, read_only=True) as con:
            evaluation = evaluate_lake_assignment(con, truth)
        metrics["evaluation"] = evaluation
        seconds["truth_evaluation"] = round(time.perf_counter() - t_truth, 2)
        with lakehouse.connect(settings) as con:  # the run's row keeps its measured quality
            con.execute("UPDATE linked.runs SET metrics = ? WHERE run_id = ?", [json.dumps(metrics, default=str), run_id])
    seconds["total"] = round(time.perf_counter() - t0, 2)
    seconds["total_excl_truth"] = round(seconds["total"] - seconds.get("truth_evaluation", 0.0), 2)
    metrics["seconds_link_lake"] = seconds
    metrics["seconds_total"] = seconds["total"]
    progress(f"linked {metrics['records']:,} records into {metrics['persons']:,} persons ({plan.mode}) "
             f"in {seconds['total_excl_truth']:.1f} s")
    return LakeLink(run_id=run_id, mode=plan.mode, metrics=metrics, run_dir=run_dir, evaluation=evaluation,
                    model_path=out.model_path)


@dataclass
class _Outcome:
    person_record: pl.DataFrame  # rows to write: agency, entity, record_key, person_id, match_confidence, id_status, node_id
    lineage: pl.DataFrame
    review: pl.DataFrame  # review rows keyed by (agency, entity, record_key) (see _review_rows)
    node_features: pl.DataFrame  # sealed rows (stored_state.seal_nodes)
    edges: pl.DataFrame  # node_l, node_r, match_probability (node ids: tokens)
    metrics: dict
    model_path: Path | None


def _with_node_ids(nodes: pl.DataFrame, records: pl.DataFrame, key: bytes) -> tuple[pl.DataFrame, pl.Series]:
    """Nodes with their ``node_id`` token (and their source person id as a token: the form that is
    sealed and scored, ``with_person_tokens``), and the delivery each was derived from (that of its
    representative record, whose id is the node's ``unique_id``)."""
    delivery = nodes.select("unique_id").join(records.select(pl.col("record_id").alias("unique_id"), "delivery_id"),
                                              on="unique_id", how="left", maintain_order="left")["delivery_id"]
    return with_person_tokens(nodes.with_columns(node_tokens(nodes, key)), key), delivery


def _link_full(con, keyring: Keyring, key: bytes, plan: _Plan, run_dir: Path, run_id: str, progress,
               seconds: dict, t0: float) -> _Outcome:
    records = person_records(con, keyring)
    previous = _previous(con)
    seconds["read"] = round(time.perf_counter() - t0, 2)
    progress(f"read {records.height:,} person records from the vault in {seconds['read']:.1f} s")
    if records.height == 0:
        raise LookupError("no person records in the lakehouse yet: load deliveries first (tapestry run)")
    progress(f"full link of {records.height:,} records ({plan.reason})")
    # the identifiers go to link_records alone, which releases them once standardised: only the
    # keys stay here
    canonical = records.drop(LAKE_ONLY)
    records = records.select("record_id", *LAKE_ONLY)
    result = link_records(canonical, run_dir=run_dir,
                          previous=previous.select("record_id", "person_id") if previous.height else None,
                          run_id=run_id, progress=progress, keep_state=True, release_identifiers=True)
    del canonical
    result.linker = None  # frees Splink's DuckDB
    t_seal = time.perf_counter()
    nodes, delivery = _with_node_ids(result.state.nodes, records, key)
    node_of = result.state.node_of.join(nodes.select(pl.col("unique_id").alias("node_id"),
                                                     pl.col("node_id").alias("_token")), on="node_id", how="left")
    sealed = seal_nodes(nodes.drop("unique_id"), delivery, keyring, run_id)
    t_compile = time.perf_counter()
    # the incremental runs after this one score with this model's SQL, compiled here once
    prepare_delivery_scoring(json.loads((run_dir / "model.json").read_text()), nodes.drop("node_id"), run_dir)
    compile_seconds = round(time.perf_counter() - t_compile, 2)
    assignments = result.assignments.select("record_id", "person_id", "match_confidence", "id_status").join(
        node_of.select("record_id", pl.col("_token").alias("node_id")), on="record_id", how="left")
    retired = previous.join(records.select("record_id"), on="record_id", how="anti")
    metrics = result.metrics | {
        "records": records.height,
        "new_records": records.join(previous.select("record_id"), on="record_id", how="anti").height,
        "records_no_longer_current": retired.height, "persons": int(assignments["person_id"].n_unique()),
        "read_seconds": seconds["read"], "seal_seconds": round(t_compile - t_seal, 2),
        "compile_scoring_seconds": compile_seconds}
    keyed = assignments.join(records.select("record_id", "agency", "entity", "record_key"), on="record_id")
    edges = _token_edges(result.edges, nodes.select("unique_id", "node_id"))
    return _Outcome(keyed, result.lineage, _review_rows(result.review, records, run_id), sealed, edges, metrics,
                    run_dir / "model.json")


def _token_edges(edges: pl.DataFrame, token_of: pl.DataFrame) -> pl.DataFrame:
    """Scored pairs (id_l, id_r: node unique ids) as rows of linked.node_edge (node tokens)."""
    out = edges.select("id_l", "id_r", "match_probability")
    for side in ("l", "r"):
        ids = token_of.select(pl.col("unique_id").alias(f"id_{side}"), pl.col("node_id").alias(f"node_{side}"))
        out = out.join(ids, on=f"id_{side}", how="inner")
    return out.select("node_l", "node_r", "match_probability")


def _membership(con: duckdb.DuckDBPyConnection, node_ids: pl.Series) -> pl.DataFrame:
    """Every linked record of the persons these nodes belong to: record_id (``#<row id>``: the
    row of linked.person_record, which is what a run replaces, see ``_row_ids``), person_id,
    node_id, agency, entity, record_key. The persons are found in DuckDB: only their records
    come back."""
    con.register("_nodes", node_ids.to_frame("node_id").to_arrow())
    try:
        members = con.sql("""
            SELECT rowid AS row_id, node_id, person_id, agency, entity, record_key FROM linked.person_record
            WHERE person_id IN (SELECT person_id FROM linked.person_record
                                WHERE node_id IN (SELECT node_id FROM _nodes))""").pl()
    finally:
        con.unregister("_nodes")
    return members.with_columns(record_id=pl.format("#{}", "row_id"))


def _row_ids(record_ids: pl.Series) -> pl.Series:
    """The linked.person_record row ids in ``_membership``'s ``#<row id>`` record ids (others skipped)."""
    return record_ids.filter(record_ids.str.starts_with("#")).str.slice(1).cast(pl.Int64).unique().alias("row_id")


@contextlib.contextmanager
def _opening_population(con: duckdb.DuckDBPyConnection, keyring: Keyring, model: dict) -> Iterator[Future]:
    """The stored population opened in a thread while the caller decrypts and standardises the
    delivery: the sealed features decrypted and read (Parquet), their term-frequency counts, the
    hashes of their keys for the ``model``'s blocking rules, and the stored edges. A future of
    ``_Population``. The lakehouse is queried here, on the caller's connection, not in the thread:
    a second connection querying it while ``con`` does waits in the SQLite catalog's busy handler,
    which sleeps a whole second (1M persons: 1 run in 2 took ~1.0 s longer)."""
    t = time.perf_counter()
    groups = stored_state.sealed_groups(con)
    edges = con.sql("SELECT node_l, node_r, match_probability FROM linked.node_edge").pl()

    def work():
        nodes, unreadable = stored_state.open_sealed(groups, keyring)
        return _Population(model, nodes, unreadable, value_counts(nodes),
                           population_key_hashes(nodes, model_rules(model)), edges, round(time.perf_counter() - t, 2))

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(work)


@dataclass
class _Population:
    model: dict  # the saved model the run scores with
    nodes: pl.DataFrame  # the sealed features, opened
    unreadable: int  # sealed nodes that could not be opened
    counts: dict[str, pl.DataFrame]  # value_counts(nodes)
    key_hashes: pl.DataFrame | None  # population_key_hashes(nodes, the model's rules)
    edges: pl.DataFrame  # linked.node_edge
    seconds: float


def _link_incremental(con, keyring: Keyring, key: bytes, plan: _Plan, new_rows: pl.DataFrame, population: int,
                      run_id: str, progress, opening: Future, existing: set[str]) -> _Outcome | None:
    t0 = time.perf_counter()
    records = person_records(con, keyring, new_rows, existing) if new_rows.height else pl.DataFrame(
        schema={c: pl.String for c in RECORD_COLUMNS})
    progress(f"incremental link: {records.height:,} new records against {population:,} linked ones")
    metrics = {"records": population + records.height, "new_records": records.height,
               "records_no_longer_current": 0}
    if records.height == 0:
        return _Outcome(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
                        metrics | {"persons": _persons_before(con, plan.last_run)}, plan.model_file)
    new_nodes, new_node_of = delivery_nodes(records.drop(LAKE_ONLY))
    new_nodes, new_delivery = _with_node_ids(new_nodes, records, key)
    stored = opening.result()
    population_nodes, stored_edges = stored.nodes, stored.edges
    if stored.unreadable or population_nodes.height == 0:
        progress(f"{stored.unreadable:,} sealed node(s) could not be opened")
        return None
    if dict(population_nodes.schema) != {c: t for c, t in new_nodes.schema.items() if c != "unique_id"}:
        progress("the sealed features predate a change of the standardised features")
        return None
    # a delivered node identical to an existing one joins its person directly; the others are
    # scored against the candidates of the blocking rules
    repeat = new_nodes["node_id"].is_in(population_nodes["node_id"].implode())
    added = new_nodes.filter(~repeat)
    model = stored.model
    features = [pl.col("node_id").cast(pl.String).alias(c) if c == "unique_id" else c for c in new_nodes.columns]
    candidates = candidate_existing(population_nodes, added.drop("node_id"), model_rules(model),
                                    stored.key_hashes).select(features)
    # term frequencies of the scored values in the population including the delivery (Splink's:
    # share of nodes)
    tfs = tf_from_counts([stored.counts, value_counts(added)], [candidates, added])
    scored = score_delivery(candidates.drop("node_id"), added.drop("node_id"), model, tfs, plan.model_file.parent)
    # Re-clustering, stable ids and the review queue touch only the persons of the existing nodes
    # that scored with the delivery (and of its repeats): read after the scoring, they are a fifth
    # of the candidates' persons (1M: 60,278 candidate nodes), and the run is CPU-bound, so
    # reading them beside the scoring gained nothing
    scored_existing = candidates.filter(pl.col("unique_id").is_in(pl.concat([scored["id_l"], scored["id_r"]])
                                                                  .implode()))["node_id"]
    members = _membership(con, pl.concat([scored_existing, new_nodes.filter(repeat)["node_id"]]).unique())
    member_nodes = members["node_id"].unique().implode()
    edges = stored_edges.filter(pl.col("node_l").is_in(member_nodes) & pl.col("node_r").is_in(member_nodes)).select(
        pl.col("node_l").cast(pl.String).alias("id_l"), pl.col("node_r").cast(pl.String).alias("id_r"),
        "match_probability")
    state_nodes = population_nodes.filter(pl.col("node_id").is_in(member_nodes)).select(features)
    member_ids = members.with_columns(pl.col("node_id").cast(pl.String))
    state = LinkState(nodes=state_nodes.drop("node_id"), node_of=member_ids.select("record_id", "node_id"),
                      assignments=member_ids.select("record_id", "person_id"), model=model, tf_tables=tfs,
                      node_person=member_ids.group_by("node_id").agg(pl.col("person_id").first()), edges=edges)
    read_seconds = round(time.perf_counter() - t0, 2)
    inc = link_increment(state, records.drop(LAKE_ONLY), run_id=run_id, progress=progress,
                         prepared=(new_nodes.drop("node_id"), new_node_of), scored=scored)
    new_node_ids = new_node_of.join(new_nodes.select(pl.col("unique_id").alias("_node"), "node_id"),
                                    left_on="node_id", right_on="_node").select("record_id", pl.col("node_id_right")
                                                                                .alias("node_id"))
    node_of = pl.concat([new_node_ids, members.select("record_id", "node_id")]).unique("record_id")
    changed = inc.assignments.select("record_id", "person_id", "match_confidence", "id_status")
    # review pairs name nodes: an existing node by one of its records
    review = inc.review
    if review.height:
        first = member_ids.group_by("node_id").agg(pl.col("record_id").first())
        review = review.with_columns(pl.col(c).replace(first["node_id"], first["record_id"])
                                     for c in ("record_id_l", "record_id_r"))
    keys = pl.concat([records.select("record_id", "agency", "entity", "record_key"),
                      members.select("record_id", "agency", "entity", "record_key")])
    rows = changed.join(node_of, on="record_id", how="left").join(keys, on="record_id")
    metrics |= inc.metrics | {
        "persons": _persons_before(con, plan.last_run) + inc.metrics["persons_change"],
        "read_and_score_seconds": read_seconds, "open_sealed_seconds": stored.seconds,
        "population_nodes": population_nodes.height, "candidate_nodes": candidates.height,
        "scored_existing_nodes": scored_existing.len(), "records_of_their_persons": members.height,
        "delivery_nodes": new_nodes.height,
        "delivery_nodes_new": added.height}
    sealed = seal_nodes(added.drop("unique_id"), new_delivery.filter(~repeat), keyring, run_id)
    token_of = pl.concat([new_nodes.select("unique_id", "node_id"), state_nodes.select("unique_id", "node_id")])
    return _Outcome(rows, inc.lineage, _review_rows(review, keys, run_id), sealed,
                    _token_edges(inc.edges, token_of), metrics, plan.model_file)


def _persons(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(DISTINCT person_id) FROM linked.person_record").fetchone()[0]


def _persons_before(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Persons after the run ``run_id`` (as that run recorded them; counted when it did not)."""
    row = con.execute("SELECT persons FROM linked.runs WHERE run_id = ?", [run_id]).fetchone()
    return row[0] if row and row[0] is not None else _persons(con)


def evaluate_lake_assignment(con: duckdb.DuckDBPyConnection, truth: Path) -> dict:
    """The stored assignment (linked.person_record) scored against the generator's truth."""
    rows = current_rows(con)
    records = rows.select(record_id_expr().alias("record_id"), pl.col("agency").alias("source"))
    assignments = con.sql("SELECT agency, entity, record_key, person_id FROM linked.person_record").pl().select(
        record_id_expr().alias("record_id"), "person_id")
    return evaluate_assignments(records, assignments, truth_persons(rows, truth))


def evaluate_assignments(records: pl.DataFrame, assignments: pl.DataFrame, truth: pl.DataFrame) -> dict:
    """Pairwise and B-cubed figures of the stored assignment against the generator's truth,
    and recall per source pair (aggregate figures only)."""
    from linkage.evaluation import pairwise_metrics, recall_by_source_pair

    scored = records.join(truth, on="record_id", how="inner").join(
        assignments.select("record_id", "person_id"), on="record_id", how="left")
    # (the deterministic baseline and plain Splink need a second standardisation: `tapestry
    # link-eval` reports them; the pipeline keeps to the cheap figures of what it stored)
    return {"records_with_truth": scored.height,
            "tapestry": pairwise_metrics(scored["person_id"], scored["person_uid"])
            | {"recall_by_source_pair": recall_by_source_pair(scored["source"], scored["person_id"],
                                                              scored["person_uid"])}}


def _review_rows(review: pl.DataFrame, records: pl.DataFrame, run_id: str) -> pl.DataFrame:
    if review.height == 0:
        return pl.DataFrame()
    key = records.select("record_id", "agency", "entity", "record_key")
    weights = [c for c in review.columns if c.startswith("mw_")]
    out = review.with_columns(
        evidence=pl.struct(weights).struct.json_encode() if weights else pl.lit("{}"))
    for side in ("l", "r"):
        out = out.join(key.rename({c: f"{c}_{side}" for c in key.columns}), on=f"record_id_{side}", how="left")
    return out.select(pl.lit(run_id).alias("run_id"), "agency_l", "entity_l", "record_key_l", "agency_r", "entity_r",
                      "record_key_r", "person_id_l", "person_id_r", "same_person", "match_probability",
                      "match_weight", "evidence", pl.lit("open").alias("status"))


def _write(con: duckdb.DuckDBPyConnection, run_id: str, plan: _Plan, started: datetime, out: _Outcome,
           existing: set[str]) -> None:
    """Write a run's outcome to the linked zone in one commit (``con``: a writer connection;
    ``existing``: its ``lakehouse.tables``)."""
    now = datetime.now(timezone.utc)
    full = plan.mode == "full"
    if _last_run(con, existing) != plan.last_run:
        raise ConcurrentLinkRun(f"link run {run_id}: another link run wrote the linked zone while this one "
                                "was linking; nothing written (run the link job again)")
    for table, ddl in DDL.items():
        if f"linked.{table}" not in existing:
            con.execute(ddl)
    if full and "linked.person_record" in existing and not con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'linked' "
            "AND table_name = 'person_record' AND column_name = 'node_id'", [lakehouse.ALIAS]).fetchone()[0]:
        con.execute("ALTER TABLE linked.person_record ADD COLUMN node_id BIGINT")  # lakes from before
    con.execute("BEGIN")
    try:
        lakehouse.set_commit_message(con, f"linkage run {run_id} ({plan.mode})")
        if full:  # everything is re-derived
            for table in ("person_record", "node_features", "node_edge", "delivery"):
                con.execute(f"DELETE FROM linked.{table}")
            # an incremental run looks up its delivery's records in their agency's and entity's files
            con.execute("ALTER TABLE linked.person_record SET PARTITIONED BY (agency, entity)")
            # ... and scans it twice for the persons it touches, and reads the sealed features and
            # the stored pairs whole: uncompressed Parquet, for 13% more bytes in person_record (1M
            # persons: its two scans 108 -> 64 ms; the sealed features, random bytes, do not
            # compress at all; the pairs 4.8 -> 3.1 ms, 10% more bytes)
            for table in ("person_record", "node_features", "node_edge"):
                con.execute(f"CALL {lakehouse.ALIAS}.set_option('parquet_compression', 'uncompressed', "
                            f"schema => 'linked', table_name => '{table}')")
            con.execute("DELETE FROM linked.review_queue WHERE status = 'open'")  # every pair was re-scored
        elif out.person_record.height:  # re-assigned records: their rows (``#<row id>``, _membership) are replaced
            replaced = _row_ids(out.person_record["record_id"])
            if replaced.len():
                con.register("_replaced", replaced.to_frame().to_arrow())
                con.execute("DELETE FROM linked.person_record WHERE rowid IN (SELECT row_id FROM _replaced)")
        frames = {
            "person_record": out.person_record.select(
                "record_key", "agency", "entity", "person_id", "match_confidence", "id_status",
                pl.lit(run_id).alias("run_id"), "node_id") if out.person_record.height else None,
            "node_features": out.node_features,
            "node_edge": out.edges.with_columns(run_id=pl.lit(run_id)) if out.edges.height else None,
            "delivery": pl.DataFrame({"delivery_id": plan.new_deliveries, "run_id": run_id},
                                     schema={"delivery_id": pl.String, "run_id": pl.String}),
            "person_lineage": out.lineage.with_columns(recorded_at=pl.lit(now)).select(
                "old_person_id", "new_person_id", "reason", "run_id", "recorded_at")
            if out.lineage.height else None,
            "review_queue": out.review,
        }
        for table, frame in frames.items():
            if frame is not None and frame.height:
                con.register("_rows", frame.to_arrow())
                con.execute(f"INSERT INTO linked.{table} BY NAME SELECT * FROM _rows")
                con.unregister("_rows")
        metrics = out.metrics
        con.execute("INSERT INTO linked.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            run_id, plan.mode, started, now, metrics["records"], metrics["new_records"], metrics["persons"],
            str(out.model_path) if out.model_path else None, json.dumps(metrics, default=str)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
