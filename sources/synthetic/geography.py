"""Small-area geography for the synthetic population.

Two modes, both returning a :class:`Geography` (one row per LSOA and one per postcode):

* built-in (default): synthetic LSOAs per Thames Valley local authority. Codes are
  ``E019xxxxx`` (real LSOA codes stop well below E0104xxxx, so these can never collide
  with a real one), names ``"<LA name> S001A"``; centroids lie inside the LA's
  approximate lat/lon box, more deprived LSOAs cluster near the main town centre;
  populations ~1,500; a synthetic IMD 2019 decile drawn from a per-LA profile.
* real (``geography=DIR``): LSOAs read from ``DIR/geography/lsoa21/<LA>.geojson``
  (falls back to ``lsoa11``), centroids from ``DIR/geography/lsoa_latlong_england.csv``
  (else the GeoJSON LAT/LONG or the mean of the first ring), IMD decile and population
  from ``DIR/imd2019/File_1...csv.gz`` and ``File_6...csv.gz``. IMD is by LSOA 2011: an
  LSOA 2021 is mapped through the ``lsoa11cd`` column of the centroid file, else by code
  equality (most codes are unchanged); LSOAs still unmatched take their LA's median
  decile and a population of 1,500. A 2011 LSOA split into several 2021 LSOAs shares
  its population equally.

Postcodes are always synthetic: real outward codes for each LA, a synthetic inward code
(digit + two letters from the Royal Mail inward letter set), each postcode in exactly one
LSOA (a sector ``outward + digit`` may span LSOAs, as real ones do).
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

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


def _find(d: Path, pattern: str, what: str) -> Path:
    hits = sorted(d.glob(pattern)) if d.is_dir() else []
    if not hits:
        raise FileNotFoundError(f"geography folder incomplete: {what} not found ({d / pattern})")
    return hits[0]


def _read_csv_any(path: Path) -> pl.DataFrame:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return pl.read_csv(io.BytesIO(raw), infer_schema_length=0, encoding="utf8-lossy")


def _real_lsoas(root: Path) -> pl.DataFrame:
    geo = root / "geography"
    rows = []
    for la, meta in LAS.items():
        path = geo / "lsoa21" / f"{la}.geojson"
        key = "LSOA21CD"
        if not path.exists():
            path = geo / "lsoa11" / f"{la}.geojson"
            key = "LSOA11CD"
        if not path.exists():
            raise FileNotFoundError(
                f"geography folder incomplete: {geo / 'lsoa21' / (la + '.geojson')} (or lsoa11) not found"
            )
        with path.open("rb") as f:
            fc = json.load(f)
        for feat in fc.get("features", []):
            p = feat.get("properties", {})
            code = p.get(key)
            name = p.get(key[:-2] + "NM") or code
            lat, lon = p.get("LAT"), p.get("LONG")
            if lat is None or lon is None:
                try:
                    g = feat["geometry"]
                    ring = g["coordinates"][0] if g["type"] == "Polygon" else g["coordinates"][0][0]
                    arr = np.asarray(ring, dtype=float)
                    lon, lat = float(arr[:, 0].mean()), float(arr[:, 1].mean())
                except Exception:  # noqa: BLE001 - fall back to LA centre
                    lat, lon = meta[6], meta[7]
            rows.append((code, name, la, meta[0], float(lat), float(lon)))
    df = pl.DataFrame(rows, schema=["lsoa_code", "lsoa_name", "la_code", "la_name", "lat_g", "lon_g"], orient="row")

    cent_path = geo / "lsoa_latlong_england.csv"
    if not cent_path.exists():
        raise FileNotFoundError(f"geography folder incomplete: {cent_path} not found")
    cent = (
        pl.scan_csv(cent_path, infer_schema_length=0)
        .select(
            pl.col("LSOACD").alias("lsoa_code"),
            pl.col("latitude").cast(pl.Float64).alias("lat_c"),
            pl.col("longitude").cast(pl.Float64).alias("lon_c"),
            (
                pl.col("lsoa11cd")
                if "lsoa11cd" in pl.scan_csv(cent_path).collect_schema().names()
                else pl.col("LSOACD")
            ).alias("lsoa11"),
        )
        .filter(pl.col("lsoa_code").is_in(df["lsoa_code"].to_list()))
        .collect()
    )
    df = (
        df.join(cent, on="lsoa_code", how="left")
        .with_columns(
            lat=pl.coalesce("lat_c", "lat_g"),
            lon=pl.coalesce("lon_c", "lon_g"),
            lsoa11=pl.coalesce("lsoa11", "lsoa_code"),
        )
        .drop("lat_c", "lon_c", "lat_g", "lon_g")
    )

    imd_dir = root / "imd2019"
    f1 = _read_csv_any(_find(imd_dir, "File_1*.csv*", "IMD 2019 File_1 (IMD decile)"))
    f1 = f1.select(
        pl.col(f1.columns[0]).alias("lsoa11"),
        pl.col([c for c in f1.columns if "Decile" in c and "Multiple" in c][0]).cast(pl.Int8).alias("imd_decile"),
    )
    df = df.join(f1, on="lsoa11", how="left")
    try:
        f6 = _read_csv_any(_find(imd_dir, "File_6*.csv*", "IMD 2019 File_6 (population denominators)"))
        popcol = [c for c in f6.columns if c.startswith("Total population")][0]
        f6 = f6.select(
            pl.col(f6.columns[0]).alias("lsoa11"), pl.col(popcol).str.replace_all(",", "").cast(pl.Int64).alias("pop11")
        )
        df = df.join(f6, on="lsoa11", how="left")
    except FileNotFoundError:
        df = df.with_columns(pop11=pl.lit(None, pl.Int64))
    df = df.with_columns(n_split=pl.len().over("lsoa11"))
    df = df.with_columns(
        population=(pl.col("pop11") / pl.col("n_split")).round().cast(pl.Int64).fill_null(1500),
        imd_decile=pl.col("imd_decile")
        .fill_null(pl.col("imd_decile").median().over("la_code").round().cast(pl.Int8))
        .fill_null(5)
        .cast(pl.Int8),
    )
    return (
        df.select("lsoa_code", "lsoa_name", "la_code", "la_name", "lat", "lon", "population", "imd_decile")
        .with_columns(synthetic=pl.lit(False))
        .sort("la_code", "lsoa_code")
    )


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
    if geography is None:
        lsoas = _builtin_lsoas(rng)
        mode, note = "builtin", "synthetic LSOAs E019xxxxx (built in)"
    else:
        root = Path(geography)
        if not root.is_dir():
            raise FileNotFoundError(f"geography folder not found: {root}")
        lsoas = _real_lsoas(root)
        mode, note = "real", "LSOAs from the given geography folder"
    return Geography(lsoas=lsoas, postcodes=_postcodes(lsoas, rng), mode=mode, source_note=note)
