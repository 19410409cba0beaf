"""`tapestry mash`: the MASH picture of one person, its role view, audit and re-identification."""
import json

import pytest

from marts import catalog
from marts.mash import MashError, MashRefused, mash_picture
from tapestry import cli

LEAD, SA = "safeguarding_lead", "safeguarding_assessment"
NAMES = ("Testa", "Tessa", "Uno", "Probe", "Duo", "Trial", "Tre", "2009-04-01", "ZZ9 9ZZ")


@pytest.fixture(scope="module")
def lead_picture(lake):
    return mash_picture(lake.settings, "P1", LEAD, SA, "MASH-2025-001", actor="alice")


def test_picture_header_indicators_and_chronology(lake, lead_picture):
    p = lead_picture
    assert p.header["agencies"] == ["police", "childrens_social_care", "nhs", "probation"]
    opened = {(s["agency"], s["status"]): s["value"] for s in p.header["open"]}
    assert opened[("childrens_social_care", "open child protection plan")] is True
    assert opened[("childrens_social_care", "child protection category")] == "EMO"
    assert opened[("probation", "risk of serious harm (OASys)")] == "High"
    assert p.header["link_confidence"] == {"weakest": 0.91, "agency": "childrens_social_care", "records": 4}
    assert str(p.header["first_event"]) == "2024-11-02" and str(p.header["last_event"]) == "2025-05-06"
    # victim and perpetrator signals kept apart, each with its reason and provenance
    assert [i["indicator"] for i in p.indicators["victim"]] == ["domestic_abuse_victim"]
    perpetrator = p.indicators["perpetrator"][0]
    assert perpetrator == {"indicator": "mappa_offender", "reason": "Managed under MAPPA category 2 level 1 (probation)",
                           "agency": "probation", "event_date": perpetrator["event_date"],
                           "delivery_id": "probation:d4", "legal_gateway": "children_act_2004_s11",
                           "record_key": lake.record_keys["PRB-1"]}
    health = next(i for i in p.indicators["vulnerability"] if i["agency"] == "nhs")
    assert (health["indicator"], health["reason"]) == ("health_indicator", catalog.HEALTH_FLAG)
    assert [e["agency"] for e in p.chronology] == ["police", "childrens_social_care", "nhs", "probation"]
    assert [str(e["event_date"]) for e in p.chronology] == sorted(str(e["event_date"]) for e in p.chronology)
    text, document = p.to_text(), json.dumps(p.to_dict())
    assert "Self-harm" not in text and "Self-harm" not in document  # clinical detail: a flag for this role
    assert not any(name in text or name in document for name in NAMES)  # nothing identifiable without identify
    assert "VICTIM" in text and "PERPETRATOR" in text and "Children Act 2004, section 11" in text


def test_picture_is_audited_with_the_case_reference(lake, lead_picture):
    entry = next(e for e in reversed(lake.entries()) if e.action == "mash.view" and e.case_ref == "MASH-2025-001")
    assert (entry.actor, entry.role, entry.purpose, entry.outcome) == ("alice", LEAD, SA, "allowed")
    assert entry.object == f"marts.mash_person[P1]@{lead_picture.snapshot_id}"
    assert entry.row_count == lead_picture.rows_shown == 1 + 4 + 4


def test_role_view_applies_to_the_picture(lake):
    p = mash_picture(lake.settings, "P1", "police_analyst", SA, "OP-1", actor="carol")
    assert p.header["agencies"] == ["police", "childrens_social_care"]
    assert {e["agency"] for e in p.chronology} == {"police", "childrens_social_care"}
    assert p.indicators["perpetrator"] == []  # probation's MAPPA flag is for operational policing only
    assert set(p.not_visible_to_role) == {"adult_social_care", "probation", "nhs"}
    assert all(s["agency"] == "childrens_social_care" for s in p.header["open"])
    nurse = mash_picture(lake.settings, "P1", "health_safeguarding_lead", SA, "H-1", actor="dana")
    assert "Self-harm, Home" in [e["event_label"] for e in nurse.chronology]


@pytest.mark.parametrize("person, role, purpose, case_ref, problem", [
    ("P1", LEAD, SA, "", "a case reference is required"),
    ("P1", LEAD, SA, "   ", "a case reference is required"),
    ("P1", LEAD, "", "C-1", "a purpose is required"),
    ("P1", LEAD, "commissioning", "C-1", "may not act for purpose 'commissioning'"),
    ("P1", "commissioner", "commissioning", "C-1", "commissioner has no person-level access"),
])
def test_refusals_are_audited(lake, person, role, purpose, case_ref, problem):
    before = len(lake.entries())
    with pytest.raises(MashRefused, match=problem):
        mash_picture(lake.settings, person, role, purpose, case_ref, actor="eve")
    entries = lake.entries()
    assert len(entries) == before + 1
    assert (entries[-1].action, entries[-1].row_count) == ("mash.view", 0)
    assert entries[-1].outcome.startswith("denied: ")


def test_unknown_person_says_nothing_about_who_exists(lake):
    with pytest.raises(MashError, match="no person with that id has records visible"):
        mash_picture(lake.settings, "P404", LEAD, SA, "C-2", actor="alice")
    # P2 is known to police and adult social care; the nurse's role sees both, so it is found...
    assert mash_picture(lake.settings, "P2", "health_safeguarding_lead", SA, "C-2", actor="dana").header["agencies"]
    # ...whereas P3 is known only to the NHS, which police analysts see only in aggregate: same answer as P404
    with pytest.raises(MashError, match="no person with that id has records visible"):
        mash_picture(lake.settings, "P3", "police_analyst", SA, "C-2", actor="carol")
    assert lake.entries()[-1].outcome == "allowed: nothing visible"


def test_identify_names_come_only_through_reidentify(lake):
    before = len(lake.entries())
    p = mash_picture(lake.settings, "P1", LEAD, SA, "MASH-7", identify=True, actor="alice")
    assert {(i["agency"], i["forename"], i["surname"]) for i in p.identities} == {
        ("police", "Testa", "Uno"), ("childrens_social_care", "Testa", "Uno"), ("nhs", "Tessa", "Uno"),
        ("probation", "Testa", "Uno")}
    assert "forename Tessa" in p.to_text()
    new = lake.entries()[before:]
    assert [(e.action, e.case_ref, e.outcome) for e in new] == [
        ("reidentify", "MASH-7", "allowed"), ("mash.view", "MASH-7", "allowed; identified")]
    assert new[0].row_count == 4 and all(i["record_key"] in new[0].object for i in p.identities)
    # a police analyst may re-identify police records only
    analyst = mash_picture(lake.settings, "P2", "police_analyst", SA, "OP-9", identify=True, actor="carol")
    assert [(i["agency"], i["surname"]) for i in analyst.identities] == [("police", "Duo")]


@pytest.mark.parametrize("person, role, purpose", [
    ("P1", "data_engineer", "pipeline_operations"),  # no identifiable level at all
    ("P2", "health_safeguarding_lead", SA),  # identifiable for NHS only; P2 has no NHS record
])
def test_identify_is_refused_without_identifiable_level(lake, person, role, purpose):
    before = len(lake.entries())
    with pytest.raises(MashRefused, match="re-identification refused"):
        mash_picture(lake.settings, person, role, purpose, "C-3", identify=True, actor="frank")
    new = lake.entries()[before:]
    assert [(e.action, e.outcome.split(":")[0]) for e in new] == [("reidentify", "denied"), ("mash.view", "denied")]


def test_cli_text_json_and_exit_codes(lake_env, capsys):
    assert cli.main(["mash", "--person", "P2", "--purpose", SA, "--case-ref", "MASH-9", "--actor", "alice"]) == 0
    text = capsys.readouterr().out
    assert "MASH picture - person P2" in text and "adult_social_care: open section 42 enquiry" in text
    assert cli.main(["mash", "--person", "P2", "--purpose", SA, "--case-ref", "MASH-9", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["header"]["n_agencies"] == 2 and document["case_ref"] == "MASH-9"
    assert cli.main(["mash", "--person", "P2", "--purpose", "commissioning", "--case-ref", "X",
                     "--role", "commissioner"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tapestry mash: MASH view refused") and "P2" not in err
    assert cli.main(["mash", "--person", "P1", "--purpose", "pipeline_operations", "--case-ref", "X",
                     "--role", "data_engineer", "--identify"]) == 2
    assert "may not re-identify" in capsys.readouterr().err
