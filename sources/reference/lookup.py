"""Turn postcodes or coordinates into LSOAs with the lake's reference tables (for coarsening
locations at ingestion). Vectorised; order and length of the input are kept; null where
unknown. Nothing here logs or keeps the values it is given.

Points are assigned to the LSOA with the nearest centroid: an approximation of
point-in-polygon that is right for most points but can pick a neighbouring LSOA near a
boundary (LSOAs are not round, and a centroid is not the middle of an irregular shape).
Measured agreement is in README.md.
"""
from __future__ import annotations

import uuid

import duckdb
import numpy as np
import polars as pl

from linkage.standardise import postcode_features
from sources.reference.nearest import NearestCentroid

DEFAULT_MAX_KM = 15.0  # farther than this from every centroid: not in the area (Thames Valley LSOAs reach 9.2 km)


class ReferenceNotLoaded(LookupError):
    pass


def reference_loaded(con: duckdb.DuckDBPyConnection) -> bool:
    """Are reference.lsoa and reference.postcode_lsoa in the lake?"""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'reference' AND table_name IN ('lsoa', 'postcode_lsoa')"
    ).fetchone()[0]
    return found == 2


def _require(con: duckdb.DuckDBPyConnection) -> None:
    if not reference_loaded(con):
        raise ReferenceNotLoaded(
            "the reference geography is not loaded (reference.lsoa, reference.postcode_lsoa): "
            "load it first with sources.reference.load_reference"
        )


def normalise_postcodes(postcodes: pl.Series) -> pl.Series:
    """Upper case, one space before the inward code ("rg14ab" -> "RG1 4AB"); null for empty
    values; non-UK values come back compacted (and so match nothing)."""
    frame = pl.DataFrame({"postcode": postcodes.cast(pl.String)})
    return frame.join(_standardised(frame), on="postcode", how="left", maintain_order="left")["std"].alias("postcode")


def _standardised(frame: pl.DataFrame) -> pl.DataFrame:
    """postcode -> std for the distinct values (postcodes repeat: clean each once)."""
    return frame.unique().with_columns(postcode_features(pl.col("postcode"))[0].alias("std"))


def lsoa_for_postcodes(con: duckdb.DuckDBPyConnection, postcodes: pl.Series) -> pl.Series:
    """The LSOA code of each postcode (normalised first), null when it is not in
    reference.postcode_lsoa. ``con``: a lakehouse connection (``tapestry.lakehouse.connect``)."""
    _require(con)
    frame = pl.DataFrame({"postcode": postcodes.cast(pl.String)})
    unique = _standardised(frame)
    keys = unique.select("std").drop_nulls().unique()
    view = f"_tapestry_postcodes_{uuid.uuid4().hex[:8]}"
    con.register(view, keys.to_arrow())
    try:
        found = con.execute(
            f"SELECT k.std, r.lsoa_code FROM {view} k JOIN reference.postcode_lsoa r ON r.postcode = k.std"
        ).pl()
    finally:
        con.unregister(view)
    mapping = unique.join(found, on="std", how="left").select("postcode", "lsoa_code")
    return frame.join(mapping, on="postcode", how="left", maintain_order="left")["lsoa_code"].cast(pl.String)


def lsoa_for_points(con: duckdb.DuckDBPyConnection, lat: pl.Series, lon: pl.Series, *,
                    max_km: float | None = DEFAULT_MAX_KM) -> pl.Series:
    """The LSOA whose centroid is nearest each point (WGS84 degrees; text is parsed), null
    where a coordinate is missing or not a number, or no centroid is within ``max_km``
    (catches 0,0 placeholders, swapped coordinates and places outside the area)."""
    if lat.len() != lon.len():
        raise ValueError(f"lat and lon differ in length ({lat.len()} != {lon.len()})")
    _require(con)
    centroids = con.execute("SELECT lsoa_code, latitude, longitude FROM reference.lsoa ORDER BY lsoa_code").pl()
    index, _ = NearestCentroid(centroids["latitude"].to_numpy(), centroids["longitude"].to_numpy()).query(
        _degrees(lat), _degrees(lon), max_km)
    picks = pl.Series(np.where(index < 0, 0, index)).to_frame("i").select(
        pl.when(pl.Series(index >= 0)).then(pl.col("i"))).to_series()
    return centroids["lsoa_code"].gather(picks).alias("lsoa_code")


def _degrees(values: pl.Series) -> np.ndarray:
    if values.dtype == pl.String:
        values = values.str.strip_chars()
    return values.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
