"""Check-digit rules for NHS number, PNC ID, UPN and CRN."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sources import identifiers as ids


@pytest.mark.parametrize("value", ["9434765919", "4010232137", "9449305552", "9000000009"])
def test_nhs_known_valid(value):
    assert ids.is_valid_nhs_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "9434765918",
        "4010232138",
        "943476591",
        "94347659190",
        "943 476 5919",
        "abcdefghij",
        None,
        9434765919,
        "",
        "1000000010",
    ],
)
def test_nhs_known_invalid(value):
    assert not ids.is_valid_nhs_number(value)


def test_nhs_remainder_ten_is_never_valid():
    # 100000001 -> weighted sum 2 -> 11 - 2 = 9 ; find a stem whose check would be 10
    stem = next(f"{i:09d}" for i in range(100000000, 100001000) if ids.nhs_check_digit(f"{i:09d}") is None)
    assert all(not ids.is_valid_nhs_number(stem + str(d)) for d in range(10))
    with pytest.raises(ValueError):
        ids.make_nhs_number(stem)


def test_nhs_normalise():
    assert ids.normalise_nhs_number("943 476 5919") == "9434765919"
    assert ids.normalise_nhs_number("943-476-5919") == "9434765919"
    assert ids.normalise_nhs_number("  ") is None


def test_pnc_rule_by_hand():
    # int("98" + "0123456") = 980123456; 980123456 mod 23 = 7; "ZABCDEFGHJ..."[7] = "G"
    assert 980123456 % 23 == 7
    assert ids.pnc_check_letter(98, 123456) == "G"
    assert ids.make_pnc_id(98, 123456) == "98/0123456G"
    assert ids.is_valid_pnc_id("98/0123456G")
    assert ids.is_valid_pnc_id("98/123456G")  # unpadded serial, same number
    assert not ids.is_valid_pnc_id("98/0123456H")
    assert not ids.is_valid_pnc_id("98-0123456G")
    assert not ids.is_valid_pnc_id("98/0123456g")
    # remainder 0 -> Z
    assert ids.pnc_check_letter(0, 23) == "Z"


def test_pnc_normalise_long_year():
    assert ids.normalise_pnc_id("1998/123456g") == "98/0123456G"
    assert ids.is_valid_pnc_id(ids.normalise_pnc_id("1998/123456G"))
    assert ids.normalise_pnc_id("rubbish") is None


def test_upn_rule_by_hand():
    digits = "870123415001"
    total = sum(int(d) * w for d, w in zip(digits, range(2, 14)))
    letter = "ABCDEFGHJKLMNPQRTUVWXYZ"[total % 23]
    assert ids.upn_check_letter(digits) == letter
    assert ids.is_valid_upn(letter + digits)
    wrong = next(c for c in "ABCDEFGHJKLMNPQRTUVWXYZ" if c != letter)
    assert not ids.is_valid_upn(wrong + digits)
    assert not ids.is_valid_upn(letter + digits[:-1])
    assert not ids.is_valid_upn((letter + digits).lower())
    assert ids.make_upn(870, 1234, 2015, 1) == letter + digits


def test_crn_format():
    assert ids.is_valid_crn("X123456")
    assert ids.make_crn("x", 42) == "X000042"
    for bad in ["X12345", "12345678", "XX23456", "x123456", None, "X1234567"]:
        assert not ids.is_valid_crn(bad)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=99_999_999))
def test_nhs_roundtrip(stem):
    s = f"{stem + 100_000_000:09d}"[-9:]
    check = ids.nhs_check_digit(s)
    if check is None:
        assert not any(ids.is_valid_nhs_number(s + str(d)) for d in range(10))
    else:
        v = ids.make_nhs_number(s)
        assert ids.is_valid_nhs_number(v)
        # any single-digit change of the check digit breaks it
        assert not ids.is_valid_nhs_number(s + str((check + 1) % 10))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 99), st.integers(0, 9_999_999))
def test_pnc_roundtrip(yy, serial):
    v = ids.make_pnc_id(yy, serial)
    assert ids.is_valid_pnc_id(v)
    assert sum(ids.is_valid_pnc_id(v[:-1] + c) for c in ids.PNC_CHECK_LETTERS) == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 999), st.integers(0, 9999), st.integers(0, 99), st.integers(0, 999))
def test_upn_roundtrip(la, est, year, serial):
    v = ids.make_upn(la, est, year, serial)
    assert len(v) == 13 and ids.is_valid_upn(v)
    assert sum(ids.is_valid_upn(c + v[1:]) for c in ids.UPN_CHECK_LETTERS) == 1


def test_vectorised_generators_unique_and_valid():
    idx = np.arange(0, 200_000, 7)
    nhs = ids.nhs_numbers_from_index(idx, salt=99)
    assert len(set(nhs)) == idx.size and all(ids.is_valid_nhs_number(v) for v in nhs)
    pnc = ids.pnc_ids_from_index(idx, np.full(idx.size, 2011), salt=99)
    assert len(set(pnc)) == idx.size and all(ids.is_valid_pnc_id(v) for v in pnc)
    upn = ids.upns_from_index(idx, np.full(idx.size, 931), np.full(idx.size, 2016), salt=99)
    assert len(set(upn)) == idx.size and all(ids.is_valid_upn(v) for v in upn)
    crn = ids.crns_from_index(idx, salt=99)
    assert len(set(crn)) == idx.size and all(ids.is_valid_crn(v) for v in crn)
    # the mapping depends on the salt
    assert list(ids.nhs_numbers_from_index(idx[:5], salt=1)) != list(nhs[:5])
