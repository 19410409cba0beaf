"""Statistical disclosure control (SDC) for the area tables that go to commissioners.

    table = protect(counts, count="referrals", keys=["la_code", "lsoa_code", "month", "measure"],
                    margins=[["lsoa_code"], ["month"], ["lsoa_code", "month"]],
                    rates={"rate_per_1000": "population"}, denominators_add_over=["lsoa_code"])
    release = for_release(table)   # what actually leaves: no primary/secondary distinction

The rules (DESIGN.md, "Governance model"):

1. **Primary suppression**: a count of 1..``threshold`` (default 7) is withheld. 0 is published
   as 0. Totals are cells like any other: an LA total of 5 is withheld too.
2. **Rounding**: every other count is published rounded to the nearest ``base`` (default 5),
   half up (12 -> 10, 13 -> 15). A non-zero count is never published as 0 (with a threshold
   below ``base / 2`` it would round to 0 and pass for a true zero); it is published as ``base``.
3. **Secondary suppression**: no withheld count can be worked out from the totals published
   alongside it (see below).
4. **Rates** (per 1,000: count / denominator * 1000, to 1 decimal) are computed from the exact
   count and withheld whenever the count is withheld (and when the denominator is 0).

**Input**: one row per cell, the key columns (no nulls, no duplicate key) and an exact
non-negative integer count. **Margins** say which totals are published: each margin is the list
of key columns summed over, grouping by the other keys. With keys (la_code, lsoa_code, month,
measure), the margin ``["lsoa_code"]`` publishes every LA total (the sum of its LSOAs) per month
and measure, ``["month"]`` every LSOA's total over the months, ``["lsoa_code", "month"]`` every
LA's total over the months, ``["la_code", "lsoa_code"]`` national totals. List exactly the totals
that are published; nothing is added implicitly. Total rows are part of the output, with null in
the key columns summed over ("all"); they are computed from the exact counts and then
protected like any cell.

**Output**: the key columns, the *published* count under the count column's name (nullable;
never the exact count), ``status`` (``published``, ``suppressed_primary``,
``suppressed_secondary``) and one column per rate, sorted by the keys with totals after the
cells they sum. The primary/secondary distinction is for the audit trail and for checking; it
tells anyone who sees it that a ``suppressed_primary`` cell holds 1..threshold, so the table that
leaves is ``for_release(table)``, whose status is only ``published`` or ``suppressed``.

**What the attacker knows.** The rules: a published 0 is exactly 0; a published non-zero
value means a true count > threshold; a suppressed count is >= 1 (zeros are never suppressed);
every published additive relation. And, beyond rounding: rates computed from exact counts with
public denominators give the exact counts back, so the checks below assume every published
count is known exactly. Suppression must stop the attacker from proving that a
primary-suppressed count lies in 1..threshold, which would disclose that it is a small count
(and often which one).

**Equations.** For every pair of levels L, T where the columns summed at L are a strict subset
of those summed at T (the cells are the empty set): "each T-total = the sum of the L-rows under
it". The levels are the published ones and the unions of published ones: a union (e.g. an LA's
grand total when LA totals per month and LSOA totals over the months are both published) is
known to an attacker as soon as either side is, so it is treated as a published total while
protecting (small: primary; may be chosen as a secondary) and then left out of the output.
Without it, relations such as "the LA totals over months add up to the same sum as the
national totals per month" would go unchecked.

**Secondary suppression**, in two steps, repeated until nothing changes:

1. Local rules, checked on every equation with the exact counts:
   * (lone) it never has exactly one suppressed item (member or total): that item would be the
     total minus the rest;
   * (mass) when its total is published, its k suppressed members have a known sum S and, each
     being >= 1, each is at most S - (k - 1). That must exceed the threshold, or the attacker
     proves they are all small (two suppressed 1s beside an exact total are both 1).
   A broken equation gets one more suppression: its smallest published non-zero item by exact
   count (the total is an item too; being the largest it is taken last), ties broken by the
   output order (the keys). Suppressing an item can break other equations, so this is
   repeated until no equation is broken.
2. Audit: local rules cannot see a chain of equations (a small count can only grow if a
   neighbour shrinks, that one only if another grows, ... until an exact total stops it). So
   the whole table is attacked with linear programmes (the equations, published counts exact,
   suppressed ones >= 1): first one programme that lifts as many primary cells as it can above
   the threshold, then, for each cell it could not lift, its own maximum. A cell whose maximum
   is below threshold + 1 is exposed: the smallest published non-zero item of the equations that
   bind that maximum is suppressed, and step 1 runs again. Every round suppresses at least one
   item and more suppression never helps the attacker, so this ends (at worst with every
   non-zero item suppressed, where nothing bounds a count from above).

Everything is deterministic and independent of the input's row order. Zero cells are never
used as secondary suppressions: for a small count to be possibly larger, something beside it
must be possibly smaller, and a withheld 0 cannot go lower, so it would not raise the
attacker's upper bound at all; and never suppressing zeros keeps "a suppressed count is >= 1"
true, which the checks already assume of the attacker. (Rows dropped from the output, such as
the unions, only take information away from the attacker.)

**Limitations.** The choice of secondaries is greedy (smallest first), not the least
information lost (tau-argus's optimisation methods). The audit ignores integrality (a linear
programme's maximum is at least the integer one, so a cell it clears could in rare cases still
be shown <= threshold by an integer attack). It knows only this table: differencing against
other published tables (other geographies or periods, earlier releases) is not covered. Cost:
18,000 cells with four margins take about 0.5-4 s, most of it in the audit when many cells
are small. tests/governance/test_gov_disclosure.py attacks protected random tables with its own
linear programmes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from scipy import sparse
from scipy.optimize import linprog

STATUSES = ("published", "suppressed_primary", "suppressed_secondary")
STATUS = pl.Enum(STATUSES)
RELEASE_STATUS = pl.Enum(("published", "suppressed"))
_PUBLISHED, _PRIMARY, _SECONDARY = 0, 1, 2
_VALUE, _LEVEL = "__sdc_value", "__sdc_level"  # internal column names


def protect(frame: pl.DataFrame, *, count: str, keys: Sequence[str],
            margins: Sequence[str | Sequence[str]] = (),
            rates: Mapping[str, str] | None = None,
            denominators_add_over: Sequence[str] = (),
            threshold: int = 7, base: int = 5, secondary: bool = True) -> pl.DataFrame:
    """The disclosure-controlled table of `frame` (see the module docstring).

    frame: one row per cell: the `keys` columns and the exact count in column `count`.
    margins: the published totals, each as the key column(s) summed over.
    rates: {output rate column: denominator column}; rate = count / denominator * 1000.
    denominators_add_over: key columns over which a denominator adds up in a total (geography,
        e.g. ["lsoa_code"]); over any other column summed in a total (month, measure) the
        denominator must be the same for every cell of the total, and is used as it is.
    threshold: counts 1..threshold are suppressed. base: published counts are rounded to it.
    secondary: False skips secondary suppression - unsafe, for tests and demonstrations only.
    """
    keys = list(keys)
    rates = dict(rates or {})
    published_levels = _validate(frame, count, keys, margins, rates, denominators_add_over, threshold, base)
    levels = _union_closure(published_levels, keys)
    table = _totals(frame, count, keys, levels, len(published_levels), sorted(set(rates.values())),
                    set(denominators_add_over))
    values = table[_VALUE].to_numpy()
    status = np.where((values >= 1) & (values <= threshold), _PRIMARY, _PUBLISHED).astype(np.int8)
    if secondary:
        _suppress_secondary(values, status, _equations(table, keys, levels), threshold)
    table = table.with_columns(pl.Series("__sdc_status", status)).filter(
        pl.col(_LEVEL) < len(published_levels))
    published = pl.col("__sdc_status") == _PUBLISHED
    exact = pl.col(_VALUE)
    rounded = ((exact + base // 2) // base * base).clip(lower_bound=base)
    return table.select(
        *keys,
        pl.when(published).then(pl.when(exact == 0).then(0).otherwise(rounded)).cast(pl.Int64).alias(count),
        pl.col("__sdc_status").replace_strict(dict(enumerate(STATUSES)), return_dtype=STATUS).alias("status"),
        *(pl.when(published & (pl.col(den) > 0))
          .then((exact / pl.col(den) * 1000).round(1, mode="half_away_from_zero"))
          .cast(pl.Float64).alias(rate)
          for rate, den in rates.items()),
    )


def for_release(table: pl.DataFrame) -> pl.DataFrame:
    """`table` (from `protect`) with status only `published` or `suppressed`: what may leave."""
    return table.with_columns(
        pl.when(pl.col("status") == "published").then(pl.lit("published")).otherwise(pl.lit("suppressed"))
        .cast(RELEASE_STATUS).alias("status"))


def _validate(frame, count, keys, margins, rates, add_over, threshold, base) -> list[tuple[str, ...]]:
    """Check the arguments and return the published levels (columns summed over, in key order),
    the cells' level () first. Messages name columns, never values."""
    if not isinstance(threshold, int) or threshold < 0:
        raise ValueError("threshold must be an integer >= 0")
    if not isinstance(base, int) or base < 1:
        raise ValueError("base must be an integer >= 1")
    if not keys:
        raise ValueError("keys must name at least one key column")
    if len(set(keys)) != len(keys):
        raise ValueError(f"keys lists a column twice: {keys}")
    if count in keys:
        raise ValueError(f"count column {count!r} is also a key column")
    needed = [count, *keys, *rates.values()]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(map(repr, missing))}")
    for name in (*rates, "status"):
        if name in keys or name == count:
            raise ValueError(f"output column {name!r} would clash with a key or the count column")
    if len(set(rates)) != len(rates) or "status" in rates:
        raise ValueError("rate columns must have distinct names other than 'status'")

    dtype = frame.schema[count]
    if not dtype.is_integer():
        raise ValueError(f"count column {count!r} must hold integers (it is {dtype})")
    _no_nulls(frame, count, "count column")
    if (bad := frame.filter(pl.col(count) < 0).height):
        raise ValueError(f"count column {count!r} has negative values ({bad} rows)")
    for key in keys:
        _no_nulls(frame, key, "key column", "; null marks a total in the output")
    if (bad := frame.select(keys).is_duplicated().sum()):
        raise ValueError(f"{bad} rows share their key ({', '.join(keys)}) with another row")
    for den in dict.fromkeys(rates.values()):
        if not frame.schema[den].is_numeric():
            raise ValueError(f"denominator column {den!r} must be numeric (it is {frame.schema[den]})")
        _no_nulls(frame, den, "denominator column")
        if (bad := frame.filter(pl.col(den) < 0).height):
            raise ValueError(f"denominator column {den!r} has negative values ({bad} rows)")
    if unknown := [c for c in add_over if c not in keys]:
        raise ValueError(f"denominators_add_over names columns that are not keys: {unknown}")

    levels: list[tuple[str, ...]] = [()]
    for margin in margins:
        cols = [margin] if isinstance(margin, str) else list(margin)
        if not cols:
            raise ValueError("a margin must name at least one key column to sum over")
        if unknown := [c for c in cols if c not in keys]:
            raise ValueError(f"margin {cols} sums over columns that are not keys: {unknown}")
        level = tuple(k for k in keys if k in cols)
        if level in levels:
            raise ValueError(f"margin {cols} is given twice")
        levels.append(level)
    return levels


def _union_closure(levels: list[tuple[str, ...]], keys: list[str]) -> list[tuple[str, ...]]:
    """`levels`, then the unions of published levels that are not published themselves."""
    closure = list(levels)
    for level in closure:  # grows while it is walked
        for other in list(closure):
            union = tuple(k for k in keys if k in level or k in other)
            if union not in closure:
                closure.append(union)
    return closure


def _no_nulls(frame: pl.DataFrame, column: str, what: str, why: str = "") -> None:
    if (bad := frame[column].null_count()):
        raise ValueError(f"{what} {column!r} has missing values ({bad} rows){why}")


def _totals(frame, count, keys, levels, n_published, denominators, add_over) -> pl.DataFrame:
    """Cells and totals of every level: keys (null where summed), exact value, level index and
    the denominators (of the published levels); sorted by the keys, totals after their rows."""
    cells = frame.select(*keys, pl.col(count).cast(pl.Int64).alias(_VALUE),
                         *(pl.col(den).cast(pl.Float64) for den in denominators))
    parts = []
    for index, level in enumerate(levels):
        by = [k for k in keys if k not in level]
        part = _sum_by(cells, by, [pl.col(_VALUE).sum()])
        for den in denominators:
            if index >= n_published:
                part = part.with_columns(pl.lit(None, dtype=pl.Float64).alias(den))
            elif by:
                part = part.join(_denominator(cells, den, by, level, add_over), on=by, how="left")
            else:
                part = part.with_columns(_denominator(cells, den, by, level, add_over))
        parts.append(part.with_columns(*(pl.lit(None, dtype=cells.schema[k]).alias(k) for k in level),
                                       pl.lit(index, dtype=pl.Int32).alias(_LEVEL))
                     .select(*keys, _VALUE, *denominators, _LEVEL))
    return pl.concat(parts).sort(keys, nulls_last=True)


def _denominator(cells, den, by, level, add_over) -> pl.DataFrame:
    """A total's denominator: summed over the `add_over` columns it sums, the same over the rest."""
    summed = [k for k in level if k in add_over]
    same = [k for k in level if k not in add_over]
    per = _sum_by(cells, by + summed, [pl.col(den).n_unique().alias("__sdc_n"), pl.col(den).first()])
    if same and per["__sdc_n"].max() > 1:
        raise ValueError(
            f"denominator {den!r} differs between the cells of a total over {same}; if it adds up "
            f"over them, list them in denominators_add_over")
    return _sum_by(per, by, [pl.col(den).sum()])


def _sum_by(frame: pl.DataFrame, by: list[str], aggs: list[pl.Expr]) -> pl.DataFrame:
    return frame.group_by(by, maintain_order=True).agg(aggs) if by else frame.select(aggs)


class _Equations:
    """The equations "total = sum of members" between the rows of the table (with the unions)."""

    def __init__(self, totals: np.ndarray, members: sparse.csr_matrix):
        self.totals = totals      # row index of each equation's total
        self.members = members    # equations x rows, 1 where the row is a member
        signed = members.tolil(copy=True)
        signed[np.arange(len(totals)), totals] = -1
        self.signed = signed.tocsc()  # members - total: signed @ exact values == 0

    def items(self, eq: int) -> np.ndarray:
        """The rows of equation `eq`: its members, then its total."""
        members = self.members.indices[self.members.indptr[eq]:self.members.indptr[eq + 1]]
        return np.append(members, self.totals[eq])


def _equations(table: pl.DataFrame, keys: list[str], levels: list[tuple[str, ...]]) -> _Equations:
    rows = table.with_row_index("__sdc_row")
    totals, member_rows, member_eqs = [], [], []
    for low_index, low in enumerate(levels):
        for high_index, high in enumerate(levels):
            if not set(low) < set(high):
                continue
            by = [k for k in keys if k not in high]
            tops = rows.filter(pl.col(_LEVEL) == high_index).select(*by, pl.col("__sdc_row").alias("__sdc_total"))
            tops = tops.with_row_index("__sdc_eq", offset=len(totals))
            members = rows.filter(pl.col(_LEVEL) == low_index).select(*by, "__sdc_row")
            pairs = members.join(tops, on=by, how="inner") if by else members.join(tops, how="cross")
            totals.extend(tops["__sdc_total"].to_list())
            member_rows.append(pairs["__sdc_row"].to_numpy())
            member_eqs.append(pairs["__sdc_eq"].to_numpy())
    rows_, eqs = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (member_rows, member_eqs))
    matrix = sparse.csr_matrix((np.ones(len(rows_), np.int64), (eqs, rows_)), shape=(len(totals), table.height))
    matrix.sort_indices()
    return _Equations(np.asarray(totals, dtype=np.int64), matrix)


def _suppress_secondary(values: np.ndarray, status: np.ndarray, eqs: _Equations, threshold: int) -> None:
    """Add secondary suppressions to `status` (in place): the local rules, then the audit of
    the whole table; each exposed cell gets one more suppression and the rules run again."""
    safe = np.zeros(len(values), dtype=bool)  # primaries the audit has cleared (stays true)
    while True:
        _apply_rules(values, status, eqs, threshold)
        picks = _audit(values, status, eqs, threshold, safe)
        if not picks:
            return
        status[picks] = _SECONDARY


def _apply_rules(values: np.ndarray, status: np.ndarray, eqs: _Equations, threshold: int) -> None:
    """Suppress the smallest candidate of each broken equation until none is broken."""
    while True:
        suppressed = status != _PUBLISHED
        n_members = eqs.members @ suppressed.astype(np.int64)
        mass = eqs.members @ np.where(suppressed, values, 0)
        total_suppressed = suppressed[eqs.totals]
        broken = ((n_members + total_suppressed == 1)
                  | (~total_suppressed & (n_members > 0) & (mass - (n_members - 1) <= threshold)))
        if not broken.any():
            return
        for eq in np.flatnonzero(broken):  # in order; earlier additions may have mended it
            items = eqs.items(eq)
            while _broken(items[:-1], items[-1], values, status, threshold):
                status[_smallest(items, values, status)] = _SECONDARY


def _broken(members: np.ndarray, total: int, values: np.ndarray, status: np.ndarray, threshold: int) -> bool:
    hidden = members[status[members] != _PUBLISHED]
    total_hidden = status[total] != _PUBLISHED
    n = len(hidden) + total_hidden
    if n != 1 and (total_hidden or not len(hidden)):
        return False
    return n == 1 or values[hidden].sum() - (len(hidden) - 1) <= threshold


def _smallest(items: np.ndarray, values: np.ndarray, status: np.ndarray) -> int:
    """The published non-zero item with the smallest count, the first in table order on ties."""
    candidates = np.unique(items[(status[items] == _PUBLISHED) & (values[items] > 0)])
    return int(candidates[np.argmin(values[candidates])])


def _audit(values: np.ndarray, status: np.ndarray, eqs: _Equations, threshold: int,
           safe: np.ndarray) -> list[int]:
    """The attack of the table: can a primary cell be shown to be <= threshold, given every
    equation, the exact values of published rows (rates may give them away) and suppressed
    rows >= 1? (Linear programmes; integrality is ignored.) For each exposed cell, return
    one published item to suppress: the smallest in the equations that bind its maximum.
    Primaries shown to reach threshold + 1 are marked in `safe` (more suppression keeps them
    safe), so each round only attacks the others."""
    hidden = np.flatnonzero(status != _PUBLISHED)
    a_hidden = eqs.signed[:, hidden].tocsr()
    touched = np.flatnonzero(np.diff(a_hidden.indptr) > 0)  # equations with a suppressed item
    a_hidden = a_hidden[touched]
    b = a_hidden @ values[hidden]  # minus the published part of each equation
    targets = [i for i, row in enumerate(hidden) if status[row] == _PRIMARY and not safe[row]]
    while targets:  # first many at once: one point that lifts as many as possible above threshold
        reached = _lift(a_hidden, b, targets, threshold)
        if not reached:
            break
        safe[hidden[reached]] = True
        targets = [t for t in targets if not safe[hidden[t]]]
    picks: list[int] = []
    for target in targets:  # then one by one: the largest value each can take
        objective = np.zeros(len(hidden))
        objective[target] = -1
        result = linprog(objective, A_eq=a_hidden, b_eq=b, bounds=(1, None), method="highs")
        if result.status == 3 or -result.fun >= threshold + 1 - 1e-7:  # unbounded, or can pass threshold
            safe[hidden[target]] = True
            continue
        if result.status != 0:
            raise RuntimeError(f"disclosure audit: linear programme failed ({result.message})")
        binding = touched[np.abs(result.eqlin.marginals) > 1e-9]
        items = np.concatenate([eqs.items(eq) for eq in binding] or [np.zeros(0, np.int64)])
        if not ((status[items] == _PUBLISHED) & (values[items] > 0)).any():
            items = np.concatenate([eqs.items(eq) for eq in touched])
        picks.append(_smallest(items, values, status))
    return sorted(set(picks))


def _lift(a_eq: sparse.csr_matrix, b_eq: np.ndarray, targets: list[int], threshold: int) -> list[int]:
    """Targets (columns) that reach threshold + 1 in a point maximising sum(min(y_t, threshold + 1))."""
    n, k = a_eq.shape[1], len(targets)
    # variables y (n, >= 1) then z (k, 0..threshold+1); z_t <= y_t
    a_ub = sparse.hstack([-sparse.csr_matrix((np.ones(k), (np.arange(k), targets)), shape=(k, n)),
                          sparse.identity(k)]).tocsr()
    result = linprog(np.concatenate([np.zeros(n), -np.ones(k)]),
                     A_ub=a_ub, b_ub=np.zeros(k),
                     A_eq=sparse.hstack([a_eq, sparse.csr_matrix((a_eq.shape[0], k))]).tocsr(), b_eq=b_eq,
                     bounds=[(1, None)] * n + [(0, threshold + 1)] * k, method="highs")
    if result.status != 0:
        raise RuntimeError(f"disclosure audit: linear programme failed ({result.message})")
    z = result.x[n:]
    return [t for t, value in zip(targets, z) if value >= threshold + 1 - 1e-7]
