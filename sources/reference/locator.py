"""A Locator holds the reference geography in memory for one load, so ingestion can coarsen
postcodes and coordinates into LSOAs (governance.split) without querying the lake per file
(and never inside a load's transaction). Same rules as ``sources.reference.lookup``."""
from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from sources.reference.lookup import DEFAULT_MAX_KM, _degrees, normalise_postcodes, reference_loaded
from sources.reference.nearest import NearestCentroid


class Locator:
    def __init__(self, postcodes: pl.DataFrame, centroids: pl.DataFrame, max_km: float | None = DEFAULT_MAX_KM):
        self.postcodes = postcodes.select("postcode", "lsoa_code")
        self.codes = centroids["lsoa_code"]
        self.index = NearestCentroid(centroids["latitude"].to_numpy(), centroids["longitude"].to_numpy())
        self.max_km = max_km

    @classmethod
    def from_lake(cls, con: duckdb.DuckDBPyConnection) -> "Locator | None":
        """None when the lake has no reference geography yet."""
        if not reference_loaded(con):
            return None
        return cls(con.sql("SELECT postcode, lsoa_code FROM reference.postcode_lsoa").pl(),
                   con.sql("SELECT lsoa_code, latitude, longitude FROM reference.lsoa ORDER BY lsoa_code").pl())

    def lsoa_for_postcodes(self, postcodes: pl.Series) -> pl.Series:
        keys = normalise_postcodes(postcodes).to_frame("postcode")
        return keys.join(self.postcodes, on="postcode", how="left", maintain_order="left")["lsoa_code"]

    def lsoa_for_points(self, lat: pl.Series, lon: pl.Series) -> pl.Series:
        index, _ = self.index.query(_degrees(lat), _degrees(lon), self.max_km)
        picked = self.codes.gather(pl.Series(np.where(index < 0, 0, index))) if self.codes.len() else pl.Series(
            [None] * len(index), dtype=pl.String)
        return picked.zip_with(pl.Series(index >= 0), pl.Series([None] * len(index), dtype=pl.String)).alias(
            "lsoa_code")
