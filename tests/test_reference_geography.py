"""Reference geography: reading the public formats, the synthetic round trip through the
lake, postcode and point lookups, malformed files."""
from __future__ import annotations

import gzip
import glob
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sources.readers import ExtractError
from sources.reference import (
    ReferenceNotLoaded,
    load_reference,
    lsoa_for_points,
    lsoa_for_postcodes,
    normalise_postcodes,
    read_reference,
)
from sources.reference.nearest import NearestCentroid
from sources.reference.writer import write_reference_folder
from sources.synthetic import generate
from tapestry import lakehouse
from tests.conftest import SHARED_DATA

THAMES_VALLEY = ["E06000036", "E06000037", "E06000038", "E06000039", "E06000040", "E06000041", "E06000042",
                 "E06000060", "E07000177", "E07000178", "E07000179", "E07000180", "E07000181"]
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "geography").is_dir(), reason="shared public data not available")


def row(frame: pl.DataFrame, code: str) -> dict:
    return frame.filter(pl.col("lsoa_code") == code).row(0, named=True)


# ------------------------------------------------------------------ the real public files
@pytest.fixture(scope="module")
def real_2021():
    return read_reference(SHARED_DATA, la_codes=THAMES_VALLEY)


@pytest.fixture(scope="module")
def real_2011():
    return read_reference(SHARED_DATA, la_codes=THAMES_VALLEY, vintage="2011")


@needs_shared
def test_real_files_give_known_values(real_2021, real_2011):
    ref = real_2021
    assert ref.vintage == "2021"  # the folder has 2021 boundaries
    lsoa = ref.lsoa
    assert lsoa.height == 1485 and lsoa["lsoa_code"].is_unique().all()
    assert set(lsoa["la_code"]) == set(THAMES_VALLEY)
    # an unchanged LSOA: 2021 name from the boundaries, IMD File_1 decile 3, File_6 populations
    r = row(lsoa, "E01016353")
    assert (r["lsoa_name"], r["la_code"], r["la_name"], r["imd_decile"]) == ("Reading 019C", "E06000038", "Reading", 3)
    assert (r["population"], r["population_0_15"], r["population_16_plus"]) == (1769, 326, 1290 + 153)
    assert (round(r["latitude"], 5), round(r["longitude"], 5)) == (51.45725, -0.98236)
    # IMD gives the 2019 district Aylesbury Vale (E07000004): la_all_codes maps it to Buckinghamshire
    r = row(lsoa, "E01017700")
    assert (r["lsoa_name"], r["la_code"], r["la_name"], r["imd_decile"]) == (
        "Buckinghamshire 014D", "E06000060", "Buckinghamshire", 10)
    # a 2011 LSOA (E01016378, 2,718 people, decile 5) split in two in 2021
    for code in ("E01033838", "E01033839"):
        r = row(lsoa, code)
        assert (r["lsoa11_code"], r["imd_decile"], r["population"]) == ("E01016378", 5, 1359)
    # every LSOA has a decile and a population, and the 2011 total is conserved (to rounding)
    assert lsoa.select("imd_decile", "population").null_count().sum_horizontal().item() == 0
    total_2011 = real_2011.lsoa["population"].sum()
    assert abs(lsoa["population"].sum() - total_2011) <= 10
    assert ref.postcode_lsoa.height == 0 and any("no postcode lookup" in n for n in ref.notes)


@needs_shared
def test_real_files_2011_vintage(real_2011):
    assert real_2011.vintage == "2011" and real_2011.lsoa.height == 1415
    assert real_2011.lsoa.filter(pl.col("la_code") == "E06000038").height == 97
    r = row(real_2011.lsoa, "E01016353")
    assert (r["lsoa_name"], r["imd_decile"], r["lsoa11_code"]) == ("Reading 011B", 3, "E01016353")


@needs_shared
def test_postcode_lookup_in_onspd_columns(tmp_path):
    """ONSPD-style columns (pcd, oslaua, osward, lsoa11 only, lat/long) next to the real files:
    a retired 2011 code goes to the 2021 successor nearest the postcode; wards by majority."""
    folder = tmp_path / "ref"
    (folder / "geography").mkdir(parents=True)
    for name in ("lsoa_latlong_england.csv", "la_all_codes.csv", "lsoa21"):
        (folder / "geography" / name).symlink_to(SHARED_DATA / "geography" / name)
    (folder / "imd2019").symlink_to(SHARED_DATA / "imd2019")
    (folder / "postcodes").mkdir()
    (folder / "postcodes" / "ONSPD_TEST_RG.csv").write_text(
        "pcd,pcd2,pcds,doterm,oslaua,osward,lsoa11,lat,long\n"
        "RG1 1AA,RG1  1AA,RG1 1AA,,E06000038,E05000001,E01016353,51.4572,-0.9823\n"
        "RG1 1AB,RG1  1AB,RG1 1AB,201901,E06000038,E05000001,E01016353,51.4573,-0.9824\n"
        "RG1 1AD,RG1  1AD,RG1 1AD,,E06000038,E05000002,E01016353,51.4571,-0.9822\n"
        "RG1 2AA,RG1  2AA,RG1 2AA,,E06000038,E05000003,E01016378,51.45079,-0.96532\n"
        "CF101AA,CF10 1AA,CF10 1AA,,W06000015,W05000001,W01001000,51.48,-3.18\n"
        "ZZ991ZZ,ZZ99 1ZZ,ZZ99 1ZZ,,,,,99.999999,0.000000\n",
        encoding="utf-8",
    )
    ref = read_reference(folder, la_codes=THAMES_VALLEY)
    pc = dict(zip(ref.postcode_lsoa["postcode"], ref.postcode_lsoa["lsoa_code"]))
    assert pc == {"RG1 1AA": "E01016353", "RG1 1AB": "E01016353", "RG1 1AD": "E01016353", "RG1 2AA": "E01033839"}
    assert set(ref.postcode_lsoa["la_code"]) == {"E06000038"}
    assert row(ref.lsoa, "E01016353")["ward_code"] == "E05000001"
    notes = " | ".join(ref.notes)
    assert "1 postcodes without an LSOA" in notes and "1 postcodes in LSOAs outside the reference area" in notes


@needs_shared
def test_nearest_centroid_against_published_police_lsoas(real_2011):
    """data.police.uk publishes an LSOA (2011) per crime: nearest-centroid agrees for ~68%."""
    ref = real_2011.lsoa
    crimes = pl.concat([pl.read_csv(f, infer_schema=False, columns=["Latitude", "Longitude", "LSOA code"])
                        for f in sorted(glob.glob(str(SHARED_DATA / "police_uk" / "*.csv")))])
    crimes = crimes.filter(pl.col("Latitude").is_not_null() & pl.col("LSOA code").is_in(ref["lsoa_code"].implode()))
    index, _ = NearestCentroid(ref["latitude"].to_numpy(), ref["longitude"].to_numpy()).query(
        crimes["Latitude"].cast(pl.Float64).to_numpy(), crimes["Longitude"].cast(pl.Float64).to_numpy(), 15)
    agree = (ref["lsoa_code"].to_numpy()[index] == crimes["LSOA code"].to_numpy()).mean()
    assert 0.6 < agree < 0.8


# ------------------------------------------------------------------ synthetic round trip
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    base = tmp_path_factory.mktemp("refsynth")
    summary = generate(300, 17, base / "landing", months=3, write_reference=True)
    return base / "landing", base / "landing_truth", summary


@pytest.fixture(scope="module")
def lake(synthetic, tmp_path_factory):
    """One lakehouse for the module (creating one costs seconds) with the synthetic reference loaded."""
    from tapestry.config import Settings

    base = tmp_path_factory.mktemp("reflake")
    settings = Settings.from_env({"TAPESTRY_HOME": str(base / "home"), "TAPESTRY_SECRETS": str(base / "secrets")})
    with lakehouse.connect(settings) as con:
        with pytest.raises(ReferenceNotLoaded):
            lsoa_for_postcodes(con, pl.Series(["RG1 1AA"]))
        first = load_reference(con, synthetic[0] / "reference")
        assert first["changed"] and first["vintage"] == "2021" and first["notes"] == []
        yield con


def test_generator_writes_public_formats(synthetic):
    landing, _, summary = synthetic
    ref = landing / "reference"
    assert sorted(summary["reference"]) == sorted(
        f"reference/{p.relative_to(ref)}" for p in ref.rglob("*") if p.is_file())
    assert (ref / "geography" / "lsoa_latlong_england.csv").read_text().splitlines()[0] == \
        "LSOACD,latitude,longitude,lsoa11cd"
    file_1 = gzip.decompress((ref / "imd2019" / "File_1_-_IMD2019_Index_of_Multiple_Deprivation.csv.gz").read_bytes())
    assert file_1.decode("utf-8-sig").splitlines()[0] == (
        "LSOA code (2011),LSOA name (2011),Local Authority District code (2019),"
        "Local Authority District name (2019),Index of Multiple Deprivation (IMD) Rank,"
        "Index of Multiple Deprivation (IMD) Decile")
    nspl = (ref / "postcodes" / "NSPL_SYNTHETIC_UK.csv").read_text().splitlines()
    assert nspl[0].startswith("pcd,pcd2,pcds,") and "lsoa21" in nspl[0]
    # the reference folder is not an agency: nothing in the registry delivers from it
    from sources.registry import AGENCIES

    assert "reference" not in {a.name for a in AGENCIES}


def test_generator_reference_is_deterministic(synthetic, tmp_path):
    landing, _, _ = synthetic
    generate(300, 17, tmp_path / "again", months=3, write_reference=True)
    for path in (landing / "reference").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "again" / path.relative_to(landing)).read_bytes(), path.name


def test_synthetic_reference_round_trip(synthetic, lake):
    landing, truth, _ = synthetic
    con = lake
    if True:
        snapshots = con.sql("SELECT count(*) FROM lake.snapshots()").fetchone()[0]
        again = load_reference(con, landing / "reference")  # idempotent: nothing written
        assert not again["changed"]
        assert con.sql("SELECT count(*) FROM lake.snapshots()").fetchone()[0] == snapshots
        lake_lsoa = con.sql("SELECT * FROM reference.lsoa").pl()
        # the lake holds the geography the generator used
        true_lsoas = pl.read_parquet(truth / "lsoas.parquet")
        both = true_lsoas.join(lake_lsoa, on="lsoa_code", how="full", suffix="_lake")
        assert both.height == true_lsoas.height == lake_lsoa.height
        for a, b in (("lsoa_name", "lsoa_name_lake"), ("la_code", "la_code_lake"), ("la_name", "la_name_lake"),
                     ("imd_decile", "imd_decile_lake"), ("population", "population_lake")):
            assert (both[a].cast(pl.String) == both[b].cast(pl.String)).all(), a
        assert (both["lat"] - both["latitude"]).abs().max() < 1e-6
        assert (lake_lsoa["population_0_15"] + lake_lsoa["population_16_plus"] == lake_lsoa["population"]).all()
        assert lake_lsoa["ward_code"].null_count() == 0
        # every postcode the population lives at (now or before) maps to the truth LSOA, messy or not
        persons = pl.read_parquet(truth / "persons.parquet", columns=["postcode", "lsoa_code"])
        messy = persons["postcode"].str.to_lowercase().str.replace(" ", "")
        assert (lsoa_for_postcodes(con, persons["postcode"]) == persons["lsoa_code"]).all()
        assert (lsoa_for_postcodes(con, messy) == persons["lsoa_code"]).all()
        households = pl.read_parquet(truth / "households.parquet")
        previous = households.filter(pl.col("previous_postcode").is_not_null())["previous_postcode"]
        assert lsoa_for_postcodes(con, previous).null_count() == 0
        # unknown, empty and foreign postcodes are null; order and length are kept
        got = lsoa_for_postcodes(con, pl.Series([persons["postcode"][0], None, "", "ZZ9 9ZZ", "75001",
                                                 persons["postcode"][0]]))
        assert got.to_list() == [persons["lsoa_code"][0], None, None, None, None, persons["lsoa_code"][0]]


def test_nearest_centroid_points(synthetic, lake):
    """How the generator places coordinates: postcode = LSOA centroid + N(0, ~390 m); household
    = postcode + ~50 m; police event = household + N(0, ~220 m). The synthetic LSOAs are
    clouds without boundaries whose spread (~390 m) equals the median spacing of centroids
    (~390 m), so the nearest centroid is the generating LSOA for only about half the points;
    the local authority almost always. Points within half the distance to the next centroid
    always go to their own LSOA."""
    landing, truth, _ = synthetic
    con = lake
    if True:
        lsoa = con.sql("SELECT lsoa_code, la_code, latitude, longitude FROM reference.lsoa ORDER BY lsoa_code").pl()
        # 1) points around centroids, closer than half the distance to the nearest other centroid
        lat, lon = lsoa["latitude"].to_numpy(), lsoa["longitude"].to_numpy()
        tree = NearestCentroid(lat, lon).tree
        from sources.reference.nearest import EARTH_RADIUS_KM, unit_vectors

        gap, _ = tree.query(unit_vectors(lat, lon), k=2)
        reach_deg = gap[:, 1] * EARTH_RADIUS_KM / 111.2 * 0.45 / np.sqrt(2)
        rng = np.random.default_rng(0)
        angle = rng.uniform(0, 2 * np.pi, lat.size)
        p_lat = lat + reach_deg * np.sin(angle)
        p_lon = lon + reach_deg * np.cos(angle) / np.cos(np.radians(lat))
        assert (lsoa_for_points(con, pl.Series(p_lat), pl.Series(p_lon)) == lsoa["lsoa_code"]).all()
        # 2) the generator's postcode points (NSPL lat/long) against their LSOA
        nspl = pl.read_csv(landing / "reference" / "postcodes" / "NSPL_SYNTHETIC_UK.csv", infer_schema=False)
        got = lsoa_for_points(con, nspl["lat"], nspl["long"])  # text is parsed
        assert got.null_count() == 0
        lsoa_agree = (got == nspl["lsoa21"]).mean()
        la_of = dict(zip(lsoa["lsoa_code"], lsoa["la_code"]))
        la_agree = (got.replace_strict(la_of) == nspl["laua"]).mean()
        assert 0.4 < lsoa_agree < 0.6 and la_agree > 0.95, (lsoa_agree, la_agree)
        # 3) police event coordinates against the truth event LSOA
        records = pl.read_parquet(truth / "records.parquet").filter(pl.col("agency") == "police")
        events = pl.read_parquet(truth / "events.parquet", columns=["event_id", "lsoa_code"])
        police = pl.concat([
            pl.read_csv(p, infer_schema=False, columns=["Latitude", "Longitude"])
            .with_row_index("row_number", offset=1).with_columns(file=pl.lit(p.name))
            for p in sorted((landing / "police").glob("*.csv"))
        ]).with_columns(pl.col("row_number").cast(pl.Int64))
        police = police.join(records.select("file", "row_number", "event_id"), on=["file", "row_number"]).join(
            events, on="event_id")
        assert police.height > 0
        got = lsoa_for_points(con, police["Latitude"], police["Longitude"])
        assert (got.replace_strict(la_of) == police["lsoa_code"].replace_strict(la_of)).mean() > 0.9
        # 4) not a place: missing, not a number, 0/0, swapped, far away
        got = lsoa_for_points(con, pl.Series([None, "x", "0", "-0.97", "55.9", str(p_lat[0])]),
                              pl.Series(["-0.97", "-0.97", "0", "51.45", "-3.2", str(p_lon[0])]))
        assert got.to_list() == [None, None, None, None, None, lsoa["lsoa_code"][0]]
        with pytest.raises(ValueError, match="length"):
            lsoa_for_points(con, pl.Series([1.0]), pl.Series([1.0, 2.0]))


def test_normalise_postcodes():
    got = normalise_postcodes(pl.Series(["rg1  4ab", "SW1A1AA", " ", None, "75001"]))
    assert got.to_list() == ["RG1 4AB", "SW1A 1AA", None, None, "75001"]


# ------------------------------------------------------------------ malformed input
@pytest.fixture
def tiny(tmp_path) -> Path:
    """A three-LSOA reference folder written by the writer (the formats the reader reads)."""
    lsoas = pl.DataFrame({
        "lsoa_code": ["E01900001", "E01900002", "E01900003"],
        "lsoa_name": ["Reading S001A", "Reading S001B", "Slough S001A"],
        "la_code": ["E06000038", "E06000038", "E06000039"],
        "la_name": ["Reading", "Reading", "Slough"],
        "latitude": [51.45, 51.46, 51.51], "longitude": [-0.97, -0.96, -0.59],
        "imd_decile": [1, 5, 10], "population": [1500, 1600, 1700], "population_0_15": [300, 320, 340],
        "population_16_59": [900, 960, 1000], "population_60_plus": [300, 320, 360],
    })
    postcodes = pl.DataFrame({"postcode": ["RG1 1AA", "RG1 1AB", "SL1 1AA"],
                              "lsoa_code": ["E01900001", "E01900002", "E01900003"],
                              "latitude": [51.45, 51.46, 51.51], "longitude": [-0.97, -0.96, -0.59]})
    las = pl.DataFrame({"la_code": ["E06000038", "E06000039"], "la_name": ["Reading", "Slough"],
                        "upper_tier_code": ["E06000038", "E06000039"], "upper_tier_name": ["Reading", "Slough"],
                        "region_code": ["E12000008"] * 2, "region_name": ["South East"] * 2})
    write_reference_folder(tmp_path / "ref", lsoas, postcodes, las)
    return tmp_path / "ref"


def test_tiny_folder_reads(tiny):
    ref = read_reference(tiny)
    assert ref.lsoa["lsoa_code"].to_list() == ["E01900001", "E01900002", "E01900003"]
    assert ref.lsoa["population_16_plus"].to_list() == [1200, 1280, 1360]
    assert ref.postcode_lsoa.rows() == [("RG1 1AA", "E01900001", "E06000038"), ("RG1 1AB", "E01900002", "E06000038"),
                                        ("SL1 1AA", "E01900003", "E06000039")]
    only_slough = read_reference(tiny, la_codes=["E06000039"])
    assert only_slough.lsoa.height == 1 and only_slough.postcode_lsoa["postcode"].to_list() == ["SL1 1AA"]
    with pytest.raises(ValueError, match="no LSOA"):
        read_reference(tiny, la_codes=["E06000042"])


def _edit(path: Path, old: str, new: str) -> None:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(old.encode(), new.encode())))
    else:
        path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


CENTROIDS = "geography/lsoa_latlong_england.csv"
FILE_1 = "imd2019/File_1_-_IMD2019_Index_of_Multiple_Deprivation.csv.gz"
FILE_6 = "imd2019/File_6_-_IoD2019_Population_Denominators.csv.gz"
NSPL = "postcodes/NSPL_SYNTHETIC_UK.csv"


@pytest.mark.parametrize("file, old, new, message", [
    (CENTROIDS, "51.46,", "fifty-one,", r"lsoa_latlong_england.csv, line 3: latitude 'fifty-one' is not a number"),
    (CENTROIDS, "51.46,-0.96", "-0.96,51.46", r"lsoa_latlong_england.csv, line 3: latitude -0.96 is outside the UK"),
    (CENTROIDS, "E01900002", "E01900001", r"lsoa_latlong_england.csv, line 3: LSOACD 'E01900001' appears twice"),
    (CENTROIDS, ",latitude,", ",lat_wgs84,", r"lsoa_latlong_england.csv, line 1: no latitude column"),
    (FILE_1, ",10\n", ",11\n", r"File_1_.*\.csv\.gz, line 4: .*Decile '11' is not a decile"),
    (FILE_6, '"1,600"', '"1,6OO"', r"File_6_.*\.csv\.gz, line 3: Total population.* '1,6OO' is not a whole number"),
    (NSPL, ",RG1 1AB,198001", ",RG1 1XC,198001", r"NSPL_SYNTHETIC_UK.csv, line 3: 'RG1 1XC' is not a UK postcode"),
    (NSPL, ",SL1 1AA,198001", ",RG1 1AA,198001",
     r"NSPL_SYNTHETIC_UK.csv, line 4: postcode RG1 1AA is listed again in another LSOA"),
    (NSPL, ",lsoa21,", ",lsoa_21,", None),  # no lsoa21 column: falls back to lsoa11, still fine
])
def test_malformed_files_name_file_and_line(tiny, file, old, new, message):
    _edit(tiny / file, old, new)
    if message is None:
        assert read_reference(tiny).postcode_lsoa.height == 3
        return
    with pytest.raises(ExtractError, match=message):
        read_reference(tiny)


def test_missing_and_unreadable_files(tiny):
    (tiny / "geography" / "lsoa21").mkdir()
    (tiny / "geography" / "lsoa21" / "E06000038.geojson").write_text('{"type": "FeatureCollection", "features": [\n{')
    with pytest.raises(ExtractError, match=r"E06000038.geojson, line 2: invalid GeoJSON"):
        read_reference(tiny)
    (tiny / "geography" / "lsoa21" / "E06000038.geojson").unlink()
    la_codes = tiny / "geography" / "la_all_codes.csv"
    good = la_codes.read_bytes()
    la_codes.write_bytes(b"LADCD,LADNM\nE06000038,Caf\xe9\n")
    with pytest.raises(ExtractError, match="la_all_codes.csv, line 2: not valid UTF-8"):
        read_reference(tiny)
    la_codes.write_bytes(good)
    (tiny / "imd2019" / "File_6_-_IoD2019_Population_Denominators.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match="File_6"):
        read_reference(tiny)
    with pytest.raises(FileNotFoundError, match="reference folder not found"):
        read_reference(tiny / "nowhere")
