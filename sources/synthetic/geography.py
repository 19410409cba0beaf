"""Small-area geography for the synthetic population.

Two modes, both returning a :class:`Geography` (one row per LSOA and one per postcode):

* built-in (default): synthetic LSOAs per Thames Valley local authority. Codes are
  ``E019xxxxx`` (real LSOA codes stop well below E0104xxxx, so these can never collide
  with a real one), names ``"<LA name> S001A"``; centroids lie inside the LA's
  approximate lat/lon box, more deprived LSOAs cluster near the main town centre;
  populations ~1,500; a synthetic IMD 2019 decile drawn from a per-LA profile.
* real (``geography=DIR``): the LSOAs of the 13 LAs read by :mod:`sources.reference`
  (the reader the pipeline uses for its reference tables; see sources/reference/README.md):
  LSOAs from ``DIR/geography/lsoa21/<LA>.geojson`` (``lsoa11`` when not every LA has a
  2021 file), centroids from ``DIR/geography/lsoa_latlong_england.csv`` (else the GeoJSON),
  IMD decile and population from ``DIR/imd2019/File_1...`` and ``File_6...`` (by LSOA 2011;
  a 2021 LSOA takes them from its 2011 predecessors, see the reader). LSOAs still without
  them take their LA's median decile and a population of 1,500.

Postcodes are always synthetic: real outward codes for each LA, a synthetic inward code
(digit + two letters from the Royal Mail inward letter set), each postcode in exactly one
LSOA (a sector ``outward + digit`` may span LSOAs, as real ones do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sources.reference.reader import read_reference

# code: (name, population 2021 (approx), lat_min, lat_max, lon_min, lon_max, centre lat, centre lon,
#        outward codes, DfE LA number, upper-tier (social care) authority code, town)
LAS: dict[str, tuple] = {
    "E06000038": (
        "Reading",
        174_000,
        51.41,
        51.49,
        -1.05,
        -0.93,
        51.455,
        -0.97,
        ["RG1", "RG2", "RG4", "RG30", "RG31"],
        870,
        "E06000038",
        "Reading",
    ),
    "E06000039": (
        "Slough",
        158_000,
        51.48,
        51.54,
        -0.66,
        -0.52,
        51.51,
        -0.59,
        ["SL1", "SL2", "SL3"],
        871,
        "E06000039",
        "Slough",
    ),
    "E06000036": (
        "Bracknell Forest",
        125_000,
        51.33,
        51.45,
        -0.84,
        -0.67,
        51.415,
        -0.75,
        ["RG12", "RG42"],
        867,
        "E06000036",
        "Bracknell",
    ),
    "E06000037": (
        "West Berkshire",
        161_000,
        51.33,
        51.57,
        -1.59,
        -1.05,
        51.40,
        -1.32,
        ["RG14", "RG18", "RG19", "RG7", "RG20"],
        869,
        "E06000037",
        "Newbury",
    ),
    "E06000040": (
        "Windsor and Maidenhead",
        153_000,
        51.40,
        51.57,
        -0.80,
        -0.52,
        51.52,
        -0.72,
        ["SL4", "SL6"],
        868,
        "E06000040",
        "Maidenhead",
    ),
    "E06000041": (
        "Wokingham",
        177_000,
        51.33,
        51.50,
        -0.98,
        -0.77,
        51.41,
        -0.83,
        ["RG40", "RG41", "RG5", "RG6"],
        872,
        "E06000041",
        "Wokingham",
    ),
    "E06000042": (
        "Milton Keynes",
        287_000,
        51.96,
        52.20,
        -0.87,
        -0.59,
        52.04,
        -0.76,
        [f"MK{i}" for i in range(1, 20)],
        826,
        "E06000042",
        "Milton Keynes",
    ),
    "E06000060": (
        "Buckinghamshire",
        553_000,
        51.53,
        52.08,
        -1.14,
        -0.48,
        51.63,
        -0.75,
        [
            "HP5",
            "HP6",
            "HP7",
            "HP8",
            "HP9",
            "HP10",
            "HP11",
            "HP12",
            "HP13",
            "HP14",
            "HP15",
            "HP16",
            "HP17",
            "HP18",
            "HP19",
            "HP20",
            "HP21",
            "HP22",
            "HP23",
            "SL7",
            "SL9",
        ],
        825,
        "E06000060",
        "High Wycombe",
    ),
    "E07000177": (
        "Cherwell",
        161_000,
        51.80,
        52.17,
        -1.52,
        -1.04,
        52.06,
        -1.34,
        ["OX15", "OX16", "OX17", "OX26", "OX5"],
        931,
        "E10000025",
        "Banbury",
    ),
    "E07000178": (
        "Oxford",
        162_000,
        51.71,
        51.80,
        -1.31,
        -1.18,
        51.752,
        -1.257,
        ["OX1", "OX2", "OX3", "OX4"],
        931,
        "E10000025",
        "Oxford",
    ),
    "E07000179": (
        "South Oxfordshire",
        149_000,
        51.45,
        51.77,
        -1.30,
        -0.87,
        51.60,
        -1.12,
        ["OX10", "OX9", "OX39", "OX44", "RG9"],
        931,
        "E10000025",
        "Didcot",
    ),
    "E07000180": (
        "Vale of White Horse",
        139_000,
        51.56,
        51.78,
        -1.72,
        -1.22,
        51.67,
        -1.28,
        ["OX11", "OX12", "OX13", "OX14"],
        931,
        "E10000025",
        "Abingdon",
    ),
    "E07000181": (
        "West Oxfordshire",
        114_000,
        51.70,
        52.00,
        -1.72,
        -1.30,
        51.78,
        -1.48,
        ["OX7", "OX18", "OX28", "OX29"],
        931,
        "E10000025",
        "Witney",
    ),
}
UPPER_TIER_NAMES = {"E10000025": "Oxfordshire"}

# IMD decile profile per LA (weights for deciles 1..10), rough shape of IMD 2019
_IMD_PROFILE = {
    "E06000038": [4, 6, 8, 9, 10, 10, 10, 11, 14, 18],
    "E06000039": [3, 9, 15, 16, 15, 13, 11, 8, 6, 4],
    "E06000036": [0.5, 1, 3, 6, 8, 12, 15, 18, 18, 18],
    "E06000037": [0.5, 1, 3, 5, 8, 11, 15, 18, 19, 19],
    "E06000040": [0.5, 1, 2, 4, 6, 9, 12, 17, 22, 26],
    "E06000041": [0.1, 0.5, 1, 2, 4, 7, 10, 17, 25, 33],
    "E06000042": [6, 9, 10, 10, 10, 10, 11, 11, 11, 12],
    "E06000060": [1, 2, 3, 5, 7, 9, 12, 15, 20, 26],
    "E07000177": [1, 3, 5, 8, 10, 12, 14, 15, 16, 16],
    "E07000178": [3, 7, 10, 11, 10, 10, 10, 11, 13, 15],
    "E07000179": [0.2, 0.5, 1, 3, 6, 9, 13, 19, 23, 25],
    "E07000180": [0.2, 0.5, 1.5, 3, 6, 10, 14, 19, 22, 24],
    "E07000181": [0.2, 0.5, 2, 4, 8, 12, 16, 20, 19, 18],
}

INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # Royal Mail: inward unit never uses C I K M O V
POSTCODES_PER_LSOA = 24


@dataclass
class Geography:
    lsoas: pl.DataFrame  # lsoa_code, lsoa_name, la_code, la_name, lat, lon, population, imd_decile, synthetic
    postcodes: pl.DataFrame  # postcode, lsoa_code, la_code, lat, lon
    mode: str  # "builtin" | "real"
    source_note: str
    age_bands: pl.DataFrame | None = None  # real mode: lsoa_code, population_0_15, population_16_plus (nullable)


def la_table() -> pl.DataFrame:
    rows = [
        {
            "la_code": k,
            "la_name": v[0],
            "dfe_la_number": v[9],
            "upper_tier_code": v[10],
            "upper_tier_name": UPPER_TIER_NAMES.get(v[10], v[0]),
            "town": v[11],
        }
        for k, v in LAS.items()
    ]
    return pl.DataFrame(rows)


def _builtin_lsoas(rng: np.random.Generator) -> pl.DataFrame:
    frames = []
    serial = 0
    for la, (name, pop, la0, la1, lo0, lo1, clat, clon, *_rest) in LAS.items():
        n = max(4, int(round(pop / 1600)))
        dec = rng.choice(np.arange(1, 11), size=n, p=np.array(_IMD_PROFILE[la]) / sum(_IMD_PROFILE[la]))
        dec.sort()  # most deprived first -> nearest the centre
        # radial distance grows with decile (deprived areas central), random angle
        sd_lat, sd_lon = (la1 - la0) / 4, (lo1 - lo0) / 4
        r = (0.15 + 0.85 * (dec - 1) / 9) * rng.uniform(0.3, 1.2, n)
        ang = rng.uniform(0, 2 * np.pi, n)
        lat = np.clip(clat + r * sd_lat * np.sin(ang), la0 + 0.003, la1 - 0.003)
        lon = np.clip(clon + r * sd_lon * np.cos(ang), lo0 + 0.003, lo1 - 0.003)
        popn = rng.normal(1550, 180, n).clip(1000, 2400).round().astype(np.int64)
        codes = [f"E019{serial + i:05d}" for i in range(n)]
        names = [f"{name} S{1 + i // 4:03d}{'ABCD'[i % 4]}" for i in range(n)]
        serial += n
        frames.append(
            pl.DataFrame(
                {
                    "lsoa_code": codes,
                    "lsoa_name": names,
                    "la_code": [la] * n,
                    "la_name": [name] * n,
                    "lat": lat,
                    "lon": lon,
                    "population": popn,
                    "imd_decile": dec.astype(np.int8),
                }
            )
        )
    return pl.concat(frames).with_columns(synthetic=pl.lit(True))


def _real_lsoas(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The Thames Valley LSOAs of a folder laid out like the public downloads, read by
    sources.reference (one reader for the generator and the pipeline). Returns the LSOAs
    and their age bands (lsoa_code, population_0_15, population_16_plus)."""
    geo = root / "geography"
    complete = {v: all((geo / f"lsoa{v[2:]}" / f"{la}.geojson").exists() for la in LAS) for v in ("2021", "2011")}
    vintage = next((v for v, ok in complete.items() if ok), None)
    if vintage is None:
        missing = next(la for la in LAS if not (geo / "lsoa21" / f"{la}.geojson").exists())
        raise FileNotFoundError(
            f"geography folder incomplete: {geo / 'lsoa21' / (missing + '.geojson')} (or lsoa11) not found"
        )
    ref = read_reference(root, la_codes=list(LAS), vintage=vintage).lsoa
    df = ref.select(
        "lsoa_code",
        "lsoa_name",
        "la_code",
        "la_name",
        pl.col("latitude").alias("lat"),
        pl.col("longitude").alias("lon"),
        pl.col("population").cast(pl.Int64).fill_null(1500),
        pl.col("imd_decile")
        .fill_null(pl.col("imd_decile").median().over("la_code").round().cast(pl.Int8))
        .fill_null(5)
        .cast(pl.Int8),
    )
    lsoas = df.with_columns(synthetic=pl.lit(False)).sort("la_code", "lsoa_code")
    return lsoas, ref.select("lsoa_code", "population_0_15", "population_16_plus")


def _postcodes(lsoas: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """POSTCODES_PER_LSOA unique postcodes per LSOA, outward code from the LA's list."""
    used: dict[str, int] = {}
    out_pc, out_lsoa, out_la, out_lat, out_lon = [], [], [], [], []
    n_inward = 10 * len(INWARD_LETTERS) ** 2
    for la, grp in lsoas.group_by("la_code", maintain_order=True):
        la = la[0]
        outwards = LAS[la][8]
        # LSOA -> outward: order LSOAs by longitude then latitude so neighbours share districts
        g = grp.sort("lon", "lat")
        k = len(outwards)
        per = int(np.ceil(g.height / k))
        for i, (code, lat, lon) in enumerate(zip(g["lsoa_code"], g["lat"], g["lon"])):
            ow = outwards[min(i // per, k - 1)]
            start = used.get(ow, 0)
            if start + POSTCODES_PER_LSOA > n_inward:  # district full: use the next one with room
                ow = min(outwards, key=lambda o: used.get(o, 0))
                start = used.get(ow, 0)
            used[ow] = start + POSTCODES_PER_LSOA
            for j in range(start, start + POSTCODES_PER_LSOA):
                # spread units over sectors 0-9 then letters
                sector = j % 10
                u = j // 10
                inward = f"{sector}{INWARD_LETTERS[(u // len(INWARD_LETTERS)) % len(INWARD_LETTERS)]}{INWARD_LETTERS[u % len(INWARD_LETTERS)]}"
                out_pc.append(f"{ow} {inward}")
            out_lsoa.extend([code] * POSTCODES_PER_LSOA)
            out_la.extend([la] * POSTCODES_PER_LSOA)
            out_lat.append(lat + rng.normal(0, 0.0035, POSTCODES_PER_LSOA))
            out_lon.append(lon + rng.normal(0, 0.0055, POSTCODES_PER_LSOA))
    return pl.DataFrame(
        {
            "postcode": out_pc,
            "lsoa_code": out_lsoa,
            "la_code": out_la,
            "lat": np.concatenate(out_lat).round(6),
            "lon": np.concatenate(out_lon).round(6),
        }
    )


def load_geography(geography: Path | None, seed: int) -> Geography:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1001])))
    bands = None
    if geography is None:
        lsoas = _builtin_lsoas(rng)
        mode, note = "builtin", "synthetic LSOAs E019xxxxx (built in)"
    else:
        root = Path(geography)
        if not root.is_dir():
            raise FileNotFoundError(f"geography folder not found: {root}")
        lsoas, bands = _real_lsoas(root)
        mode, note = "real", "LSOAs from the given geography folder"
    return Geography(lsoas=lsoas, postcodes=_postcodes(lsoas, rng), mode=mode, source_note=note, age_bands=bands)


REGION = ("E12000008", "South East")


def reference_frames(geo: Geography, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The geography as the frames ``sources.reference.writer.write_reference_folder`` takes:
    (LSOAs, postcodes, local authorities).

    Age bands: the real 0-15 count where the geography folder gave it, else a synthetic
    share of the population (more children and fewer over-60s in deprived LSOAs); the rest
    is 16+, split into 16-59 / 60+ the same way. Built-in geography only: synthetic MSOAs
    (``E029xxxxx``, the four LSOAs sharing a name stem ``<LA> S001``) and wards (``E059xxxxx``,
    one per MSOA). Uses its own random stream, so the rest of the output is unchanged.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1002])))
    ls = geo.lsoas.sort("lsoa_code")
    n = ls.height
    pop = ls["population"].to_numpy().astype(float)
    tilt = (5.5 - ls["imd_decile"].to_numpy().astype(float)) / 4.5  # +1 most deprived .. -1 least
    child = np.clip(0.19 + 0.04 * tilt + rng.normal(0, 0.025, n), 0.08, 0.35)
    older = np.clip(0.23 - 0.05 * tilt + rng.normal(0, 0.03, n), 0.05, 0.45)
    p015 = np.round(pop * child)
    if geo.age_bands is not None:
        real = ls.select("lsoa_code").join(geo.age_bands, on="lsoa_code", how="left")["population_0_15"]
        p015 = np.where(real.is_not_null().to_numpy(), real.fill_null(0).to_numpy(), p015).clip(0, pop)
    p16 = pop - p015  # the bands add up to the LSOA's population
    p60 = np.round(p16 * older / (1 - child))
    lsoas = ls.select(
        "lsoa_code",
        "lsoa_name",
        "la_code",
        "la_name",
        pl.col("lat").alias("latitude"),
        pl.col("lon").alias("longitude"),
        "imd_decile",
        pl.col("population").cast(pl.Int64),
        pl.Series(p015).cast(pl.Int64).alias("population_0_15"),
        pl.Series(p16 - p60).cast(pl.Int64).alias("population_16_59"),
        pl.Series(p60).cast(pl.Int64).alias("population_60_plus"),
    )
    if geo.mode == "builtin":
        stem = pl.col("lsoa_name").str.slice(0, pl.col("lsoa_name").str.len_chars() - 1)
        groups = lsoas.select(pl.concat_str("la_code", stem).alias("_g")).to_series()
        serial = groups.rank("dense").cast(pl.Int64) - 1
        lsoas = lsoas.with_columns(
            msoa_code=pl.format("E029{}", serial.cast(pl.String).str.zfill(5)),
            ward_code=pl.format("E059{}", serial.cast(pl.String).str.zfill(5)),
        )
    postcodes = geo.postcodes.select(
        "postcode", "lsoa_code", pl.col("lat").alias("latitude"), pl.col("lon").alias("longitude")
    )
    las = la_table().with_columns(region_code=pl.lit(REGION[0]), region_name=pl.lit(REGION[1]))
    return lsoas, postcodes, las
