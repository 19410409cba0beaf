"""A throwaway lakehouse with hand-made mart tables (the contract's columns, a few rows each)
and vault rows for the chronology's records, so re-identification can be exercised.

Persons:
  P1  police (victim), childrens_social_care (CP plan), nhs (A&E: self-harm), probation (MAPPA)
  P2  police (suspect), adult_social_care (s42)
  P3  nhs only
"""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from governance.keys import Keyring
from governance.pseudonyms import Pseudonymiser
from governance.vault import encrypt_identifiers
from tapestry import lakehouse
from tapestry.config import Settings

D = dt.date
SNAPSHOT = 7

AREA_RISK_DDL = """CREATE TABLE marts.area_risk (geography_level VARCHAR, area_code VARCHAR, area_name VARCHAR,
    la_code VARCHAR, la_name VARCHAR, month DATE, measure VARCHAR, count BIGINT, status VARCHAR,
    rate_per_1000 DOUBLE, imd_decile INTEGER, lake_snapshot_id BIGINT, ward_code VARCHAR, prev_12m_mean DOUBLE,
    change_vs_prev_12m_pct DOUBLE)"""
AREA_RISK_INDEX_DDL = """CREATE TABLE marts.area_risk_index (geography_level VARCHAR, area_code VARCHAR,
    area_name VARCHAR, la_code VARCHAR, month DATE, composite_index DOUBLE, components_published INTEGER,
    lake_snapshot_id BIGINT)"""
COHORT_OVERLAP_DDL = """CREATE TABLE marts.cohort_overlap (la_code VARCHAR, la_name VARCHAR, age_band VARCHAR,
    cohort VARCHAR, agencies_known VARCHAR, count BIGINT, status VARCHAR, lake_snapshot_id BIGINT)"""
MASH_PERSON_DDL = """CREATE TABLE marts.mash_person (person_id VARCHAR, agencies VARCHAR[], n_agencies INTEGER,
    open_cp_plan BOOLEAN, cp_category VARCHAR, child_in_need BOOLEAN, mappa_category INTEGER, mappa_level INTEGER,
    rosh VARCHAR, open_s42 BOOLEAN, victim_indicators INTEGER, perpetrator_indicators INTEGER, first_event DATE,
    last_event DATE, min_link_confidence DOUBLE, birth_year INTEGER, residence_lsoa_code VARCHAR,
    lake_snapshot_id BIGINT)"""
MASH_CHRONOLOGY_DDL = """CREATE TABLE marts.mash_chronology (person_id VARCHAR, event_date DATE, agency VARCHAR,
    entity VARCHAR, event_type VARCHAR, event_label VARCHAR, person_role VARCHAR, severity VARCHAR,
    record_key VARCHAR, delivery_id VARCHAR, legal_gateway VARCHAR, match_confidence DOUBLE,
    lake_snapshot_id BIGINT)"""
MASH_INDICATORS_DDL = """CREATE TABLE marts.mash_indicators (person_id VARCHAR, side VARCHAR, indicator VARCHAR,
    reason VARCHAR, agency VARCHAR, event_date DATE, record_key VARCHAR, lake_snapshot_id BIGINT)"""

AREA_RISK = [
    ("lsoa", "E01016371", "Reading 001A", "E06000038", "Reading", D(2025, 1, 1), "violent_crime", 15, "published",
     9.6, 2, SNAPSHOT, "W1", None, None),
    ("lsoa", "E01016372", "Reading 001B", "E06000038", "Reading", D(2025, 1, 1), "violent_crime", None, "suppressed",
     None, 5, SNAPSHOT, "W1", None, None),
    ("la", "E06000038", "Reading", "E06000038", "Reading", D(2025, 1, 1), "violent_crime", 120, "published",
     0.7, None, SNAPSHOT, None, 110.0, 9.1),
]
AREA_RISK_INDEX = [
    ("lsoa", "E01016371", "Reading 001A", "E06000038", D(2025, 1, 1), 1.42, 3, SNAPSHOT),
    ("la", "E06000038", "Reading", "E06000038", D(2025, 1, 1), 1.0, 9, SNAPSHOT),
]
COHORT_OVERLAP = [
    ("E06000038", "Reading", "10-17", "children_on_cp_plan", "1", 40, "published", SNAPSHOT),
    ("E06000038", "Reading", "10-17", "children_on_cp_plan", "2", None, "suppressed", SNAPSHOT),
    ("E06000038", "Reading", "10-17", "children_on_cp_plan", "3+", 10, "published", SNAPSHOT),
]
MASH_PERSON = [
    ("P1", ["police", "childrens_social_care", "nhs", "probation"], 4, True, "EMO", True, 2, 1, "High", None,
     2, 1, D(2024, 11, 2), D(2025, 5, 6), 0.91, 2009, "E01016371", SNAPSHOT),
    ("P2", ["police", "adult_social_care"], 2, None, None, None, None, None, None, True,
     1, 1, D(2025, 2, 1), D(2025, 4, 1), 0.97, 1961, "E01016372", SNAPSHOT),
    ("P3", ["nhs"], 1, None, None, None, None, None, None, None, 1, 0, D(2025, 3, 3), D(2025, 3, 3), 0.99, 1990,
     None, SNAPSHOT),
]
# (person, date, agency, entity, event_type, label, role, severity, source id, delivery, gateway, confidence)
CHRONOLOGY = [
    ("P1", D(2024, 11, 2), "police", "occurrences", "domestic_abuse", "Assault with injury", "victim", None,
     "POL-1", "police:d1", "children_act_1989_s47", 0.95),
    ("P1", D(2025, 1, 10), "childrens_social_care", "cp_plans", "cp_plan", "Emotional abuse", "subject", None,
     "CSC-1", "childrens_social_care:d2", "children_act_1989_s47", 0.91),
    ("P1", D(2025, 3, 4), "nhs", "encounter", "ae_attendance", "Self-harm, Home", "subject", None,
     "NHS-1", "nhs:d3", "common_law_safeguarding_exception", 0.93),
    ("P1", D(2025, 5, 6), "probation", "caseload", "probation_caseload", "Licence, MAPPA category 2 level 1",
     "subject", "High", "PRB-1", "probation:d4", "children_act_2004_s11", 0.92),
    ("P2", D(2025, 2, 1), "police", "occurrences", "violent_crime", "Wounding", "suspect", None,
     "POL-2", "police:d1", "children_act_1989_s47", 0.97),
    ("P2", D(2025, 4, 1), "adult_social_care", "s42_enquiries", "s42_enquiry", "Financial abuse", "subject", None,
     "ASC-1", "adult_social_care:d5", "care_act_2014_s42", 0.98),
    ("P3", D(2025, 3, 3), "nhs", "encounter", "ae_attendance", "Assault, Street/highway, Knife or sharp object",
     "subject", None, "NHS-2", "nhs:d3", "common_law_safeguarding_exception", 0.99),
]
# (person, side, indicator, reason, agency, date, source id)
INDICATORS = [
    ("P1", "victim", "domestic_abuse_victim", "Victim of a domestic abuse crime recorded by the police",
     "police", D(2024, 11, 2), "POL-1"),
    ("P1", "vulnerability", "child_protection_plan", "Child protection plan (emotional abuse) is open",
     "childrens_social_care", D(2025, 1, 10), "CSC-1"),
    ("P1", "vulnerability", "self_harm", "A&E attendance for self-harm", "nhs", D(2025, 3, 4), "NHS-1"),
    ("P1", "perpetrator", "mappa_offender", "Managed under MAPPA category 2 level 1 (probation)", "probation",
     D(2025, 5, 6), "PRB-1"),
    ("P2", "perpetrator", "violence_suspect", "Suspect in a wounding recorded by the police", "police",
     D(2025, 2, 1), "POL-2"),
    ("P2", "victim", "s42_financial_abuse", "Section 42 enquiry into financial abuse", "adult_social_care",
     D(2025, 4, 1), "ASC-1"),
    ("P3", "victim", "assault_ae", "A&E attendance after an assault with a knife", "nhs", D(2025, 3, 3), "NHS-2"),
]
# names in the vault, per source id (synthetic, obviously fake)
NAMES = {"POL-1": ("Testa", "Uno"), "CSC-1": ("Testa", "Uno"), "NHS-1": ("Tessa", "Uno"), "PRB-1": ("Testa", "Uno"),
         "POL-2": ("Probe", "Duo"), "ASC-1": ("Probe", "Duo"), "NHS-2": ("Trial", "Tre")}


class Lake:
    """The fixture lake: settings, keyring, and the record key of each source id."""

    def __init__(self, settings: Settings, keyring: Keyring, record_keys: dict[str, str]):
        self.settings, self.keyring, self.record_keys = settings, keyring, record_keys

    def entries(self):
        from governance import audit

        with lakehouse.connect(self.settings, read_only=True) as con:
            result = audit.verify(con, self.settings)
            assert result.ok, result.problem
            return list(audit.entries(con))


def build_lake(base) -> Lake:
    settings = Settings.from_env({"TAPESTRY_HOME": str(base / "home"), "TAPESTRY_SECRETS": str(base / "secrets")})
    keyring = Keyring.open(settings, env={})
    pseudonymiser = Pseudonymiser.from_keyring(keyring)
    record_keys = {row[8]: pseudonymiser.record_key(row[2], row[8]) for row in CHRONOLOGY}
    chronology = [(*r[:8], record_keys[r[8]], *r[9:], SNAPSHOT) for r in CHRONOLOGY]
    indicators = [(*r[:6], record_keys[r[6]], SNAPSHOT) for r in INDICATORS]
    vault_parts = []
    for row in CHRONOLOGY:
        source_id, agency, delivery = row[8], row[2], row[9]
        forename, surname = NAMES[source_id]
        frame = pl.DataFrame({"record_key": [record_keys[source_id]], "forename": [forename], "surname": [surname],
                              "date_of_birth": ["2009-04-01"], "postcode": ["ZZ9 9ZZ"]})
        vault_parts.append(encrypt_identifiers(frame, delivery, "record_key",
                                               ["forename", "surname", "date_of_birth", "postcode"], keyring)
                           .with_columns(pl.lit(agency).alias("agency")))
    vault = pl.concat(vault_parts)  # noqa: F841 - read by DuckDB below
    with lakehouse.connect(settings) as con:
        for ddl, rows in ((AREA_RISK_DDL, AREA_RISK), (AREA_RISK_INDEX_DDL, AREA_RISK_INDEX),
                          (COHORT_OVERLAP_DDL, COHORT_OVERLAP), (MASH_PERSON_DDL, MASH_PERSON),
                          (MASH_CHRONOLOGY_DDL, chronology), (MASH_INDICATORS_DDL, indicators)):
            con.execute(ddl)
            name = ddl.split()[2]
            con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(rows[0]))})", rows)
        con.execute("CREATE TABLE vault.identifiers AS SELECT record_key, agency, delivery_id, key_id, nonce, "
                    "ciphertext FROM vault")
    return Lake(settings, keyring, record_keys)


@pytest.fixture(scope="session")
def lake(tmp_path_factory) -> Lake:
    """One fixture lake for the marts tests (audit entries accumulate: tests compare counts)."""
    return build_lake(tmp_path_factory.mktemp("marts"))


@pytest.fixture
def lake_env(lake, monkeypatch) -> Lake:
    """The fixture lake as the environment's TAPESTRY_HOME / TAPESTRY_SECRETS (for the CLI)."""
    monkeypatch.setenv("TAPESTRY_HOME", str(lake.settings.home))
    monkeypatch.setenv("TAPESTRY_SECRETS", str(lake.settings.secrets))
    for name in ("TAPESTRY_LANDING", "TAPESTRY_CATALOG", "TAPESTRY_CATALOG_PATH", "TAPESTRY_DATA_PATH",
                 "TAPESTRY_POSTGRES_DSN", "TAPESTRY_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    return lake
