"""The same records give the same model and the same persons whatever order they arrive in: a
full re-link of an unchanged lake must not move persons (the lineage is an audit trail)."""
from __future__ import annotations

import polars as pl
import pytest

from linkage import model as M
from linkage.pipeline import link_records


def _persons(assignments: pl.DataFrame) -> list[tuple[str, ...]]:
    """The persons as sets of record ids (person ids themselves are fresh per run)."""
    groups = assignments.group_by("person_id").agg(pl.col("record_id").sort())["record_id"].to_list()
    return sorted(tuple(g) for g in groups)


def _parameters(model: dict) -> list[tuple]:
    levels = [(c["output_column_name"], level.get("sql_condition"), level.get("m_probability", -1.0),
               level.get("u_probability", -1.0))  # (the null level has none)
              for c in model["comparisons"] for level in c["comparison_levels"]]
    return [("prior", None, model["probability_two_random_records_match"], -1.0), *levels]


def _pairs(edges: pl.DataFrame) -> pl.DataFrame:
    both = edges.select(a=pl.min_horizontal("id_l", "id_r"), b=pl.max_horizontal("id_l", "id_r"),
                        p=pl.col("match_probability"))
    return both.sort("a", "b")


@pytest.mark.parametrize("sample_size", [None, 200], ids=["every-record", "sampled"])
def test_the_input_order_changes_neither_the_model_nor_the_persons(small_people, sample_size, monkeypatch):
    # caps below the data's pair counts, as at scale: u and EM then train on samples of pairs
    monkeypatch.setattr(M, "U_MAX_PAIRS", 5_000)
    monkeypatch.setattr(M, "EM_MAX_PAIRS", 2_000)
    if sample_size is not None:  # the path of large inputs: train on a sample of the distinct records
        monkeypatch.setattr(M, "TRAIN_SAMPLE_NODES", sample_size)
    records, _ = small_people
    orders = [records, records.sample(fraction=1.0, shuffle=True, seed=3), records.reverse()]
    runs = [link_records(frame, keep_state=True, progress=lambda _: None) for frame in orders]
    first = runs[0]
    assert first.metrics["training"]["training_records"] == min(sample_size or 10**9, first.metrics["nodes"])
    for other in runs[1:]:
        for mine, theirs in zip(_parameters(first.state.model), _parameters(other.state.model), strict=True):
            assert mine[:2] == theirs[:2]
            assert mine[2:] == pytest.approx(theirs[2:], rel=1e-9)  # summation order in DuckDB aside
        assert _persons(other.assignments) == _persons(first.assignments)
        mine, theirs = _pairs(first.edges), _pairs(other.edges)
        assert mine.select("a", "b").equals(theirs.select("a", "b"))
        assert mine["p"].to_list() == pytest.approx(theirs["p"].to_list(), rel=1e-9)
