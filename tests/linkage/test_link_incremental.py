"""Incremental linking (predict_between / predict_within with the saved model) and the review queue."""
from __future__ import annotations

import polars as pl
import pytest

from linkage.evaluation import pairwise_metrics
from linkage.incremental import REVIEW_COLUMNS_DOC, link_increment, review_queue
from linkage.pipeline import link_records

KEY = b"k" * 32


@pytest.fixture(scope="module")
def split_run(small_people):
    records, truth = small_people
    # the delivery: the last record of every 5th person, plus every record of the last 10 persons
    last = truth.group_by("person").agg(pl.col("record_id").max())
    persons = truth["person"].unique().sort().to_list()
    late_persons = set(persons[-10:])
    every_5th = set(persons[:-10:5])
    delivery_ids = set(last.filter(pl.col("person").is_in(list(every_5th)))["record_id"].to_list()) | set(
        truth.filter(pl.col("person").is_in(list(late_persons)))["record_id"].to_list())
    existing = records.filter(~pl.col("record_id").is_in(list(delivery_ids)))
    delivery = records.filter(pl.col("record_id").is_in(list(delivery_ids)))
    full = link_records(existing, keep_state=True, run_id="r1", id_key=KEY, progress=lambda *_: None)
    inc = link_increment(full.state, delivery, run_id="r2", id_key=KEY, progress=lambda *_: None)
    return records, truth, existing, delivery, full, inc


def test_increment_links_the_delivery_like_a_full_run(split_run):
    records, truth, existing, delivery, full, inc = split_run
    assert inc.metrics["new_records"] == delivery.height
    assert inc.state.assignments.height == records.height
    scored = inc.state.assignments.join(truth, on="record_id")
    inc_f1 = pairwise_metrics(scored["person_id"], scored["person"])["pairwise_f1"]
    again = link_records(records, run_id="r2", id_key=KEY, progress=lambda *_: None)
    full_scored = again.assignments.join(truth, on="record_id")
    full_f1 = pairwise_metrics(full_scored["person_id"], full_scored["person"])["pairwise_f1"]
    # documented difference: no re-training, population term frequencies; same answer within a point
    assert inc_f1 >= full_f1 - 0.01
    assert inc_f1 > 0.95


def test_increment_keeps_ids_and_only_touches_affected_persons(split_run):
    records, truth, existing, delivery, full, inc = split_run
    before = full.assignments.select("record_id", "person_id")
    after = inc.state.assignments
    kept = before.join(after, on="record_id", suffix="_new")
    assert (kept["person_id"] == kept["person_id_new"]).mean() > 0.97  # ids stable
    # a delivered record of an already-linked person gets that person's id
    truth_of = truth.rename({"person": "p"})
    late = delivery.join(truth_of, on="record_id").join(
        existing.join(truth_of, on="record_id").select("p", pl.col("record_id").alias("old_rec")), on="p")
    got = late.join(after, on="record_id").join(before.rename({"record_id": "old_rec", "person_id": "old_pid"}),
                                               on="old_rec")
    assert got.height > 5 and (got["person_id"] == got["old_pid"]).mean() > 0.9
    # only affected persons were re-clustered
    assert inc.metrics["records_reclustered"] < records.height / 2
    assert inc.metrics["affected_persons"] <= delivery.height


def test_review_queue_columns():
    scored = pl.DataFrame({"id_l": ["a", "b", "c"], "id_r": ["x", "y", "z"], "match_probability": [0.7, 0.99, 0.2],
                           "match_weight": [1.2, 6.6, -2.0], "mw_forename": [2.0, 3.0, -1.0],
                           "mw_dob": [-1.0, 3.0, -1.0]})
    assignments = pl.DataFrame({"record_id": ["a", "x", "b", "y", "c", "z"], "person_id": ["P1", "P2", "P3", "P3",
                                                                                          "P4", "P5"]})
    q = review_queue(scored, assignments)
    assert q.height == 1
    row = q.row(0, named=True)
    assert row["record_id_l"] == "a" and row["person_id_r"] == "P2" and row["same_person"] is False
    assert row["mw_forename"] == 2.0 and row["mw_dob"] == -1.0
    documented = {c for c in REVIEW_COLUMNS_DOC if "<" not in c}
    assert documented <= set(q.columns)


def test_full_run_review_queue_has_field_weights(split_run):
    full = split_run[4]
    assert {"record_id_l", "person_id_l", "match_probability", "band"} <= set(full.review.columns)
    assert any(c.startswith("mw_") for c in full.review.columns)


@pytest.mark.parametrize("postcodes", [True, False])
def test_candidate_filter_keeps_every_blocked_pair(small_people, postcodes):
    import duckdb

    from linkage import model as M
    from linkage.incremental import candidate_existing
    from linkage.pipeline import collapse
    from linkage.standardise import standardise

    records, _ = small_people
    if not postcodes:  # the model then blocks records without a dob on names alone (M.usable_rules)
        records = records.drop("postcode")
    nodes, _ = collapse(standardise(records))
    rules = [sql for _, sql in M.usable_rules(M.PREDICTION_BLOCKING_RULES, M.present_features(nodes))]
    assert any("postcode_area" in sql for sql in rules) == postcodes
    existing, delivery = nodes.filter(pl.int_range(pl.len()) % 7 != 0), nodes.filter(pl.int_range(pl.len()) % 7 == 0)
    kept = set(candidate_existing(existing, delivery, rules)["unique_id"].to_list())
    con = duckdb.connect()
    con.register("e", existing.drop("forename_aliases").to_arrow())
    con.register("d", delivery.drop("forename_aliases").to_arrow())
    needed = set()
    for sql in rules:  # existing on either side of each rule
        for left, right in (("e", "d"), ("d", "e")):
            col = "l" if left == "e" else "r"
            rows = con.execute(f"SELECT DISTINCT {col}.unique_id FROM {left} l JOIN {right} r ON {sql}").fetchall()
            needed |= {r[0] for r in rows}
    assert needed and needed <= kept
    assert len(kept) < existing.height  # and it does filter


def test_candidate_filter_without_a_key_for_a_rule_keeps_everything(small_people):
    from linkage.incremental import candidate_existing
    from linkage.pipeline import collapse
    from linkage.standardise import standardise

    nodes, _ = collapse(standardise(small_people[0]))
    existing, delivery = nodes[:-10], nodes[-10:]
    assert candidate_existing(existing, delivery, ["l.sex = r.sex"]).height == existing.height


@pytest.fixture(scope="module")
def scoring_inputs(split_run):
    """What ``score_delivery`` takes for the split run's delivery: the state, the delivery's
    nodes, their candidate existing nodes and the term frequencies."""
    from linkage.incremental import candidate_existing, delivery_nodes, model_rules, tf_tables

    state, delivery = split_run[4].state, split_run[3]
    new_nodes = delivery_nodes(delivery)[0].select(state.nodes.columns)
    candidates = candidate_existing(state.nodes, new_nodes, model_rules(state.model))
    return state, new_nodes, candidates, state.tf_tables or tf_tables(state.nodes)


def test_one_scoring_call_gives_the_pairs_of_predict_between_and_predict_within(scoring_inputs):
    from linkage.incremental import _score_within, score_delivery
    from linkage.pipeline import PREDICT_THRESHOLD
    from linkage.scoring import scored_frame, scoring_linker

    state, new_nodes, candidates, tfs = scoring_inputs
    got = score_delivery(candidates, new_nodes, state.model, tfs)
    # Splink's two calls
    within = _score_within(new_nodes, state.model, tfs)
    con, db_api, linker, tables = scoring_linker({"existing": candidates, "delivery": new_nodes}, state.model, tfs)
    try:
        between = scored_frame(db_api, linker.inference.predict_between(
            tables["existing"], tables["delivery"], threshold_match_probability=PREDICT_THRESHOLD,
            warning_mode="never"))
    finally:
        con.close()

    def pairs(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(a=pl.min_horizontal("id_l", "id_r"), b=pl.max_horizontal("id_l", "id_r"),
                            p=pl.col("match_probability").round(9)).sort("a", "b")

    assert within.height > 0 and between.height > 0
    assert pairs(got).equals(pairs(pl.concat([between, within], how="diagonal_relaxed")))


def _stock_splink_scores(frames, model, tfs, api_class=None):
    """``predict_between`` of Splink as it comes (``DuckDBAPI``, ``Linker``), or with ``api_class``."""
    import duckdb
    from splink import DuckDBAPI, Linker

    from linkage.pipeline import PREDICT_THRESHOLD
    from linkage.scoring import register, scored_frame

    con = duckdb.connect()
    try:
        db_api = (api_class or DuckDBAPI)(connection=con)
        tables = {name: register(db_api, frame, name) for name, frame in frames.items()}
        linker = Linker(list(tables.values()), dict(model))
        for col, table in tfs.items():
            linker.table_management.register_term_frequency_lookup(register(db_api, table, f"tf_{col}"), col)
        return scored_frame(db_api, linker.inference.predict_between(
            tables["existing"], tables["delivery"], threshold_match_probability=PREDICT_THRESHOLD,
            warning_mode="never"))
    finally:
        con.close()


def test_compiled_scoring_gives_splinks_own_scores_and_is_kept_beside_the_model(scoring_inputs, tmp_path,
                                                                                 monkeypatch):
    from linkage import scoring
    from linkage.incremental import _each_delivered_pair_once, prepare_delivery_scoring, score_delivery, scoring_frames

    state, new_nodes, candidates, tfs = scoring_inputs
    frames = scoring_frames(candidates, new_nodes)
    model = _each_delivered_pair_once(state.model)
    stock = _stock_splink_scores(frames, model, tfs)
    monkeypatch.setattr(scoring, "_compiled", {})
    prepare_delivery_scoring(state.model, candidates, tmp_path)  # as the full link does, on its nodes' schema
    files = list(tmp_path.glob("scoring-*.json"))
    assert len(files) == 1 and "mw_forename" in files[0].read_text()

    def no_splink(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(scoring, "_compile", no_splink)
    monkeypatch.setattr(scoring, "_BATCH_ROWS", 7)  # many batches: DuckDB's threads share them
    monkeypatch.setattr(scoring, "_compiled", {})  # a new process: from the file
    got = score_delivery(candidates, new_nodes, state.model, tfs, cache_dir=tmp_path)
    key = ["id_l", "id_r"]
    assert got.height > 50 and got.columns == stock.columns
    assert got.sort(key).equals(stock.sort(key))
    # another model, or another schema, is compiled anew, not served the file
    other = {**state.model, "probability_two_random_records_match": 0.5 * state.model[
        "probability_two_random_records_match"]}
    with pytest.raises(AssertionError, match="compiled again"):
        score_delivery(candidates, new_nodes, other, tfs, cache_dir=tmp_path)
    wider = candidates.with_columns(extra=pl.lit("x"))
    with pytest.raises(AssertionError, match="compiled again"):
        score_delivery(wider, new_nodes.with_columns(extra=pl.lit("x")), state.model, tfs, cache_dir=tmp_path)


def test_a_folder_that_cannot_keep_the_compiled_scoring_only_warns(scoring_inputs, tmp_path, monkeypatch, caplog):
    from linkage import scoring
    from linkage.incremental import score_delivery

    state, new_nodes, candidates, tfs = scoring_inputs
    not_a_folder = tmp_path / "model.json"
    not_a_folder.write_text("{}")
    monkeypatch.setattr(scoring, "_compiled", {})
    with caplog.at_level("WARNING", logger="linkage.scoring"):
        got = score_delivery(candidates, new_nodes, state.model, tfs, cache_dir=not_a_folder)
    assert got.height > 0
    assert "compiled scoring not kept" in caplog.text and "NotADirectoryError" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_replays_at_once_each_score_their_own_frames(scoring_inputs):
    from concurrent.futures import ThreadPoolExecutor

    from linkage.incremental import score_delivery

    state, new_nodes, candidates, tfs = scoring_inputs
    halves = [(candidates, new_nodes[: new_nodes.height // 2]), (candidates, new_nodes[new_nodes.height // 2:])]
    alone = [score_delivery(c, n, state.model, tfs) for c, n in halves]
    with ThreadPoolExecutor(2) as pool:
        together = [f.result() for f in [pool.submit(score_delivery, c, n, state.model, tfs)
                                         for _ in range(4) for c, n in halves]]
    key = ["id_l", "id_r"]
    assert all(a.height > 0 for a in alone) and not alone[0].equals(alone[1])
    for i, got in enumerate(together):
        assert got.sort(key).equals(alone[i % 2].sort(key))


def test_an_unreadable_compiled_scoring_file_is_compiled_again(scoring_inputs, tmp_path, monkeypatch):
    from linkage import scoring
    from linkage.incremental import prepare_delivery_scoring, score_delivery

    state, new_nodes, candidates, tfs = scoring_inputs
    monkeypatch.setattr(scoring, "_compiled", {})
    prepare_delivery_scoring(state.model, candidates, tmp_path)
    (path,) = tmp_path.glob("scoring-*.json")
    expected = score_delivery(candidates, new_nodes, state.model, tfs, cache_dir=tmp_path)
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # cut short
    assert scoring._read(path) is None
    monkeypatch.setattr(scoring, "_compiled", {})
    got = score_delivery(candidates, new_nodes, state.model, tfs, cache_dir=tmp_path)
    key = ["id_l", "id_r"]
    assert got.height > 0 and got.sort(key).equals(expected.sort(key))
    assert scoring._read(path) is not None and not list(tmp_path.glob("*.tmp"))  # rewritten whole


def test_scoring_api_reads_registered_columns_once_and_scores_as_plain_splink(scoring_inputs, monkeypatch):
    from linkage import scoring
    from linkage.incremental import _each_delivered_pair_once, scoring_frames

    state, new_nodes, candidates, tfs = scoring_inputs
    frames, model = scoring_frames(candidates, new_nodes), _each_delivered_pair_once(state.model)
    api, _ = scoring.scoring_classes()
    lookups = []
    run_sql = api._execute_sql_against_backend

    def counted(self, sql, *args, **kwargs):
        if "information_schema.columns" in sql:
            lookups.append(sql.rsplit("=", 1)[1].strip(" '"))
        return run_sql(self, sql, *args, **kwargs)

    monkeypatch.setattr(api, "_execute_sql_against_backend", counted)
    got = _stock_splink_scores(frames, model, tfs, api)
    assert sorted(lookups) == ["delivery", "existing"]  # Splink asks a dozen times; read once each
    plain = _stock_splink_scores(frames, model, tfs)
    assert got.height > 0
    assert got.sort("id_l", "id_r").equals(plain.sort("id_l", "id_r"))


def test_term_frequencies_are_splinks_and_add_up_over_parts(small_people):
    import duckdb
    from splink import DuckDBAPI, Linker, SettingsCreator

    from linkage.incremental import TF_COLUMNS, tf_from_counts, tf_tables, value_counts

    records, _ = small_people
    nodes = link_records(records, keep_state=True, progress=lambda _: None).state.nodes
    ours = tf_tables(nodes)
    assert set(ours) == set(TF_COLUMNS)
    db_api = DuckDBAPI(connection=duckdb.connect())
    linker = Linker(db_api.register(nodes.drop("forename_aliases").to_arrow(), dataset_display_name="nodes"),
                    SettingsCreator(link_type="dedupe_only", comparisons=[]))
    for col in TF_COLUMNS:
        splinks = pl.from_pandas(linker.table_management.compute_tf_table(col).as_pandas_dataframe())
        mine = ours[col].sort(col)
        assert mine[col].to_list() == splinks.sort(col)[col].to_list()
        assert mine[f"tf_{col}"].to_list() == pytest.approx(splinks.sort(col)[f"tf_{col}"].to_list())
    # the counts of two parts give the term frequencies of their union, for the values asked
    first, second = nodes[: nodes.height // 2], nodes[nodes.height // 2:]
    asked = second.head(20)
    parts = tf_from_counts([value_counts(first), value_counts(second)], [asked])
    for col, table in parts.items():
        expected = ours[col].join(asked.select(col).drop_nulls().unique(), on=col, how="semi").sort(col)
        assert table.sort(col)[col].to_list() == expected[col].to_list()
        assert table.sort(col)[f"tf_{col}"].to_list() == pytest.approx(expected[f"tf_{col}"].to_list())
