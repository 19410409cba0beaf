from datetime import date

import pytest
import yaml
from hypothesis import given, strategies as st

from governance.policy import DEFAULT_PATH, LEVELS, RANK, Policy, PolicyError, Retention

POLICY = Policy.load()
SHIPPED = yaml.safe_load(DEFAULT_PATH.read_text())
AGENCIES = ["police", "childrens_social_care", "adult_social_care", "probation", "nhs", "streetsafe"]


def test_shipped_policy_declares_the_required_vocabulary():
    assert list(POLICY.agencies) == AGENCIES
    assert {"data_engineer", "safeguarding_lead", "commissioner", "police_analyst", "auditor"} <= set(POLICY.roles)
    assert {"safeguarding_assessment", "commissioning", "operational_policing", "audit",
            "pipeline_operations"} <= set(POLICY.purposes)
    assert {"children_act_1989_s47", "children_act_2004_s11", "care_act_2014_s42", "crime_and_disorder_act_1998_s115",
            "dpa_2018_sch1_para18", "criminal_justice_act_2003_s325", "nhs_act_2006_s251",
            "common_law_safeguarding_exception"} <= set(POLICY.gateways)
    assert str(POLICY.retention("nhs")) == "3 years"


@pytest.mark.parametrize("role, agency, what, purpose, allowed, gateway, form", [
    ("safeguarding_lead", "police", "identifiable", "safeguarding_assessment", True, "children_act_1989_s47", None),
    ("safeguarding_lead", "adult_social_care", "surname", "safeguarding_assessment", True, "care_act_2014_s42", "value"),
    ("safeguarding_lead", "nhs", "diagnosis", "safeguarding_assessment", True, "common_law_safeguarding_exception", "flag"),
    ("health_safeguarding_lead", "nhs", "diagnosis", "safeguarding_assessment", True, "common_law_safeguarding_exception", "value"),
    ("health_safeguarding_lead", "police", "surname", "safeguarding_assessment", False, None, None),
    ("safeguarding_lead", "police", "identifiable", "commissioning", False, None, None),
    ("commissioner", "police", "aggregate", "commissioning", True, None, None),
    ("commissioner", "police", "pseudonymous", "commissioning", False, None, None),
    ("commissioner", "nhs", "identifiable", "commissioning", False, None, None),
    ("commissioner", "childrens_social_care", "referral_reason", "commissioning", False, None, None),
    ("data_engineer", "nhs", "referral_reason", "pipeline_operations", True, "nhs_act_2006_s251", "value"),
    ("data_engineer", "police", "nhs_number", "pipeline_operations", False, None, None),
    ("data_engineer", "police", "pseudonymous", "safeguarding_assessment", False, None, None),
    ("police_analyst", "probation", "identifiable", "operational_policing", True, "criminal_justice_act_2003_s325", None),
    ("police_analyst", "probation", "identifiable", "safeguarding_assessment", False, None, None),
    ("police_analyst", "streetsafe", "pseudonymous", "operational_policing", False, None, None),
    ("police_analyst", "childrens_social_care", "identifiable", "operational_policing", False, None, None),
    ("auditor", "police", "aggregate", "audit", True, None, None),
    ("auditor", "police", "pseudonymous", "audit", False, None, None),
    ("intruder", "police", "aggregate", "audit", False, None, None),
    ("auditor", "mi5", "aggregate", "audit", False, None, None),
    ("auditor", "police", "aggregate", "curiosity", False, None, None),
    ("auditor", "police", "aggregate", "", False, None, None),
])
def test_decisions(role, agency, what, purpose, allowed, gateway, form):
    decision = POLICY.decide(role, agency, what, purpose)
    assert (decision.allowed, decision.gateway, decision.form) == (allowed, gateway, form), decision.reason
    assert decision.reason


def test_denial_reasons_say_why():
    assert "aggregate access to police data; identifiable data needs identifiable" in \
        POLICY.decide("commissioner", "police", "identifiable", "commissioning").reason
    assert "unknown role 'intruder'" in POLICY.decide("intruder", "police", "aggregate", "audit").reason
    assert "allowed: operational_policing" in \
        POLICY.decide("police_analyst", "probation", "identifiable", "safeguarding_assessment").reason


def test_helpers_for_marts_and_exports():
    assert POLICY.level("commissioner", "nhs") == "aggregate"
    assert POLICY.level("nobody", "nhs") == "none"
    assert POLICY.agencies_for("police_analyst", "identifiable", "operational_policing") == ["police", "probation"]
    assert POLICY.agencies_for("police_analyst", "identifiable", "safeguarding_assessment") == ["police"]
    assert POLICY.agencies_for("commissioner", "pseudonymous") == []
    assert POLICY.zones_for("commissioner") == ("marts",)
    assert POLICY.zones_for("auditor") == ("marts", "audit")
    assert all("vault" not in POLICY.zones_for(r) for r in POLICY.roles)
    grants = POLICY.grants_for("safeguarding_lead", "safeguarding_assessment", "identifiable")
    assert [g.agency for g in grants] == AGENCIES and all(g.gateway for g in grants)


@given(role=st.sampled_from(sorted(POLICY.roles)), agency=st.sampled_from(AGENCIES),
       purpose=st.sampled_from(sorted(POLICY.purposes)), level=st.sampled_from(LEVELS[1:]))
def test_decisions_are_consistent_with_the_matrix(role, agency, purpose, level):
    decision = POLICY.decide(role, agency, level, purpose)
    grant = POLICY.roles[role].grants[agency]
    assert decision.allowed == (purpose in grant.purposes and RANK[grant.level] >= RANK[level])
    if decision.allowed and level in ("pseudonymous", "identifiable"):
        assert agency in POLICY.gateways[decision.gateway].covers  # person-level always has a covering gateway
    if decision.allowed:  # monotone: every lower level is allowed too
        assert all(POLICY.decide(role, agency, lower, purpose).allowed for lower in LEVELS[1:RANK[level]])


def test_retention_expiry_is_calendar_based():
    assert Retention(6, "years").expires(date(2020, 2, 29)) == date(2026, 2, 28)
    assert Retention(18, "months").expires(date(2024, 8, 31)) == date(2026, 2, 28)
    assert Retention(90, "days").expires(date(2025, 1, 1)) == date(2025, 4, 1)


# -- validation ---------------------------------------------------------------------------------
def load_modified(change) -> Policy:
    document = yaml.safe_load(DEFAULT_PATH.read_text())
    change(document)
    return Policy.from_text(yaml.safe_dump(document, sort_keys=False), "test.yaml")


def problems(change) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        load_modified(change)
    return raised.value.problems


def sets(path, value):
    def change(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


@pytest.mark.parametrize("change, expected", [
    (sets(["roles", "commissioner", "access", "nhs"], "full"),
     "roles.commissioner.access.nhs: unknown level 'full' (expected one of none, aggregate, pseudonymous, identifiable)"),
    (sets(["roles", "commissioner", "access", "nhs"], "identifiable"),
     "roles.commissioner.access.nhs: identifiable access needs a legal gateway (add `gateway: <name>`)"),
    (sets(["roles", "commissioner", "access", "nhs"], {"level": "pseudonymous", "gateway": "magna_carta"}),
     "roles.commissioner.access.nhs.gateway: unknown gateway 'magna_carta'"),
    (sets(["roles", "commissioner", "access", "police"], {"level": "pseudonymous", "gateway": "nhs_act_2006_s251"}),
     "roles.commissioner.access.police.gateway: gateway 'nhs_act_2006_s251' does not cover police data"),
    (sets(["roles", "commissioner", "access", "mi5"], "aggregate"),
     "roles.commissioner.access.mi5: unknown agency 'mi5'"),
    (lambda d: d["roles"]["auditor"]["access"].pop("nhs"),
     "roles.auditor.access: no entry for agency 'nhs' (write `nhs: none` if intended)"),
    (sets(["roles", "auditor", "purposes"], ["audit", "gossip"]),
     "roles.auditor.purposes[1]: unknown purpose 'gossip'"),
    (sets(["roles", "police_analyst", "access", "probation", "purposes"], ["commissioning"]),
     "roles.police_analyst.access.probation.purposes: commissioning not among the role's purposes"),
    (sets(["roles", "auditor", "acess"], {}), "roles.auditor.acess: unknown key"),
    (sets(["agencies", "nhs", "retention"], "forever"), "agencies.nhs.retention: expected a period such as"),
    (lambda d: d["agencies"]["nhs"].pop("retention"), "agencies.nhs: missing 'retention'"),
    (sets(["gateways", "nhs_act_2006_s251", "covers"], ["nhs", "hmrc"]),
     "gateways.nhs_act_2006_s251.covers[1]: unknown agency 'hmrc'"),
    (sets(["field_rules", "nhs_clinical_detail", "others_see"], "blur"),
     "field_rules.nhs_clinical_detail.others_see: expected one of flag, none"),
    (sets(["version"], 2), "version: unsupported version 2"),
])
def test_validation_names_the_path(change, expected):
    found = problems(change)
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_reported_at_once():
    def change(doc):
        doc["roles"]["commissioner"]["access"]["nhs"] = "identifiable"
        doc["agencies"]["police"]["retention"] = "0 days"
    assert len(problems(change)) == 2


def test_duplicate_keys_are_an_error():
    text = DEFAULT_PATH.read_text().replace("      police: aggregate\n", "      police: aggregate\n      police: identifiable\n", 1)
    with pytest.raises(PolicyError, match="duplicate key 'police'"):
        Policy.from_text(text)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "absent.yaml")
    with pytest.raises(PolicyError, match="not valid YAML"):
        Policy.from_text("roles: [unclosed")


def test_field_rule_hiding_a_field():
    policy = load_modified(sets(["field_rules", "nhs_clinical_detail", "others_see"], "none"))
    assert not policy.decide("safeguarding_lead", "nhs", "medication", "safeguarding_assessment").allowed
    assert policy.decide("health_safeguarding_lead", "nhs", "medication", "safeguarding_assessment").form == "value"
