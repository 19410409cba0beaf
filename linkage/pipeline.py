"""The full link: canonical records -> standardise -> collapse duplicates -> Splink (train,
predict) -> cluster (chaining guard) -> person ids.

``link_records`` is what ``tapestry link`` and the bench call; it trains its own model on the
records given (no ground truth; above ``model.TRAIN_SAMPLE_NODES`` distinct records on a
uniform sample of them), and can save the model JSON and charts per run. Rows identical in
every linkage column are merged before standardising, exact feature duplicates after.
``keep_state=True`` returns what ``linkage.incremental.link_increment`` needs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from linkage import cluster as C
from linkage import model as M
from linkage.incremental import LinkState, review_queue, tf_tables
from linkage.scoring import scored_frame
from linkage.standardise import identity_columns, standardise

PREDICT_THRESHOLD = C.REVIEW_BAND[0]  # pairs below this are not kept at all


class InputError(ValueError):
    """Bad linkage input: names the file and the column, never a value."""


@dataclass
class LinkResult:
    assignments: pl.DataFrame  # record_id, person_id, match_confidence, cluster_id, cluster_size
    edges: pl.DataFrame  # record-node pairs: id_l, id_r, match_probability, match_weight
    review: pl.DataFrame  # review queue: uncertain pairs (REVIEW_BAND), linkage.incremental.REVIEW_COLUMNS_DOC
    metrics: dict = field(default_factory=dict)
    model: dict | None = None
    linker: object | None = None
    lineage: pl.DataFrame | None = None
    state: LinkState | None = None  # with keep_state=True: what link_increment needs


def validate_records(records: pl.DataFrame, where: str = "input") -> None:
    if "record_id" not in records.columns:
        raise InputError(f"{where}: no record_id column")
    nulls = records["record_id"].null_count()
    if nulls:
        raise InputError(f"{where}: column record_id is empty in {nulls} row(s)")
    dup = records.height - records["record_id"].n_unique()
    if dup:
        raise InputError(f"{where}: column record_id has {dup} duplicate value(s); record ids must be unique")


def collapse(features: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exact duplicates (every feature equal, same source) become one node: returns (nodes,
    record_id -> node_id). Splink would score such pairs as certain matches anyway."""
    keyed = features.with_columns(_key=pl.struct(identity_columns(features.columns)).hash(seed=7))
    first = keyed.group_by("_key").agg(pl.col("unique_id").min().alias("node_id"), pl.len().alias("n_records"))
    mapping = keyed.select("unique_id", "_key").join(first, on="_key").select(
        pl.col("unique_id").alias("record_id"), "node_id"
    )
    nodes = (
        keyed.join(first, on="_key")
        .filter(pl.col("unique_id") == pl.col("node_id"))
        .drop("_key", "node_id")
        .rename({"source_dataset": "source"})
    )
    return nodes, mapping


RAW_COLUMNS = ("source", "forename", "middle_names", "surname", "dob", "sex", "postcode", "nhs_number", "pnc_id",
               "upn", "crn", "source_person_id")


def distinct_raw(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows equal in every linkage column (same source) become one before standardising (a
    person's many event rows repeat the same details): returns (distinct rows with their
    smallest record_id, record_id -> raw_id)."""
    cols = [c for c in RAW_COLUMNS if c in records.columns]
    if not cols:
        return records, records.select(pl.col("record_id").cast(pl.String), pl.col("record_id").cast(pl.String)
                                       .alias("raw_id"))
    keyed = records.select(pl.col("record_id").cast(pl.String), *cols).with_columns(
        _raw=pl.struct(cols).hash(seed=11))
    raw_of = keyed.select("record_id", "_raw").with_columns(raw_id=pl.col("record_id").min().over("_raw"))
    raw = keyed.filter(pl.col("record_id") == raw_of["raw_id"]).drop("_raw")
    return raw, raw_of.select("record_id", "raw_id")


def link_records(
    records: pl.DataFrame,
    *,
    threshold: float = C.CLUSTER_THRESHOLD,
    guard: bool = True,
    run_dir: Path | None = None,
    previous: pl.DataFrame | None = None,
    run_id: str = "run",
    id_key: bytes | None = None,
    threads: int | None = None,
    keep_state: bool = False,
    release_identifiers: bool = False,
    progress=print,
) -> LinkResult:
    """Link canonical person records. ``previous`` (record_id, person_id) keeps ids stable.
    ``release_identifiers``: drop every column of ``records`` but record_id, in place, once they
    are standardised, so that the identifiers are not held through training and scoring (a
    caller that keeps no other reference to them; 1M persons: ~0.4 GB less at the peak)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - t0 - sum(timings.values()), 2)

    validate_records(records)
    progress(f"standardising {records.height:,} records")
    raw, raw_of = distinct_raw(records)
    if release_identifiers and raw is not records:
        for column in [c for c in records.columns if c != "record_id"]:
            records.drop_in_place(column)
    features = standardise(raw)
    del raw
    nodes, node_of = collapse(features)
    del features
    node_of = raw_of.join(node_of.rename({"record_id": "raw_id"}), on="raw_id", how="left").drop("raw_id")
    lap("standardise")
    progress(f"  {nodes.height:,} distinct records after collapsing exact duplicates")

    # Splink sees compact node ids: long record ids (e.g. 64-hex pseudonyms) made its training
    # estimate a prior of ~1e-34 and score no pair at all (measured); external ids come back below.
    external = nodes["unique_id"]
    nodes = nodes.with_columns(unique_id=pl.format("n{}", pl.int_range(pl.len(), dtype=pl.Int64)))
    external_of = dict(zip(nodes["unique_id"].to_list(), external.to_list()))
    present = M.present_features(nodes)
    sample = M.training_sample(nodes, external)
    progress(f"training the model ({len(M.comparisons(present))} comparisons) on "
             + (f"a sample of {sample.height:,} distinct records" if sample.height < nodes.height else
                "every distinct record"))
    train_linker, train_db, _ = M.build_linker(sample, threads=threads, present=present)
    train_info = M.train(train_linker, present, progress=progress)
    trained = M.model_dict(train_linker)
    if run_dir is not None:
        M.save_charts(train_linker, Path(run_dir) / "charts")
    train_db.duckdb_con.close()
    del train_linker, train_db, sample
    linker, db_api, _ = M.build_linker(nodes, threads=threads, present=present, model=trained)
    train_info["training_records"] = min(nodes.height, M.TRAIN_SAMPLE_NODES)
    node_ids = external
    state_nodes = nodes.with_columns(unique_id=external) if keep_state else None
    del nodes
    lap("train")
    model = None
    if run_dir is not None:
        model = M.save_model(linker, Path(run_dir) / "model.json")
    progress("scoring candidate pairs")
    predictions = linker.inference.predict(threshold_match_probability=PREDICT_THRESHOLD, warning_mode="never")
    scored = scored_frame(db_api, predictions).with_columns(
        pl.col(c).cast(pl.String).replace_strict(external_of) for c in ("id_l", "id_r"))
    lap("predict")
    progress(f"  {scored.height:,} pairs at probability >= {PREDICT_THRESHOLD}")

    clustered, guard_metrics = C.cluster_edges(node_ids, scored, threshold=threshold, guard=guard)
    per_record = node_of.join(
        clustered.rename({"id": "node_id", "cluster_size": "nodes_in_cluster"}), on="node_id", how="left"
    )
    # exact duplicates collapsed into one node are certain matches of each other
    per_record = per_record.with_columns(cluster_size=pl.len().over("cluster_id")).with_columns(
        match_confidence=pl.when((pl.col("nodes_in_cluster") == 1) & (pl.col("cluster_size") > 1))
        .then(1.0)
        .otherwise(pl.col("match_confidence"))
    )
    ids, lineage = C.assign_stable_ids(per_record.select("record_id", "cluster_id"), previous, run_id=run_id,
                                       key=id_key)
    assignments = per_record.join(ids.select("record_id", "person_id", "id_status"), on="record_id", how="left")
    order = records.select(pl.col("record_id").cast(pl.String)).with_row_index("_o")
    assignments = order.join(assignments, on="record_id", how="left").sort("_o").drop("_o")
    lap("cluster")
    review = review_queue(scored, assignments.select("record_id", "person_id"))
    metrics = {
        "records": records.height,
        "nodes": node_ids.len(),
        "pairs_scored_above_predict_threshold": scored.height,
        "persons": int(assignments["person_id"].n_unique()),
        "review_pairs": review.height,
        "guard": guard_metrics,
        "training": train_info,
        "seconds": timings | {"total": round(time.perf_counter() - t0, 2)},
        "comparisons": [c["output_column_name"] for c in M.comparisons(present)],
        "blocking_rules": [name for name, _ in M.usable_rules(M.PREDICTION_BLOCKING_RULES, present)],
    }
    progress(f"linked {records.height:,} records into {metrics['persons']:,} persons "
             f"in {metrics['seconds']['total']:.1f} s")
    result = LinkResult(assignments=assignments, edges=scored, review=review, metrics=metrics, model=model,
                        linker=linker)
    result.metrics["lineage_rows"] = lineage.height
    result.lineage = lineage
    if keep_state:
        result.state = LinkState(nodes=state_nodes, node_of=node_of, model=M.model_dict(linker),
                                 assignments=assignments.select("record_id", "person_id"),
                                 tf_tables=tf_tables(state_nodes),
                                 edges=scored.select("id_l", "id_r", "match_probability"))

    return result
