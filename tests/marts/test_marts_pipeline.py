"""The marts built by the whole pipeline on generated data: exact counts against the generator's
truth (before disclosure control), linkage-dependent counts within the measured linkage error,
disclosure control on what commissioners get, point-in-time, and the MASH/export commands."""
import json

import polars as pl
import pytest

from tapestry import lakehouse
from tapestry.cli import main
from tests.conftest import isolate

PERSONS = 1000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("marts")
    with pytest.MonkeyPatch.context() as mp:
        settings = isolate(mp, root, landing=root / "landing")
        assert main(["synth", "--persons", str(PERSONS), "--seed", "21", "--out", str(root / "landing")]) == 0
        assert main(["run"]) == 0
        yield settings, root / "landing_truth", mp


def _sql(settings, query, params=None) -> pl.DataFrame:
    with lakehouse.connect(settings, read_only=True) as con:
        return con.sql(query, params=params).pl()


def _truth_events(truth, event_type) -> pl.DataFrame:
    return pl.read_parquet(truth / "events.parquet").filter(pl.col("event_type") == event_type)


@pytest.mark.parametrize("measure, truth_event", [
    ("cp_plan_starts", "csc_cp_plan"),
    ("childrens_referrals", "csc_referral"),
    ("s42_enquiries", "s42_enquiry"),
])
def test_event_counts_per_local_authority_equal_the_truth(built, measure, truth_event):
    """Exact, per social-care authority: a record whose home postcode places it in no LSOA (a
    mistyped postcode) counts under the authority the record names, which in two-tier areas is
    the county (Oxfordshire, E10000025), not the district the truth knows."""
    from sources.synthetic.geography import LAS

    settings, truth, _ = built
    upper_tier = pl.col("la_code").replace({code: spec[10] for code, spec in LAS.items()})
    ours = _sql(settings, "SELECT la_code, count FROM staging.int_area_measures WHERE measure = ?", [measure]).group_by(
        upper_tier).agg(pl.col("count").sum().cast(pl.Int64).alias("n"))
    expected = _truth_events(truth, truth_event).group_by(upper_tier).agg(pl.len().cast(pl.Int64).alias("n"))
    assert expected["n"].sum() > 0
    assert dict(ours.iter_rows()) == dict(expected.iter_rows())


def test_persons_known_to_police_and_nhs_are_within_the_linkage_error(built):
    """Depends on linkage: a person known to both is counted when the linkage joins their police
    and NHS records. The measured error of that is this run's missed police~NHS pairs
    (1 - recall of the pair) and false links (1 - pairwise precision); the count must be within
    that error of the truth, plus 2 points for small-number noise, and the test prints how far."""
    settings, truth, _ = built
    ours = int(_sql(settings, "SELECT sum(count) FROM staging.int_cohort_counts WHERE cohort = 'police_and_nhs'")
               .item() or 0)
    records = pl.read_parquet(truth / "records.parquet", columns=["agency", "person_uid"])
    both = records.group_by("person_uid").agg(pl.col("agency").unique()).filter(
        pl.col("agency").list.contains("police") & pl.col("agency").list.contains("nhs")).height
    linkage = json.loads(_sql(settings, "SELECT metrics FROM linked.runs ORDER BY started_at DESC LIMIT 1").item())[
        "evaluation"]["tapestry"]
    error = (1 - linkage["recall_by_source_pair"]["nhs ~ police"]) + (1 - linkage["pairwise_precision"])
    off = abs(ours - both) / both
    print(f"\npersons known to police and NHS: {ours} linked vs {both} true: {off:.1%} off "
          f"(measured linkage error for the pair {error:.1%})")
    assert both > 20
    assert off <= error + 0.02


def test_commissioners_tables_are_disclosure_controlled(built):
    settings, _, _ = built
    for table in ("area_risk", "cohort_overlap"):
        t = _sql(settings, f"SELECT * FROM marts.{table}")
        assert t.height > 0
        published = t.filter(pl.col("status") == "published")["count"]
        assert published.null_count() == 0
        assert (published % 5 == 0).all()
        assert not published.is_between(1, 7).any()
        assert t.filter(pl.col("status") == "suppressed")["count"].null_count() == t.filter(
            pl.col("status") == "suppressed").height
        assert set(t["status"].unique()) <= {"published", "suppressed"}
    risk = _sql(settings, "SELECT * FROM marts.area_risk")
    assert risk.filter(pl.col("count").is_null())["rate_per_1000"].null_count() == risk["count"].null_count()
    # each level is the total of the one below: never exactly one suppressed item in such an
    # equation (a lone suppressed cell next to a published total could be subtracted out)
    assert set(risk["geography_level"]) == {"lsoa", "ward", "la"}
    def equations(part, whole, by):
        cells = risk.filter(pl.col("geography_level") == part).group_by(*by, "month", "measure").agg(
            (pl.col("status") == "suppressed").sum().alias("cells_suppressed"))
        totals = risk.filter(pl.col("geography_level") == whole).select(
            *by, "month", "measure", (pl.col("status") == "suppressed").cast(pl.Int64).alias("total_suppressed"))
        return cells.join(totals, on=[*by, "month", "measure"], how="left").with_columns(
            pl.col("total_suppressed").fill_null(0))
    items = pl.concat([equations("lsoa", "ward", ["la_code", "ward_code"]), equations("ward", "la", ["la_code"])],
                      how="diagonal_relaxed")
    assert items.filter(pl.col("cells_suppressed") + pl.col("total_suppressed") == 1).height == 0
    assert items["cells_suppressed"].sum() > 0  # the demo data does exercise suppression


def test_marts_record_their_snapshot_and_can_be_read_as_they_were(built):
    settings, _, _ = built
    snap = _sql(settings, "SELECT DISTINCT lake_snapshot_id FROM marts.mash_person")["lake_snapshot_id"].to_list()
    assert len(snap) == 1 and snap[0] > 0
    built_at = _sql(settings, "SELECT max(snapshot_id) FROM audit.run_snapshots "
                              "WHERE asset_key = 'marts/area_risk'").item()
    now = _sql(settings, "SELECT count(*) FROM marts.area_risk").item()
    assert _sql(settings, f"SELECT count(*) FROM marts.area_risk AT (VERSION => {built_at})").item() == now


def test_mash_and_export_on_the_built_marts(built, tmp_path, capsys):
    settings, _, _ = built
    person = _sql(settings, "SELECT person_id FROM marts.mash_person ORDER BY n_agencies DESC, person_id LIMIT 1").item()
    assert main(["mash", "--person", person, "--purpose", "safeguarding_assessment", "--case-ref", "MASH-1",
                 "--format", "json"]) == 0
    picture = json.loads(capsys.readouterr().out)
    assert picture["person_id"] == person and picture["case_ref"] == "MASH-1"
    assert picture["header"]["n_agencies"] >= 2 and len(picture["chronology"]) >= 2
    assert all(row["legal_gateway"] for row in picture["chronology"])  # provenance on every event
    out = tmp_path / "risk.csv"
    assert main(["export", "--role", "commissioner", "--table", "area_risk", "--format", "csv",
                 "--out", str(out)]) == 0
    assert pl.read_csv(out).height == _sql(settings, "SELECT count(*) FROM marts.area_risk").item()
    assert main(["export", "--role", "commissioner", "--table", "mash_person", "--format", "csv",
                 "--out", str(tmp_path / "no.csv")]) == 2
