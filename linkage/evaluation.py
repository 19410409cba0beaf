"""Linkage quality against ground truth: pairwise precision / recall / F1, B-cubed, blocking
recall, recall per source pair; and the same for two reference linkers on the same records:

* ``deterministic_baseline``: exact match on normalised forename + surname + dob, or on a
  (valid) NHS number — what many agencies do today;
* ``plain_splink``: a Splink 5 model with docs-style settings (NameComparison, DateOfBirth,
  Postcode, exact sex and identifiers, block_on rules, u sampling + EM) on the raw
  canonical fields, clustered at 0.95.

``evaluate_landing`` is the entry point for ``tapestry link-eval`` and Dagster metadata; it
returns a plain dict of numbers (nothing identifiable).
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from linkage import cluster as C
from linkage import model as M
from linkage.standardise import standardise


def _pairs(counts: pl.Series) -> int:
    c = counts.cast(pl.Int64)
    return int((c * (c - 1) // 2).sum())


def pairwise_metrics(pred: pl.Series, truth: pl.Series) -> dict:
    """Pairwise P/R/F1 and B-cubed P/R/F1 of a predicted clustering vs the true one."""
    df = pl.DataFrame({"p": pred.cast(pl.String), "t": truth.cast(pl.String)})
    cells = df.group_by("p", "t").agg(n=pl.len())
    tp = _pairs(cells["n"])
    pp = _pairs(df.group_by("p").agg(n=pl.len())["n"])
    tt = _pairs(df.group_by("t").agg(n=pl.len())["n"])
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # B-cubed: per record, |same pred & same truth| / |same pred| and / |same truth|
    sizes = cells.with_columns(
        np_=pl.col("n").sum().over("p"), nt=pl.col("n").sum().over("t")
    )
    n = df.height
    b_p = float((sizes["n"] * sizes["n"] / sizes["np_"]).sum() / n) if n else 1.0
    b_r = float((sizes["n"] * sizes["n"] / sizes["nt"]).sum() / n) if n else 1.0
    b_f = 2 * b_p * b_r / (b_p + b_r) if b_p + b_r else 0.0
    return {
        "pairwise_precision": round(precision, 5),
        "pairwise_recall": round(recall, 5),
        "pairwise_f1": round(f1, 5),
        "bcubed_precision": round(b_p, 5),
        "bcubed_recall": round(b_r, 5),
        "bcubed_f1": round(b_f, 5),
        "true_pairs": tt,
        "predicted_pairs": pp,
        "true_positive_pairs": tp,
        "records": n,
        "true_persons": int(df["t"].n_unique()),
        "predicted_persons": int(df["p"].n_unique()),
    }


def recall_by_source_pair(sources: pl.Series, pred: pl.Series, truth: pl.Series) -> dict[str, float]:
    """Share of true pairs (by pair of sources) that end up in the same predicted person."""
    df = pl.DataFrame({"s": sources, "p": pred.cast(pl.String), "t": truth.cast(pl.String)})
    con = duckdb.connect()
    try:
        con.register("d", df.to_arrow())
        rows = con.execute(
            """
            WITH c AS (SELECT t, s, p, count(*) AS n FROM d GROUP BY ALL)
            SELECT least(a.s, b.s) || ' ~ ' || greatest(a.s, b.s) AS pair,
                   sum(CASE WHEN a.s = b.s AND a.p = b.p THEN a.n * (a.n - 1) / 2
                            WHEN a.p = b.p THEN a.n * b.n / 2.0 ELSE 0 END) AS hit,
                   sum(CASE WHEN a.s = b.s AND a.p = b.p THEN a.n * (a.n - 1) / 2
                            ELSE a.n * b.n / 2.0 END) AS total
            FROM c a JOIN c b ON a.t = b.t
            GROUP BY ALL
            """
        ).fetchall()
    finally:
        con.close()
    # cells (truth, source, predicted) are unique: a cell paired with itself holds n(n-1)/2
    # pairs; two different cells are met twice by the self-join, hence the halves
    out = {}
    for pair, hit, total in rows:
        if total and total > 0:
            out[pair] = round(float(hit) / float(total), 5)
    return dict(sorted(out.items()))


def blocking_recall(features: pl.DataFrame, truth: pl.Series, rules=None) -> dict:
    """Share of true pairs (among records with a person) that satisfy at least one
    prediction blocking rule, overall and per rule; and how many record pairs each rule alone
    generates (a self-join count on ``features``: rows are records, not collapsed nodes)."""
    rules = list(rules or M.usable_rules(M.PREDICTION_BLOCKING_RULES, set(features.columns)))
    f = features.with_columns(truth=truth.cast(pl.String)).rename({"source_dataset": "source"})
    con = duckdb.connect()
    try:
        con.register("f", f.drop("forename_aliases").to_arrow())
        con.execute("CREATE TEMP TABLE tp AS SELECT l.*, " + ", ".join(
            f"coalesce({sql}, false) AS r{i}" for i, (_, sql) in enumerate(rules))
            + " FROM f l JOIN f r ON l.truth = r.truth AND l.unique_id < r.unique_id")
        cover = " OR ".join(f"r{i}" for i in range(len(rules))) or "false"
        total, covered = con.execute(f"SELECT count(*), count(*) FILTER ({cover}) FROM tp").fetchone()
        per_rule = {}
        for i, (name, sql) in enumerate(rules):
            hits = con.execute(f"SELECT count(*) FILTER (r{i}) FROM tp").fetchone()[0]
            # comparisons generated by this rule alone (record pairs, l.id < r.id)
            pairs = con.execute(
                f"SELECT count(*) FROM f l JOIN f r ON ({sql}) AND l.unique_id < r.unique_id").fetchone()[0]
            per_rule[name] = {"true_pair_recall": round(hits / total, 5) if total else 1.0,
                              "comparisons": int(pairs)}
    finally:
        con.close()
    return {"blocking_recall": round(covered / total, 5) if total else 1.0, "true_pairs": int(total),
            "rules": per_rule}


# --------------------------------------------------------------------------- reference linkers
def deterministic_baseline(features: pl.DataFrame) -> pl.Series:
    """Cluster id per record: exact normalised forename + surname + dob, or NHS number."""
    ids = features["unique_id"]
    index = pl.DataFrame({"unique_id": ids, "ix": np.arange(ids.len())})
    f = features.join(index, on="unique_id")
    key = pl.concat_str(["forename_std", "surname_std", "dob"], separator="|")
    edges = []
    for expr in (key, pl.col("nhs_number")):
        g = f.select("ix", k=expr).drop_nulls().with_columns(root=pl.col("ix").min().over("k"))
        edges.append(g.select("ix", "root"))
    e = pl.concat(edges)
    labels = C.connected_components(ids.len(), e["ix"].to_numpy(), e["root"].to_numpy())
    return pl.Series("cluster", labels)


def plain_splink(records: pl.DataFrame, *, threshold: float = 0.95, progress=print) -> pl.Series:
    """Docs-style Splink 5 model on the raw canonical columns (lower-cased only)."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    cols = [c for c in ("forename", "surname", "dob", "sex", "postcode", "nhs_number", "pnc_id", "upn", "crn")
            if c in records.columns]
    df = records.select(
        pl.col("record_id").alias("unique_id"),
        *[pl.col(c).cast(pl.String).str.to_lowercase().str.strip_chars().alias(c) for c in cols],
    )
    comparisons = [cl.NameComparison("forename"), cl.NameComparison("surname"),
                   cl.DateOfBirthComparison("dob", input_is_string=True),
                   cl.PostcodeComparison("postcode"), cl.ExactMatch("sex")]
    comparisons += [cl.ExactMatch(c) for c in ("nhs_number", "pnc_id", "upn", "crn") if c in cols]
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[
            block_on("forename", "dob"), block_on("surname", "dob"), block_on("forename", "surname"),
            block_on("nhs_number"), block_on("postcode", "surname"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    sdf = db_api.register(df.to_arrow(), dataset_display_name="plain")
    linker = Linker(sdf, settings, log_level=M.SPLINK_LOG_LEVEL)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("forename", "surname", "dob"), block_on("nhs_number")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=M.U_MAX_PAIRS, seed=M.SEED)
    for rule in (block_on("forename", "surname"), block_on("dob")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule, max_pairs=M.EM_MAX_PAIRS)
    pred = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, threshold)
    out = pl.from_arrow(db_api.duckdb_con.execute(
        f"SELECT unique_id, cluster_id FROM {clusters.physical_name}").arrow())
    joined = df.select("unique_id").join(out, on="unique_id", how="left", maintain_order="left")
    return joined["cluster_id"].fill_null(joined["unique_id"])


# --------------------------------------------------------------------------- entry point
def evaluate_records(
    records: pl.DataFrame,
    truth_uid: pl.Series,
    *,
    run_dir: Path | None = None,
    with_plain_splink: bool = True,
    progress=print,
) -> dict:
    """Link ``records`` (canonical schema) and score against ``truth_uid`` (person per record)."""
    from linkage.pipeline import link_records

    t0 = time.perf_counter()
    result = link_records(records, run_dir=run_dir, progress=progress)
    link_seconds = time.perf_counter() - t0
    assignments = records.select("record_id", "source").join(
        result.assignments.select("record_id", "person_id"), on="record_id", how="left", maintain_order="left"
    )
    features = standardise(records)
    report: dict = {
        "tapestry": pairwise_metrics(assignments["person_id"], truth_uid)
        | {"link_seconds": round(link_seconds, 2), "guard": result.metrics["guard"],
           "review_pairs": result.metrics["review_pairs"]},
    }
    report["tapestry"]["recall_by_source_pair"] = recall_by_source_pair(
        assignments["source"].fill_null("input"), assignments["person_id"], truth_uid)
    progress("measuring blocking recall")
    report["blocking"] = blocking_recall(features, truth_uid)
    # the same clustering without the chaining guard, from the same scored pairs
    report["guard_effect"] = _guard_effect(records, result, truth_uid)
    progress("deterministic baseline")
    base = deterministic_baseline(features)
    report["baseline_deterministic"] = pairwise_metrics(base, truth_uid)
    report["baseline_deterministic"]["recall_by_source_pair"] = recall_by_source_pair(
        assignments["source"].fill_null("input"), base, truth_uid)
    if with_plain_splink:
        progress("plain Splink 5 model (docs-style settings)")
        t1 = time.perf_counter()
        plain = plain_splink(records, progress=progress)
        report["plain_splink"] = pairwise_metrics(plain, truth_uid) | {
            "link_seconds": round(time.perf_counter() - t1, 2)}
    report["link_metrics"] = result.metrics
    return report


def _guard_effect(records: pl.DataFrame, result, truth_uid: pl.Series) -> dict:
    """Pairwise figures with the chaining guard off (plain connected components at the
    same threshold over the same scored pairs)."""
    from linkage.pipeline import collapse

    _, node_of = collapse(standardise(records))
    clustered, metrics = C.cluster_edges(node_of["node_id"].unique(), result.edges, guard=False)
    per_record = node_of.join(clustered.rename({"id": "node_id"}), on="node_id", how="left")
    aligned = records.select("record_id").join(per_record, on="record_id", how="left", maintain_order="left")
    return {"without_guard": pairwise_metrics(aligned["cluster_id"], truth_uid),
            "largest_cluster_without_guard": metrics["largest_cluster"]}


def evaluate_lake(settings, truth: Path, *, run_dir: Path | None = None, with_plain_splink: bool = True,
                  progress=print) -> dict:
    """The lakehouse's current person records (raw + vault, decrypted in memory), linked afresh
    and scored against the generator's truth (``truth/records.parquet``). Writes nothing to the
    lake; with ``run_dir`` the model and charts go there."""
    from governance.keys import Keyring
    from linkage.lake import LAKE_ONLY, current_rows, person_records, truth_persons
    from tapestry import lakehouse

    with lakehouse.connect(settings, read_only=True) as con:
        records = person_records(con, Keyring.open(settings))
        rows = current_rows(con)
    joined = records.join(truth_persons(rows, Path(truth)), on="record_id", how="left", maintain_order="left")
    keep = joined["person_uid"].is_not_null()
    scored = joined.filter(keep)
    report = evaluate_records(scored.drop("person_uid", *LAKE_ONLY), scored["person_uid"],
                              run_dir=run_dir, with_plain_splink=with_plain_splink, progress=progress)
    report["input"] = {"records": scored.height, "records_without_truth": int((~keep).sum())}
    return report
