"""Synthetic persons and households, one chunk at a time (households never span chunks).

Everything is vectorised with numpy; the only Python loops are over name tables.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from sources import identifiers as ids
from sources.synthetic import config as C
from sources.synthetic.geography import LAS, Geography

REFERENCE = Path(__file__).parent / "reference"

STREET_STEMS = (
    "Oxford Station Church Mill Park London Queens Kings Victoria Albert Manor Chapel Windsor Bath "
    "Castle Meadow Orchard Elm Oak Beech Willow Ash Cedar Holly Maple Rowan Hawthorn Linden Priory "
    "Abbey Bridge Brook River Thames Kennet Forest Heath Common Green Hill Vale Grange School Market "
    "Farm Wood Spring Highfield Southfield Northfield Westfield Eastfield Lime Poplar Sycamore Chestnut "
    "Cherry Laurel Juniper Primrose Bluebell Foxglove Kestrel Heron Swallow Wren Lark Falcon Badger"
).split()
STREET_SUFFIX = "Road Street Close Avenue Way Lane Drive Gardens Crescent Place Court Grove".split()


@dataclass(frozen=True)
class NameTables:
    forenames: dict  # (group, sex) -> (names ndarray, cumulative probabilities)
    surnames: dict  # group -> (names, cumprob)
    nicknames: dict  # name -> tuple of variants


@lru_cache(maxsize=1)
def name_tables() -> NameTables:
    fn: dict = {}
    with (REFERENCE / "forenames.csv").open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            fn.setdefault((r["group"], r["sex"]), []).append((r["forename"], float(r["weight"])))
    sn: dict = {}
    with (REFERENCE / "surnames.csv").open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            sn.setdefault(r["group"], []).append((r["surname"], float(r["weight"])))
    nick: dict = {}
    with (REFERENCE / "nicknames.csv").open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            nick.setdefault(r["forename"], []).append(r["variant"])

    def table(pairs):
        names = np.array([p[0] for p in pairs], dtype=object)
        w = np.array([p[1] for p in pairs], dtype=float)
        return names, np.cumsum(w) / w.sum()

    return NameTables(
        forenames={k: table(v) for k, v in fn.items()},
        surnames={k: table(v) for k, v in sn.items()},
        nicknames={k: tuple(v) for k, v in nick.items()},
    )


def _name_group(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """Map ethnic group to a name-table group (mixed -> white_british or another group)."""
    out = groups.copy()
    mixed = np.flatnonzero(out == "mixed")
    if mixed.size:
        alt = rng.choice(
            ["white_british", "black_caribbean", "black_african", "south_asian_indian", "east_asian"],
            size=mixed.size,
            p=[0.55, 0.2, 0.1, 0.1, 0.05],
        )
        out[mixed] = alt
    return out


def _sample_names(rng, table: dict, keys: np.ndarray) -> np.ndarray:
    out = np.empty(keys.shape[0], dtype=object)
    u = rng.random(keys.shape[0])
    for k in np.unique(keys):
        idx = np.flatnonzero(keys == k)
        key = tuple(k.split("|")) if "|" in k else k
        names, cum = table[key]
        out[idx] = names[np.minimum(np.searchsorted(cum, u[idx]), names.size - 1)]
    return out


def sample_forenames(rng, groups: np.ndarray, sexes: np.ndarray) -> np.ndarray:
    t = name_tables()
    ng = _name_group(rng, groups)
    keys = np.char.add(np.char.add(ng.astype(str), "|"), sexes.astype(str)).astype(object)
    return _sample_names(rng, t.forenames, keys)


def sample_surnames(rng, groups: np.ndarray) -> np.ndarray:
    t = name_tables()
    return _sample_names(rng, t.surnames, _name_group(rng, groups).astype(object))


class GeoIndex:
    """Arrays derived from a Geography for fast sampling."""

    def __init__(self, geo: Geography):
        ls = geo.lsoas
        self.lsoa_code = ls["lsoa_code"].to_numpy()
        self.la_code = ls["la_code"].to_numpy()
        self.decile = ls["imd_decile"].to_numpy().astype(np.int64)
        pop = ls["population"].to_numpy().astype(float)
        self.weight = pop / pop.sum()
        self.lsoa_lat = ls["lat"].to_numpy()
        self.lsoa_lon = ls["lon"].to_numpy()
        pc = geo.postcodes
        order = {c: i for i, c in enumerate(self.lsoa_code)}
        pc_lsoa_i = np.array([order[c] for c in pc["lsoa_code"].to_list()], dtype=np.int64)
        srt = np.argsort(pc_lsoa_i, kind="stable")
        self.pc = pc["postcode"].to_numpy()[srt]
        self.pc_lat = pc["lat"].to_numpy()[srt]
        self.pc_lon = pc["lon"].to_numpy()[srt]
        self.pc_lsoa_i = pc_lsoa_i[srt]
        counts = np.bincount(self.pc_lsoa_i, minlength=len(self.lsoa_code))
        self.pc_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.pc_count = counts
        # hotspots: most deprived LSOAs of each LA (lowest decile, then lowest index)
        hot = np.zeros(len(self.lsoa_code), dtype=bool)
        for la in np.unique(self.la_code):
            idx = np.flatnonzero(self.la_code == la)
            pick = idx[np.lexsort((idx, self.decile[idx]))][: C.HOTSPOT_LSOAS_PER_LA]
            hot[pick[self.decile[pick] <= 3]] = True
        self.hotspot = hot
        las = list(LAS)
        self.la_index = np.array([las.index(c) for c in self.la_code])
        self.la_lsoas = {la: np.flatnonzero(self.la_code == la) for la in las}


def _str(values) -> pl.Series:
    return pl.Series(values.tolist() if isinstance(values, np.ndarray) else list(values), dtype=pl.String)


def _street(pc_idx: np.ndarray) -> np.ndarray:
    stems = np.array(STREET_STEMS, dtype=object)
    suf = np.array(STREET_SUFFIX, dtype=object)
    return stems[(pc_idx * 7919) % stems.size] + " " + suf[(pc_idx * 104729 // 7) % suf.size]


def make_chunk(
    rng: np.random.Generator, gi: GeoIndex, start_idx: int, n: int, hh_start: int, start_date: np.datetime64, salt: int
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Return (persons, households) for persons with global index start_idx .. start_idx+n-1."""
    types = list(C.HOUSEHOLD_TYPES)
    tp = np.array(list(C.HOUSEHOLD_TYPES.values()))
    H = int(n / 2.2) + 64
    htype = rng.choice(len(types), size=H, p=tp / tp.sum())
    kids = np.zeros(H, dtype=np.int64)
    t_cc, t_lp, t_ma = types.index("couple_children"), types.index("lone_parent"), types.index("multi_adult")
    kids[htype == t_cc] = rng.choice([1, 2, 3, 4], size=(htype == t_cc).sum(), p=[0.38, 0.42, 0.15, 0.05])
    kids[htype == t_lp] = rng.choice([1, 2, 3], size=(htype == t_lp).sum(), p=[0.5, 0.35, 0.15])
    adults = np.select(
        [np.isin(htype, [types.index("single_working_age"), types.index("single_older"), t_lp]), htype == t_ma],
        [1, 2],
        2,
    )
    extra = np.where(htype == t_ma, rng.choice([1, 2], size=H, p=[0.65, 0.35]), 0)  # adult children
    size = adults + kids + extra
    cum = np.cumsum(size)
    H = int(np.searchsorted(cum, n) + 1)
    htype, kids, adults, extra, size = htype[:H], kids[:H], adults[:H], extra[:H], size[:H].copy()
    size[-1] -= int(cum[H - 1] - n)
    # truncate last household: drop trailing members
    hh = np.repeat(np.arange(H), size)
    pos = np.arange(n) - np.repeat(np.cumsum(size) - size, size)  # position within household
    a_h, k_h = adults[hh], kids[hh]
    role = np.where(pos == 0, 0, np.where(pos < a_h, 1, np.where(pos < a_h + k_h, 2, 3)))
    ht = htype[hh]

    # ---- household ages
    head_age = np.empty(H)
    older = np.isin(htype, [types.index("single_older"), types.index("couple_older")])
    head_age[:] = rng.triangular(18, 27, 66, H)  # single working-age adults
    t_cnc = types.index("couple_no_children")
    head_age[htype == t_cnc] = rng.triangular(20, 58, 66, (htype == t_cnc).sum())  # young couples and empty nesters
    # older households: 65 + exponential(9.5) truncated at 35 years (inverse-CDF, no pile-up at the cap)
    u = rng.random(older.sum())
    head_age[older] = 65 - 9.5 * np.log1p(-u * (1 - np.exp(-35 / 9.5)))
    withkids = np.isin(htype, [t_cc, t_lp])
    head_age[withkids] = rng.normal(41, 7, withkids.sum()).clip(20, 62)
    head_age[htype == t_ma] = rng.normal(54, 6, (htype == t_ma).sum()).clip(40, 75)
    age = head_age[hh] + np.where(role == 1, rng.normal(-1.5, 3.5, n), 0)
    is_kid = role == 2
    max_kid = np.minimum(17.99, np.maximum(head_age[hh] - 18, 0.5))
    age[is_kid] = rng.random(is_kid.sum()) * max_kid[is_kid]
    is_oa = role == 3
    age[is_oa] = rng.uniform(18, 32, is_oa.sum())
    age = age.clip(0, 101)

    # ---- sex
    sex = np.where(rng.random(n) < 0.5, "M", "F").astype(object)
    couple = np.isin(ht, [types.index("couple_no_children"), types.index("couple_older"), t_cc, t_ma])
    head_m = rng.random(H) < 0.95  # heads of couples recorded as the man (opposite-sex 95%)
    same_sex = rng.random(H) < 0.05
    sex[couple & (role == 0)] = np.where(head_m[hh], "M", "F")[couple & (role == 0)]
    partner = couple & (role == 1)
    sex[partner] = np.where(head_m[hh] ^ same_sex[hh], "F", "M")[partner]
    lp_head = (ht == t_lp) & (role == 0)
    sex[lp_head] = np.where(rng.random(n) < 0.9, "F", "M")[lp_head]
    so = (ht == types.index("single_older")) & (role == 0)
    sex[so] = np.where(rng.random(n) < 0.62, "F", "M")[so]

    # ---- geography (per household)
    lsoa_i = rng.choice(gi.lsoa_code.size, size=H, p=gi.weight)
    pc_i = gi.pc_start[lsoa_i] + (rng.random(H) * gi.pc_count[lsoa_i]).astype(np.int64)
    house_no = rng.integers(1, 160, H)
    flat = rng.random(H) < 0.12
    address = (
        np.where(flat, "Flat " + rng.integers(1, 30, H).astype(str) + ", ", "").astype(object)
        + house_no.astype(str)
        + " "
        + _street(pc_i)
    )
    town = np.array([LAS[c][11] for c in gi.la_code], dtype=object)[lsoa_i]
    la = gi.la_code[lsoa_i]
    decile = gi.decile[lsoa_i]
    dep = np.array(C.DEPRIVATION_MULTIPLIER)[decile - 1]
    moved = rng.random(H) < C.P_MOVED
    prev_lsoa = np.array([rng.choice(gi.la_lsoas[c]) for c in la]) if H else np.empty(0, dtype=np.int64)
    prev_pc_i = gi.pc_start[prev_lsoa] + (rng.random(H) * gi.pc_count[prev_lsoa]).astype(np.int64)
    prev_address = rng.integers(1, 160, H).astype(str).astype(object) + " " + _street(prev_pc_i)
    move_days = rng.integers(30, 3 * 365, H)

    # ---- ethnicity and names
    eg = np.array(C.ETHNIC_GROUPS, dtype=object)
    h_group = np.empty(H, dtype=object)
    for code in np.unique(la):
        m = la == code
        mix = np.array(C.ETHNIC_MIX_BY_LA.get(code, C.ETHNIC_MIX_DEFAULT))
        h_group[m] = rng.choice(eg, size=m.sum(), p=mix / mix.sum())
    group = h_group[hh].copy()
    p_other = rng.random(n) < 0.1
    group[partner & p_other] = rng.choice(eg, size=(partner & p_other).sum())
    # children of mixed couples are "mixed"
    h_partner_group = np.full(H, None, dtype=object)
    h_partner_group[hh[partner]] = group[partner]
    kid_mixed = is_kid & (h_partner_group[hh] != None) & (h_partner_group[hh] != h_group[hh])  # noqa: E711
    group[kid_mixed] = "mixed"
    forename = sample_forenames(rng, group, sex)
    middle = np.where(rng.random(n) < C.P_MIDDLE_NAME, sample_forenames(rng, group, sex), None)
    own_surname = sample_surnames(rng, group)
    h_surname = own_surname[np.cumsum(size) - size]  # head's surname
    surname = own_surname.copy()
    prev_surname = np.full(n, None, dtype=object)
    took = partner & (sex == "F") & (rng.random(n) < C.P_MAIDEN_NAME)
    surname[took] = h_surname[hh][took]
    prev_surname[took] = own_surname[took]
    family = is_kid | is_oa
    surname[family] = h_surname[hh][family]
    h_mother_maiden = np.full(H, None, dtype=object)
    h_mother_maiden[hh[took]] = own_surname[took]
    dbl = is_kid & (rng.random(n) < C.P_DOUBLE_BARRELLED) & (h_mother_maiden[hh] != None)  # noqa: E711
    surname[dbl] = h_surname[hh][dbl] + "-" + h_mother_maiden[hh][dbl]
    lp_kid_other = is_kid & (ht == t_lp) & (rng.random(n) < 0.3)
    surname[lp_kid_other] = sample_surnames(rng, group[lp_kid_other])

    # ---- dates of birth (age at start date)
    age_days = (age * 365.25).astype(np.int64)
    dob = start_date - age_days.astype("timedelta64[D]")
    age_years = np.floor(age).astype(np.int64)
    gidx = start_idx + np.arange(n, dtype=np.int64)

    # ---- latent traits
    pdep = dep[hh]
    couple_h = np.isin(htype, [types.index("couple_no_children"), t_cc, t_ma])
    da_h = couple_h & (rng.random(H) < C.P_DA_HOUSEHOLD * dep) & ~same_sex
    m_f = np.where(sex == "M", 1.0, 0.25)
    age_f = np.select([age < 14, age < 25, age < 40, age < 60], [0.0, 4.0, 2.2, 0.8], 0.15)
    p_off = C.P_OFFENDER_ADULT * m_f * age_f * pdep
    offender = rng.random(n) < p_off
    da_perp = da_h[hh] & (role <= 1) & (sex == "M")
    offender |= da_perp & (rng.random(n) < 0.6)
    teen = (age >= 12) & (age < 18)
    exploited = teen & (rng.random(n) < C.P_EXPLOITATION_TEEN * pdep * np.where(da_h[hh], 2.0, 1.0) * 1.2)
    adult = age >= 18
    probation = offender & adult & (rng.random(n) < C.PROBATION_SHARE_OF_OFFENDERS * np.where(age < 40, 1.3, 0.7))
    mappa = probation & (rng.random(n) < C.MAPPA_SHARE_OF_PROBATION)

    # ---- identifiers
    nhs = np.where(rng.random(n) < C.P_NHS_NUMBER, ids.nhs_numbers_from_index(gidx, salt), None)
    start_year = int(str(start_date)[:4])
    birth_year = start_year - age_years
    arrest_year = np.minimum(birth_year + 15 + rng.integers(0, 12, n), start_year - 1)
    arrest_year = np.maximum(arrest_year, birth_year + 10)
    pnc = np.full(n, None, dtype=object)
    if offender.any():
        pnc[offender] = ids.pnc_ids_from_index(gidx[offender], arrest_year[offender], salt)
    upn = np.full(n, None, dtype=object)
    school = (age >= 4) & (age < 18.99)
    if school.any():
        la_num = np.array([LAS[c][9] for c in la[hh][school]])
        upn[school] = ids.upns_from_index(gidx[school], la_num, start_year - (age_years[school] - 4), salt)
    crn = np.full(n, None, dtype=object)
    if probation.any():
        crn[probation] = ids.crns_from_index(gidx[probation], salt)

    hh_id = np.char.add("H", np.char.zfill((hh_start + np.arange(H)).astype(str), 8)).astype(object)
    households = pl.DataFrame(
        {
            "household_id": hh_id,
            "household_type": _str(np.array(types, dtype=object)[htype]),
            "size": size,
            "address": _str(address),
            "town": _str(town),
            "postcode": gi.pc[pc_i],
            "lsoa_code": gi.lsoa_code[lsoa_i],
            "la_code": la,
            "imd_decile": decile.astype(np.int8),
            "lat": gi.pc_lat[pc_i] + rng.normal(0, 0.0004, H),
            "lon": gi.pc_lon[pc_i] + rng.normal(0, 0.0006, H),
            "previous_address": _str(np.where(moved, prev_address, None)),
            "previous_postcode": _str(np.where(moved, gi.pc[prev_pc_i], None)),
            "moved_in_date": np.where(
                moved, start_date - move_days.astype("timedelta64[D]"), np.datetime64("NaT")
            ).astype("datetime64[D]"),
            "domestic_abuse": da_h,
        }
    )
    persons = pl.DataFrame(
        {
            "person_uid": np.char.add("P", np.char.zfill(gidx.astype(str), 8)).astype(object),
            "person_index": gidx,
            "household_id": _str(hh_id[hh]),
            "household_role": _str(np.array(["head", "partner", "child", "adult_child"], dtype=object)[role]),
            "forename": _str(forename),
            "middle_names": _str(middle),
            "surname": _str(surname),
            "previous_surname": _str(prev_surname),
            "sex": _str(sex),
            "dob": dob.astype("datetime64[D]"),
            "age_at_start": age_years,
            "ethnic_group": _str(group),
            "address": _str(address[hh]),
            "town": _str(town[hh]),
            "postcode": gi.pc[pc_i][hh],
            "previous_postcode": _str(np.where(moved[hh], gi.pc[prev_pc_i][hh], None)),
            "previous_address": _str(np.where(moved[hh], prev_address[hh], None)),
            "lsoa_code": gi.lsoa_code[lsoa_i][hh],
            "la_code": la[hh],
            "imd_decile": decile[hh].astype(np.int8),
            "nhs_number": _str(nhs),
            "pnc_id": _str(pnc),
            "upn": _str(upn),
            "crn": _str(crn),
            "known_offender": offender,
            "da_victim": da_h[hh] & (role <= 1) & (sex == "F"),
            "da_perpetrator": da_perp,
            "exploitation_risk": exploited,
            "on_probation": probation,
            "mappa_nominal": mappa,
        }
    )
    arrays = {
        "hh": hh,
        "role": role,
        "age": age,
        "sex": sex,
        "lsoa_i": lsoa_i[hh],
        "dep": pdep,
        "decile": decile[hh],
        "lat": households["lat"].to_numpy()[hh],
        "lon": households["lon"].to_numpy()[hh],
        "da_h": da_h[hh],
        "offender": offender,
        "exploited": exploited,
        "probation": probation,
        "mappa": mappa,
        "da_victim": persons["da_victim"].to_numpy(),
        "da_perp": da_perp,
        "hotspot": gi.hotspot[lsoa_i][hh],
        "la": la[hh],
        "n_households": H,
    }
    return persons, households, arrays
