"""Clustering scored pairs into persons, with a guard against chaining, and stable person ids.

Pure functions over polars frames (no I/O): the lakehouse persistence is wired elsewhere.

Clustering (``cluster_edges``)
    1. *core* components: connected components over edges with match probability
       >= ``CORE_THRESHOLD`` (near-certain links);
    2. weaker edges (``CLUSTER_THRESHOLD`` <= p < ``CORE_THRESHOLD``) may join two core
       components only with *cluster-level support*: at least ``MIN_BRIDGE_SUPPORT`` of the
       records of one of the two components have such an edge into the other. A lone weak
       edge between two multi-record persons (chaining) is rejected; a single record joining
       a person needs one edge.
    Guard metrics: components plain connected components would give, bridges rejected,
    largest cluster.

Stable ids (``assign_stable_ids``)
    A new cluster keeps the person_id of the previous person it shares most records with,
    when that is mutual (the previous person's records mostly went to this cluster):
    "continuing". Other clusters get new opaque ids. Lineage rows record merges (old id ->
    surviving id), splits (old id -> each new id that took some of its records) and retired
    ids, with the run id.
"""
from __future__ import annotations

import hmac
import secrets

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _cc

CLUSTER_THRESHOLD = 0.95  # match probability at which two records are the same person
CORE_THRESHOLD = 0.999  # links strong enough to cluster without support checks
MIN_BRIDGE_SUPPORT = 0.5  # share of one side's records that must link to the other side
REVIEW_BAND = (0.5, CLUSTER_THRESHOLD)  # uncertain pairs for clerical review

PERSON_ID_PREFIX = "P-"


def connected_components(n_nodes: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label (int) per node index 0..n-1 for undirected edges left[i]-right[i]."""
    if n_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    data = np.ones(len(left), dtype=np.int8)
    graph = coo_matrix((data, (left, right)), shape=(n_nodes, n_nodes)).tocsr()
    _, labels = _cc(graph, directed=False)
    return labels.astype(np.int64)


def cluster_edges(
    nodes: pl.Series | list[str],
    edges: pl.DataFrame,
    *,
    threshold: float = CLUSTER_THRESHOLD,
    core_threshold: float = CORE_THRESHOLD,
    min_support: float = MIN_BRIDGE_SUPPORT,
    guard: bool = True,
) -> tuple[pl.DataFrame, dict]:
    """Cluster ``nodes`` (ids) given ``edges`` (id_l, id_r, match_probability).

    Returns (frame id, cluster_id (int), match_confidence, cluster_size) and guard metrics.
    match_confidence: the highest probability linking the record to its cluster; for a
    record alone, 1 - the highest probability of any of its scored pairs (1.0 if none).
    """
    ids = pl.Series("id", nodes, dtype=pl.String).unique(maintain_order=True)
    index = pl.DataFrame({"id": ids, "ix": np.arange(ids.len(), dtype=np.int64)})
    e = (
        edges.select(pl.col("id_l").cast(pl.String), pl.col("id_r").cast(pl.String), pl.col("match_probability"))
        .join(index.rename({"id": "id_l", "ix": "a"}), on="id_l")
        .join(index.rename({"id": "id_r", "ix": "b"}), on="id_r")
        .filter(pl.col("a") != pl.col("b"))
    )
    n = ids.len()
    linked = e.filter(pl.col("match_probability") >= threshold)
    plain = connected_components(n, linked["a"].to_numpy(), linked["b"].to_numpy())
    if guard and core_threshold > threshold:
        core = linked.filter(pl.col("match_probability") >= core_threshold)
        core_labels = connected_components(n, core["a"].to_numpy(), core["b"].to_numpy())
        labels, rejected, accepted = _supported_merges(n, core_labels, linked, core_threshold, min_support)
    else:
        labels, rejected, accepted = plain, 0, 0
    out = index.with_columns(cluster_id=pl.Series(labels))
    out = out.with_columns(cluster_size=pl.len().over("cluster_id"))
    out = out.join(_confidence(e, out), on="id", how="left").with_columns(
        match_confidence=pl.when(pl.col("cluster_size") > 1)
        .then(pl.col("_in"))
        .otherwise(1.0 - pl.col("_out").fill_null(0.0))
    )
    metrics = {
        "records": int(n),
        "clusters": int(out["cluster_id"].n_unique()) if n else 0,
        "clusters_plain_connected_components": int(len(np.unique(plain))) if n else 0,
        "weak_bridges_rejected": int(rejected),
        "weak_merges_accepted": int(accepted),
        "largest_cluster": int(out["cluster_size"].max() or 0),
        "largest_cluster_plain": int(np.bincount(plain).max()) if n else 0,
        "threshold": threshold,
        "core_threshold": core_threshold,
        "min_bridge_support": min_support,
    }
    return out.select("id", "cluster_id", "match_confidence", "cluster_size"), metrics


def _supported_merges(n, core_labels, linked, core_threshold, min_support):
    sizes = np.bincount(core_labels)
    weak = linked.filter(pl.col("match_probability") < core_threshold)
    weak = weak.with_columns(
        ca=pl.Series(core_labels[weak["a"].to_numpy()]), cb=pl.Series(core_labels[weak["b"].to_numpy()])
    ).filter(pl.col("ca") != pl.col("cb"))
    if weak.height == 0:
        return core_labels, 0, 0
    # orient pairs (lo, hi) of components; count distinct records of each side with an edge
    weak = weak.with_columns(
        lo=pl.min_horizontal("ca", "cb"),
        hi=pl.max_horizontal("ca", "cb"),
        node_lo=pl.when(pl.col("ca") < pl.col("cb")).then(pl.col("a")).otherwise(pl.col("b")),
        node_hi=pl.when(pl.col("ca") < pl.col("cb")).then(pl.col("b")).otherwise(pl.col("a")),
    )
    pairs = weak.group_by("lo", "hi").agg(
        n_lo=pl.col("node_lo").n_unique(), n_hi=pl.col("node_hi").n_unique()
    )
    size_lo = sizes[pairs["lo"].to_numpy()]
    size_hi = sizes[pairs["hi"].to_numpy()]
    support = np.maximum(pairs["n_lo"].to_numpy() / size_lo, pairs["n_hi"].to_numpy() / size_hi)
    ok = support >= min_support
    m = len(sizes)
    merged = connected_components(m, pairs["lo"].to_numpy()[ok], pairs["hi"].to_numpy()[ok])
    return merged[core_labels], int((~ok).sum()), int(ok.sum())


def _confidence(e: pl.DataFrame, clusters: pl.DataFrame) -> pl.DataFrame:
    both = pl.concat([
        e.select(pl.col("id_l").alias("id"), pl.col("id_r").alias("other"), "match_probability"),
        e.select(pl.col("id_r").alias("id"), pl.col("id_l").alias("other"), "match_probability"),
    ])
    cl = clusters.select("id", "cluster_id")
    both = both.join(cl, on="id").join(cl.rename({"id": "other", "cluster_id": "other_cluster"}), on="other")
    return both.group_by("id").agg(
        _in=pl.col("match_probability").filter(pl.col("cluster_id") == pl.col("other_cluster")).max(),
        _out=pl.col("match_probability").filter(pl.col("cluster_id") != pl.col("other_cluster")).max(),
    )


# --------------------------------------------------------------------------- stable ids
def new_person_id(key: bytes, run_id: str, seed_record: str) -> str:
    """Opaque id: keyed HMAC of (run, the cluster's smallest record id). Not a record id and
    not reversible without the key."""
    digest = hmac.digest(key, f"{run_id}\x1f{seed_record}".encode(), "sha256")  # one C call: 3x hmac.new's speed
    return PERSON_ID_PREFIX + digest.hex()[:16]


def assign_stable_ids(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    *,
    run_id: str,
    key: bytes | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Person ids for ``clusters`` (record_id, cluster_id) given ``previous`` (record_id,
    person_id) from the last run (or None).

    Returns (record_id, person_id, cluster_id, id_status) and the lineage frame
    (old_person_id, new_person_id, reason, run_id) where reason is ``merged`` (old id absorbed
    into a surviving person), ``split`` (some of the old person's records now form another
    person) or ``retired`` (none of its records remain). id_status per record: ``continuing``
    or ``new``.
    """
    key = key if key is not None else secrets.token_bytes(32)
    cur = clusters.select(pl.col("record_id").cast(pl.String), "cluster_id")
    if previous is None or previous.height == 0:
        previous = pl.DataFrame(schema={"record_id": pl.String, "person_id": pl.String})
    prev = previous.select(pl.col("record_id").cast(pl.String), pl.col("person_id").cast(pl.String))
    overlap = (
        cur.join(prev, on="record_id", how="inner")
        .group_by("cluster_id", "person_id")
        .agg(n=pl.len())
    )
    prev_sizes = prev.group_by("person_id").agg(prev_n=pl.len())
    # best old id for each cluster and best cluster for each old id (ties: smaller id wins)
    best_for_cluster = overlap.sort(["cluster_id", "n", "person_id"], descending=[False, True, False]).group_by(
        "cluster_id", maintain_order=True
    ).first()
    best_for_person = overlap.sort(["person_id", "n", "cluster_id"], descending=[False, True, False]).group_by(
        "person_id", maintain_order=True
    ).first()
    continuing = best_for_cluster.join(
        best_for_person.select("person_id", pl.col("cluster_id").alias("_c")), on="person_id"
    ).filter(pl.col("_c") == pl.col("cluster_id")).select("cluster_id", "person_id")

    seeds = cur.group_by("cluster_id").agg(seed=pl.col("record_id").min())
    ids = seeds.join(continuing, on="cluster_id", how="left")
    new_mask = ids["person_id"].is_null()
    fresh = [new_person_id(key, run_id, s) for s in ids.filter(new_mask)["seed"].to_list()]
    ids = ids.with_columns(
        id_status=pl.when(new_mask).then(pl.lit("new")).otherwise(pl.lit("continuing")),
    )
    ids = ids.with_columns(
        person_id=pl.when(new_mask)
        .then(pl.Series(_fill_sparse(new_mask.to_list(), fresh), dtype=pl.String))
        .otherwise(pl.col("person_id"))
    )
    mapping = cur.join(ids.select("cluster_id", "person_id", "id_status"), on="cluster_id", how="left")

    # lineage
    linked = overlap.join(ids.select("cluster_id", pl.col("person_id").alias("new_person_id")), on="cluster_id")
    moved = linked.filter(pl.col("person_id") != pl.col("new_person_id"))
    survivors = set(continuing["person_id"].to_list())
    lineage_rows = moved.with_columns(
        reason=pl.when(pl.col("person_id").is_in(list(survivors)))
        .then(pl.lit("split"))
        .otherwise(pl.lit("merged"))
    ).select(pl.col("person_id").alias("old_person_id"), "new_person_id", "reason")
    # an old id whose records all moved into a new (not continuing) id that came from
    # several old persons is a merge into a new id; an old id with no remaining record retires
    remaining = set(overlap["person_id"].unique().to_list())
    retired = prev_sizes.filter(~pl.col("person_id").is_in(list(remaining))).select(
        pl.col("person_id").alias("old_person_id"),
        pl.lit(None, pl.String).alias("new_person_id"),
        pl.lit("retired").alias("reason"),
    )
    lineage = pl.concat([lineage_rows, retired]).unique().sort("old_person_id", "new_person_id", nulls_last=True)
    lineage = lineage.with_columns(run_id=pl.lit(run_id))
    return mapping.select("record_id", "person_id", "cluster_id", "id_status"), lineage


def _fill_sparse(mask: list[bool], values: list[str]) -> list[str | None]:
    it = iter(values)
    return [next(it) if m else None for m in mask]
