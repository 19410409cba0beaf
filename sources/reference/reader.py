"""Read a reference folder laid out like the public downloads (see README.md) into two polars
frames: ``lsoa`` (one row per LSOA: names, local authority, ward, populations, IMD decile,
centroid) and ``postcode_lsoa`` (postcode -> LSOA, local authority).

One LSOA vintage per folder: 2021 when the folder says which 2021 LSOAs exist (2021
boundaries, the ONS LSOA 2011->2021 lookup, or a postcode lookup with an lsoa21 column),
else 2011. IMD 2019 and its population denominators are by LSOA 2011: a 2021 LSOA takes them
from its 2011 predecessor(s) (see ``_predecessors``).

Malformed input raises :class:`sources.readers.ExtractError` naming the file, the line and
the problem; a missing required file raises FileNotFoundError naming it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from linkage.standardise import postcode_features
from sources.readers import ExtractError
from sources.reference import formats as F
from sources.reference.nearest import NearestCentroid

LSOA_SCHEMA = {
    "lsoa_code": pl.String,
    "lsoa_name": pl.String,
    "la_code": pl.String,
    "la_name": pl.String,
    "ward_code": pl.String,
    "population": pl.Int32,
    "population_0_15": pl.Int32,
    "population_16_plus": pl.Int32,
    "imd_decile": pl.Int8,
    "latitude": pl.Float64,
    "longitude": pl.Float64,
    "lsoa11_code": pl.String,
}
POSTCODE_SCHEMA = {"postcode": pl.String, "lsoa_code": pl.String, "la_code": pl.String}
VINTAGES = ("2021", "2011")
UK_LAT, UK_LON = (49.0, 61.5), (-8.8, 2.1)  # a centroid outside this box is a wrong (or swapped) value
POSTCODE_STD = r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$"


@dataclass
class ReferenceData:
    lsoa: pl.DataFrame  # LSOA_SCHEMA, one row per LSOA, sorted by lsoa_code
    postcode_lsoa: pl.DataFrame  # POSTCODE_SCHEMA, one row per postcode, sorted by postcode
    vintage: str  # "2021" | "2011": the LSOA codes in both frames
    notes: list[str] = field(default_factory=list)  # what was left out or estimated (counts only)


# ====================================================================== single files
def _find(folder: Path, subdir: str, pattern: str, what: str) -> Path:
    hits = sorted((folder / subdir).glob(pattern)) if (folder / subdir).is_dir() else []
    if not hits:
        raise FileNotFoundError(f"reference folder incomplete: {what} not found ({folder / subdir / pattern})")
    return hits[0]


def _no_duplicates(frame: pl.DataFrame, column: str, path: Path, header_name: str) -> None:
    F.fail_first(frame, pl.col(column).is_not_null() & (pl.col("_line") != pl.col("_line").min().over(column)),
                 path, lambda r: f"{header_name} {r[column]!r} appears twice")


def _required(frame: pl.DataFrame, column: str, path: Path, header_name: str) -> None:
    F.fail_first(frame, pl.col(column).is_null(), path, lambda r: f"no {header_name}")


def read_la_codes(path: Path) -> pl.DataFrame:
    """la_all_codes.csv -> la_code, la_name, active_code, active_name (every code, current
    or not, with the code and name of the authority that covers it now)."""
    frame, h = F.read_csv(path, F.LA_COLUMNS)
    _required(frame, "la_code", path, h["la_code"])
    _no_duplicates(frame, "la_code", path, h["la_code"])
    frame = frame.with_columns(active_code=pl.coalesce("active_code", "la_code"))
    names = dict(zip(frame["la_code"], frame["la_name"]))
    return frame.with_columns(
        active_name=pl.coalesce("active_name", pl.col("active_code").replace_strict(names, default=None), "la_name")
    ).select("la_code", "la_name", "active_code", "active_name")


def read_centroids(path: Path) -> pl.DataFrame:
    """lsoa_latlong_england.csv -> lsoa_code, latitude, longitude, lsoa11 (nullable)."""
    frame, h = F.read_csv(path, F.CENTROID_COLUMNS)
    _required(frame, "lsoa_code", path, h["lsoa_code"])
    _no_duplicates(frame, "lsoa_code", path, h["lsoa_code"])
    lat = F.number(frame, "latitude", path, h["latitude"])
    lon = F.number(frame, "longitude", path, h["longitude"])
    frame = frame.with_columns(lat=lat, lon=lon)
    for column, bounds in (("lat", UK_LAT), ("lon", UK_LON)):
        name = h["latitude" if column == "lat" else "longitude"]
        F.fail_first(frame, pl.col(column).is_null(), path, lambda r, n=name: f"no {n} for {r['lsoa_code']}")
        F.fail_first(frame, ~pl.col(column).is_between(*bounds), path,
                     lambda r, n=name, c=column, b=bounds: f"{n} {r[c]} is outside the UK ({b[0]} to {b[1]}; "
                     "latitude and longitude swapped?)")
    return frame.select("lsoa_code", pl.col("lat").alias("latitude"), pl.col("lon").alias("longitude"), "lsoa11")


def read_imd_deciles(path: Path) -> pl.DataFrame:
    """IMD 2019 File_1 -> lsoa11, lsoa_name, la_code, la_name, imd_decile (by LSOA 2011)."""
    frame, h = F.read_csv(path, F.IMD_DECILE_COLUMNS)
    _required(frame, "lsoa11", path, h["lsoa11"])
    _no_duplicates(frame, "lsoa11", path, h["lsoa11"])
    decile = F.number(frame, "imd_decile", path, h["imd_decile"], integer=True)
    frame = frame.with_columns(decile=decile)
    F.fail_first(frame, ~pl.col("decile").is_between(1, 10), path,
                 lambda r: f"{h['imd_decile']} {r['imd_decile']!r} is not a decile (1-10)")
    return frame.select("lsoa11", "lsoa_name", "la_code", "la_name", pl.col("decile").cast(pl.Int8).alias("imd_decile"))


def read_imd_population(path: Path) -> pl.DataFrame:
    """IoD 2019 File_6 -> lsoa11, population, population_0_15, population_16_59,
    population_60_plus (mid-2015, by LSOA 2011; the age bands null if the file lacks them)."""
    frame, h = F.read_csv(path, F.IMD_POPULATION_COLUMNS)
    _required(frame, "lsoa11", path, h["lsoa11"])
    _no_duplicates(frame, "lsoa11", path, h["lsoa11"])
    columns = ["population", "population_0_15", "population_16_59", "population_60_plus"]
    parsed = {}
    for column in columns:
        if column in h:
            parsed[column] = F.number(frame, column, path, h[column], integer=True)
        else:
            parsed[column] = pl.lit(None, pl.Int64)
    frame = frame.with_columns(**{f"_{c}": e for c, e in parsed.items()})
    for column in columns:
        F.fail_first(frame, pl.col(f"_{column}") < 0, path, lambda r, c=column: f"{h[c]} {r[c]!r} is negative")
    return frame.select("lsoa11", *[pl.col(f"_{c}").alias(c) for c in columns])


def read_boundaries(folder: Path, vintage: str) -> pl.DataFrame | None:
    """``geography/lsoa21`` or ``lsoa11`` GeoJSON files -> lsoa_code, lsoa_name, la_code,
    latitude, longitude (LAT/LONG properties, else the mean of the outer ring's vertices).
    None when the folder has no GeoJSON file."""
    files = sorted(folder.glob("*.geojson")) + sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    yy = vintage[2:]
    rows = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                collection = json.load(handle)
        except UnicodeDecodeError:
            raise ExtractError(path, "not valid UTF-8") from None
        except json.JSONDecodeError as exc:
            raise ExtractError(path, f"invalid GeoJSON ({exc.msg})", exc.lineno) from None
        features = collection.get("features") if isinstance(collection, dict) else None
        if not isinstance(features, list):
            raise ExtractError(path, "not a GeoJSON FeatureCollection (no features list)")
        for number, feature in enumerate(features, start=1):
            props = {str(k).upper(): v for k, v in (feature.get("properties") or {}).items()}
            code = props.get(f"LSOA{yy}CD")
            if not code:
                raise ExtractError(path, f"feature {number} has no LSOA{yy}CD property")
            la = props.get("LADCD_ACTIVE") or next(
                (v for k, v in sorted(props.items()) if k.startswith("LAD") and k.endswith("CD") and v), None)
            lat, lon = props.get("LAT"), props.get("LONG")
            if lat is None or lon is None:
                lat, lon = _ring_mean(path, number, feature.get("geometry"))
            rows.append((str(code), props.get(f"LSOA{yy}NM"), la, float(lat), float(lon)))
    frame = pl.DataFrame(rows, schema=["lsoa_code", "lsoa_name", "la_code", "latitude", "longitude"], orient="row")
    dupes = frame.filter(pl.col("lsoa_code").is_duplicated())
    if dupes.height:
        raise ExtractError(folder, f"LSOA {dupes['lsoa_code'][0]} appears in two boundary features")
    return frame


def _ring_mean(path: Path, number: int, geometry) -> tuple[float, float]:
    try:
        coords = geometry["coordinates"]
        ring = coords[0] if geometry["type"] == "Polygon" else coords[0][0]
        points = np.asarray(ring, dtype=float)[:, :2]
        return float(points[:, 1].mean()), float(points[:, 0].mean())
    except (KeyError, IndexError, TypeError, ValueError):
        raise ExtractError(path, f"feature {number} has neither LAT/LONG nor a polygon geometry") from None


def read_lsoa_lookup(folder: Path) -> pl.DataFrame | None:
    """The ONS "LSOA (2011) to LSOA (2021) to LAD" lookup: any CSV in ``geography/`` whose
    header has LSOA11CD and LSOA21CD -> lsoa11, lsoa_code, lsoa_name, la_code. None if none."""
    if not folder.is_dir():
        return None
    frames = []
    for path in sorted(folder.glob("*.csv")) + sorted(folder.glob("*.csv.gz")):
        names = {n.upper() for n in F.header(path)}
        if {"LSOA11CD", "LSOA21CD"} <= names:
            frame, h = F.read_csv(path, F.LSOA_LOOKUP_COLUMNS)
            _required(frame, "lsoa_code", path, h["lsoa_code"])
            frames.append(frame.drop("_line"))
    return pl.concat(frames).unique(maintain_order=True) if frames else None


def read_postcode_lookup(folder: Path) -> pl.DataFrame | None:
    """Every CSV in ``postcodes/`` (ONSPD / NSPL style) -> postcode (as published), lsoa21,
    lsoa11, la_code, ward_code, latitude, longitude, _file, _line. None if there is none."""
    files = (sorted(folder.glob("*.csv")) + sorted(folder.glob("*.csv.gz"))) if folder.is_dir() else []
    if not files:
        return None
    frames = []
    for path in files:
        frame, h = F.read_csv(path, F.POSTCODE_COLUMNS)
        if "lsoa21" not in h and "lsoa11" not in h:
            raise ExtractError(path, "no LSOA column (expected lsoa21cd, lsoa21, lsoa11cd or lsoa11)", 1)
        coords = {}
        for column in ("latitude", "longitude"):
            coords[column] = F.number(frame, column, path, h[column]) if column in h else pl.lit(None, pl.Float64)
        frame = frame.with_columns(**coords)
        # NSPL/ONSPD mark "no grid reference" with lat 99.999999, long 0: not a place.
        frame = frame.with_columns(
            pl.when(pl.col("latitude").abs() <= 90).then(pl.col(c)).alias(c) for c in ("latitude", "longitude")
        )
        frames.append(frame.with_columns(_file=pl.lit(str(path))))
    return pl.concat(frames, how="diagonal_relaxed")


# ====================================================================== assembling
@dataclass
class _Sources:
    las: pl.DataFrame
    centroids: pl.DataFrame
    deciles: pl.DataFrame
    population: pl.DataFrame
    boundaries: dict[str, pl.DataFrame | None]
    lookup: pl.DataFrame | None
    postcodes: pl.DataFrame | None

    @classmethod
    def read(cls, folder: Path) -> _Sources:
        return cls(
            las=read_la_codes(_exists(folder / F.LA_CODES, "local authority codes")),
            centroids=read_centroids(_exists(folder / F.CENTROIDS, "LSOA centroids")),
            deciles=read_imd_deciles(_find(folder, *F.IMD_DECILES, "IMD 2019 File_1 (IMD decile)")),
            population=read_imd_population(
                _find(folder, *F.IMD_POPULATION, "IoD 2019 File_6 (population denominators)")),
            boundaries={v: read_boundaries(folder / d, v) for v, d in F.BOUNDARIES.items()},
            lookup=read_lsoa_lookup(folder / F.LSOA_LOOKUP_DIR),
            postcodes=read_postcode_lookup(folder / F.POSTCODES_DIR),
        )

    def default_vintage(self) -> str:
        has_21 = self.postcodes is not None and self.postcodes["lsoa21"].is_not_null().any()
        return "2021" if self.boundaries["2021"] is not None or self.lookup is not None or has_21 else "2011"


def _exists(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"reference folder incomplete: {what} not found ({path})")
    return path


def _current_la(src: _Sources):
    """expr -> the same local authority codes mapped to the authority covering them now."""
    active = dict(zip(src.las["la_code"], src.las["active_code"]))

    def current(expr: pl.Expr) -> pl.Expr:
        return expr.replace_strict(active, default=expr, return_dtype=pl.String)

    return current


def _modal(frame: pl.DataFrame, key: str, value: str) -> pl.DataFrame:
    """The most frequent non-null ``value`` per ``key`` (ties: the smallest value)."""
    return (
        frame.filter(pl.col(key).is_not_null() & pl.col(value).is_not_null())
        .group_by(key, value).len()
        .sort([key, "len", value], descending=[False, True, False])
        .unique(key, keep="first", maintain_order=True)
        .select(key, value)
    )


def _first_by_priority(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Several sources of (lsoa_code, lsoa_name, la_code, latitude, longitude): per code and
    column the first non-null value in the order of ``parts``."""
    cols = ["lsoa_code", "lsoa_name", "la_code", "latitude", "longitude"]
    types = {"lsoa_code": pl.String, "lsoa_name": pl.String, "la_code": pl.String,
             "latitude": pl.Float64, "longitude": pl.Float64}
    frames = []
    for rank, part in enumerate(parts):
        part = part.with_columns(pl.lit(None, types[c]).alias(c) for c in cols if c not in part.columns)
        frames.append(part.select([pl.col(c).cast(types[c]) for c in cols]).with_columns(_rank=pl.lit(rank)))
    both = pl.concat(frames).sort("_rank", maintain_order=True)
    return both.group_by("lsoa_code", maintain_order=True).agg(pl.col(c).drop_nulls().first() for c in cols[1:])


def _universe(src: _Sources, vintage: str) -> pl.DataFrame:
    """Every LSOA of the vintage the folder knows: lsoa_code, lsoa_name, la_code (as given),
    latitude, longitude (boundary centroid; the centroid file comes later)."""
    parts = []
    if vintage == "2021":
        if src.boundaries["2021"] is not None:
            parts.append(src.boundaries["2021"])
        if src.lookup is not None:
            parts.append(src.lookup.select("lsoa_code", "lsoa_name", "la_code"))
        if src.postcodes is not None:
            pc = src.postcodes.filter(pl.col("lsoa21").is_not_null())
            parts.append(pc.select(pl.col("lsoa21").alias("lsoa_code")).unique(maintain_order=True)
                         .join(_modal(pc, "lsoa21", "la_code").rename({"lsoa21": "lsoa_code"}), on="lsoa_code",
                               how="left"))
        if not parts:
            raise ValueError("LSOA 2021 needs geography/lsoa21/*.geojson, the ONS LSOA11->LSOA21 lookup or a "
                             "postcode lookup with an lsoa21 column; none is in the folder")
    else:
        if src.boundaries["2011"] is not None:
            parts.append(src.boundaries["2011"])
        parts.append(src.deciles.select(pl.col("lsoa11").alias("lsoa_code"), "lsoa_name", "la_code"))
    return _first_by_priority(parts)


def _predecessors(src: _Sources, universe: pl.DataFrame, vintage: str, notes: list[str]) -> pl.DataFrame:
    """(lsoa11, lsoa_code) pairs: which 2011 LSOAs each LSOA of the universe descends from.

    2011 vintage: itself. 2021: the ONS lookup's pairs where it has them; else the centroid
    file's lsoa11cd when that is a 2011 LSOA, else the same code when it existed in 2011
    (unchanged LSOA). LSOAs still without one were created in 2021 (splits, merges): each is
    paired with the nearest (by centroid) retired 2011 LSOA of the same area, and each retired
    2011 LSOA left without a successor with its nearest new 2021 LSOA.
    """
    codes11 = src.deciles["lsoa11"]
    if vintage == "2011":
        return universe.select(pl.col("lsoa_code").alias("lsoa11"), "lsoa_code")
    pairs = []
    if src.lookup is not None:
        in_universe = pl.col("lsoa_code").is_in(universe["lsoa_code"].implode())
        pairs.append(src.lookup.select("lsoa11", "lsoa_code").filter(in_universe))
    covered = pl.concat(pairs)["lsoa_code"] if pairs else pl.Series([], dtype=pl.String)
    rest = universe.filter(~pl.col("lsoa_code").is_in(covered.implode())).join(
        src.centroids.select("lsoa_code", pl.col("lsoa11").alias("_c11")), on="lsoa_code", how="left")
    rest = rest.select(
        pl.when(pl.col("_c11").is_in(codes11.implode())).then("_c11")
        .when(pl.col("lsoa_code").is_in(codes11.implode())).then("lsoa_code").alias("lsoa11"),
        "lsoa_code",
    )
    pairs.append(rest.filter(pl.col("lsoa11").is_not_null()))
    known = pl.concat(pairs).unique(maintain_order=True)
    new = universe.filter(~pl.col("lsoa_code").is_in(known["lsoa_code"].implode()))
    if new.height == 0:
        return known
    # the area: LAs of the universe (as given) and of the known predecessors (File_1)
    current = _current_la(src)
    f1_la = src.deciles.select("lsoa11", current(pl.col("la_code")))
    area = set(universe.select(current(pl.col("la_code")))["la_code"].drop_nulls()) | set(
        f1_la.filter(pl.col("lsoa11").is_in(known["lsoa11"].implode()))["la_code"])
    retired = f1_la.filter(
        ~pl.col("lsoa11").is_in(known["lsoa11"].implode()) & ~pl.col("lsoa11").is_in(universe["lsoa_code"].implode())
        & pl.col("la_code").is_in(list(area))
    )
    centres = src.centroids.select("lsoa_code", "latitude", "longitude")
    if src.boundaries["2011"] is not None:
        centres = pl.concat([centres, src.boundaries["2011"].select("lsoa_code", "latitude", "longitude")]).unique(
            "lsoa_code", keep="first", maintain_order=True)
    retired = retired.join(centres.rename({"lsoa_code": "lsoa11"}), on="lsoa11", how="inner")
    new = new.join(centres, on="lsoa_code", how="left", suffix="_c").with_columns(
        latitude=pl.coalesce("latitude_c", "latitude"), longitude=pl.coalesce("longitude_c", "longitude")
    ).filter(pl.col("latitude").is_not_null())
    if retired.height == 0 or new.height == 0:
        notes.append(f"{new.height} LSOAs new in 2021 have no 2011 predecessor: no IMD decile or population")
        return known
    to_old, _ = NearestCentroid(retired["latitude"].to_numpy(), retired["longitude"].to_numpy()).query(
        new["latitude"].to_numpy(), new["longitude"].to_numpy())
    spatial = pl.DataFrame({"lsoa11": retired["lsoa11"].gather(to_old), "lsoa_code": new["lsoa_code"]})
    orphans = retired.filter(~pl.col("lsoa11").is_in(spatial["lsoa11"].implode()))
    if orphans.height:
        to_new, _ = NearestCentroid(new["latitude"].to_numpy(), new["longitude"].to_numpy()).query(
            orphans["latitude"].to_numpy(), orphans["longitude"].to_numpy())
        spatial = pl.concat(
            [spatial, pl.DataFrame({"lsoa11": orphans["lsoa11"], "lsoa_code": new["lsoa_code"].gather(to_new)})])
    notes.append(
        f"{new.height} LSOAs new in 2021 take IMD decile and population from {spatial['lsoa11'].n_unique()} retired "
        "2011 LSOAs matched by nearest centroid (add the ONS LSOA11->LSOA21 lookup to geography/ for exact pairs)"
    )
    return pl.concat([known, spatial]).unique(maintain_order=True)


def _statistics(pairs: pl.DataFrame, src: _Sources) -> pl.DataFrame:
    """Per LSOA: populations (each 2011 LSOA's shared equally among its successors), and the
    IMD decile, code (lsoa11_code) and local authority (_la11) of the predecessor that
    contributes most of its population."""
    bands = ["population", "population_0_15", "population_16_59", "population_60_plus"]
    contrib = (
        pairs.join(src.population, on="lsoa11", how="left")
        .join(src.deciles.select("lsoa11", "imd_decile", pl.col("la_code").alias("_la11")), on="lsoa11", how="left")
        .with_columns(_share=1.0 / pl.len().over("lsoa11"))
        .with_columns(pl.col(b) * pl.col("_share") for b in bands)
        .sort(["lsoa_code", "population", "lsoa11"], descending=[False, True, False], nulls_last=True)
    )

    def total(column: str) -> pl.Expr:
        return pl.when(pl.col(column).is_null().any()).then(None).otherwise(pl.col(column).sum()).round(0)

    return contrib.group_by("lsoa_code").agg(
        total("population").alias("population"),
        total("population_0_15").alias("population_0_15"),
        (total("population_16_59") + total("population_60_plus")).alias("population_16_plus"),
        pl.col("imd_decile").first(),
        pl.col("lsoa11").first().alias("lsoa11_code"),
        pl.col("_la11").first(),
    )


def _read_lsoas(folder: Path | str, *, la_codes: Iterable[str] | None = None,
               vintage: str | None = None) -> tuple[pl.DataFrame, str, list[str], _Sources, pl.DataFrame]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"reference folder not found: {folder}")
    src = _Sources.read(folder)
    vintage = vintage or src.default_vintage()
    if vintage not in VINTAGES:
        raise ValueError(f"vintage must be one of {VINTAGES} (got {vintage!r})")
    notes: list[str] = []
    universe = _universe(src, vintage)
    pairs = _predecessors(src, universe, vintage, notes)
    stats = _statistics(pairs, src)
    lsoa = (
        universe.join(src.centroids.drop("lsoa11"), on="lsoa_code", how="left", suffix="_c")
        .with_columns(latitude=pl.coalesce("latitude_c", "latitude"), longitude=pl.coalesce("longitude_c", "longitude"))
        .drop("latitude_c", "longitude_c")
        .join(stats, on="lsoa_code", how="left")
    )
    missing = lsoa.filter(pl.col("latitude").is_null()).height
    if missing:
        notes.append(f"{missing} LSOAs without a centroid (not in {F.CENTROIDS} nor in boundaries) were left out")
        lsoa = lsoa.filter(pl.col("latitude").is_not_null())
    # local authority: as given by the LSOA's own source, else its 2011 predecessor's; then current
    current = _current_la(src)
    active = dict(zip(src.las["la_code"], src.las["active_code"]))
    names = dict(zip(src.las["la_code"], src.las["active_name"]))
    f1_names = dict(zip(src.deciles["la_code"], src.deciles["la_name"]))
    lsoa = lsoa.with_columns(la_code=current(pl.coalesce("la_code", "_la11")))
    no_la = lsoa.filter(pl.col("la_code").is_null()).height
    if no_la:
        notes.append(f"{no_la} LSOAs with no local authority in any source were left out")
        lsoa = lsoa.filter(pl.col("la_code").is_not_null())
    unknown = lsoa.filter(~pl.col("la_code").is_in(list(names)))["la_code"].unique().sort().to_list()
    if unknown:
        notes.append(f"{len(unknown)} local authority codes are not in {F.LA_CODES}: {', '.join(unknown[:10])}")
    lsoa = lsoa.with_columns(
        la_name=pl.coalesce(pl.col("la_code").replace_strict(names, default=None, return_dtype=pl.String),
                            pl.col("la_code").replace_strict(f1_names, default=None, return_dtype=pl.String),
                            "la_code"))
    unnamed = lsoa.filter(pl.col("lsoa_name").is_null()).height
    if unnamed:
        notes.append(f"{unnamed} LSOAs have no name in any source: their code stands in for the name")
        lsoa = lsoa.with_columns(lsoa_name=pl.coalesce("lsoa_name", "lsoa_code"))
    if la_codes is not None:
        wanted = {active.get(c, c) for c in la_codes}
        lsoa = lsoa.filter(pl.col("la_code").is_in(list(wanted)))
        absent = sorted(wanted - set(lsoa["la_code"]))
        if absent:
            notes.append(f"no LSOA found for local authorities {', '.join(absent)}")
        if lsoa.height == 0:
            raise ValueError(f"no LSOA in the reference folder is in the local authorities {sorted(wanted)}")
    no_stats = lsoa.filter(pl.col("population").is_null()).height
    if no_stats:
        notes.append(f"{no_stats} LSOAs have no population in IoD File_6 (population null)")
    lsoa = lsoa.with_columns(ward_code=pl.lit(None, pl.String)).select(
        [pl.col(c).cast(t) for c, t in LSOA_SCHEMA.items()]).sort("lsoa_code")
    return lsoa, vintage, notes, src, pairs


def _postcode_lsoa(src: _Sources, lsoa: pl.DataFrame, pairs: pl.DataFrame, vintage: str,
                   notes: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(postcode_lsoa, lsoa_code -> ward_code) from the postcode lookup."""
    empty = pl.DataFrame(schema=POSTCODE_SCHEMA)
    if src.postcodes is None:
        notes.append(f"no postcode lookup ({F.POSTCODES_DIR}/*.csv): postcode_lsoa is empty")
        return empty, pl.DataFrame(schema={"lsoa_code": pl.String, "ward_code": pl.String})
    pc = src.postcodes
    code = pl.coalesce("lsoa21", "lsoa11") if vintage == "2021" else pl.col("lsoa11")
    pc = pc.with_columns(_code=code)
    no_lsoa = pc.filter(pl.col("_code").is_null()).height
    pc = pc.filter(pl.col("_code").is_not_null())
    in_table = pc.filter(pl.col("_code").is_in(lsoa["lsoa_code"].implode())).with_columns(lsoa_code=pl.col("_code"))
    rest = pc.filter(~pl.col("_code").is_in(lsoa["lsoa_code"].implode()))
    resolved = pl.DataFrame(schema=in_table.schema)
    if vintage == "2021" and rest.height:
        # a 2011 code retired in 2021: its successor, or the successor nearest the postcode
        successors = pairs.filter(pl.col("lsoa_code").is_in(lsoa["lsoa_code"].implode())).join(
            lsoa.select("lsoa_code", pl.col("latitude").alias("_clat"), pl.col("longitude").alias("_clon")),
            on="lsoa_code")
        cand = rest.with_row_index("_row").join(successors, left_on="_code", right_on="lsoa11", how="inner")
        cand = cand.with_columns(
            _n=pl.len().over("_row"),
            _d=((pl.col("latitude") - pl.col("_clat")) ** 2
                + ((pl.col("longitude") - pl.col("_clon")) * np.cos(np.radians(52.0))) ** 2),
        ).filter((pl.col("_n") == 1) | pl.col("_d").is_not_null())
        cand = cand.sort("_row", "_d", nulls_last=True).unique("_row", keep="first", maintain_order=True)
        resolved = cand.select(in_table.columns)
    outside = rest.height - resolved.height
    pc = pl.concat([in_table, resolved], how="vertical_relaxed")
    pc = pc.with_columns(postcode_features(pl.col("postcode"))[0].alias("_std"))
    bad = pc.filter(~pl.col("_std").str.contains(POSTCODE_STD).fill_null(False))
    if bad.height:
        row = bad.row(0, named=True)
        raise ExtractError(Path(row["_file"]), f"{row['postcode']!r} is not a UK postcode", int(row["_line"]))
    clash = pc.filter(pl.col("lsoa_code").n_unique().over("_std") > 1)
    if clash.height:
        row = clash.sort("_file", "_line").unique("_std", keep="last", maintain_order=True).row(0, named=True)
        raise ExtractError(Path(row["_file"]), f"postcode {row['_std']} is listed again in another LSOA",
                           int(row["_line"]))
    wards = _modal(pc.unique("_std", keep="first", maintain_order=True), "lsoa_code", "ward_code")
    out = (
        pc.unique("_std", keep="first", maintain_order=True)
        .select(pl.col("_std").alias("postcode"), "lsoa_code")
        .join(lsoa.select("lsoa_code", "la_code"), on="lsoa_code", how="left")
        .sort("postcode")
    )
    if no_lsoa:
        notes.append(f"{no_lsoa} postcodes without an LSOA (non-geographic, or outside England and Wales) left out")
    if outside:
        notes.append(f"{outside} postcodes in LSOAs outside the reference area left out")
    if resolved.height:
        notes.append(f"{resolved.height} postcodes given by a retired 2011 LSOA code mapped to its 2021 successor")
    return out.select([pl.col(c).cast(t) for c, t in POSTCODE_SCHEMA.items()]), wards


def read_reference(folder: Path | str, *, la_codes: Iterable[str] | None = None,
                   vintage: str | None = None) -> ReferenceData:
    """Read a reference folder (layout in README.md) into :class:`ReferenceData`.

    ``la_codes`` keeps only the LSOAs (and postcodes) of those local authorities (old codes
    are mapped to the current ones); ``vintage`` ("2021" / "2011") overrides the automatic
    choice. Required files: geography/lsoa_latlong_england.csv, geography/la_all_codes.csv,
    imd2019/File_1*.csv[.gz], imd2019/File_6*.csv[.gz]; the rest is optional.
    """
    lsoa, vintage, notes, src, pairs = _read_lsoas(folder, la_codes=la_codes, vintage=vintage)
    postcode_lsoa, wards = _postcode_lsoa(src, lsoa, pairs, vintage, notes)
    lsoa = lsoa.drop("ward_code").join(wards, on="lsoa_code", how="left").select(list(LSOA_SCHEMA))
    return ReferenceData(lsoa=lsoa, postcode_lsoa=postcode_lsoa, vintage=vintage, notes=notes)
