"""True life events for one chunk of persons, correlated through latent traits.

Produces, per agency, a polars DataFrame of *true* rows keyed by ``pidx`` (the person's
index within the chunk). Noise and formatting happen later (extracts.py).

Correlations built in:
* domestic-abuse households -> police DA occurrences (victim + suspect of the same
  household, children as witnesses), police-sourced children's referrals with factors
  3A/3B/3C, CP plans (mostly EMO), ED assault attendances at home, s42 "Domestic abuse";
* serious violence (5A/8F/10D/34B, knife flag) concentrates in hotspot LSOAs (the most
  deprived of each LA) and among young men 15-24; victims and suspects come from the same
  weighted pool, so some young people are both;
* exploitation-risk teenagers -> missing-person occurrences, referrals with 10A/11A/13A/24A,
  county-lines drug trafficking (92A);
* probation caseload and MAPPA nominals are drawn from known offenders;
* s42 enquiries concentrate in older adults (85+ most).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sources.synthetic import config as C

R = C.EVENT_RATES

HO = {
    "5A": "Wounding with intent to do grievous bodily harm",
    "8F": "Inflicting grievous bodily harm without intent",
    "8G": "Actual bodily harm and other injury",
    "8L": "Harassment",
    "8N": "Assault without injury",
    "8Q": "Stalking",
    "8R": "Controlling or coercive behaviour",
    "9A": "Public fear, alarm or distress",
    "10D": "Possession of article with blade or point",
    "19C": "Rape of a female aged 16 and over",
    "20A": "Sexual assault on a female aged 13 and over",
    "28E": "Burglary - residential (home)",
    "34B": "Robbery of personal property",
    "45": "Theft from a vehicle",
    "49": "Other theft",
    "58A": "Criminal damage to a dwelling",
    "92A": "Trafficking in controlled drugs",
    "92D": "Possession of controlled drugs (cannabis)",
    "92E": "Possession of controlled drugs (excluding cannabis)",
}
# non-crime incidents recorded on the same POLE system (no Home Office classification)
INCIDENTS = {
    "INC-DOM": "Domestic incident (non-crime)",
    "INC-ASB": "Anti-social behaviour - personal",
    "MISSING": "Missing person report",
}
VIOLENT_INJURY = {"5A", "8F", "8G", "34B"}

# evening-heavy hour profiles
_H_VIOLENCE = np.array([5, 4, 3, 2, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 4, 5, 6, 7, 8, 8, 8, 7, 6], float)
_H_DAY = np.array([1, 1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 4, 3, 2, 1], float)


class Period:
    def __init__(self, start: str, months: int):
        self.start = np.datetime64(start, "D")
        m0 = np.datetime64(start[:7], "M")
        self.end = (m0 + months).astype("datetime64[D]") + (self.start - m0.astype("datetime64[D]"))
        self.days = int((self.end - self.start).astype(int))
        self.years = self.days / 365.25
        self.months = months


def _times(rng, n, period: Period, hours=_H_DAY) -> np.ndarray:
    """Random datetimes (minute resolution) in the period."""
    day = rng.integers(0, period.days, n)
    hour = rng.choice(24, size=n, p=hours / hours.sum())
    minute = rng.integers(0, 60, n)
    t = period.start.astype("datetime64[m]") + (day * 1440 + hour * 60 + minute).astype("timedelta64[m]")
    return t.astype("datetime64[ms]")


def _pick(rng, weights: np.ndarray, k: int) -> np.ndarray:
    w = np.asarray(weights, float)
    if k <= 0 or w.size == 0:
        return np.full(max(k, 0), -1, dtype=np.int64)
    if w.sum() <= 0:  # tiny populations: nobody fits, fall back to anyone
        w = np.ones_like(w)
    return rng.choice(w.size, size=k, p=w / w.sum())


def _cat(rng, options: dict, n: int) -> np.ndarray:
    keys = np.array(list(options), dtype=object)
    p = np.array(list(options.values()), float)
    return keys[rng.choice(keys.size, size=n, p=p / p.sum())] if n else np.empty(0, dtype=object)


def _age_band_weight(age, sex, table_m, table_f, edges=(10, 15, 25, 35, 45, 65, 200)):
    idx = np.searchsorted(np.array(edges), age, side="right")
    tm, tf = np.array(table_m, float), np.array(table_f, float)
    return np.where(sex == "M", tm[idx], tf[idx])


def police_events(rng, A: dict, period: Period) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (occurrences, involvements). Occurrence ids are chunk-local ints."""
    n = A["age"].size
    age, sex, dep, hot = A["age"], A["sex"], A["dep"], A["hotspot"]
    Y, K = period.years, n / 1000.0
    occ: list[dict] = []
    inv: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (occ_local, pidx, role)
    next_occ = [0]

    def add(codes, times, lsoa_i, lat, lon, domestic, knife, kind="CRIME", place="public"):
        k = len(codes)
        ids = np.arange(next_occ[0], next_occ[0] + k)
        next_occ[0] += k
        occ.append(
            {
                "occ": ids,
                "code": np.asarray(codes, dtype=object),
                "time": times,
                "lsoa_i": lsoa_i,
                "lat": lat,
                "lon": lon,
                "domestic": np.asarray(domestic, bool),
                "knife": np.asarray(knife, bool),
                "kind": np.full(k, kind, dtype=object),
                "place": np.asarray(place, dtype=object)
                if not isinstance(place, str)
                else np.full(k, place, dtype=object),
            }
        )
        return ids

    def involve(ids, pidx, role):
        m = pidx >= 0
        inv.append((ids[m], pidx[m], np.full(m.sum(), role, dtype=object)))

    jitter = lambda k, s=0.002: rng.normal(0, s, k)  # noqa: E731

    # --- domestic abuse (household-based)
    vic = np.flatnonzero(A["da_victim"])
    if vic.size:
        hh = A["hh"]
        perp_of_hh = np.full(A["n_households"], -1)
        perp_idx = np.flatnonzero(A["da_perp"])
        perp_of_hh[hh[perp_idx]] = perp_idx
        cnt = rng.poisson(R["police_domestic_per_da_household"] * Y, vic.size)
        v = np.repeat(vic, cnt)
        k = v.size
        codes = _cat(rng, {"8N": 40, "8G": 25, "8R": 10, "8L": 10, "58A": 6, "5A": 2, "8Q": 3, "9A": 4}, k)
        knife = np.isin(codes, ["8G", "5A"]) & (rng.random(k) < 0.06)
        ids = add(
            codes,
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][v],
            A["lat"][v] + jitter(k, 0.0001),
            A["lon"][v] + jitter(k, 0.0001),
            np.ones(k, bool),
            knife,
            place="home",
        )
        involve(ids, v, "VICTIM")
        s = perp_of_hh[hh[v]]
        involve(ids, s, "SUSPECT")
        # a child of the household as witness
        kids = np.flatnonzero((A["role"] == 2))
        if kids.size:
            first_kid = np.full(A["n_households"], -1)
            first_kid[hh[kids][::-1]] = kids[::-1]
            w = first_kid[hh[v]]
            w[rng.random(k) > 0.2] = -1
            involve(ids, w, "WITNESS")

    # --- serious violence: young men, hotspots
    base_w = _age_band_weight(age, sex, [0, 2, 10, 3, 1.2, 0.4, 0.1], [0, 0.5, 1.5, 0.6, 0.3, 0.1, 0.02])
    sv_w = base_w * dep**1.5 * np.where(hot, 5.0, 1.0)
    off_w = sv_w * np.where(A["offender"], 4.0, 0.3) * np.where(A["exploited"], 3.0, 1.0)
    k = rng.poisson(R["police_serious_violence"] * K * Y)
    codes = _cat(rng, {"5A": 25, "8F": 20, "10D": 35, "34B": 20}, k)
    knife_p = np.select([codes == "5A", codes == "8F", codes == "10D"], [0.55, 0.3, 1.0], 0.35)
    knife = rng.random(k) < knife_p
    v = _pick(rng, sv_w * np.where(A["offender"], 3.0, 1.0), k)
    s = _pick(rng, off_w, k)
    if k:
        s[(rng.random(k) > 0.6) & (codes != "10D")] = -1
        s[s == v] = -1
        loc = np.where(codes == "10D", s, v)
        loc = np.where(loc < 0, v, loc)
        ids = add(
            codes,
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][loc],
            A["lat"][loc] + jitter(k),
            A["lon"][loc] + jitter(k),
            np.zeros(k, bool),
            knife,
        )
        is_poss = codes == "10D"
        involve(ids[~is_poss], v[~is_poss], "VICTIM")
        involve(ids[~is_poss], s[~is_poss], "SUSPECT")
        # possession: the person found with the blade is the offender
        involve(ids[is_poss], v[is_poss], "OFFENDER")

    # --- other violence (non-domestic)
    k = rng.poisson(R["police_other_violence"] * K * Y)
    codes = _cat(rng, {"8G": 30, "8N": 45, "8L": 10, "8Q": 5, "9A": 10}, k)
    w = _age_band_weight(age, sex, [0.2, 1.2, 2.2, 1.6, 1.2, 0.6, 0.2], [0.2, 1.2, 1.8, 1.4, 1.0, 0.5, 0.2]) * dep
    v = _pick(rng, w, k)
    gen_w = _age_band_weight(age, sex, [0, 1.5, 3, 2, 1.2, 0.5, 0.1], [0, 0.5, 0.8, 0.6, 0.4, 0.15, 0.02]) * dep
    s = np.where(rng.random(k) < 0.6, _pick(rng, gen_w * A["offender"], k), _pick(rng, gen_w, k))
    if k:
        s[rng.random(k) > R["p_suspect_identified_violence"]] = -1
        s[s == v] = -1
        ids = add(
            codes,
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][v],
            A["lat"][v] + jitter(k),
            A["lon"][v] + jitter(k),
            np.zeros(k, bool),
            (codes == "8G") & (rng.random(k) < 0.04),
        )
        involve(ids, v, "VICTIM")
        involve(ids, s, "SUSPECT")
        wit = _pick(rng, (age >= 16).astype(float), k)
        wit[rng.random(k) > R["p_witness"]] = -1
        wit[(wit == v) | (wit == s)] = -1
        involve(ids, wit, "WITNESS")

    # --- sexual offences (CSE risk for exploited teenage girls)
    k = rng.poisson(R["police_sexual"] * K * Y)
    w = np.where(sex == "F", 1.0, 0.0) * np.select([age < 13, age < 18, age < 30, age < 45], [0.0, 2.0, 2.5, 1.0], 0.2)
    w = w * np.where(A["exploited"], 15.0, 1.0) * dep**0.5
    v = _pick(rng, w, k)
    if k:
        codes = np.where(age[v] >= 16, _cat(rng, {"19C": 35, "20A": 65}, k), "20A")
        s = _pick(rng, (sex == "M") * (age >= 16) * np.where(A["offender"], 3.0, 0.2), k)
        s[rng.random(k) > 0.6] = -1
        ids = add(
            codes,
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][v],
            A["lat"][v] + jitter(k),
            A["lon"][v] + jitter(k),
            np.zeros(k, bool),
            np.zeros(k, bool),
        )
        involve(ids, v, "VICTIM")
        involve(ids, s, "SUSPECT")

    # --- acquisitive and damage
    k = rng.poisson(R["police_acquisitive"] * K * Y)
    codes = _cat(rng, {"28E": 18, "45": 20, "49": 42, "58A": 20}, k)
    v = _pick(rng, (age >= 18) * dep**0.7, k)
    if k:
        s = _pick(rng, gen_w * np.where(A["offender"], 3.0, 0.5), k)
        s[rng.random(k) > R["p_suspect_identified_acquisitive"]] = -1
        s[s == v] = -1
        home = np.isin(codes, ["28E", "58A"])
        ids = add(
            codes,
            _times(rng, k, period),
            A["lsoa_i"][v],
            A["lat"][v] + np.where(home, 0, jitter(k)),
            A["lon"][v] + np.where(home, 0, jitter(k)),
            np.zeros(k, bool),
            np.zeros(k, bool),
            place=np.where(home, "home", "public"),
        )
        involve(ids, v, "VICTIM")
        involve(ids, s, "SUSPECT")

    # --- drugs: offender only; trafficking concentrates in exploited teens (county lines)
    k = rng.poisson(R["police_drugs"] * K * Y)
    codes = _cat(rng, {"92A": 25, "92D": 50, "92E": 25}, k)
    o = _pick(rng, gen_w * dep * np.where(A["offender"], 3.0, 1.0) * np.where(A["exploited"], 8.0, 1.0), k)
    if k:
        ids = add(
            codes,
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][o],
            A["lat"][o] + jitter(k),
            A["lon"][o] + jitter(k),
            np.zeros(k, bool),
            rng.random(k) < np.where(codes == "92A", 0.15, 0.02),
        )
        involve(ids, o, "OFFENDER")

    # --- non-crime incidents
    if vic.size:
        cnt = rng.poisson(R["police_domestic_incident_per_da_household"] * Y, vic.size)
        v = np.repeat(vic, cnt)
        k = v.size
        ids = add(
            np.full(k, "INC-DOM", dtype=object),
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][v],
            A["lat"][v],
            A["lon"][v],
            np.ones(k, bool),
            np.zeros(k, bool),
            kind="INCIDENT",
            place="home",
        )
        involve(ids, v, "VICTIM")
        involve(ids, perp_of_hh[A["hh"][v]], "SUSPECT")
    k = rng.poisson(R["police_incident_asb"] * K * Y)
    v = _pick(rng, (age >= 14) * dep, k)
    if k:
        s = _pick(rng, gen_w * np.where(A["exploited"], 5.0, 1.0), k)
        s[(rng.random(k) > 0.45) | (s == v)] = -1
        ids = add(
            np.full(k, "INC-ASB", dtype=object),
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][v],
            A["lat"][v] + jitter(k),
            A["lon"][v] + jitter(k),
            np.zeros(k, bool),
            np.zeros(k, bool),
            kind="INCIDENT",
        )
        involve(ids, v, "VICTIM")
        involve(ids, s, "SUSPECT")
        wit = _pick(rng, (age >= 16).astype(float), k)
        wit[(rng.random(k) > R["p_witness"]) | (wit == v) | (wit == s)] = -1
        involve(ids, wit, "WITNESS")

    # --- missing persons
    ex = np.flatnonzero(A["exploited"])
    m1 = np.repeat(ex, rng.poisson(R["police_missing_per_exploited_teen"] * Y, ex.size))
    k2 = rng.poisson(R["police_missing_other"] * K * Y)
    m2 = _pick(rng, np.select([age < 12, age < 18, age < 75], [0.2, 3.0, 0.3], 1.5), k2)
    m = np.concatenate([m1, m2]).astype(np.int64)
    if m.size:
        k = m.size
        ids = add(
            np.full(k, "MISSING", dtype=object),
            _times(rng, k, period, _H_VIOLENCE),
            A["lsoa_i"][m],
            A["lat"][m],
            A["lon"][m],
            np.zeros(k, bool),
            np.zeros(k, bool),
            kind="MISSING",
            place="home",
        )
        involve(ids, m, "MISSING")

    if not occ:
        return pl.DataFrame(), pl.DataFrame()
    o = {key: np.concatenate([d[key] for d in occ]) for key in occ[0]}
    occurrences = pl.DataFrame(o).with_columns(pl.col("time").cast(pl.Datetime("ms")))
    inv_df = pl.DataFrame(
        {
            "occ": np.concatenate([i[0] for i in inv]).astype(np.int64),
            "pidx": np.concatenate([i[1] for i in inv]).astype(np.int64),
            "role": np.concatenate([i[2] for i in inv]),
        }
    )
    return occurrences, inv_df


FACTORS_GENERAL = {"1B": 8, "2B": 9, "4B": 14, "4A": 7, "5A": 4, "6A": 3, "14A": 5, "21": 12, "7A": 2, "22A": 0.3}
FACTOR_LABELS = {
    "1B": "Alcohol misuse: parent/carer",
    "2B": "Drug misuse: parent/carer",
    "3A": "Domestic abuse: child",
    "3B": "Domestic abuse: parent/carer",
    "3C": "Domestic abuse: other person",
    "4A": "Mental health: child",
    "4B": "Mental health: parent/carer",
    "5A": "Learning disability: child",
    "6A": "Physical disability: child",
    "7A": "Young carer",
    "10A": "Going/being missing",
    "11A": "Child sexual exploitation",
    "13A": "Gangs",
    "14A": "Socially unacceptable behaviour",
    "21": "Other",
    "22A": "Abuse linked to faith or belief",
    "24A": "Child criminal exploitation",
}
REFERRAL_SOURCES = {
    "1A": 6,
    "1B": 2,
    "1C": 1,
    "1D": 1,
    "2A": 18,
    "2B": 2,
    "3A": 4,
    "3B": 3,
    "3C": 1,
    "3D": 2,
    "3E": 3,
    "3F": 2,
    "4": 2,
    "5A": 5,
    "5B": 2,
    "5C": 2,
    "5D": 3,
    "6": 28,
    "7": 5,
    "8": 3,
    "9": 1,
    "10": 2,
}


def csc_events(rng, A: dict, period: Period, occ: pl.DataFrame, inv: pl.DataFrame):
    """Referrals, assessment factors and CP plans (true rows)."""
    age = A["age"]
    child = age < 18
    Y = period.years
    refs = []  # dicts with pidx, date, source, factors(list), kind
    # baseline
    base = np.flatnonzero(child)
    cnt = rng.poisson(R["csc_referral_per_child"] * Y * A["dep"][base])
    p = np.repeat(base, cnt)
    k = p.size
    if k:
        facs = [list(dict.fromkeys(_cat(rng, FACTORS_GENERAL, int(x)).tolist())) for x in rng.integers(1, 4, k)]
        refs.append(
            {
                "pidx": p,
                "date": period.start + rng.integers(0, period.days, k).astype("timedelta64[D]"),
                "source": _cat(rng, REFERRAL_SOURCES, k),
                "factors": facs,
                "kind": np.full(k, "general", object),
            }
        )
    # domestic abuse: from police DA occurrences, each child of the household w.p. 0.55
    if occ.height:
        da = occ.filter(pl.col("domestic")).select("occ", "time").join(inv.filter(pl.col("role") == "VICTIM"), on="occ")
        if da.height:
            vic = da["pidx"].to_numpy()
            when = da["time"].to_numpy().astype("datetime64[D]")
            hh = A["hh"]
            kids = np.flatnonzero(child)
            # map household -> children
            order = np.argsort(hh[kids], kind="stable")
            kh = hh[kids][order]
            starts = np.searchsorted(kh, hh[vic], "left")
            ends = np.searchsorted(kh, hh[vic], "right")
            rows_p, rows_d = [], []
            for a, b, d in zip(starts, ends, when):
                for j in range(a, b):
                    rows_p.append(kids[order][j])
                    rows_d.append(d)
            if rows_p:
                pp = np.array(rows_p)
                dd = np.array(rows_d, dtype="datetime64[D]") + rng.integers(1, 15, len(rows_p)).astype("timedelta64[D]")
                keep = (rng.random(pp.size) < 0.55) & (dd < period.end)
                pp, dd = pp[keep], dd[keep]
                k = pp.size
                facs = []
                for x in rng.random((k, 3)):
                    f = ["3A"] if x[0] < 0.7 else []
                    f += ["3B"] if x[1] < 0.8 or not f else []
                    f += ["3C"] if x[2] < 0.1 else []
                    f += ["4B"] if x[2] > 0.8 else []
                    facs.append(f)
                refs.append(
                    {
                        "pidx": pp,
                        "date": dd,
                        "source": np.where(rng.random(k) < 0.85, "6", "3E").astype(object),
                        "factors": facs,
                        "kind": np.full(k, "domestic_abuse", object),
                    }
                )
    # exploitation-risk teenagers
    ex = np.flatnonzero(A["exploited"])
    cnt = rng.poisson(R["csc_referral_per_exploited_teen"] * Y, ex.size)
    p = np.repeat(ex, cnt)
    k = p.size
    if k:
        male = A["sex"][p] == "M"
        facs = []
        for m, x in zip(male, rng.random((k, 4))):
            f = ["10A"] if x[0] < 0.6 else []
            if m:
                f += ["24A"] if x[1] < 0.6 else []
                f += ["13A"] if x[2] < 0.4 else []
                f += ["11A"] if x[3] < 0.08 else []
            else:
                f += ["11A"] if x[1] < 0.6 else []
                f += ["24A"] if x[2] < 0.2 else []
                f += ["13A"] if x[3] < 0.08 else []
            facs.append(f or ["14A"])
        refs.append(
            {
                "pidx": p,
                "date": period.start + rng.integers(0, period.days, k).astype("timedelta64[D]"),
                "source": _cat(rng, {"6": 50, "2A": 25, "5B": 10, "3E": 5, "1A": 10}, k),
                "factors": facs,
                "kind": np.full(k, "exploitation", object),
            }
        )
    if not refs:
        return pl.DataFrame(), pl.DataFrame(), pl.DataFrame()
    pidx = np.concatenate([r["pidx"] for r in refs]).astype(np.int64)
    date = np.concatenate([r["date"] for r in refs]).astype("datetime64[D]")
    source = np.concatenate([r["source"] for r in refs])
    kind = np.concatenate([r["kind"] for r in refs])
    factors = [f for r in refs for f in r["factors"]]
    # still a child on the referral date
    keep = age[pidx] + (date - period.start).astype(np.int64) / 365.25 < 18
    pidx, date, source, kind = pidx[keep], date[keep], source[keep], kind[keep]
    factors = [f for f, k_ in zip(factors, keep) if k_]
    k = pidx.size
    ref_id = np.arange(k)
    referrals = pl.DataFrame(
        {
            "ref": ref_id,
            "pidx": pidx,
            "date": date,
            "source": source,
            "kind": kind,
            "need": np.where(
                kind == "general", _cat(rng, {"N1": 50, "N2": 5, "N4": 20, "N5": 10, "N8": 10, "N9": 5}, k), "N1"
            ).astype(object),
        }
    )
    # assessments: 85% of referrals, assessment starts 3-20 days later, authorised 10-45 days after start
    has_ass = rng.random(k) < 0.85
    a_start = date + rng.integers(3, 21, k).astype("timedelta64[D]")
    a_auth = a_start + rng.integers(10, 46, k).astype("timedelta64[D]")
    has_ass &= a_start < period.end
    f_ref, f_code = [], []
    for i in np.flatnonzero(has_ass):
        for f in factors[i]:
            f_ref.append(i)
            f_code.append(f)
    f_ref = np.array(f_ref, dtype=np.int64)
    factors_df = pl.DataFrame(
        {
            "ref": f_ref,
            "pidx": pidx[f_ref] if f_ref.size else np.empty(0, np.int64),
            "assess_start": a_start[f_ref],
            "assess_auth": np.where(a_auth[f_ref] < period.end, a_auth[f_ref], np.datetime64("NaT")).astype(
                "datetime64[D]"
            ),
            "code": np.array(f_code, dtype=object),
        }
    )
    # CP plans
    p_cp = R["csc_p_cp_plan"] * np.select([kind == "domestic_abuse", kind == "exploitation"], [2.5, 1.5], 1.0)
    cp = has_ass & (rng.random(k) < p_cp)
    cp_start = a_start + rng.integers(15, 50, k).astype("timedelta64[D]")
    cp &= cp_start < period.end
    ci = np.flatnonzero(cp)
    cat = np.where(
        kind[ci] == "domestic_abuse",
        _cat(rng, {"EMO": 70, "NEG": 15, "PHY": 8, "MUL": 7}, ci.size),
        np.where(
            kind[ci] == "exploitation",
            _cat(rng, {"EMO": 35, "PHY": 25, "SAB": 25, "NEG": 15}, ci.size),
            _cat(rng, {"NEG": 48, "EMO": 34, "PHY": 9, "SAB": 4, "MUL": 5}, ci.size),
        ),
    )
    cp_end = cp_start[ci] + rng.integers(120, 540, ci.size).astype("timedelta64[D]")
    cp_df = pl.DataFrame(
        {
            "ref": ci,
            "pidx": pidx[ci],
            "start": cp_start[ci],
            "end": np.where(cp_end < period.end, cp_end, np.datetime64("NaT")).astype("datetime64[D]"),
            "category": cat.astype(object),
        }
    )
    return referrals, factors_df, cp_df


def asc_events(rng, A: dict, period: Period) -> pl.DataFrame:
    age, n = A["age"], A["age"].size
    Y = period.years
    rate = np.select(
        [age < 18, age < 65, age < 85],
        [0.0, R["asc_s42_per_adult_18_64"], R["asc_s42_per_adult_65_plus"]],
        R["asc_s42_per_adult_65_plus"] * 3.0,
    )
    rate = rate * A["dep"] ** 0.5 + np.where(A["da_victim"], 0.02, 0.0)
    p = np.repeat(np.arange(n), rng.poisson(rate * Y))
    k = p.size
    if not k:
        return pl.DataFrame()
    start = period.start + rng.integers(0, period.days, k).astype("timedelta64[D]")
    end = start + rng.integers(5, 150, k).astype("timedelta64[D]")
    old = age[p] >= 75
    da = A["da_victim"][p]
    abuse = np.where(
        da & (rng.random(k) < 0.7),
        "Domestic abuse",
        np.where(
            old,
            _cat(
                rng,
                {
                    "Neglect and acts of omission": 32,
                    "Physical abuse": 18,
                    "Financial or material abuse": 17,
                    "Psychological abuse": 12,
                    "Self-neglect": 9,
                    "Organisational abuse": 6,
                    "Sexual abuse": 2,
                    "Discriminatory abuse": 1,
                    "Domestic abuse": 3,
                },
                k,
            ),
            _cat(
                rng,
                {
                    "Neglect and acts of omission": 18,
                    "Physical abuse": 20,
                    "Financial or material abuse": 12,
                    "Psychological abuse": 15,
                    "Self-neglect": 12,
                    "Sexual abuse": 6,
                    "Sexual exploitation": 2,
                    "Modern slavery": 1,
                    "Domestic abuse": 12,
                    "Discriminatory abuse": 1,
                    "Organisational abuse": 1,
                },
                k,
            ),
        ),
    )
    location = np.where(
        old & (rng.random(k) < 0.45),
        _cat(rng, {"Care home - residential": 55, "Care home - nursing": 45}, k),
        _cat(
            rng,
            {
                "Own home": 75,
                "In the community (excluding community services)": 9,
                "In a community service": 6,
                "Hospital - acute": 4,
                "Hospital - mental health": 3,
                "Hospital - community": 1,
                "Other": 2,
            },
            k,
        ),
    )
    src = np.where(
        np.char.startswith(location.astype(str), "Care home") | np.char.startswith(location.astype(str), "Hospital"),
        _cat(rng, {"Service provider": 80, "Other - known to individual": 15, "Other - unknown to individual": 5}, k),
        _cat(rng, {"Service provider": 15, "Other - known to individual": 72, "Other - unknown to individual": 13}, k),
    )
    outcome = _cat(
        rng,
        {
            "Risk identified and action taken": 58,
            "Risk identified and no action taken": 6,
            "Risk - assessment inconclusive and action taken": 12,
            "No risk identified and action taken": 8,
            "No risk identified and no action taken": 9,
            "Enquiry ceased at individual's request and no action taken": 7,
        },
        k,
    )
    return pl.DataFrame(
        {
            "pidx": p,
            "start": start,
            "end": np.where(end < period.end, end, np.datetime64("NaT")).astype("datetime64[D]"),
            "abuse": abuse.astype(object),
            "location": location.astype(object),
            "source_of_risk": src.astype(object),
            "outcome": np.where(end < period.end, outcome, "").astype(object),
        }
    )


def probation_events(rng, A: dict, period: Period) -> pl.DataFrame:
    """One supervision period per probation person (may precede the window)."""
    p = np.flatnonzero(A["probation"])
    k = p.size
    if not k:
        return pl.DataFrame()
    start = period.start + rng.integers(-900, period.days, k).astype("timedelta64[D]")
    end = start + rng.integers(180, 1100, k).astype("timedelta64[D]")
    mappa = A["mappa"][p]
    rosh = np.where(
        mappa,
        _cat(rng, {"Medium": 30, "High": 55, "Very High": 15}, k),
        _cat(rng, {"Low": 32, "Medium": 50, "High": 16, "Very High": 2}, k),
    )
    return pl.DataFrame(
        {
            "pidx": p,
            "start": start,
            "end": end,
            "sentence": _cat(
                rng,
                {"Community Order": 45, "Suspended Sentence Order": 22, "Licence": 28, "Post Sentence Supervision": 5},
                k,
            ),
            "rosh": rosh,
            "mappa_category": np.where(mappa, _cat(rng, {"1": 60, "2": 37, "3": 2, "4": 1}, k), None),
            "mappa_level": np.where(mappa, _cat(rng, {"1": 85, "2": 13, "3": 2}, k), None),
        }
    )


ED_COMPLAINTS = {
    "Chest pain": 9,
    "Abdominal pain": 11,
    "Breathing difficulty": 8,
    "Fever": 6,
    "Headache": 4,
    "Collapse": 3,
    "Dizziness": 3,
    "Back pain": 4,
    "Allergic reaction": 2,
    "Palpitations": 2,
    "Vomiting": 4,
    "Seizure": 1.5,
    "Urinary symptoms": 2,
    "Limb pain (non-traumatic)": 3,
    "Mental health crisis": 2,
}
CARDIFF_PLACES = {
    "Street/highway": 40,
    "Bar/pub/club": 15,
    "Home": 20,
    "Other public place": 12,
    "School": 3,
    "Workplace": 4,
    "Public transport": 3,
    "Shop": 3,
}


def nhs_events(rng, A: dict, period: Period, occ: pl.DataFrame, inv: pl.DataFrame) -> pl.DataFrame:
    age, n = A["age"], A["age"].size
    Y = period.years
    af = np.select([age < 5, age < 15, age < 25, age < 65, age < 80], [1.5, 0.7, 1.1, 0.8, 1.2], 2.2)
    cnt = rng.poisson(R["ed_attendances_per_person"] * Y * af * A["dep"] ** 0.5)
    p = np.repeat(np.arange(n), cnt)
    k = p.size
    t = _times(rng, k, period)
    a = age[p]
    # intent mix for background attendances
    u = rng.random(k)
    p_acc = np.select([a < 15, a < 65, a < 80], [0.35, 0.2, 0.25], 0.35)
    p_self = np.where((a >= 12) & (a < 30), np.where(A["sex"][p] == "F", 0.04, 0.02), 0.006)
    p_self = p_self * np.where(A["exploited"][p], 4.0, 1.0)
    p_ass = np.where((a >= 15) & (a < 35), np.where(A["sex"][p] == "M", 0.025, 0.01), 0.004) * A["dep"][p]
    intent = np.where(
        u < p_ass,
        "assault",
        np.where(u < p_ass + p_self, "self-harm", np.where(u < p_ass + p_self + p_acc, "accidental", "")),
    )
    frames = [
        pl.DataFrame(
            {"pidx": p, "time": t, "intent": intent.astype(object), "origin": np.full(k, "background", object)}
        )
    ]
    # police victims of injurious violence attend ED within hours
    if occ.height:
        vio = (
            occ.filter(pl.col("code").is_in(list(VIOLENT_INJURY)))
            .join(inv.filter(pl.col("role") == "VICTIM"), on="occ")
            .select("pidx", "time", "domestic", "knife", "code")
        )
        if vio.height:
            pr = np.where(np.isin(vio["code"].to_numpy(), ["5A", "8F"]), 0.75, R["ed_p_attend_after_assault_injury"])
            vio = vio.filter(pl.Series(rng.random(vio.height) < pr))
            if vio.height:
                dt = vio["time"].to_numpy().astype("datetime64[m]") + rng.integers(20, 600, vio.height).astype(
                    "timedelta64[m]"
                )
                dt = dt.astype("datetime64[ms]")
                frames.append(
                    pl.DataFrame(
                        {
                            "pidx": vio["pidx"].to_numpy(),
                            "time": dt,
                            "intent": np.full(vio.height, "assault", object),
                            "origin": np.where(
                                vio["domestic"].to_numpy(),
                                "police_domestic",
                                np.where(vio["knife"].to_numpy(), "police_knife", "police_violence"),
                            ).astype(object),
                        }
                    )
                )
    ed = pl.concat([f.with_columns(pl.col("time").cast(pl.Datetime("ms"))) for f in frames])
    ed = ed.filter(pl.col("time") < pl.lit(period.end.astype("datetime64[ms]")))
    m = ed.height
    intent = ed["intent"].to_numpy()
    origin = ed["origin"].to_numpy()
    place = np.where(origin == "police_domestic", "Home", _cat(rng, CARDIFF_PLACES, m))
    place = np.where(
        intent == "assault",
        place,
        np.where(
            intent == "",
            "",
            _cat(
                rng,
                {
                    "Home": 60,
                    "Other public place": 15,
                    "Street/highway": 10,
                    "School": 5,
                    "Workplace": 5,
                    "Sports facility": 5,
                },
                m,
            ),
        ),
    )
    method = np.where(
        origin == "police_knife",
        "Knife or sharp object",
        _cat(
            rng,
            {"Fist/feet/body": 70, "Knife or sharp object": 7, "Blunt object": 10, "Glass/bottle": 8, "Other": 5},
            m,
        ),
    )
    method = np.where(intent == "assault", method, "")
    complaint = np.where(
        intent == "",
        _cat(rng, ED_COMPLAINTS, m),
        np.where(intent == "self-harm", "Self-harm", np.where(intent == "assault", "Assault", "Injury")),
    )
    los = rng.integers(60, 600, m).astype("timedelta64[m]")
    return ed.with_columns(
        place=pl.Series(place.astype(object)),
        method=pl.Series(method.astype(object)),
        complaint=pl.Series(complaint.astype(object)),
        end=pl.Series((ed["time"].to_numpy().astype("datetime64[m]") + los).astype("datetime64[ms]")).cast(
            pl.Datetime("ms")
        ),
    ).sort("time", "pidx")
