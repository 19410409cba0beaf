"""The mart catalog and the role views it derives from the sharing policy (no lakehouse needed)."""
import dataclasses

import polars as pl
import pytest
import yaml

from governance.policy import DEFAULT_PATH, Policy, default_policy
from marts import catalog


def policy_with(change) -> Policy:
    document = yaml.safe_load(DEFAULT_PATH.read_text())
    change(document)
    return Policy.from_text(yaml.safe_dump(document))


def test_catalog_fits_the_policy():
    assert catalog.validate() == []
    assert [t.name for t in catalog.TABLES.values() if t.kind == "aggregate"] == [
        "area_risk", "area_risk_index", "cohort_overlap"]


def test_a_column_named_as_an_identifier_or_an_unflaggable_health_field_is_rejected(monkeypatch):
    chronology = catalog.TABLES["mash_chronology"]
    columns = tuple(dataclasses.replace(c, flag=None) if c.name == "event_label" else c for c in chronology.columns)
    bad = dataclasses.replace(chronology, columns=columns + (catalog.Column("postcode", agency="police"),))
    monkeypatch.setitem(catalog.TABLES, "mash_chronology", bad)
    problems = "\n".join(catalog.validate())
    assert "mash_chronology.postcode: identifiers never go into a mart" in problems
    assert "mash_chronology.event_label: the policy flags nhs 'condition_text'" in problems


def test_matrix_from_the_current_policy():
    cells = {(role, table): cell for role, table, cell in catalog.matrix()}
    aggregate = [t for t, m in catalog.TABLES.items() if m.kind == "aggregate"]
    person = [t for t, m in catalog.TABLES.items() if m.kind == "person"]
    for role in default_policy().roles:
        assert all(cells[(role, t)] == "yes" for t in aggregate)
    for role in ("commissioner", "auditor"):
        assert all(cells[(role, t)] == "-" for t in person)
    assert cells[("safeguarding_lead", "mash_chronology")].startswith(
        "safeguarding_assessment: rows of police, childrens_social_care, adult_social_care, probation, nhs; "
        "as flags: event_label (nhs)")
    assert "as flags" not in cells[("health_safeguarding_lead", "mash_chronology")]
    assert cells[("police_analyst", "mash_chronology")] == (
        "operational_policing: rows of police, childrens_social_care, probation"
        " | safeguarding_assessment: rows of police, childrens_social_care")


def test_views_follow_a_changed_policy_without_code_changes():
    def change(doc):
        doc["roles"]["commissioner"]["access"]["nhs"] = "none"
        doc["roles"]["police_analyst"]["access"]["adult_social_care"] = {
            "level": "pseudonymous", "gateway": "care_act_2014_s42"}

    policy = policy_with(change)
    refused = catalog.access("commissioner", "area_risk", "commissioning", policy)
    assert not refused.allowed and "no access to nhs data" in refused.reason
    view = catalog.access("police_analyst", "mash_chronology", "safeguarding_assessment", policy)
    assert view.visible == ("police", "childrens_social_care", "adult_social_care")
    assert view.gateways["adult_social_care"] == "care_act_2014_s42"


def test_person_level_access_needs_a_purpose_the_grant_allows():
    lead = catalog.access("safeguarding_lead", "mash_person", None)
    assert not lead.allowed and "state a purpose" in lead.reason
    wrong = catalog.access("safeguarding_lead", "mash_person", "commissioning")
    assert not wrong.allowed and "may not act for purpose 'commissioning'" in wrong.reason
    # probation is open to police analysts for operational policing only
    assert "probation" in catalog.access("police_analyst", "mash_indicators", "operational_policing").visible
    assert "probation" not in catalog.access("police_analyst", "mash_indicators", "safeguarding_assessment").visible
    # an aggregate table takes a single-purpose role's purpose; a two-purpose role must say which
    assert catalog.access("commissioner", "area_risk", None).purpose == "commissioning"
    assert not catalog.access("police_analyst", "area_risk", None).allowed
    assert not catalog.access("no_such_role", "area_risk", "audit").allowed
    with pytest.raises(KeyError, match="unknown table"):
        catalog.access("commissioner", "no_such_table", "commissioning")


def test_apply_view_drops_hidden_rows_and_flags_nhs_detail():
    frame = pl.DataFrame({
        "person_id": ["P1", "P1", "P1"], "event_date": [None] * 3, "agency": ["police", "nhs", "adult_social_care"],
        "entity": ["occurrences", "encounter", "s42_enquiries"], "event_type": ["violent_crime", "ae_attendance", "s42"],
        "event_label": ["Wounding", "Self-harm, Home", None], "person_role": ["victim", "subject", "subject"],
        "severity": [None] * 3, "record_key": ["k1", "k2", "k3"], "delivery_id": ["d1", "d2", "d3"],
        "legal_gateway": ["g", "g", "g"], "match_confidence": [0.9, 0.8, 0.7], "lake_snapshot_id": [1, 1, 1]})
    lead = catalog.apply_view(frame, catalog.access("safeguarding_lead", "mash_chronology", "safeguarding_assessment"))
    assert lead["event_label"].to_list() == ["Wounding", catalog.HEALTH_FLAG, None]
    assert lead["legal_gateway"].to_list() == ["children_act_1989_s47", "common_law_safeguarding_exception",
                                               "care_act_2014_s42"]
    nurse = catalog.apply_view(frame, catalog.access("health_safeguarding_lead", "mash_chronology",
                                                     "safeguarding_assessment"))
    assert nurse["event_label"].to_list() == ["Wounding", "Self-harm, Home", None]
    analyst = catalog.apply_view(frame, catalog.access("police_analyst", "mash_chronology", "operational_policing"))
    assert analyst["agency"].to_list() == ["police"]
    assert analyst["legal_gateway"].to_list() == ["dpa_2018_part3"]
