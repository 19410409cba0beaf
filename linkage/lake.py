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
=======================  ==================================================================

A record is (agency, entity, record_key): a record re-delivered in a later file (probation
snapshots list the same case every quarter) is one record, with the identifiers of its latest
current delivery. Rows that carry no person details of their own (NHS Encounter, children's
assessment factors) take the details of the agency's record with the same ``person_key`` (the
Patient, the referral): the agency's own link.

Full or incremental: a run is incremental when a previous model exists and the new records are
at most ``INCREMENTAL_MAX_SHARE`` of the population; otherwise (or with ``full=True``) the model
is re-trained on everything and ids are kept stable against the previous assignment. Records that
are no longer current (superseded or removed by retention) leave linked.person_record.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from governance.identities import read_identifiers
from governance.keys import Keyring
from linkage import cluster as C
from linkage.incremental import LinkState, link_increment, tf_tables
from linkage.pipeline import collapse, distinct_raw, link_records
from linkage.standardise import standardise
from sources.registry import AGENCIES
from tapestry import lakehouse
from tapestry.config import Settings

INCREMENTAL_MAX_SHARE = 0.2  # above this share of new records, re-train and re-link everything
DETAIL_COLUMNS = ("forename", "middle_names", "surname", "dob", "sex", "postcode", "nhs_number", "pnc_id", "upn",
                  "crn")

DDL = {
    "person_record": """CREATE TABLE IF NOT EXISTS linked.person_record (
        record_key VARCHAR NOT NULL, agency VARCHAR NOT NULL, entity VARCHAR NOT NULL, person_id VARCHAR NOT NULL,
        match_confidence DOUBLE, id_status VARCHAR, run_id VARCHAR NOT NULL)""",
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


def record_id_expr() -> pl.Expr:
    return pl.concat_str(pl.col("agency"), pl.lit(":"), pl.col("entity"), pl.lit(":"), pl.col("record_key"))


def current_rows(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every current person-bearing raw row: agency, entity, record_key, person_key, sex,
    delivery_id, file_name, row_number, loaded_at (the lineage back to the delivered file)."""
    parts = []
    for agency in AGENCIES:
        for entity in agency.entities:
            contract = entity.contract
            schema, table = contract.table.split(".")
            if not contract.person_bearing or not lakehouse.table_exists(con, schema, table):
                continue
            person = "person_key" if "person_key" in contract.key_columns().values() else "NULL"
            sex = "gender" if any(c.name == "gender" for c in contract.columns) else "NULL"
            parts.append(con.sql(f"""
                SELECT '{agency.name}' AS agency, '{entity.name}' AS entity, r.record_key,
                       {person}::VARCHAR AS person_key, {sex}::VARCHAR AS sex, r._delivery_id AS delivery_id,
                       r._file_name AS file_name, r._row_number AS row_number, d.loaded_at
                FROM {contract.table} r JOIN raw.current_deliveries d ON d.delivery_id = r._delivery_id
                WHERE r.record_key IS NOT NULL""").pl())
    if not parts:
        return pl.DataFrame(schema={"agency": pl.String, "entity": pl.String, "record_key": pl.String,
                                    "person_key": pl.String, "sex": pl.String, "delivery_id": pl.String,
                                    "file_name": pl.String, "row_number": pl.Int64,
                                    "loaded_at": pl.Datetime("us", "UTC")})
    return pl.concat(parts, how="vertical_relaxed")


def person_records(con: duckdb.DuckDBPyConnection, keyring: Keyring) -> pl.DataFrame:
    """Canonical person records of the lakehouse (``linkage.cli`` schema + agency, entity,
    record_key), identifiers decrypted in memory. One per (agency, entity, record_key)."""
    rows = current_rows(con)
    latest = rows.sort("loaded_at", "delivery_id").unique(["agency", "entity", "record_key"], keep="last")
    ids = read_identifiers(con, keyring, delivery_ids=latest["delivery_id"].unique().to_list())
    ids = ids.filter(pl.col("vault_status") == "ok").drop("vault_status")
    records = latest.join(ids, on=["agency", "entity", "record_key", "delivery_id"], how="inner")
    records = records.with_columns(
        record_id=record_id_expr(),
        source=pl.col("agency"),
        # a record without a person id column is the person (Patient, probation case): its own
        # record_key is what its dependants' person_key equals
        source_person_id=pl.concat_str(pl.col("agency"), pl.lit(":"),
                                       pl.coalesce("person_key", "record_key")),
    )
    return inherit_person_details(records).select(
        "record_id", "source", *DETAIL_COLUMNS, "source_person_id", "agency", "entity", "record_key")


def inherit_person_details(records: pl.DataFrame) -> pl.DataFrame:
    """Rows with no name and no dob take the details of the first row of the same agency
    person that has them (Encounter -> its Patient, assessment factor -> the referral)."""
    has_details = pl.any_horizontal(pl.col(c).is_not_null() for c in ("forename", "surname", "dob"))
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


def run_dir_for(settings: Settings, run_id: str) -> Path:
    return settings.home / "linkage" / "runs" / run_id


def _latest_model(con: duckdb.DuckDBPyConnection) -> Path | None:
    if not lakehouse.table_exists(con, "linked", "runs"):
        return None
    row = con.execute("SELECT model_file FROM linked.runs WHERE model_file IS NOT NULL "
                      "ORDER BY finished_at DESC LIMIT 1").fetchone()
    return Path(row[0]) if row and Path(row[0]).is_file() else None


def _previous(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The stored assignment: record_id, person_id, match_confidence."""
    if not lakehouse.table_exists(con, "linked", "person_record"):
        return pl.DataFrame(schema={"record_id": pl.String, "person_id": pl.String, "match_confidence": pl.Float64})
    return con.sql("SELECT agency, entity, record_key, person_id, match_confidence FROM linked.person_record").pl(
    ).select(record_id_expr().alias("record_id"), "person_id", "match_confidence")


def _state_for(records: pl.DataFrame, previous: pl.DataFrame, model: dict) -> LinkState:
    """Rebuild what ``link_increment`` needs for the already linked records, the same way a
    full run builds it (nodes are deterministic: smallest record id of a duplicate group)."""
    raw, raw_of = distinct_raw(records)
    nodes, node_of = collapse(standardise(raw))
    node_of = raw_of.join(node_of.rename({"record_id": "raw_id"}), on="raw_id").drop("raw_id")
    return LinkState(nodes=nodes, node_of=node_of, assignments=previous, model=model, tf_tables=tf_tables(nodes))


def link_lake(settings: Settings, *, full: bool = False, truth: Path | None = None, progress=print) -> LakeLink:
    """Link the lakehouse's current person records and write the ``linked`` zone."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    run_dir = run_dir_for(settings, run_id)
    keyring = Keyring.open(settings)
    # read without the writer lock: ingestion can go on while we link
    with lakehouse.connect(settings, read_only=True) as con:
        records = person_records(con, keyring)
        previous = _previous(con)
        model_file = _latest_model(con)
        rows = current_rows(con) if truth is not None else None
    read_seconds = round(time.perf_counter() - t0, 2)
    progress(f"read {records.height:,} person records from the vault in {read_seconds:.1f} s")
    if records.height == 0:
        raise LookupError("no person records in the lakehouse yet: load deliveries first (tapestry run)")

    known = previous.join(records.select("record_id"), on="record_id", how="semi")
    new = records.join(previous.select("record_id"), on="record_id", how="anti")
    incremental = (not full and model_file is not None and known.height > 0
                   and new.height <= INCREMENTAL_MAX_SHARE * records.height)
    linkage_records = records.drop("agency", "entity", "record_key")
    if incremental:
        mode = "incremental"
        progress(f"incremental link: {new.height:,} new records against {known.height:,} linked ones")
        model = json.loads(model_file.read_text())
        old = linkage_records.join(known.select("record_id"), on="record_id", how="semi")
        state = _state_for(old, known.select("record_id", "person_id"), model)
        if new.height:
            inc = link_increment(state, linkage_records.join(new.select("record_id"), on="record_id", how="semi"),
                                 run_id=run_id, progress=progress)
            changed = inc.assignments.select("record_id", "person_id", "match_confidence", "id_status")
            assignments = pl.concat([known.join(changed.select("record_id"), on="record_id", how="anti")
                                     .with_columns(id_status=pl.lit("continuing")), changed], how="diagonal_relaxed")
            lineage, review, metrics = inc.lineage, inc.review, inc.metrics
        else:
            assignments = known.with_columns(id_status=pl.lit("continuing"))
            lineage, review, metrics = pl.DataFrame(), pl.DataFrame(), {"new_records": 0}
        model_path = model_file
    else:
        mode = "full"
        progress(f"full link of {records.height:,} records" + (" (re-training)" if model_file else ""))
        result = link_records(linkage_records, run_dir=run_dir,
                              previous=previous.select("record_id", "person_id") if previous.height else None,
                              run_id=run_id, progress=progress)
        assignments = result.assignments.select("record_id", "person_id", "match_confidence", "id_status")
        lineage, review, metrics = result.lineage, result.review, result.metrics
        model_path = run_dir / "model.json"
    retired = previous.join(records.select("record_id"), on="record_id", how="anti")
    metrics = metrics | {"mode": mode, "records": records.height, "new_records": new.height,
                         "records_no_longer_current": retired.height,
                         "persons": int(assignments["person_id"].n_unique()),
                         "read_seconds": read_seconds}
    evaluation = None
    if truth is not None and Path(truth, "records.parquet").is_file():
        evaluation = evaluate_assignments(records, assignments, truth_persons(rows, truth))
        metrics["evaluation"] = evaluation
    keyed = assignments.join(records.select("record_id", "agency", "entity", "record_key"), on="record_id")
    _write(settings, run_id, mode, started, keyed, lineage, review, records, metrics, model_path, incremental)
    metrics["seconds_total"] = round(time.perf_counter() - t0, 2)
    progress(f"linked {records.height:,} records into {metrics['persons']:,} persons ({mode}) "
             f"in {metrics['seconds_total']:.1f} s")
    return LakeLink(run_id=run_id, mode=mode, metrics=metrics, run_dir=run_dir, evaluation=evaluation)


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


def _write(settings: Settings, run_id: str, mode: str, started: datetime, assignments: pl.DataFrame,
           lineage: pl.DataFrame, review: pl.DataFrame, records: pl.DataFrame, metrics: dict,
           model_path: Path | None, incremental: bool) -> None:
    now = datetime.now(timezone.utc)
    person_record = assignments.select("record_key", "agency", "entity", "person_id", "match_confidence",
                                       "id_status", pl.lit(run_id).alias("run_id"))
    review_rows = _review_rows(review, records, run_id)
    with lakehouse.connect(settings) as con:
        for ddl in DDL.values():
            con.execute(ddl)
        con.execute("BEGIN")
        try:
            lakehouse.set_commit_message(con, f"linkage run {run_id} ({mode})")
            con.execute("DELETE FROM linked.person_record")
            con.register("person_record_df", person_record.to_arrow())
            con.execute("INSERT INTO linked.person_record BY NAME SELECT * FROM person_record_df")
            if lineage.height:
                con.register("lineage_df", lineage.with_columns(recorded_at=pl.lit(now)).to_arrow())
                con.execute("INSERT INTO linked.person_lineage BY NAME SELECT old_person_id, new_person_id, reason, "
                            "run_id, recorded_at FROM lineage_df")
            if not incremental:  # a full run re-scores every pair: its queue replaces the open one
                con.execute("DELETE FROM linked.review_queue WHERE status = 'open'")
            if review_rows.height:
                con.register("review_df", review_rows.to_arrow())
                con.execute("INSERT INTO linked.review_queue BY NAME SELECT * FROM review_df")
            con.execute("INSERT INTO linked.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                run_id, mode, started, now, metrics["records"], metrics["new_records"], metrics["persons"],
                str(model_path) if model_path else None, json.dumps(metrics, default=str)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
