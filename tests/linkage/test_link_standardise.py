import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardise import (alias_table, clean_text, parse_dob, soundex, standardise, valid_crn,
                                 valid_nhs_number, valid_pnc_id, valid_upn)
from sources.identifiers import (is_valid_nhs_number, is_valid_pnc_id, is_valid_upn, make_pnc_id, make_upn,
                                 nhs_numbers_from_index, normalise_pnc_id)


def one(records: dict) -> dict:
    return standardise(pl.DataFrame([{"record_id": "x", **records}])).row(0, named=True)


def col(expr, values):
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(expr(pl.col("v")).alias("v"))["v"].to_list()


def test_names_case_punctuation_diacritics_titles():
    r = one({"forename": "  Mr JOSÉ-Luis ", "surname": "O'Brien-Smith Jr"})
    assert r["forename_std"] == "jose" and r["middle_std"] == "luis"
    assert r["surname_std"] == "obriensmith"
    assert (r["surname_first"], r["surname_last"]) == ("obrien", "smith")
    assert one({"forename": "Łukasz", "surname": "WÓJCIK"})["surname_std"] == "wojcik"
    assert col(clean_text, ["Zoë", "  ", None, "D'Arcy"]) == ["zoe", None, None, "darcy"]


def test_nicknames_and_transliterations():
    assert one({"forename": "Bill"})["forename_canon"] == "william"
    assert one({"forename": "Muhammad"})["forename_canon"] == one({"forename": "Mohammed"})["forename_canon"]
    alex = one({"forename": "Alex"})["forename_aliases"]
    assert "alexander" in alex and "alexandra" in alex
    assert one({"forename": "Zebedee"})["forename_aliases"] == ["zebedee"]
    assert alias_table().height > 500


@pytest.mark.parametrize("name,code", [("robert", "R163"), ("rupert", "R163"), ("ashcraft", "A261"),
                                       ("tymczak", "T522"), ("pfister", "P236"), ("lee", "L000")])
def test_soundex(name, code):
    assert col(soundex, [name]) == [code]


def test_dob_formats_and_swap_evidence():
    frame = pl.DataFrame({"d": ["1990-03-25", "25/03/1990", "19900325", "1990-25-03", "2001-02-30", "x", None]})
    out = frame.select(parse_dob("d", pl.String))
    assert out["dob"].to_list()[:4] == ["1990-03-25"] * 4
    assert out["dob"].to_list()[4:] == [None, None, None]
    assert out["dob_swap_repaired"].to_list() == [False, False, False, True, False, False, False]
    r = one({"dob": "1985-04-03"})
    assert r["dob_swapped"] == "1985-03-04" and r["dob_year"] == "1985"
    assert one({"dob": "1985-04-04"})["dob_swapped"] is None  # same day and month: no swap
    assert one({"dob": "1985-04-23"})["dob_swapped"] is None  # day > 12 cannot be a month
    import datetime

    dates = pl.DataFrame({"record_id": ["a"], "dob": [datetime.date(1990, 1, 2)]})
    assert standardise(dates)["dob"].to_list() == ["1990-01-02"]


ISO_ISH = st.one_of(
    st.builds(lambda y, m, d, sep: f"{y:04d}{sep}{m:02d}{sep}{d:02d}", st.integers(0, 9999), st.integers(0, 40),
              st.integers(0, 40), st.sampled_from(["-", "/", "."])),
    st.builds(lambda y, m, d: f"{d}/{m}/{y}", st.integers(1000, 2999), st.integers(0, 40), st.integers(0, 40)),
    st.text(alphabet="0123456789-/ ", max_size=12))


@settings(max_examples=40, deadline=None)
@given(st.lists(ISO_ISH, min_size=1, max_size=30))
def test_dob_fast_path_for_iso_dates_gives_the_general_parsers_result(values):
    # standardise reads values that already are ISO dates as they are; the general parser must agree
    frame = pl.DataFrame({"record_id": [str(i) for i in range(len(values))], "dob": values})
    general = frame.select(parse_dob("dob", pl.String))
    assert standardise(frame).select("dob", "dob_swap_repaired").to_dicts() == general.to_dicts()


def test_postcodes():
    r = one({"postcode": "rg1  4ab"})
    assert (r["postcode_std"], r["postcode_sector"], r["postcode_district"], r["postcode_area"]) == (
        "RG1 4AB", "RG1 4", "RG1", "RG")
    assert one({"postcode": "SW1A1AA"})["postcode_std"] == "SW1A 1AA"
    foreign = one({"postcode": "75001"})
    assert foreign["postcode_std"] == "75001" and foreign["postcode_district"] is None
    assert one({"postcode": " "})["postcode_std"] is None


def test_identifiers_agree_with_sources_validators():
    rng = np.random.default_rng(3)
    good = list(nhs_numbers_from_index(np.arange(200)))
    bad = [g[:9] + str((int(g[9]) + 1 + int(rng.integers(0, 8))) % 10) for g in good]
    values = good + bad + ["", "12345", "485 777 3456", "943-476-5919"]
    ours = col(valid_nhs_number, values)
    for v, o in zip(values, ours):
        norm = v.replace(" ", "").replace("-", "")
        assert (o is not None) == is_valid_nhs_number(norm), v
    pncs = [make_pnc_id(y, s) for y, s in zip(rng.integers(0, 99, 100), rng.integers(0, 9_999_999, 100))]
    wrong = [p[:-1] + ("A" if p[-1] != "A" else "B") for p in pncs]
    for v, o in zip(pncs + wrong + ["2001/123456A"], col(valid_pnc_id, pncs + wrong + ["2001/123456A"])):
        assert (o is not None) == is_valid_pnc_id(normalise_pnc_id(v)), v
    upns = [make_upn(873, int(e), 12, int(s)) for e, s in zip(rng.integers(1000, 9999, 100), rng.integers(0, 999, 100))]
    wrong_upns = [("B" if u[0] != "B" else "C") + u[1:] for u in upns]
    for v, o in zip(upns + wrong_upns, col(valid_upn, upns + wrong_upns)):
        assert (o is not None) == is_valid_upn(v), v
    assert col(valid_crn, ["x123456", "X12345", None]) == ["X123456", None, None]


def test_only_record_id_is_required():
    out = standardise(pl.DataFrame({"record_id": ["a", "b"]}))
    assert out.height == 2 and out["forename_std"].null_count() == 2
