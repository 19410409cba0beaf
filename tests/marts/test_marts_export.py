"""`tapestry export`: the policy matrix on real files, recipient pseudonyms, audit, formats."""
import datetime as dt
import os

import polars as pl
import pytest

from governance.keys import Keyring
from governance.pseudonyms import Pseudonymiser
from marts import catalog
from marts.export import ExportError, ExportRefused, export, recipient_domain
from tapestry import cli
from tapestry.config import Settings

LEAD, NURSE, ANALYST = "safeguarding_lead", "health_safeguarding_lead", "police_analyst"
SA, OP = "safeguarding_assessment", "operational_policing"


@pytest.fixture(scope="module")
def exported(lake, tmp_path_factory):
    """Parquet exports shared by the tests below: {(role, table, purpose): frame}."""
    out = tmp_path_factory.mktemp("exports")
    wanted = [("commissioner", "area_risk", None), ("commissioner", "cohort_overlap", None),
              (LEAD, "mash_person", SA), (LEAD, "mash_chronology", SA), (LEAD, "mash_indicators", SA),
              (NURSE, "mash_person", SA), (NURSE, "mash_chronology", SA), (NURSE, "mash_indicators", SA),
              (ANALYST, "mash_chronology", OP), (ANALYST, "mash_chronology", SA)]
    frames = {}
    for role, table, purpose in wanted:
        path = out / f"{role}.{table}.{purpose}.parquet"
        result = export(lake.settings, role, table, "parquet", path, purpose=purpose, actor="tester")
        frames[(role, table, purpose)] = pl.read_parquet(path)
        assert result.rows == frames[(role, table, purpose)].height
    return frames


def test_commissioner_gets_the_published_area_tables_as_they_are(exported):
    area = exported[("commissioner", "area_risk", None)]
    assert area.columns == list(catalog.TABLES["area_risk"].column_names)
    assert area.sort("area_code")["count"].to_list() == [15, None, 120]  # suppressed stays null
    assert set(area["status"]) == {"published", "suppressed"}
    assert exported[("commissioner", "cohort_overlap", None)].height == 3


def test_commissioner_is_refused_person_level_tables_and_the_refusal_is_audited(lake, tmp_path):
    before = len(lake.entries())
    for table in ("mash_person", "mash_chronology", "mash_indicators"):
        with pytest.raises(ExportRefused, match="commissioner has no person-level access"):
            export(lake.settings, "commissioner", table, "csv", tmp_path / f"{table}.csv",
                   purpose="commissioning", actor="bob")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file
    entries = lake.entries()[before:]
    assert [(e.actor, e.role, e.action, e.object, e.row_count) for e in entries] == [
        ("bob", "commissioner", "export", f"marts.{t}", 0) for t in ("mash_person", "mash_chronology",
                                                                      "mash_indicators")]
    assert all(e.outcome.startswith("denied: marts.") for e in entries)


def test_safeguarding_lead_gets_every_mash_table_with_nhs_detail_as_flags(exported):
    chronology = exported[(LEAD, "mash_chronology", SA)]
    assert chronology.height == 7
    assert set(chronology["agency"]) == {"police", "childrens_social_care", "adult_social_care", "probation", "nhs"}
    nhs = chronology.filter(pl.col("agency") == "nhs")
    assert nhs["event_label"].to_list() == [catalog.HEALTH_FLAG] * 2
    assert nhs["event_type"].to_list() == ["ae_attendance"] * 2  # the attendance itself is the flag
    assert "Self-harm, Home" not in chronology["event_label"].to_list()
    indicators = exported[(LEAD, "mash_indicators", SA)].filter(pl.col("agency") == "nhs")
    assert set(indicators["indicator"]) == {"health_indicator"} and set(indicators["reason"]) == {catalog.HEALTH_FLAG}
    assert sorted(indicators["side"]) == ["victim", "vulnerability"]  # the side is not clinical detail
    assert exported[(LEAD, "mash_person", SA)].height == 3


def test_health_safeguarding_lead_sees_clinical_detail_but_not_probation(exported):
    chronology = exported[(NURSE, "mash_chronology", SA)]
    assert sorted(chronology.filter(pl.col("agency") == "nhs")["event_label"]) == [
        "Assault, Street/highway, Knife or sharp object", "Self-harm, Home"]
    assert "probation" not in set(chronology["agency"])
    assert "self_harm" in exported[(NURSE, "mash_indicators", SA)]["indicator"].to_list()
    person = exported[(NURSE, "mash_person", SA)].sort("n_agencies", descending=True)
    p1, p2, p3 = person.rows(named=True)
    assert p1["agencies"] == ["police", "childrens_social_care", "nhs"] and p1["n_agencies"] == 3
    assert (p1["mappa_category"], p1["mappa_level"], p1["rosh"]) == (None, None, None)  # probation's columns
    assert (p1["cp_category"], p1["open_cp_plan"]) == ("EMO", True)
    # summaries would carry probation's events: withheld for P1, kept for persons with no hidden agency
    assert (p1["first_event"], p1["victim_indicators"], p1["min_link_confidence"]) == (None, None, None)
    assert (p2["first_event"], p2["victim_indicators"]) == (dt.date(2025, 2, 1), 1)
    assert p3["agencies"] == ["nhs"] and p3["min_link_confidence"] == 0.99


def test_police_analyst_chronology_excludes_agencies_it_sees_only_in_aggregate(exported):
    operational = exported[(ANALYST, "mash_chronology", OP)]
    assert set(operational["agency"]) == {"police", "childrens_social_care", "probation"}  # not nhs, asc
    assert set(exported[(ANALYST, "mash_chronology", SA)]["agency"]) == {"police", "childrens_social_care"}
    gateways = dict(operational.select("agency", "legal_gateway").unique().iter_rows())
    assert gateways == {"police": "dpa_2018_part3", "childrens_social_care": "crime_and_disorder_act_1998_s115",
                        "probation": "criminal_justice_act_2003_s325"}  # the analyst's gateways, not the mart's


def test_recipient_pseudonyms_differ_per_role_and_are_not_lake_ids(lake, exported):
    lead = exported[(LEAD, "mash_chronology", SA)]
    nurse = exported[(NURSE, "mash_chronology", SA)]
    assert "person_id" not in lead.columns and "record_key" not in lead.columns
    lake_ids = {"P1", "P2", "P3"} | set(lake.record_keys.values())
    for frame in (lead, nurse):
        assert not (set(frame["person_pseudonym"]) | set(frame["record_pseudonym"])) & lake_ids
    assert not set(lead["person_pseudonym"]) & set(nurse["person_pseudonym"])
    assert not set(lead["record_pseudonym"]) & set(nurse["record_pseudonym"])
    pseudonymiser = Pseudonymiser.from_keyring(Keyring.open(lake.settings, env={}))
    expected = pseudonymiser.recipient_pseudonym("P1", recipient_domain(LEAD))
    assert lead.filter(pl.col("agency") == "probation")["person_pseudonym"].to_list() == [expected]
    # within one recipient the files join: chronology and person share the pseudonym
    assert set(exported[(LEAD, "mash_person", SA)]["person_pseudonym"]) == set(lead["person_pseudonym"])


def test_exports_are_audited_and_the_chain_verifies(lake, tmp_path):
    before = len(lake.entries())
    out = tmp_path / "chron.csv"
    result = export(lake.settings, ANALYST, "mash_chronology", "csv", out, purpose=OP, actor="carol",
                    case_ref="OP-12")
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"  # person-level files are private
    entries = lake.entries()
    assert len(entries) == before + 1
    last = entries[-1]
    assert (last.actor, last.role, last.purpose, last.case_ref, last.action, last.row_count) == (
        "carol", ANALYST, OP, "OP-12", "export", 4)
    assert last.object == f"marts.mash_chronology@{result.snapshot_id} -> csv"
    assert last.outcome == "allowed: without adult_social_care, nhs"
    with pytest.raises(ExportRefused, match="unknown table"):
        export(lake.settings, LEAD, "vault_identifiers", "csv", tmp_path / "x.csv", purpose=SA, actor="eve")
    with pytest.raises(ExportRefused, match="state a purpose"):
        export(lake.settings, LEAD, "mash_person", "csv", tmp_path / "y.csv", actor="eve")
    assert [e.outcome.split(":")[0] for e in lake.entries()[before + 1:]] == ["denied", "denied"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_formats_round_trip(lake, exported, tmp_path, fmt):
    out = tmp_path / f"person.{fmt}"
    export(lake.settings, LEAD, "mash_person", fmt, out, purpose=SA, actor="tester")
    expected = exported[(LEAD, "mash_person", SA)].with_columns(pl.col("agencies").list.join(";"))
    if fmt == "csv":
        back = pl.read_csv(out, schema=expected.schema)
    elif fmt == "parquet":
        back = pl.read_parquet(out).with_columns(pl.col("agencies").list.join(";"))
    else:
        back = pl.read_excel(out, engine="calamine").with_columns(
            pl.col(c).cast(t) for c, t in expected.schema.items())
    assert back.columns == expected.columns
    assert back.sort("person_pseudonym").rows() == expected.sort("person_pseudonym").rows()


def test_missing_lakehouse_or_mart_is_an_error_not_a_crash(tmp_path):
    settings = Settings.from_env({"TAPESTRY_HOME": str(tmp_path / "home"), "TAPESTRY_SECRETS": str(tmp_path / "s")})
    with pytest.raises(ExportError, match="no lakehouse at .* yet"):
        export(settings, "commissioner", "area_risk", "csv", tmp_path / "a.csv", actor="bob")
    # the failed attempt was audited (which created the lakehouse); now the mart is what is missing
    with pytest.raises(ExportError, match="marts.area_risk does not exist in the lakehouse yet"):
        export(settings, "commissioner", "area_risk", "csv", tmp_path / "a.csv", actor="bob")
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob(".*tmp"))


def test_cli_exit_codes_and_listing(lake_env, tmp_path, capsys):
    out = tmp_path / "area.xlsx"
    assert cli.main(["export", "--role", "commissioner", "--table", "area_risk", "--out", str(out)]) == 0
    assert "wrote 3 rows of marts.area_risk for commissioner (commissioning)" in capsys.readouterr().out
    assert pl.read_excel(out).height == 3
    assert cli.main(["export", "--role", "commissioner", "--table", "mash_chronology", "--format", "csv",
                     "--out", str(tmp_path / "c.csv"), "--purpose", "commissioning"]) == 2
    err = capsys.readouterr().err
    assert "commissioner may not export marts.mash_chronology" in err and "P1" not in err
    assert cli.main(["export", "--role", "commissioner", "--table", "area_risk"]) == 2
    assert "--out required" in capsys.readouterr().err
    assert cli.main(["export", "--role", ANALYST, "--list"]) == 0
    listing = capsys.readouterr().out
    assert "mash_chronology  person    for operational_policing: rows of police, childrens_social_care, probation" \
        in listing
    assert cli.main(["export", "--list"]) == 0
    assert "commissioner" in capsys.readouterr().out
