"""The polars validators agree with the scalar ones on valid, corrupted and random values."""
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sources import identifiers as ids

SCALAR = {"nhs_number": ids.is_valid_nhs_number, "pnc_id": ids.is_valid_pnc_id,
          "upn": ids.is_valid_upn, "crn": ids.is_valid_crn}


def _vector(kind: str, values: list[str | None]) -> list[bool]:
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(ids.VALIDATORS[kind](pl.col("v")).alias("ok"))["ok"].to_list()


def test_known_values():
    assert _vector("nhs_number", ["9434765919", "9434765918", "943476591", None, "94347659 9"]) == [
        True, False, False, False, False]
    good_pnc, good_upn = ids.make_pnc_id(3, 8124453), ids.make_upn(870, 4227, 12, 600)
    bad_pnc = good_pnc[:-1] + ("A" if good_pnc[-1] != "A" else "B")
    bad_upn = ("A" if good_upn[0] != "A" else "B") + good_upn[1:]
    assert _vector("pnc_id", [good_pnc, bad_pnc, "3/8124453X", None]) == [True, False, False, False]
    assert _vector("upn", [good_upn, bad_upn, good_upn[:-1] + "A", None]) == [True, False, False, False]
    assert _vector("crn", ["X123456", "X12345", "1234567", None]) == [True, False, False, False]


nhs_like = st.one_of(st.from_regex(r"\A\d{10}\Z"), st.text(max_size=12))
pnc_like = st.one_of(st.from_regex(r"\A\d{2}/\d{1,7}[A-Z]\Z"), st.text(max_size=12))
upn_like = st.one_of(st.from_regex(r"\A[A-Z]\d{12}\Z"), st.text(max_size=14))


@settings(max_examples=200, deadline=None)
@given(st.lists(nhs_like, max_size=30), st.lists(pnc_like, max_size=30), st.lists(upn_like, max_size=30))
def test_vectorised_equals_scalar(nhs, pnc, upn):
    for kind, values in (("nhs_number", nhs), ("pnc_id", pnc), ("upn", upn), ("crn", upn)):
        assert _vector(kind, values) == [SCALAR[kind](v) for v in values]
