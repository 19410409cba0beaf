"""Incremental linking: a new delivery scored against the linked population and within itself
with the saved model (Splink 5 ``predict_between`` / ``predict_within``), re-clustering only
the persons it touches; and the review queue of uncertain pairs.

State kept from a full run (``link_records(..., keep_state=True).state``, a ``LinkState``):

============  ==========================================================================
nodes         standardised features of the distinct records (``unique_id`` = node id)
node_of       record_id -> node_id (exact duplicates share a node)
assignments   record_id -> person_id (the stable ids)
model         the trained Splink model (settings dict with m/u, prior, blocking rules)
tf_tables     term-frequency tables {column: frame(column, tf_column)} of the population
edges         scored pairs among the nodes (id_l, id_r, match_probability >= 0.5)
============  ==========================================================================

``link_increment(state, new_records)``:
1. standardise the new records, collapse exact duplicates (with each other and with existing
   nodes: a repeated record joins its node and person directly);
2. score new x existing and new x new with the saved model and the population's registered
   term-frequency tables (``score_delivery``: one ``predict_between`` of (candidates + delivery)
   x delivery, the pairs ``predict_between`` + ``predict_within`` would give);
3. affected persons = existing persons with a pair >= the cluster threshold to a new node;
   re-cluster their nodes + the new nodes only (same chaining guard as the full run), from the
   stored pairs among them (``LinkState.edges``), or re-scored when the state has none;
4. stable ids over the affected records (continuing / merged / split lineage as in a full
   run); every other person keeps its id untouched.
Cost: blocking scans the existing nodes once (hash join); scoring and clustering grow with the
delivery and the persons it touches, not with the population.

Known differences from a full re-link (documented, and tested on small data): the model is not
re-trained, term frequencies are the state's (in memory: the population's before the delivery;
the lake's include it), and existing pairs are not re-scored (stored pairs keep the probabilities
of the run that scored them), so a weak bridge rejected in the full run stays rejected.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from linkage import cluster as C
from linkage import model as M
from linkage.scoring import compiled_scoring, register, scored_frame, scoring_linker
from linkage.standardise import identity_columns, standardise

TF_COLUMNS = ("forename_std", "surname_std", "dob", "postcode_std")

# Review queue columns (``review_queue``):
REVIEW_COLUMNS_DOC = {
    "record_id_l": "a record of the pair (the representative of its exact-duplicate group)",
    "record_id_r": "the other record",
    "person_id_l": "person id now assigned to record_id_l",
    "person_id_r": "person id now assigned to record_id_r",
    "same_person": "whether clustering put both in one person (true: linked, to confirm; false: not linked)",
    "match_probability": "model probability that the two records are one person",
    "match_weight": "total match weight (log2 Bayes factor incl. the prior)",
    "mw_<field>": "match weight contributed by each compared field (forename, surname, dob, sex, "
                  "postcode, identifiers...): positive = evidence for, negative = against, 0 = null",
    "mw_tf_adj_<field>": "term-frequency adjustment of that weight (rare names count for more)",
    "band": "'uncertain' (always, kept for the clerical-review screen's filters)",
}


@dataclass
class LinkState:
    nodes: pl.DataFrame
    node_of: pl.DataFrame
    assignments: pl.DataFrame
    model: dict
    tf_tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    node_keys: pl.DataFrame | None = None  # unique_id, _k: hash of the features (finds repeats)
    node_person: pl.DataFrame | None = None  # node_id -> person_id
    # scored pairs among the nodes (id_l, id_r, match_probability >= the predict threshold), at
    # least those within each person; without them an increment re-scores the persons it touches
    edges: pl.DataFrame | None = None

    def __post_init__(self):
        if self.node_keys is None:
            self.node_keys = node_keys(self.nodes)
        if self.node_person is None:
            self.node_person = self.node_of.join(self.assignments.select("record_id", "person_id"),
                                                 on="record_id").group_by("node_id").agg(pl.col("person_id").first())


@dataclass
class IncrementResult:
    assignments: pl.DataFrame  # record_id, person_id, id_status for the new records and every re-assigned one
    lineage: pl.DataFrame  # old_person_id, new_person_id, reason, run_id
    review: pl.DataFrame  # uncertain pairs involving the delivery (see REVIEW_COLUMNS_DOC)
    state: LinkState  # updated state (population + delivery)
    metrics: dict
    edges: pl.DataFrame  # pairs scored with a delivered node: id_l, id_r, match_probability (>= predict threshold)


def node_keys(nodes: pl.DataFrame) -> pl.DataFrame:
    # n_records differs between a delivered node and the identical existing one: not part of it
    return nodes.select("unique_id", _k=pl.struct(identity_columns(nodes.columns)).hash(seed=7))


@dataclass(frozen=True)
class CandidateKey:
    """Existing nodes sharing ``existing`` columns' values with a delivered node's ``delivery``
    columns may be paired by a prediction blocking rule."""
    existing: tuple[str, ...]
    delivery: tuple[str, ...]
    existing_no_dob: bool = False  # only existing nodes without a date of birth
    delivery_no_dob: bool = False  # only delivered nodes without one


# Candidate filter for predict_between: the key of each prediction blocking rule (by its SQL, as
# the saved model lists it; the fall-back rules of ``M.usable_rules`` included). Existing nodes
# sharing a key with a delivered node are a superset of what the rules pair, so scoring only
# these is the same as scoring the whole population, at a cost that follows the delivery.
_MD = "_dob_month_day"
_NAME = ("forename_canon", "surname_sx")
_NAME_AREA = (*_NAME, "postcode_area")
_KEYS_BY_RULE_NAME: dict[str, CandidateKey] = {
    **{c: CandidateKey((c,), (c,)) for c in ("nhs_number", "pnc_id", "upn", "crn", "source_person_id")},
    "dob+forename_sx": CandidateKey(("dob", "forename_sx"), ("dob", "forename_sx")),
    "dob+surname_sx": CandidateKey(("dob", "surname_sx"), ("dob", "surname_sx")),
    "forename_canon+surname_sx+dob_year": CandidateKey((*_NAME, "dob_year"), (*_NAME, "dob_year")),
    "forename_canon+surname_sx+dob_month_day": CandidateKey((*_NAME, _MD), (*_NAME, _MD)),
    "forename_canon+surname_sx+postcode_area+no_dob_left": CandidateKey(_NAME_AREA, _NAME_AREA, existing_no_dob=True),
    "forename_canon+surname_sx+postcode_area+no_dob_right": CandidateKey(_NAME_AREA, _NAME_AREA,
                                                                         delivery_no_dob=True),
    "dob+postcode": CandidateKey(("dob", "postcode_std"), ("dob", "postcode_std")),
    "dob_swapped+surname_sx": CandidateKey(("dob_swapped", "surname_sx"), ("dob", "surname_sx")),
    "name_swap+dob_year": CandidateKey(("forename_sx", "surname_sx", "dob_year"), ("surname_sx", "forename_sx",
                                                                                   "dob_year")),
    "forename_canon+postcode": CandidateKey(("forename_canon", "postcode_std"), ("forename_canon", "postcode_std")),
    # fall-backs
    "forename_canon+surname_sx": CandidateKey(_NAME, _NAME),
    "forename_canon+surname_sx+no_dob_left": CandidateKey(_NAME, _NAME, existing_no_dob=True),
    "forename_canon+surname_sx+no_dob_right": CandidateKey(_NAME, _NAME, delivery_no_dob=True),
}
CANDIDATE_KEYS: dict[str, CandidateKey] = {
    sql: _KEYS_BY_RULE_NAME[name]
    for name, sql in (*M.PREDICTION_BLOCKING_RULES, M.NAME_RULE, *M.NO_DOB_NAME_RULES)}


def model_rules(model: dict) -> list[str]:
    """The prediction blocking rules (SQL) of a saved Splink model."""
    return [r["blocking_rule"] if isinstance(r, dict) else r for r in model["blocking_rules_to_generate_predictions"]]


def with_key_columns(nodes: pl.DataFrame) -> pl.DataFrame:
    """The derived columns candidate keys use (dob month-day)."""
    dob = pl.col("dob") if "dob" in nodes.columns else pl.lit(None, pl.String)
    return nodes.with_columns(dob.str.slice(5, 5).alias(_MD))


def _side(frame: pl.DataFrame, no_dob: bool) -> pl.DataFrame:
    return frame.filter(pl.col("dob").is_null()) if no_dob and "dob" in frame.columns else frame


def _rule_keys(rules: list[str] | None) -> list[CandidateKey | None]:
    return [CANDIDATE_KEYS.get(sql) for sql in (rules if rules is not None else
                                                [sql for _, sql in M.PREDICTION_BLOCKING_RULES])]


# A rule's key hash: each column hashed once (the same value gives the same hash in any column),
# then folded in key order, h = (h * _MIX) ^ h_column with wrapping arithmetic. Half the CPU of
# hashing each key's columns as a struct (1M persons: 0.18 -> 0.09 s). A null hashes to a fixed
# value: the delivery's side drops keys with a null part, so the population's can keep them (they
# match nothing but by collision, which only adds a candidate).
_MIX = 0x9E3779B97F4A7C15


def _column_hashes(frame: pl.DataFrame, columns) -> pl.DataFrame:
    return frame.select(pl.col(c).hash(seed=0) for c in dict.fromkeys(columns))


def _key_hash(columns: tuple[str, ...], n: int) -> pl.Expr:
    folded = pl.lit(n + 1, pl.UInt64)
    for column in columns:
        folded = (folded * pl.lit(_MIX, pl.UInt64)) ^ pl.col(column)
    return folded


def population_key_hashes(existing: pl.DataFrame, rules: list[str] | None = None) -> pl.DataFrame | None:
    """The population's side of ``candidate_existing``, which does not depend on the delivery
    (so it can be computed while the delivery is read): column ``_k<n>`` = the hash of rule n's
    key (null where a rule for nodes without a dob cannot pair the node); None when a rule has no
    known key."""
    keys = _rule_keys(rules)
    if None in keys:
        return None
    e = with_key_columns(existing)
    usable = {n: key for n, key in enumerate(keys) if set(key.existing) <= set(e.columns)}
    if not usable:
        return pl.DataFrame()
    hashed = _column_hashes(e, [c for key in usable.values() for c in key.existing])
    no_dob = e["dob"].is_null() if "dob" in e.columns else pl.repeat(True, e.height, eager=True)
    return hashed.with_columns(_no_dob=no_dob).select(**{
        f"_k{n}": pl.when(pl.col("_no_dob")).then(_key_hash(key.existing, n)) if key.existing_no_dob
        else _key_hash(key.existing, n) for n, key in usable.items()})


def candidate_existing(existing: pl.DataFrame, delivery: pl.DataFrame, rules: list[str] | None = None,
                       hashes: pl.DataFrame | None = None) -> pl.DataFrame:
    """Existing nodes that one of the prediction blocking ``rules`` (SQL; default: every rule of
    ``M.PREDICTION_BLOCKING_RULES``) may pair with a delivered node. Keys are compared by 64-bit
    hash in one pass over the population (``hashes``: its ``population_key_hashes``, when the
    caller has them): a collision only adds a candidate. A rule without a known key makes every
    node a candidate."""
    keys = _rule_keys(rules)
    if None in keys:
        return existing
    if hashes is None:
        hashes = population_key_hashes(existing, rules)
    d = with_key_columns(delivery)
    conditions = []
    for n, key in enumerate(keys):
        if f"_k{n}" not in hashes.columns or not set(key.delivery) <= set(d.columns):
            continue
        delivered = _column_hashes(_side(d, key.delivery_no_dob).drop_nulls(list(key.delivery)), key.delivery
                                   ).select(_key_hash(key.delivery, n))[:, 0].unique()
        conditions.append(pl.col(f"_k{n}").is_in(delivered.implode()).fill_null(False))
    if not conditions:
        return existing
    return existing.filter(hashes.select(pl.any_horizontal(conditions))[:, 0])


def delivery_nodes(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A delivery's distinct standardised records (nodes) and record_id -> node_id."""
    from linkage.pipeline import collapse, distinct_raw

    raw, raw_of = distinct_raw(records)
    nodes, node_of = collapse(standardise(raw))
    return nodes, raw_of.join(node_of.rename({"record_id": "raw_id"}), on="raw_id").drop("raw_id")


def tf_tables(nodes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Term-frequency tables as Splink computes them: share of non-null values."""
    return tf_from_counts([value_counts(nodes)], [nodes])


_TF_SEED = 0


def value_counts(nodes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Non-null value counts of the term-frequency columns, by a 64-bit hash of the value:
    {column: frame(_h, n)}. Counting hashes instead of the strings takes 42 ms of CPU instead of
    72 at 1M persons (an incremental run counts the whole population beside its own work); two
    values of one hash would share a count (~1e-8 odds at a million values)."""
    columns = [col for col in TF_COLUMNS if col in nodes.columns]
    lazy = nodes.lazy()  # the counts in parallel
    return dict(zip(columns, pl.collect_all([
        lazy.filter(pl.col(col).is_not_null()).select(_h=pl.col(col).hash(seed=_TF_SEED)).group_by("_h").len("n")
        for col in columns])))


def tf_from_counts(parts: list[dict[str, pl.DataFrame]], frames: list[pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Term-frequency tables {column: frame(column, tf_column)} of the values in ``frames`` (those
    Splink will look up), over the union of the node sets these ``value_counts`` came from."""
    out = {}
    for col in TF_COLUMNS:
        counts = [part[col] for part in parts if col in part]
        values = [frame.select(col) for frame in frames if col in frame.columns]
        if not counts or not values:
            continue
        total = sum(int(c["n"].sum()) for c in counts)
        present = pl.concat(values).drop_nulls().unique().with_columns(_h=pl.col(col).hash(seed=_TF_SEED))
        if not total or not present.height:
            continue
        n = pl.concat(counts).filter(pl.col("_h").is_in(present["_h"].implode())).group_by("_h").agg(pl.col("n").sum())
        out[col] = present.join(n, on="_h").select(col, (pl.col("n") / total).alias(f"tf_{col}"))
    return out


def review_queue(scored: pl.DataFrame, assignments: pl.DataFrame, *, band=None) -> pl.DataFrame:
    """Uncertain pairs (``band[0] <= p < band[1]``) with per-field match weights and the person
    ids now assigned; columns in ``REVIEW_COLUMNS_DOC``. ``scored`` holds id_l, id_r,
    match_probability, match_weight, mw_*; ``assignments`` record_id, person_id."""
    lo, hi = band or C.REVIEW_BAND
    mw = [c for c in scored.columns if c.startswith("mw_") and c != "match_weight"]
    pairs = scored.filter((pl.col("match_probability") >= lo) & (pl.col("match_probability") < hi))
    ids = assignments.select(pl.col("record_id").cast(pl.String), "person_id")
    out = (
        pairs.select(pl.col("id_l").cast(pl.String).alias("record_id_l"),
                     pl.col("id_r").cast(pl.String).alias("record_id_r"), "match_probability", "match_weight", *mw)
        .join(ids.rename({"record_id": "record_id_l", "person_id": "person_id_l"}), on="record_id_l", how="left")
        .join(ids.rename({"record_id": "record_id_r", "person_id": "person_id_r"}), on="record_id_r", how="left")
        .with_columns(same_person=pl.col("person_id_l") == pl.col("person_id_r"), band=pl.lit("uncertain"))
    )
    return out.select("record_id_l", "record_id_r", "person_id_l", "person_id_r", "same_person",
                      "match_probability", "match_weight", *mw, "band").sort("match_probability", descending=True)


_NO_PAIRS = {"id_l": pl.String, "id_r": pl.String, "match_probability": pl.Float64, "match_weight": pl.Float64}


def score_delivery(candidates: pl.DataFrame, new_nodes: pl.DataFrame, model: dict,
                   tfs: dict[str, pl.DataFrame], cache_dir: Path | None = None) -> pl.DataFrame:
    """Delivered nodes scored against the candidate existing nodes and among themselves with the
    saved model: id_l, id_r, match_probability, match_weight, mw_* for the pairs at or above the
    predict threshold. One Splink ``predict_between`` (candidates + delivery) x delivery, which
    costs ~0.1 s less than ``predict_between`` and ``predict_within`` (the same pairs and weights,
    measured at 1M). Its rules pair a delivered node on the left (the delivery's copy) only with
    the delivered nodes after it: not with itself, and each pair of delivered nodes once, as
    id_l < id_r (1M: 80,330 -> 67,340 pairs compared). Run as Splink's SQL compiled once per
    model and schema (``linkage.scoring``; ``cache_dir``: where the compiled SQL is kept)."""
    if new_nodes.height == 0:
        return pl.DataFrame(schema=_NO_PAIRS)
    frames = scoring_frames(candidates, new_nodes)
    return _delivery_scoring(model, frames, tfs, cache_dir).run(frames, tfs)


def scoring_frames(candidates: pl.DataFrame, new_nodes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """What ``score_delivery`` scores: "existing" (candidates + delivery) x "delivery"."""
    delivery = new_nodes.select(candidates.columns).with_columns(_delivered=pl.lit(True))
    return {"existing": pl.concat([candidates.with_columns(_delivered=pl.lit(False)), delivery]),
            "delivery": delivery}


def prepare_delivery_scoring(model: dict, nodes: pl.DataFrame, cache_dir: Path) -> None:
    """Compile ``score_delivery``'s SQL for nodes of this schema ahead, into ``cache_dir`` (the full
    link, for the incremental runs after it)."""
    empty = nodes.head(0)
    tfs = {c: pl.DataFrame(schema={c: nodes.schema[c], f"tf_{c}": pl.Float64})
           for c in TF_COLUMNS if c in nodes.columns}
    _delivery_scoring(model, scoring_frames(empty, empty), tfs, cache_dir)


def _delivery_scoring(model: dict, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame],
                      cache_dir: Path | None):
    """The compiled scoring ``score_delivery`` runs (one place, so that compiling ahead and scoring
    ask for the same digest)."""
    from linkage.pipeline import PREDICT_THRESHOLD

    return compiled_scoring(_each_delivered_pair_once(model), frames, tfs, PREDICT_THRESHOLD, cache_dir)


def _each_delivered_pair_once(model: dict) -> dict:
    """The model with every prediction rule also requiring ``_delivered`` on the left to pair
    only with a greater unique id on the right (``score_delivery``); the rules of the saved model
    otherwise unchanged."""
    once = "(NOT l._delivered OR l.unique_id < r.unique_id)"
    rules = [{**rule, "blocking_rule": f"({rule['blocking_rule']}) AND {once}"} if isinstance(rule, dict)
             else f"({rule}) AND {once}" for rule in model["blocking_rules_to_generate_predictions"]]
    return {**model, "blocking_rules_to_generate_predictions": rules}


def _score_within(nodes: pl.DataFrame, model: dict, tfs: dict[str, pl.DataFrame]) -> pl.DataFrame:
    from linkage.pipeline import PREDICT_THRESHOLD

    con, db_api, linker, _ = scoring_linker({"nodes": nodes}, model, tfs)
    try:
        return scored_frame(db_api, linker.inference.predict_within(
            register(db_api, nodes, "affected", with_source_dataset=True),
            threshold_match_probability=PREDICT_THRESHOLD, warning_mode="never"))
    finally:
        con.close()


def link_increment(
    state: LinkState,
    new_records: pl.DataFrame,
    *,
    run_id: str = "increment",
    id_key: bytes | None = None,
    threshold: float = C.CLUSTER_THRESHOLD,
    guard: bool = True,
    progress=print,
    prepared: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    scored: pl.DataFrame | None = None,
) -> IncrementResult:
    """Link ``new_records`` (canonical schema; record ids not already linked) into ``state``.
    ``prepared``: ``delivery_nodes(new_records)`` and ``scored``: ``score_delivery`` of those
    nodes (less the ones identical to existing nodes) against their candidates, when the caller
    has already computed them."""
    from linkage.pipeline import validate_records

    t0 = time.perf_counter()
    validate_records(new_records, "delivery")
    clash = new_records.select(pl.col("record_id").cast(pl.String)).join(state.node_of, on="record_id", how="semi")
    if clash.height:
        raise ValueError(f"delivery: {clash.height} record id(s) already linked")
    new_nodes, new_node_of = prepared if prepared is not None else delivery_nodes(new_records)
    new_nodes = new_nodes.select(state.nodes.columns)
    # a new node identical to an existing one (same features, same source) is that node
    new_keys = node_keys(new_nodes)
    same = new_keys.join(state.node_keys.select(pl.col("unique_id").alias("old"), "_k"),
        on="_k").group_by("unique_id").agg(pl.col("old").min())
    if same.height:
        new_node_of = new_node_of.join(same.rename({"unique_id": "node_id"}), on="node_id", how="left").select(
            "record_id", pl.coalesce("old", "node_id").alias("node_id"))
        new_nodes = new_nodes.join(same, on="unique_id", how="anti")

    tfs = state.tf_tables or tf_tables(state.nodes)
    candidates_scored = None
    if scored is None:
        candidates = candidate_existing(state.nodes, new_nodes, model_rules(state.model))
        candidates_scored = candidates.height
        scored = score_delivery(candidates, new_nodes, state.model, tfs)
    t_score = time.perf_counter() - t0

    # affected persons: linked (>= threshold) to a new node. A delivered record identical to an
    # existing record joins that record's node, and so its person, without re-clustering.
    node_person = state.node_person
    strong = scored.filter(pl.col("match_probability") >= threshold)
    touched_nodes = pl.concat([strong["id_l"], strong["id_r"]]).unique()
    affected = node_person.filter(pl.col("node_id").is_in(touched_nodes.implode()))["person_id"].unique()
    affected_nodes = node_person.filter(pl.col("person_id").is_in(affected.implode()))["node_id"]
    sub_existing = state.nodes.filter(pl.col("unique_id").is_in(affected_nodes.implode()))
    new_edges = scored.select("id_l", "id_r", "match_probability")
    # the affected persons' own pairs: stored, or re-scored
    inner = None
    if state.edges is not None:
        inner = state.edges.filter(pl.col("id_l").is_in(affected_nodes.implode())
                                   & pl.col("id_r").is_in(affected_nodes.implode()))
    elif sub_existing.height > 1:
        inner = _score_within(sub_existing, state.model, tfs)
    # the review queue takes the delivery's pairs (the others were queued when they were scored)
    review_pairs = scored
    if inner is not None:
        scored = pl.concat([scored, inner], how="diagonal_relaxed")

    sub_nodes = pl.concat([sub_existing["unique_id"], new_nodes["unique_id"]])
    sub_edges = scored.filter(pl.col("id_l").is_in(sub_nodes.implode()) & pl.col("id_r").is_in(sub_nodes.implode()))
    clustered, guard_metrics = C.cluster_edges(sub_nodes, sub_edges, threshold=threshold, guard=guard)
    node_of_all = pl.concat([state.node_of, new_node_of])
    sub_records = node_of_all.filter(pl.col("node_id").is_in(sub_nodes.implode())).join(
        clustered.rename({"id": "node_id"}), on="node_id")
    previous = state.assignments.join(sub_records.select("record_id"), on="record_id", how="semi")
    ids, lineage = C.assign_stable_ids(sub_records.select("record_id", "cluster_id"), previous, run_id=run_id,
                                       key=id_key)
    ids = ids.join(sub_records.select("record_id", "match_confidence"), on="record_id", how="left")
    # the affected persons are re-assigned as a whole; repeats below join untouched persons
    persons_change = ids["person_id"].n_unique() - affected.len()
    repeats = new_node_of.join(sub_records.select("record_id"), on="record_id", how="anti").join(
        node_person, on="node_id").select("record_id", "person_id", pl.lit("continuing").alias("id_status"))
    ids = pl.concat([ids, repeats], how="diagonal_relaxed")
    changed = ids.join(state.assignments.select("record_id", pl.col("person_id").alias("_old")), on="record_id",
                       how="left").filter(pl.col("_old").is_null() | (pl.col("_old") != pl.col("person_id")))
    keep = state.assignments.join(ids.select("record_id"), on="record_id", how="anti")
    new_assign = pl.concat([keep.select("record_id", "person_id"), ids.select("record_id", "person_id")])
    new_state = LinkState(
        nodes=pl.concat([state.nodes, new_nodes]),
        node_of=node_of_all,
        assignments=new_assign,
        model=state.model,
        tf_tables=tfs,
        node_keys=pl.concat([state.node_keys, new_keys.join(same, on="unique_id", how="anti")]),
        node_person=pl.concat([
            node_person.join(sub_records.select("node_id"), on="node_id", how="anti"),
            sub_records.join(ids.select("record_id", "person_id"), on="record_id").group_by("node_id").agg(
                pl.col("person_id").first()),
        ]),
        edges=None if state.edges is None else pl.concat([state.edges, new_edges], how="diagonal_relaxed"),
    )
    review = review_queue(review_pairs, new_assign)
    metrics = {
        "new_records": new_records.height,
        "new_nodes": new_nodes.height,
        "existing_candidates_scored": candidates_scored,
        "pairs_scored_above_predict_threshold": scored.height,
        "affected_persons": int(affected.len()),
        "records_reclustered": sub_records.height,
        "records_joining_an_identical_record": repeats.height,
        "records_reassigned": int(changed.filter(pl.col("_old").is_not_null()).height),
        "persons_change": int(persons_change),
        "guard": guard_metrics,
        "seconds": {"score": round(t_score, 2), "total": round(time.perf_counter() - t0, 2)},
    }
    progress(f"linked {new_records.height:,} new records ({metrics['affected_persons']:,} existing persons "
             f"touched) in {metrics['seconds']['total']:.1f} s")
    return IncrementResult(assignments=changed.drop("_old"), lineage=lineage, review=review, state=new_state,
                           metrics=metrics, edges=new_edges)
