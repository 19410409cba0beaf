"""Statistical disclosure control of area tables (governance/disclosure.py).

Hand-made tables pin the published values and statuses; property-based tests play the
attacker: they protect random hierarchical tables and try to recover every suppressed count
from what is published, with interval subtraction and with linear programmes.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from governance.disclosure import for_release, protect

KEYS = ["la_code", "lsoa_code", "month", "measure"]
MARGINS = [("lsoa_code",), ("month",), ("lsoa_code", "month"), ("la_code", "lsoa_code"), ("measure",),
           ("month", "measure")]
THRESHOLD, BASE = 7, 5


def la_table(counts: dict[str, int], la: str = "E06000001") -> pl.DataFrame:
    """One LA's LSOAs (one month, one measure), counts by LSOA code."""
    return pl.DataFrame({"la_code": la, "lsoa_code": list(counts), "month": "2024-01", "measure": "referrals",
                         "n": list(counts.values())})


def by_lsoa(table: pl.DataFrame) -> dict[str | None, tuple[int | None, str]]:
    return {row["lsoa_code"]: (row["n"], row["status"]) for row in table.iter_rows(named=True)}


# ---------------------------------------------------------------- hand-made tables


def test_small_counts_are_suppressed_and_the_rest_rounded_half_up():
    counts = [0, 1, 3, 7, 8, 12, 13, 15, 22, 23, 1002]
    cells = pl.DataFrame({"area": [f"A{i:02d}" for i in range(len(counts))], "n": counts})
    out = protect(cells, count="n", keys=["area"], margins=[])
    assert out["n"].to_list() == [0, None, None, None, 10, 10, 15, 15, 20, 25, 1000]
    assert out["status"].to_list() == ["published"] + ["suppressed_primary"] * 3 + ["published"] * 7
    assert out.columns == ["area", "n", "status"]


def test_a_lone_small_count_gets_the_smallest_other_count_as_secondary():
    out = protect(la_table({"L1": 3, "L2": 20, "L3": 9, "L4": 40}), count="n", keys=KEYS, margins=["lsoa_code"])
    assert by_lsoa(out) == {"L1": (None, "suppressed_primary"), "L2": (20, "published"),
                            "L3": (None, "suppressed_secondary"), "L4": (40, "published"),
                            None: (70, "published")}  # the LA total, 72, rounded


def test_ties_are_broken_by_key_order():
    out = protect(la_table({"L3": 9, "L1": 2, "L2": 9}), count="n", keys=KEYS, margins=["lsoa_code"])
    assert by_lsoa(out)["L2"] == (None, "suppressed_secondary")
    assert by_lsoa(out)["L3"] == (10, "published")


def test_zeros_are_published_and_never_chosen_as_secondary():
    out = protect(la_table({"L1": 3, "L2": 0, "L3": 30}), count="n", keys=KEYS, margins=["lsoa_code"])
    assert by_lsoa(out) == {"L1": (None, "suppressed_primary"), "L2": (0, "published"),
                            "L3": (None, "suppressed_secondary"), None: (35, "published")}


def test_small_counts_that_would_add_up_to_a_known_small_sum_get_a_secondary():
    # two suppressed 1s beside an exact total are both 1: the 8 must be withheld too
    out = protect(la_table({"L1": 1, "L2": 1, "L3": 8, "L4": 20}), count="n", keys=KEYS, margins=["lsoa_code"])
    assert [by_lsoa(out)[k][1] for k in ("L3", "L4", None)] == ["suppressed_secondary", "published", "published"]
    # 7 + 7: each could be as large as 13, so no secondary is needed
    out = protect(la_table({"L1": 7, "L2": 7, "L3": 20}), count="n", keys=KEYS, margins=["lsoa_code"])
    assert [by_lsoa(out)[k][1] for k in ("L3", None)] == ["published", "published"]


def test_a_small_total_is_suppressed_and_protected_in_the_margin_above_it():
    cells = pl.concat([la_table({"A1": 2, "A2": 3}, la="E06000001"), la_table({"B1": 10, "B2": 20}, la="E06000002")])
    out = protect(cells, count="n", keys=KEYS, margins=[["lsoa_code"], ["la_code", "lsoa_code"]])
    status = {(r["la_code"], r["lsoa_code"]): (r["n"], r["status"]) for r in out.iter_rows(named=True)}
    assert status == {
        ("E06000001", "A1"): (None, "suppressed_primary"), ("E06000001", "A2"): (None, "suppressed_primary"),
        ("E06000001", None): (None, "suppressed_primary"),       # LA total 5
        ("E06000002", "B1"): (None, "suppressed_secondary"), ("E06000002", "B2"): (20, "published"),
        ("E06000002", None): (None, "suppressed_secondary"),     # else LA1 = national - LA2
        (None, None): (35, "published"),
    }


def test_secondary_suppression_spreads_across_margins():
    # LSOA x month with LA totals per month and LSOA totals over the months
    cells = pl.DataFrame({"la_code": "E06000001", "lsoa_code": ["L1", "L1", "L2", "L2", "L3", "L3"],
                          "month": ["2024-01", "2024-02"] * 3, "measure": "referrals",
                          "n": [3, 20, 12, 30, 15, 9]})
    out = protect(cells, count="n", keys=KEYS, margins=[["lsoa_code"], ["month"]])
    status = {(r["lsoa_code"], r["month"]): r["status"] for r in out.iter_rows(named=True)}
    # the 3 leaves the January total alone (-> 12, the smallest) and L1's total (-> 20); 12
    # leaves L2's total, 20 leaves February's: taken in order, February gets 9 first, then
    # L2 gets 30 and L3's 9 needs 15. Every total stays published.
    assert status == {
        ("L1", "2024-01"): "suppressed_primary", ("L1", "2024-02"): "suppressed_secondary",
        ("L2", "2024-01"): "suppressed_secondary", ("L2", "2024-02"): "suppressed_secondary",
        ("L3", "2024-01"): "suppressed_secondary", ("L3", "2024-02"): "suppressed_secondary",
        ("L1", None): "published", ("L2", None): "published", ("L3", None): "published",
        (None, "2024-01"): "published", (None, "2024-02"): "published",
    }
    assert out.filter(pl.col("status") == "published")["n"].to_list() == [25, 40, 25, 30, 60]


def test_a_chain_of_equations_the_local_rules_miss_is_caught_by_the_audit():
    # months x measures of one LSOA, with totals over measures and over months. Equation by
    # equation all is well once 44 and 20 are withheld, but the chain m1q1 + 20 = 21,
    # 44 + 20 = 64, m0q0 + m1q0 + 44 = 52 gives m1q1 = 9 - (m0q0 + m1q0) <= 7.
    cells = pl.DataFrame({"la_code": "E06000001", "lsoa_code": "L1",
                          "month": ["m0", "m0", "m1", "m1", "m2", "m2"], "measure": ["q0", "q1"] * 3,
                          "n": [2, 0, 6, 1, 44, 20]})
    margins = [["month"], ["measure"]]
    out = protect(cells, count="n", keys=KEYS, margins=margins)
    assert_attack_fails(cells, out, margins)
    # what the local rules alone withhold (m2's total and the totals over the months are
    # published) leaks: the attacker proves m1q1 <= 7
    assert out.filter(pl.col("month").is_null() | (pl.col("month") == "m2"))["status"].to_list() == \
        ["suppressed_secondary"] * 5
    local_only = out.with_columns(
        pl.when(pl.col("month").is_null() | ((pl.col("month") == "m2") & pl.col("measure").is_null()))
        .then(pl.lit("published")).otherwise("status").cast(out.schema["status"]).alias("status"),
        pl.when(pl.col("month").is_null() & (pl.col("measure") == "q0")).then(50)   # 52
        .when(pl.col("month").is_null() & (pl.col("measure") == "q1")).then(20)     # 21
        .when((pl.col("month") == "m2") & pl.col("measure").is_null()).then(65)     # 64
        .otherwise("n").alias("n"))
    target = out.with_row_index().filter((pl.col("month") == "m1") & (pl.col("measure") == "q1"))["index"][0]
    assert attack(cells, local_only, exact=True)[target] <= THRESHOLD


def test_without_secondary_suppression_the_attack_succeeds():
    cells = la_table({"L1": 1, "L2": 10})  # total 11 -> 10
    margins = [["lsoa_code"]]
    unsafe = protect(cells, count="n", keys=KEYS, margins=margins, secondary=False)
    assert unsafe["status"].to_list() == ["suppressed_primary", "published", "published"]
    # published 10 and 10 mean 8..12 each, so L1 = total - L2 is at most 4
    bounds = subtraction_attack(unsafe, *published_intervals(unsafe))
    assert bounds[0] == (1, 4)
    assert attack(cells, unsafe, exact=False) == {0: pytest.approx(4)}
    assert attack(cells, unsafe, exact=True) == {0: pytest.approx(1)}
    with pytest.raises(AssertionError, match="proved <= 7"):
        assert_attack_fails(cells, unsafe, margins)
    assert_attack_fails(cells, protect(cells, count="n", keys=KEYS, margins=margins), margins)


def test_rates_use_exact_counts_and_are_withheld_with_them():
    cells = pl.DataFrame({"la_code": "E06000001", "lsoa_code": ["L1", "L1", "L2", "L2", "L3", "L3"],
                          "month": ["2024-01", "2024-02"] * 3, "measure": "referrals",
                          "n": [3, 20, 12, 31, 0, 0], "population": [1500, 1500, 2000, 2000, 0, 0]})
    out = protect(cells, count="n", keys=KEYS, margins=[["lsoa_code"], ["month"]],
                  rates={"rate_per_1000": "population"}, denominators_add_over=["lsoa_code"])
    rates = {(r["lsoa_code"], r["month"]): r["rate_per_1000"] for r in out.iter_rows(named=True)}
    assert rates == {
        ("L1", "2024-01"): None, ("L1", "2024-02"): None, ("L1", None): 15.3,   # 23 / 1500
        ("L2", "2024-01"): None, ("L2", "2024-02"): None, ("L2", None): 21.5,   # 43 / 2000
        ("L3", "2024-01"): None, ("L3", "2024-02"): None, ("L3", None): None,   # population 0
        (None, "2024-01"): 4.3, (None, "2024-02"): 14.6,                         # 15, 51 / 3500
    }
    assert out.filter(pl.col("lsoa_code") == "L3")["n"].to_list() == [0, 0, 0]


def test_a_denominator_must_add_up_or_stay_the_same_in_a_total():
    cells = la_table({"L1": 10, "L2": 20}).with_columns(population=pl.Series([1000, 1200]))
    with pytest.raises(ValueError, match=r"denominator 'population' differs .* \['lsoa_code'\]"):
        protect(cells, count="n", keys=KEYS, margins=["lsoa_code"], rates={"rate": "population"})


def test_other_thresholds_and_bases():
    cells = pl.DataFrame({"area": ["A", "B", "C", "D", "E", "F"], "n": [0, 2, 3, 14, 15, 99]})
    out = protect(cells, count="n", keys=["area"], margins=[], threshold=2, base=10)
    assert out["n"].to_list() == [0, None, 10, 10, 20, 100]  # 3 would round to 0: published as 10
    out = protect(cells, count="n", keys=["area"], margins=[], threshold=0, base=1)
    assert out["n"].to_list() == [0, 2, 3, 14, 15, 99]


def test_for_release_does_not_say_which_suppressions_are_primary():
    out = for_release(protect(la_table({"L1": 3, "L2": 20, "L3": 9}), count="n", keys=KEYS, margins=["lsoa_code"]))
    assert out["status"].to_list() == ["suppressed", "published", "suppressed", "published"]


@pytest.mark.parametrize("change, kwargs, message", [
    (pl.col("n") * -987654, {}, "count column 'n' has negative values"),
    (pl.col("n").cast(pl.Float64), {}, "count column 'n' must hold integers"),
    (pl.when(pl.col("lsoa_code") == "L1").then(None).otherwise("n").alias("n"), {}, "count column 'n' has missing"),
    (pl.lit("L1").alias("lsoa_code"), {}, "3 rows share their key (la_code, lsoa_code, month, measure)"),
    (pl.lit(None, dtype=pl.String).alias("month"), {}, "key column 'month' has missing values"),
    (None, {"keys": [*KEYS, "ward"]}, "missing columns: 'ward'"),
    (None, {"rates": {"rate": "population"}}, "missing columns: 'population'"),
    (None, {"margins": [["ward"]]}, "margin ['ward'] sums over columns that are not keys: ['ward']"),
    (None, {"margins": [["lsoa_code"], "lsoa_code"]}, "margin ['lsoa_code'] is given twice"),
    (None, {"rates": {"month": "n"}}, "output column 'month' would clash"),
    (None, {"threshold": -1}, "threshold must be an integer >= 0"),
])
def test_bad_input_is_a_value_error_that_names_columns_not_values(change, kwargs, message):
    cells = la_table({"L1": 987654, "L2": 20, "L3": 30})
    if change is not None:
        cells = cells.with_columns(change)
    with pytest.raises(ValueError) as error:
        protect(cells, **({"count": "n", "keys": KEYS, "margins": ["lsoa_code"]} | kwargs))
    assert message in str(error.value)
    assert "987654" not in str(error.value)


# ---------------------------------------------------------------- the attacker


def published_intervals(table: pl.DataFrame, threshold: int = THRESHOLD, base: int = BASE):
    """What each published row says about its true count: 0 is exact, a rounded v means
    v - base//2 .. v + (base-1)//2 but more than the threshold (smaller ones are suppressed),
    a suppressed count is >= 1 (zeros are never suppressed)."""
    lo, hi = [], []
    for value in table["n"]:
        if value is None:
            lo.append(1.0), hi.append(np.inf)
        elif value == 0:
            lo.append(0.0), hi.append(0.0)
        else:
            lo.append(float(max(value - base // 2, threshold + 1))), hi.append(float(value + (base - 1) // 2))
    return np.array(lo), np.array(hi)


def covers(table: pl.DataFrame, cells: pl.DataFrame) -> np.ndarray:
    """covers[r, c]: row r of the published table (null key = all) sums row c of `cells`."""
    result = np.ones((table.height, cells.height), dtype=bool)
    for key in KEYS:
        codes = {v: i for i, v in enumerate(dict.fromkeys(cells[key].to_list()))}
        row = np.array([-1 if v is None else codes[v] for v in table[key]])
        result &= (row[:, None] == -1) | (row[:, None] == np.array([codes[v] for v in cells[key]])[None, :])
    return result


def attack(cells: pl.DataFrame, table: pl.DataFrame, *, exact: bool,
           threshold: int = THRESHOLD, base: int = BASE) -> dict[int, float]:
    """The largest value the attacker can prove possible for each primary-suppressed row of
    `table`: a linear programme over the unknown cell counts (>= 0; integrality ignored)
    constrained by every published row. exact=False: published counts are known only as
    their rounding intervals; exact=True: known exactly (rates with public denominators)."""
    a = covers(table, cells).astype(float)
    truth = a @ cells["n"].to_numpy()
    lo, hi = published_intervals(table, threshold, base)
    if exact:
        published = (table["status"] == "published").to_numpy()
        lo[published] = hi[published] = truth[published]
    assert np.all((lo <= truth) & (truth <= hi)), "the attacker's model must admit the true table"
    finite = np.isfinite(hi)
    a_ub, b_ub = np.vstack([a[finite], -a]), np.concatenate([hi[finite], -lo])
    result = {}
    for row in np.flatnonzero((table["status"] == "suppressed_primary").to_numpy()):
        lp = linprog(-a[row], A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
        assert lp.status in (0, 3), lp.message  # optimal or unbounded
        result[int(row)] = np.inf if lp.status == 3 else -lp.fun
    return result


def subtraction_attack(table: pl.DataFrame, lo: np.ndarray, hi: np.ndarray) -> dict[int, tuple[float, float]]:
    """Interval arithmetic on every published equation (a total and the rows one level down
    that sum to it): a total lies within the sum of its members' intervals, a member within
    the total's interval minus the others', repeated until nothing narrows. Returns the
    bounds of the suppressed rows."""
    lo, hi = lo.copy(), hi.copy()
    summed = [frozenset(k for k in KEYS if row[k] is None) for row in table.iter_rows(named=True)]
    inside = covers(table, table)
    equations = [(total, np.flatnonzero(inside[total] & np.array([s == low for s in summed])))
                 for total in range(table.height) for low in set(summed) if low < summed[total]]
    for _ in range(100):
        before = (lo.copy(), hi.copy())
        for total, members in equations:
            lo[total], hi[total] = max(lo[total], lo[members].sum()), min(hi[total], hi[members].sum())
            for m in members:
                others = members[members != m]
                lo[m] = max(lo[m], lo[total] - hi[others].sum())
                hi[m] = min(hi[m], hi[total] - lo[others].sum())
        if np.array_equal(before[0], lo) and np.array_equal(before[1], hi):
            break
    return {int(r): (lo[r], hi[r]) for r in np.flatnonzero(table["n"].is_null().to_numpy())}


def assert_attack_fails(cells, table, margins, threshold: int = THRESHOLD, base: int = BASE) -> None:
    """No primary-suppressed count can be proved to lie in 1..threshold.

    The attacker knows the rules and sees the released table (for_release: not which
    suppressions are primary). A suppressed count is >= 1 whatever the attacker does, so the
    disclosure to prevent is an upper bound: proving that the count is <= threshold reveals
    that it is a small count, which the suppression exists to hide, and usually narrows it to
    a handful of values. If instead the attacker's largest feasible value is >= threshold + 1
    (counts are integers: a largest value of 7.5 would still prove <= 7), the cell could be
    like any secondary suppression (those hold counts > threshold) and, since its true value
    is <= threshold and feasible, the attacker's interval [1, >= threshold + 1] holds at least
    two integers: it is not pinned to one value either. The attacker solves a linear programme
    (integrality otherwise ignored) with the published counts known exactly, as rates with public
    denominators give them away; that is the strongest attack: the rounding intervals only
    widen what is feasible, and the subtraction attack is weaker than the LP (checked).
    """
    lo, hi = published_intervals(table, threshold, base)
    subtraction = subtraction_attack(table, lo, hi)
    by_interval = attack(cells, table, exact=False, threshold=threshold, base=base)
    by_exact = attack(cells, table, exact=True, threshold=threshold, base=base)
    for row, largest in by_exact.items():
        assert largest <= by_interval[row] + 1e-6 and by_interval[row] <= subtraction[row][1] + 1e-6
        assert largest >= threshold + 1 - 1e-6, (
            f"row {table.row(row)} proved <= {threshold} (at most {largest:g}) with margins {margins}")


# ---------------------------------------------------------------- properties

COUNTS = st.one_of(st.just(0), st.integers(1, THRESHOLD), st.integers(1, THRESHOLD), st.integers(8, 25),
                   st.integers(26, 150))


@st.composite
def area_tables(draw):
    """A few LAs with a few LSOAs each, a few months and measures, many small counts, and a
    random set of published margins."""
    months = [f"2024-{m:02d}" for m in range(1, draw(st.integers(1, 3)) + 1)]
    measures = ["referrals", "assessments"][:draw(st.integers(1, 2))]
    rows = []
    for la, n_lsoas in enumerate(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))):
        for lsoa in range(n_lsoas):
            population = draw(st.sampled_from([0, 1200, 1650, 2000]))
            rows += [{"la_code": f"E0600000{la}", "lsoa_code": f"E0100{la}{lsoa:03d}", "month": month,
                      "measure": measure, "n": draw(COUNTS), "population": population}
                     for month in months for measure in measures]
    margins = draw(st.lists(st.sampled_from(MARGINS), unique=True, max_size=4))
    return pl.DataFrame(rows), [list(m) for m in margins]


def protect_area(cells, margins, **kwargs):
    return protect(cells, count="n", keys=KEYS, margins=margins, rates={"rate": "population"},
                   denominators_add_over=["la_code", "lsoa_code"], **kwargs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(area_tables())
def test_published_rows_follow_the_rules(table):
    cells, margins = table
    out = protect_area(cells, margins)
    inside = covers(out, cells)
    exact = inside.astype(int) @ cells["n"].to_numpy()
    lsoas = cells.select("lsoa_code", "population").rows()
    population = [sum(dict(lsoa for lsoa, under in zip(lsoas, row) if under).values()) for row in inside]
    for (value, status, rate), true, pop in zip(out.select("n", "status", "rate").rows(), exact, population):
        if 1 <= true <= THRESHOLD:
            assert status == "suppressed_primary"
        elif status == "suppressed_secondary":
            assert true > THRESHOLD  # never a zero
        if status == "published":
            assert value % BASE == 0 and (value == 0) == (true == 0) and abs(value - true) <= BASE // 2
            assert (rate is None) if pop == 0 else abs(rate - true / pop * 1000) <= 0.05 + 1e-9
        else:
            assert value is None and rate is None
    # one row per cell and per total of each margin, no other columns
    levels = 1 + len(margins)
    assert out.columns == [*KEYS, "n", "status", "rate"]
    assert out.height == sum(cells.select([k for k in KEYS if k not in m]).n_unique() for m in [[], *margins])
    assert out.select(pl.struct(KEYS).is_duplicated().any()).item() is False
    assert levels == out.select(pl.concat_str([pl.col(k).is_null().cast(pl.String) for k in KEYS])).n_unique()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(area_tables())
def test_the_attacker_cannot_prove_a_suppressed_count_small(table):
    cells, margins = table
    assert_attack_fails(cells, protect_area(cells, margins), margins)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(area_tables(), st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_row_order(table, random):
    cells, margins = table
    order = list(range(cells.height))
    random.shuffle(order)
    assert protect_area(cells[order], margins).equals(protect_area(cells, margins))
