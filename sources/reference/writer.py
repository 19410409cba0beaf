"""Write a geography as a reference folder in the public formats the reader reads (used by
the synthetic generator, so a demo loads its geography exactly like real downloads).

Every LSOA is written as unchanged between 2011 and 2021 (the same code in both vintages).
Output is deterministic: the same frames give byte-identical files.
"""
from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from sources.reference import formats as F

ENGLAND_LSOAS_2011 = 32_844  # IMD ranks run 1 (most deprived) .. this
ENGLAND = ("E92000001", "England")


def write_reference_folder(folder: Path, lsoas: pl.DataFrame, postcodes: pl.DataFrame, las: pl.DataFrame) -> list[str]:
    """Write the reference files; returns their paths relative to ``folder``.

    ``lsoas``: lsoa_code, lsoa_name, la_code, la_name, latitude, longitude, imd_decile,
    population, population_0_15, population_16_59, population_60_plus, and optionally
    ward_code, msoa_code. ``postcodes``: postcode ("RG1 1AB"), lsoa_code, latitude,
    longitude. ``las``: la_code, la_name, upper_tier_code, upper_tier_name, region_code,
    region_name.
    """
    folder = Path(folder)
    lsoas = lsoas.sort("lsoa_code")
    for column in ("ward_code", "msoa_code"):
        if column not in lsoas.columns:
            lsoas = lsoas.with_columns(pl.lit(None, pl.String).alias(column))
    lsoas = lsoas.join(_ranks(lsoas), on="lsoa_code")
    written: list[str] = []

    def put(frame: pl.DataFrame, relative: str, bom: bool = False) -> None:
        F.write_csv(frame, folder / relative, bom=bom)
        written.append(relative)

    put(lsoas.select(
        pl.col("lsoa_code").alias("LSOACD"),
        pl.col("latitude").round(6).alias("latitude"),
        pl.col("longitude").round(6).alias("longitude"),
        pl.col("lsoa_code").alias("lsoa11cd"),
    ), F.CENTROIDS)
    put(_la_codes(las), F.LA_CODES)
    put(lsoas.select(
        pl.col("lsoa_code").alias("LSOA11CD"), pl.col("lsoa_name").alias("LSOA11NM"), pl.lit("U").alias("CHGIND"),
        pl.col("lsoa_code").alias("LSOA21CD"), pl.col("lsoa_name").alias("LSOA21NM"),
        pl.col("la_code").alias("LAD22CD"), pl.col("la_name").alias("LAD22NM"),
        pl.lit(None, pl.String).alias("LAD22NMW"),
    ), f"{F.LSOA_LOOKUP_DIR}/{F.LSOA_LOOKUP_NAME}")
    lead = [pl.col("lsoa_code"), pl.col("lsoa_name"), pl.col("la_code"), pl.col("la_name")]
    put(lsoas.select(*lead, _thousands("imd_rank"), pl.col("imd_decile").cast(pl.String))
        .pipe(_named, F.IMD_FILE_1_HEADER), f"{F.IMD_DECILES[0]}/{F.IMD_FILE_1_NAME}", bom=True)
    working_age = (pl.col("population_16_59") * 0.93 + pl.col("population_60_plus") * 0.12).round(0).cast(pl.Int64)
    put(lsoas.with_columns(_working=working_age).select(
        *lead, *[_thousands(c) for c in ("population", "population_0_15", "population_16_59", "population_60_plus",
                                         "_working")],
    ).pipe(_named, F.IMD_FILE_6_HEADER), f"{F.IMD_POPULATION[0]}/{F.IMD_FILE_6_NAME}", bom=True)
    put(_nspl(postcodes, lsoas, las), f"{F.POSTCODES_DIR}/NSPL_SYNTHETIC_UK.csv")
    return written


def _named(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    frame.columns = names
    return frame


def _thousands(column: str) -> pl.Expr:
    """An integer as the IMD files publish it: "1,296"."""
    return pl.col(column).map_elements(lambda v: f"{int(v):,}", return_dtype=pl.String).alias(column)


def _ranks(lsoas: pl.DataFrame) -> pl.DataFrame:
    """IMD ranks consistent with the deciles: decile d holds ranks ((d-1)N/10, dN/10]
    (N = English LSOAs), spread evenly over the LSOAs of that decile, in code order."""
    band = ENGLAND_LSOAS_2011 / 10
    out = []
    for (decile,), group in lsoas.sort("lsoa_code").group_by("imd_decile", maintain_order=True):
        n = group.height
        low = math.floor((int(decile) - 1) * band) + 1
        out += [(code, low + (i * int(band - 1)) // max(n, 1)) for i, code in enumerate(group["lsoa_code"])]
    return pl.DataFrame(out, schema={"lsoa_code": pl.String, "imd_rank": pl.Int64}, orient="row")


def _la_codes(las: pl.DataFrame) -> pl.DataFrame:
    """la_all_codes.csv: one row per authority, current."""
    return las.sort("la_code").select(
        pl.col("la_code").alias("LADCD"), pl.col("la_name").alias("LADNM"),
        pl.col("la_code").alias("LADCD_ACTIVE"), pl.col("la_name").alias("LADNM_ACTIVE"),
        pl.col("upper_tier_code").alias("UTLACD"), pl.col("upper_tier_name").alias("UTLANM"),
        pl.lit(None, pl.String).alias("CAUTHCD"), pl.lit(None, pl.String).alias("CAUTHNM"),
        pl.col("region_code").alias("RGNCD"), pl.col("region_name").alias("RGNNM"),
        pl.lit(ENGLAND[0]).alias("CTRYCD"), pl.lit(ENGLAND[1]).alias("CTRYNM"),
        pl.lit("K04000001").alias("EWCD"), pl.lit("England and Wales").alias("EWNM"),
        pl.lit("K03000001").alias("GBCD"), pl.lit("Great Britain").alias("GBNM"),
        pl.lit("K02000001").alias("UKCD"), pl.lit("United Kingdom").alias("UKNM"),
        pl.lit("TRUE").alias("Current"),
        pl.col("la_code").alias("LAD20CD"), pl.col("la_name").alias("LAD20NM"),
    ).pipe(_named, F.LA_HEADER)


def _nspl(postcodes: pl.DataFrame, lsoas: pl.DataFrame, las: pl.DataFrame) -> pl.DataFrame:
    """NSPL-style rows (the columns in formats.NSPL_HEADER), sorted by postcode."""
    region = dict(zip(las["la_code"], las["region_code"]))
    pc = postcodes.sort("postcode").join(
        lsoas.select("lsoa_code", "la_code", "ward_code", "msoa_code", "imd_rank"), on="lsoa_code", how="left")
    outward = pl.col("postcode").str.split(" ").list.first()
    inward = pl.col("postcode").str.split(" ").list.last()
    return pc.select(
        pl.concat_str(outward.str.pad_end(4), inward).alias("pcd"),
        pl.concat_str(outward.str.pad_end(5), inward).alias("pcd2"),
        pl.col("postcode").alias("pcds"),
        pl.lit("198001").alias("dointr"),
        pl.lit(None, pl.String).alias("doterm"),
        pl.lit("0").alias("usertype"),
        pl.col("la_code").alias("laua"),
        pl.col("ward_code").alias("ward"),
        pl.lit(ENGLAND[0]).alias("ctry"),
        pl.col("la_code").replace_strict(region, default=None, return_dtype=pl.String).alias("rgn"),
        pl.col("lsoa_code").alias("lsoa11"),
        pl.col("msoa_code").alias("msoa11"),
        pl.col("latitude").round(6).alias("lat"),
        pl.col("longitude").round(6).alias("long"),
        pl.col("imd_rank").cast(pl.String).alias("imd"),
        pl.col("lsoa_code").alias("lsoa21"),
        pl.col("msoa_code").alias("msoa21"),
    ).pipe(_named, F.NSPL_HEADER)
