"""Linkage in the pipeline: raw + vault -> linked.* (full, incremental, stable ids)."""
import json
import shutil

import polars as pl
import pytest

from linkage.evaluation import pairwise_metrics
from linkage.pipeline import link_records
from tapestry import lakehouse
from tapestry.cli import main
from tests.conftest import isolate


def _runs(settings) -> pl.DataFrame:
    with lakehouse.connect(settings, read_only=True) as con:
        return con.sql("SELECT run_id, mode, records, new_records, persons, metrics FROM linked.runs "
                       "ORDER BY started_at").pl()


def _assignment(settings) -> pl.DataFrame:
    with lakehouse.connect(settings, read_only=True) as con:
        return con.sql("SELECT agency, entity, record_key, person_id, match_confidence FROM linked.person_record").pl()


WIDE_BAND = (0.5, 0.99999)  # the review band of the fixture's incremental run


@pytest.fixture(scope="module")
def linked_lake(tmp_path_factory):
    """1,000 persons; the last two monthly police files held back for a later, small delivery."""
    root = tmp_path_factory.mktemp("linklake")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, root, landing=root / "landing")
        from orchestration import run
        mp.setattr(run, "DOWNSTREAM_JOBS", ("link",))  # linkage only: transforms are tested elsewhere
        from tapestry.config import Settings
        assert main(["synth", "--persons", "1000", "--seed", "3", "--out", str(root / "landing")]) == 0
        held = root / "held"
        held.mkdir()
        late = sorted((root / "landing" / "police").glob("occurrences_*.csv"))[-2:]
        for path in late:
            (held / path.parent.name).mkdir(exist_ok=True)
            shutil.move(path, held / path.parent.name / path.name)
        assert main(["run"]) == 0
        first = _assignment(Settings.from_env())
        for path in held.rglob("*.*"):
            shutil.move(path, root / "landing" / path.parent.name / path.name)
        from linkage import cluster
        band, cluster.REVIEW_BAND = cluster.REVIEW_BAND, WIDE_BAND  # the later delivery then has review pairs
        try:
            assert main(["run"]) == 0
        finally:
            cluster.REVIEW_BAND = band
        yield Settings.from_env(), first, mp


def test_every_current_person_record_gets_one_person_id(linked_lake):
    settings, _, _ = linked_lake
    assignment = _assignment(settings)
    with lakehouse.connect(settings, read_only=True) as con:
        from linkage.lake import current_rows
        rows = current_rows(con)
    keys = rows.select("agency", "entity", "record_key").unique()
    assert assignment.height == keys.height
    assert assignment.join(keys, on=["agency", "entity", "record_key"], how="anti").height == 0
    assert assignment["person_id"].null_count() == 0
    assert assignment["person_id"].str.starts_with("P-").all()  # opaque, never a record key
    assert not set(assignment["person_id"]) & set(assignment["record_key"])


def test_first_run_is_full_and_measured_against_truth(linked_lake):
    settings, _, _ = linked_lake
    runs = _runs(settings)
    assert runs["mode"].to_list()[0] == "full"
    evaluation = json.loads(runs["metrics"][0])["evaluation"]
    assert evaluation["tapestry"]["pairwise_f1"] >= 0.95
    assert min(evaluation["tapestry"]["recall_by_source_pair"].values()) >= 0.9


def test_a_small_later_delivery_links_incrementally_and_keeps_ids(linked_lake):
    settings, first, _ = linked_lake
    runs = _runs(settings)
    assert runs["mode"].to_list() == ["full", "incremental"]
    assert runs["new_records"][1] > 0
    now = _assignment(settings)
    keys = ["agency", "entity", "record_key"]
    both = first.join(now, on=keys, suffix="_now")
    assert both.height == first.height  # nothing linked before was lost
    kept = (both["person_id"] == both["person_id_now"]).mean()
    assert kept >= 0.98, f"only {kept:.3f} of earlier records kept their person id"
    metrics = json.loads(runs["metrics"][1])
    assert metrics["evaluation"]["tapestry"]["pairwise_f1"] >= 0.95
    # scored against the sealed features of the population: only the delivery came from the vault
    assert metrics["mode_reason"] == "new deliveries"
    assert metrics["population_nodes"] > 10 * metrics["delivery_nodes"]
    assert metrics["new_records"] == runs["new_records"][1] < 0.2 * runs["records"][0]
    # the run counts its persons from the previous count and what it changed: exact
    assert runs["persons"][1] == now["person_id"].n_unique()
    # its review pairs name both records (an existing node by one of its records)
    with lakehouse.connect(settings, read_only=True) as con:
        review = con.sql("SELECT * FROM linked.review_queue WHERE run_id = ?", params=[runs["run_id"][1]]).pl()
    assert review.height and review.select("agency_l", "record_key_l", "agency_r", "record_key_r").null_count(
    ).sum_horizontal().item() == 0


def test_every_record_has_its_node_and_the_nodes_are_sealed(linked_lake):
    from governance.keys import Keyring
    from linkage.stored_state import open_nodes

    settings, _, _ = linked_lake
    with lakehouse.connect(settings, read_only=True) as con:
        records = con.sql("SELECT node_id, person_id FROM linked.person_record").pl()
        sealed = con.sql("SELECT delivery_id, nodes, ciphertext FROM linked.node_features").pl()
        deliveries = set(con.sql("SELECT delivery_id FROM raw.current_deliveries").pl()["delivery_id"])
        nodes, unreadable = open_nodes(con, Keyring.open(settings))
    assert records["node_id"].null_count() == 0
    assert unreadable == 0
    # one node per distinct node id, every node sealed once, under a delivery it came from
    assert nodes["node_id"].n_unique() == nodes.height == records["node_id"].n_unique() == sealed["nodes"].sum()
    assert set(sealed["delivery_id"]) <= deliveries
    # a node belongs to exactly one person
    assert records.group_by("node_id").agg(pl.col("person_id").n_unique())["person_id"].max() == 1


@pytest.mark.parametrize("table", ["person_record", "node_features", "node_edge"])
def test_what_an_incremental_run_reads_is_written_uncompressed(linked_lake, table):
    # an incremental run scans linked.person_record for the persons it touches and reads the
    # sealed features and the pairs whole: uncompressed, ~40% quicker to scan person_record at 1M
    # persons (the full run sets it; incremental runs' files follow)
    settings, _, _ = linked_lake
    with lakehouse.connect(settings, read_only=True) as con:
        files = [r[0] for r in con.sql(f"SELECT data_file FROM ducklake_list_files('{lakehouse.ALIAS}', "
                                       f"'{table}', schema => 'linked')").fetchall()]
        codecs = {r[0] for f in files for r in con.execute(
            "SELECT DISTINCT compression FROM parquet_metadata(?)", [f]).fetchall()}
    assert len(files) > 1 and codecs == {"UNCOMPRESSED"}


def test_the_stored_edges_hold_every_person_together(linked_lake):
    """linked.node_edge is what an incremental run re-clusters the persons it touches from: each
    person's nodes must be connected by stored edges at the cluster threshold (after the full
    run and the incremental one, whose new edges are stored too)."""
    import numpy as np

    from linkage.cluster import CLUSTER_THRESHOLD, connected_components

    settings, _, _ = linked_lake
    with lakehouse.connect(settings, read_only=True) as con:
        node_person = con.sql("SELECT DISTINCT node_id, person_id FROM linked.person_record").pl()
        edges = con.sql("SELECT node_l, node_r, match_probability FROM linked.node_edge").pl()
    index = node_person.with_row_index("ix")
    assert edges.height and set(edges["node_l"]) | set(edges["node_r"]) <= set(node_person["node_id"])
    strong = (edges.filter(pl.col("match_probability") >= CLUSTER_THRESHOLD)
              .join(index.select(node_l="node_id", a="ix", person_l="person_id"), on="node_l")
              .join(index.select(node_r="node_id", b="ix", person_r="person_id"), on="node_r")
              .filter(pl.col("person_l") == pl.col("person_r")))
    labels = connected_components(index.height, strong["a"].to_numpy().astype(np.int64),
                                  strong["b"].to_numpy().astype(np.int64))
    parts = index.with_columns(component=pl.Series(labels)).group_by("person_id").agg(pl.col("component").n_unique())
    assert parts["component"].max() == 1
    assert node_person["person_id"].n_unique() < node_person.height  # some persons do have several nodes


def test_reading_some_records_gives_what_reading_all_gives(linked_lake):
    """The incremental path reads a delivery's records alone: rows without details of their own
    (NHS encounters) must still take their agency person's details from rows outside the subset."""
    from governance.keys import Keyring
    from linkage.lake import current_rows, person_records

    settings, _, _ = linked_lake
    keyring = Keyring.open(settings)
    with lakehouse.connect(settings, read_only=True) as con:
        everything = person_records(con, keyring)
        rows = current_rows(con)
        subset = rows.filter((pl.col("agency") == "nhs") & (pl.col("entity") == "encounter")).sort(
            "record_key").head(60)
        some = person_records(con, keyring, subset)
        by_delivery = current_rows(con, delivery_ids=subset["delivery_id"].unique().to_list())
    assert some.height == subset.select("agency", "entity", "record_key").unique().height == 60
    expected = everything.join(some.select("record_id"), on="record_id", how="semi").sort("record_id")
    assert some.sort("record_id").select(expected.columns).equals(expected)
    assert some["surname"].null_count() < some.height // 4  # an encounter carries no name: it came from its patient
    assert set(by_delivery["delivery_id"]) == set(subset["delivery_id"])
    assert by_delivery.height == rows.filter(pl.col("delivery_id").is_in(subset["delivery_id"].implode())).height


def test_a_full_relink_keeps_ids_and_records_lineage(linked_lake):
    from linkage.lake import link_lake

    settings, _, _ = linked_lake
    before = _assignment(settings)
    result = link_lake(settings, full=True, progress=lambda _: None)
    assert result.mode == "full"
    after = _assignment(settings)
    both = before.join(after, on=["agency", "entity", "record_key"], suffix="_after")
    assert both.height == before.height
    assert (both["person_id"] == both["person_id_after"]).mean() >= 0.99
    with lakehouse.connect(settings, read_only=True) as con:
        lineage = con.sql("SELECT * FROM linked.person_lineage WHERE run_id = ?", params=[result.run_id]).pl()
    changed = both.filter(pl.col("person_id") != pl.col("person_id_after"))
    # every person id that lost records in this run has a lineage row saying where they went
    assert set(changed["person_id"]) <= set(lineage["old_person_id"])


def test_review_queue_holds_pseudonymous_evidence_only(linked_lake):
    settings, _, _ = linked_lake
    with lakehouse.connect(settings, read_only=True) as con:
        review = con.sql("SELECT q.*, r.mode FROM linked.review_queue q JOIN linked.runs r USING (run_id)").pl()
    assert set(review.columns) >= {"record_key_l", "record_key_r", "match_probability", "evidence", "status"}
    if review.height:
        full = review.filter(pl.col("mode") == "full")
        assert full["match_probability"].is_between(0.5, 0.95, closed="left").all()
        assert review["match_probability"].is_between(*WIDE_BAND, closed="left").all()
        weights = json.loads(review["evidence"][0])
        assert all(k.startswith("mw_") and isinstance(v, (int, float, type(None))) for k, v in weights.items())


def test_long_record_ids_link_as_well_as_short_ones(small_people):
    """Regression: 80-character ids (hex pseudonyms) once made Splink's training collapse."""
    records, truth = small_people
    long_ids = records.with_columns(record_id=pl.lit("agency:entity:") + pl.col("record_id").str.pad_start(70, "f"))
    short = link_records(records, progress=lambda _: None).assignments
    long = link_records(long_ids, progress=lambda _: None).assignments
    f_short = pairwise_metrics(short["person_id"], truth["person"])["pairwise_f1"]
    f_long = pairwise_metrics(long["person_id"], truth["person"])["pairwise_f1"]
    assert f_long >= 0.9 and abs(f_long - f_short) < 0.01


def test_released_identifiers_leave_the_caller_only_record_ids_and_the_same_persons(small_people):
    """The full link hands its identifiers to link_records, which drops them once standardised
    (not held through training and scoring); the persons are those of a run that keeps them."""
    records, truth = small_people
    kept = link_records(records, progress=lambda _: None, id_key=b"k" * 32).assignments
    given = records.clone()
    released = link_records(given, progress=lambda _: None, id_key=b"k" * 32, release_identifiers=True).assignments
    assert given.columns == ["record_id"] and given.height == records.height
    assert records.width > 1  # the caller's other frames are untouched
    same = kept.join(released, on="record_id", suffix="_r")
    assert same.height == records.height
    assert pairwise_metrics(same["person_id"], same["person_id_r"])["pairwise_f1"] == 1.0


def test_link_eval_scores_the_lake_against_truth(linked_lake, tmp_path):
    from linkage.evaluation import evaluate_lake

    settings, _, _ = linked_lake
    report = evaluate_lake(settings, settings.truth, run_dir=tmp_path / "run", with_plain_splink=False,
                           progress=lambda _: None)
    ours, base = report["tapestry"], report["baseline_deterministic"]
    assert ours["pairwise_f1"] >= 0.97, ours
    assert ours["pairwise_recall"] >= base["pairwise_recall"] + 0.03
    assert report["blocking"]["blocking_recall"] >= 0.98
    assert report["input"]["records_without_truth"] == 0
    assert (tmp_path / "run" / "model.json").is_file()
    assert (tmp_path / "run" / "charts" / "match_weights.html").is_file()


def test_without_sealed_features_the_next_run_is_full(linked_lake):
    """What retention leaves (it deletes linked.node_features): a full re-link that seals them again."""
    from linkage.lake import link_lake

    settings, _, _ = linked_lake
    with lakehouse.connect(settings) as con:
        con.execute("DELETE FROM linked.node_features")
    result = link_lake(settings, progress=lambda _: None)
    assert result.mode == "full"
    assert "no stored link state" in result.metrics["mode_reason"]
    with lakehouse.connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM linked.node_features").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM linked.node_edge").fetchone()[0] > 0
    assert link_lake(settings, progress=lambda _: None).mode == "incremental"  # nothing new: a no-op


def test_a_link_run_overtaken_by_another_writes_nothing(linked_lake):
    """Two link runs at once (the UI and `tapestry run`): the one that finishes second would write
    a result built on a linked zone that changed under it; it fails and writes nothing."""
    from linkage.lake import ConcurrentLinkRun, link_lake

    settings, _, _ = linked_lake
    others = []

    def meanwhile(_message):
        if not others:  # the first progress line: this run has read what it builds on
            others.append(link_lake(settings, full=True, progress=lambda _: None).run_id)

    before = _runs(settings).height
    with pytest.raises(ConcurrentLinkRun, match="another link run"):
        link_lake(settings, full=True, progress=meanwhile)
    runs = _runs(settings)
    assert runs.height == before + 1 and runs["run_id"][-1] == others[0]  # only the other run wrote


def test_features_sealed_in_an_older_form_make_the_next_delivery_a_full_run(linked_lake):
    """Sealed features whose schema differs from what a run derives now (here: the source person
    id as text, as sealed before it was a token) are not scored against: a full run re-seals."""
    from governance.keys import Keyring
    from governance.vault import SealedFrame, open_frame, seal_frame
    from linkage.lake import link_lake
    from linkage.stored_state import PURPOSE, open_nodes

    settings, _, _ = linked_lake
    keyring = Keyring.open(settings)
    with lakehouse.connect(settings) as con:
        assert open_nodes(con, keyring)[0].schema["source_person_id"] == pl.Int64  # sealed as a token
        rows = con.sql("SELECT * FROM linked.node_features").pl()
        older = []
        for row in rows.iter_rows(named=True):
            frame = open_frame(SealedFrame(row["delivery_id"], row["key_id"], row["nonce"], row["ciphertext"],
                                           row["nodes"]), PURPOSE, keyring).collect()
            sealed = seal_frame(frame.with_columns(pl.col("source_person_id").cast(pl.String)), row["delivery_id"],
                                PURPOSE, keyring)
            older.append(row | {"nonce": sealed.nonce, "ciphertext": sealed.ciphertext})
        con.execute("DELETE FROM linked.node_features")
        con.register("_older", pl.DataFrame(older, schema=rows.schema).to_arrow())
        con.execute("INSERT INTO linked.node_features SELECT * FROM _older")
        # the latest police file as if it had not been linked yet
        last = con.sql("SELECT delivery_id FROM raw.current_deliveries JOIN raw.police__occurrences "
                       "ON _delivery_id = delivery_id ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
        con.execute("DELETE FROM linked.delivery WHERE delivery_id = ?", [last])
        unlinked = con.execute("DELETE FROM linked.person_record WHERE agency = 'police' AND entity = 'occurrences' "
                               "AND record_key IN (SELECT record_key FROM raw.police__occurrences "
                               "WHERE _delivery_id = ?)", [last]).fetchone()[0]
    assert unlinked > 0
    result = link_lake(settings, progress=lambda _: None)
    assert result.mode == "full" and result.metrics["mode_reason"] == "sealed features unreadable or outdated"
    with lakehouse.connect(settings, read_only=True) as con:
        assert open_nodes(con, keyring)[0].schema["source_person_id"] == pl.Int64


def test_an_incremental_run_queries_the_lake_from_one_thread(linked_lake, monkeypatch):
    """The population is opened in a second thread, but the lake is queried only from the run's
    own: a second connection querying it at the same time waits in the SQLite catalog's busy
    handler, which sleeps a whole second (at 1M persons, 1 run in 2 took ~1 s longer)."""
    import contextlib
    import threading

    from linkage import lake

    settings, _, _ = linked_lake
    _as_if_new(settings)
    threads = set()
    opened = lakehouse.connect

    class Recording:  # the run's connection, noting the thread of every query
        def __init__(self, con):
            self._con = con

        def __getattr__(self, name):
            attribute = getattr(self._con, name)
            if name not in ("execute", "sql", "cursor"):
                return attribute

            def call(*args, **kwargs):
                threads.add(threading.current_thread().name)
                result = attribute(*args, **kwargs)
                return Recording(result) if name == "cursor" else result  # a cursor's queries count too
            return call

    @contextlib.contextmanager
    def recording(*args, **kwargs):
        with opened(*args, **kwargs) as con:
            yield Recording(con)

    monkeypatch.setattr(lake.lakehouse, "connect", recording)
    result = lake.link_lake(settings, progress=lambda _: None)
    assert result.mode == "incremental" and result.metrics["new_records"] > 0
    assert result.metrics["scored_existing_nodes"] > 0  # the delivery was scored against the population
    assert threads == {threading.current_thread().name}


def _as_if_new(settings) -> None:
    """The latest police file as if it had not been linked yet."""
    with lakehouse.connect(settings) as con:
        last = con.sql("SELECT delivery_id FROM raw.current_deliveries JOIN raw.police__occurrences "
                       "ON _delivery_id = delivery_id ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
        con.execute("DELETE FROM linked.delivery WHERE delivery_id = ?", [last])
        con.execute("DELETE FROM linked.node_features WHERE delivery_id = ?", [last])
        con.execute("DELETE FROM linked.person_record WHERE agency = 'police' AND entity = 'occurrences' "
                    "AND record_key IN (SELECT record_key FROM raw.police__occurrences WHERE _delivery_id = ?)", [last])


def test_an_incremental_run_scores_with_the_sql_its_full_link_compiled(linked_lake, monkeypatch):
    """The full link keeps its model's scoring SQL beside the model; an incremental run in a new
    process reads it there and does not have Splink write it again."""
    from linkage import lake, scoring

    settings, _, _ = linked_lake
    full = lake.link_lake(settings, full=True, progress=lambda _: None)
    assert len(list(full.run_dir.glob("scoring-*.json"))) == 1
    assert isinstance(full.metrics["compile_scoring_seconds"], float)
    _as_if_new(settings)

    def no_splink(*args, **kwargs):
        raise AssertionError("the incremental run compiled its scoring again")

    monkeypatch.setattr(scoring, "_compiled", {})  # as in a new process
    monkeypatch.setattr(scoring, "_compile", no_splink)
    result = lake.link_lake(settings, progress=lambda _: None)
    assert result.mode == "incremental" and result.metrics["scored_existing_nodes"] > 0
    assert result.model_path == full.run_dir / "model.json"


def test_a_delivery_too_large_for_an_incremental_run_does_not_open_the_population(linked_lake, monkeypatch):
    from linkage import lake

    settings, _, _ = linked_lake
    _as_if_new(settings)

    def opened(*args, **kwargs):
        raise AssertionError("the population was opened")

    monkeypatch.setattr(lake, "INCREMENTAL_MAX_SHARE", 0.0)  # any delivery is too large
    monkeypatch.setattr(lake, "_opening_population", opened)
    result = lake.link_lake(settings, progress=lambda _: None)
    assert result.mode == "full" and "new records: over 0% of the" in result.metrics["mode_reason"]
