"""Publish the commissioners' area tables: exact counts (staging.int_area_measures,
staging.int_cohort_counts, built by dbt) -> statistical disclosure control
(governance.disclosure) -> marts.area_risk, marts.area_risk_index, marts.cohort_overlap.

Only these published tables leave for commissioners (marts/catalog.py). Rules:
* counts 1-7 suppressed, others rounded to the nearest 5, secondary suppression so that no
  suppressed cell can be recovered from the totals published with it: ward rows are the totals
  of their LSOA rows, local authority rows the totals of their wards (margins over lsoa_code
  and over ward_code + lsoa_code; without wards in the reference geography, LSOA -> LA);
* rates per 1,000 residents are computed from the PUBLISHED (rounded) count and withheld with
  it: a rate from the exact count would give the exact count back to anyone who knows the
  (public) population;
* a cell for "LSOA unknown" (events without a usable location) is part of each LA's total;
* every table records the lakehouse snapshot it was built from (lake_snapshot_id).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import yaml

from governance.disclosure import for_release, protect
from tapestry.lakehouse import current_snapshot

INDEX_CONFIG = Path(__file__).with_name("area_risk_index.yml")
UNKNOWN_LSOA = "unknown"
# measures counted among children / adults use that population as denominator
CHILD_MEASURES = ("childrens_referrals", "cp_plan_starts", "children_on_cp_plan_", "cin_factor_")
ADULT_MEASURES = ("s42_enquiries",)


def area_risk(measures: pl.DataFrame, lsoas: pl.DataFrame) -> pl.DataFrame:
    """Published area table from exact counts (lsoa_code, la_code, month, measure, count):
    LSOA rows, ward rows (when the reference geography has wards) and local authority rows;
    each level is the published total of the one below, protected as one set of equations."""
    pops = ["population", "population_0_15", "population_16_plus"]
    wards = lsoas["ward_code"].null_count() < lsoas.height
    cells = measures.join(lsoas.select("lsoa_code", "ward_code"), on="lsoa_code", how="left").with_columns(
        pl.col("lsoa_code").fill_null(UNKNOWN_LSOA), pl.col("la_code").fill_null(UNKNOWN_LSOA),
        pl.col("ward_code").fill_null(UNKNOWN_LSOA))
    keys = ["la_code", "ward_code", "lsoa_code", "month", "measure"] if wards else [
        "la_code", "lsoa_code", "month", "measure"]
    margins = [["lsoa_code"], ["ward_code", "lsoa_code"]] if wards else [["lsoa_code"]]
    # one protect() per measure: equations never cross measures, and smaller problems stay fast
    parts = [protect(block.select(*keys, "count"), count="count", keys=keys, margins=margins)
             for _, block in cells.group_by(["measure"], maintain_order=True)]
    if not parts:
        return pl.DataFrame()
    table = for_release(pl.concat(parts))
    if not wards:
        table = table.with_columns(ward_code=pl.lit(None, pl.String))
    level = (pl.when(pl.col("lsoa_code").is_not_null()).then(pl.lit("lsoa"))
             .when(pl.col("ward_code").is_not_null()).then(pl.lit("ward")).otherwise(pl.lit("la")))
    la = lsoas.group_by("la_code").agg(pl.col("la_name").first(), pl.col(*pops).sum())
    ward = lsoas.group_by("la_code", "ward_code").agg(pl.col(*pops).sum())
    table = table.with_columns(geography_level=level)
    out = pl.concat([
        table.filter(pl.col("geography_level") == "lsoa").join(
            lsoas.select("lsoa_code", "lsoa_name", *pops, "imd_decile"), on="lsoa_code", how="left"),
        table.filter(pl.col("geography_level") == "ward").join(ward, on=["la_code", "ward_code"], how="left"),
        table.filter(pl.col("geography_level") == "la").join(la.select("la_code", *pops), on="la_code", how="left"),
    ], how="diagonal_relaxed").join(la.select("la_code", "la_name"), on="la_code", how="left")
    denominator = pl.when(pl.any_horizontal(pl.col("measure").str.starts_with(p) for p in CHILD_MEASURES)).then(
        pl.col("population_0_15")).when(pl.col("measure").is_in(ADULT_MEASURES)).then(
        pl.col("population_16_plus")).otherwise(pl.col("population"))
    return out.with_columns(
        area_code=pl.coalesce("lsoa_code", "ward_code", "la_code"),
        area_name=pl.when(pl.col("geography_level") == "lsoa").then(pl.col("lsoa_name"))
        .when(pl.col("geography_level") == "ward").then(pl.col("ward_code")).otherwise(pl.col("la_name")),
        rate_per_1000=pl.when((denominator > 0) & pl.col("count").is_not_null())
        .then((pl.col("count") / denominator * 1000).round(1)),
        imd_decile=pl.col("imd_decile").cast(pl.Int32),
    ).select("geography_level", "area_code", "area_name", "ward_code", "la_code", "la_name", "month", "measure",
             pl.col("count").cast(pl.Int64), "status", "rate_per_1000", "imd_decile").sort(
        "measure", "la_code", "geography_level", "area_code", "month")


def with_change(table: pl.DataFrame) -> pl.DataFrame:
    """Change against the previous 12 months, from published counts only: the mean monthly
    count over the 12 months before (null unless all 12 are published) and the % change."""
    if table.height == 0:
        return table
    grid = table.select("geography_level", "area_code", "measure", "month", "count")
    prev = (
        grid.join(grid.rename({"month": "m2", "count": "c2"}), on=["geography_level", "area_code", "measure"])
        .filter((pl.col("m2") < pl.col("month")) & (pl.col("m2") >= pl.col("month").dt.offset_by("-12mo")))
        .group_by("geography_level", "area_code", "measure", "month")
        .agg(n=pl.len(), published=pl.col("c2").is_not_null().sum(), mean=pl.col("c2").mean())
    )
    return table.join(prev, on=["geography_level", "area_code", "measure", "month"], how="left").with_columns(
        prev_12m_mean=pl.when((pl.col("n") == 12) & (pl.col("published") == 12)).then(pl.col("mean").round(1)),
    ).with_columns(
        change_vs_prev_12m_pct=pl.when((pl.col("prev_12m_mean") > 0) & pl.col("count").is_not_null()).then(
            ((pl.col("count") - pl.col("prev_12m_mean")) / pl.col("prev_12m_mean") * 100).round(1)),
    ).drop("n", "published", "mean")


def area_risk_index(table: pl.DataFrame, weights: dict[str, float]) -> pl.DataFrame:
    """Composite index per area x month from published rates (see area_risk_index.yml)."""
    rated = table.filter(pl.col("measure").is_in(list(weights)) & pl.col("rate_per_1000").is_not_null()).with_columns(
        weight=pl.col("measure").replace_strict(weights, return_dtype=pl.Float64))
    mean = rated.group_by("geography_level", "month", "measure").agg(mean_rate=pl.col("rate_per_1000").mean())
    scored = rated.join(mean, on=["geography_level", "month", "measure"]).filter(pl.col("mean_rate") > 0)
    return scored.group_by("geography_level", "area_code", "area_name", "la_code", "month").agg(
        composite_index=((pl.col("weight") * pl.col("rate_per_1000") / pl.col("mean_rate")).sum()
                         / pl.col("weight").sum()).round(3),
        components_published=pl.len().cast(pl.Int32),
    ).sort("geography_level", "area_code", "month")


def cohort_overlap(counts: pl.DataFrame, la_names: pl.DataFrame) -> pl.DataFrame:
    """Published cohort table: totals over age bands and over the number of agencies are
    published margins, so both get secondary suppression."""
    parts = [protect(block, count="count", keys=["la_code", "cohort", "age_band", "agencies_known"],
                     margins=[["age_band"], ["agencies_known"]])
             for _, block in counts.group_by(["cohort"], maintain_order=True)]
    if not parts:
        return pl.DataFrame()
    table = for_release(pl.concat(parts)).with_columns(
        pl.col("age_band").fill_null("all"), pl.col("agencies_known").fill_null("all"))
    return table.join(la_names, on="la_code", how="left").select(
        "la_code", "la_name", "age_band", "cohort", "agencies_known", pl.col("count").cast(pl.Int64), "status"
    ).sort("cohort", "la_code", "age_band", "agencies_known")


def _replace(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    con.register("_published", frame.to_arrow())
    try:
        con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS SELECT * FROM _published")
    finally:
        con.unregister("_published")


def publish(con: duckdb.DuckDBPyConnection) -> dict:
    """Build and write the three published tables; returns counts for metadata (no values)."""
    snapshot = current_snapshot(con)
    measures = con.sql("SELECT * FROM staging.int_area_measures").pl()
    lsoas = con.sql("SELECT * FROM reference.lsoa").pl()
    cohorts = con.sql("SELECT * FROM staging.int_cohort_counts").pl()
    weights = yaml.safe_load(INDEX_CONFIG.read_text())["weights"]
    risk = with_change(area_risk(measures, lsoas))
    index = area_risk_index(risk, weights)
    overlap = cohort_overlap(cohorts, lsoas.group_by("la_code").agg(pl.col("la_name").first()))
    stamp = pl.lit(snapshot, dtype=pl.Int64).alias("lake_snapshot_id")
    con.execute("BEGIN")
    try:
        _replace(con, "area_risk", risk.with_columns(stamp))
        _replace(con, "area_risk_index", index.with_columns(stamp))
        _replace(con, "cohort_overlap", overlap.with_columns(stamp))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    status = lambda t: dict(t.group_by("status").len().iter_rows()) if t.height else {}  # noqa: E731
    return {"area_risk_rows": risk.height, "area_risk_status": status(risk), "area_risk_index_rows": index.height,
            "cohort_overlap_rows": overlap.height, "cohort_overlap_status": status(overlap),
            "built_from_snapshot": snapshot}
