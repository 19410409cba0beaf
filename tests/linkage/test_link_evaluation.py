import polars as pl
import pytest

from linkage.evaluation import pairwise_metrics, recall_by_source_pair



def test_pairwise_and_bcubed_by_hand():
    pred = pl.Series(["a", "a", "a", "b"])
    truth = pl.Series(["x", "x", "y", "y"])
    m = pairwise_metrics(pred, truth)
    assert (m["true_pairs"], m["predicted_pairs"], m["true_positive_pairs"]) == (2, 3, 1)
    assert m["pairwise_precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["pairwise_recall"] == pytest.approx(0.5)
    assert m["bcubed_precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1) / 4, abs=1e-4)
    perfect = pairwise_metrics(truth, truth)
    assert perfect["pairwise_f1"] == 1.0 and perfect["bcubed_f1"] == 1.0


def test_recall_by_source_pair():
    sources = pl.Series(["s1", "s1", "s2", "s2"])
    truth = pl.Series(["x", "x", "x", "y"])
    pred = pl.Series(["a", "a", "b", "c"])
    got = recall_by_source_pair(sources, pred, truth)
    assert got == {"s1 ~ s1": 1.0, "s1 ~ s2": 0.0}


