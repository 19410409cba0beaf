"""All tunable rates of the synthetic generator in one place.

``EVENT_RATES`` drive how often true events happen; ``ERROR_RATES`` drive how the
agencies mis-record them (each probability is multiplied by ``error_scale`` and capped
at 0.95). ``IDENTIFIER_PRESENCE`` says how often an agency's extract carries an
identifier the person truly has (not scaled: it is a property of the source system).
Documented in sources/synthetic/README.md.
"""

from __future__ import annotations

# ---------------------------------------------------------------- population
ETHNIC_GROUPS = [
    "white_british",
    "east_european",
    "south_asian_indian",
    "south_asian_pakistani",
    "black_african",
    "black_caribbean",
    "east_asian",
    "mixed",
    "other",
]
# broad ONS 2021 shape: default (shire districts) and the more diverse towns
ETHNIC_MIX_DEFAULT = [0.84, 0.05, 0.03, 0.01, 0.01, 0.005, 0.015, 0.03, 0.01]
ETHNIC_MIX_BY_LA = {
    "E06000039": [0.36, 0.10, 0.15, 0.17, 0.06, 0.02, 0.02, 0.05, 0.07],  # Slough
    "E06000038": [0.59, 0.09, 0.08, 0.05, 0.05, 0.02, 0.03, 0.06, 0.03],  # Reading
    "E06000042": [0.63, 0.07, 0.05, 0.03, 0.09, 0.02, 0.03, 0.05, 0.03],  # Milton Keynes
    "E07000178": [0.54, 0.12, 0.05, 0.04, 0.04, 0.02, 0.06, 0.07, 0.06],  # Oxford
    "E06000041": [0.74, 0.06, 0.09, 0.01, 0.02, 0.01, 0.03, 0.03, 0.01],  # Wokingham
    "E06000060": [0.76, 0.05, 0.04, 0.07, 0.02, 0.01, 0.01, 0.03, 0.01],  # Buckinghamshire
    "E06000036": [0.80, 0.06, 0.05, 0.01, 0.02, 0.01, 0.02, 0.03, 0.00],  # Bracknell Forest
    "E06000040": [0.75, 0.07, 0.07, 0.04, 0.01, 0.01, 0.02, 0.03, 0.00],  # Windsor & Maidenhead
}

# household types: probability, composition handled in population.py
HOUSEHOLD_TYPES = {
    "single_working_age": 0.15,
    "single_older": 0.14,
    "couple_no_children": 0.16,
    "couple_older": 0.12,
    "couple_children": 0.20,
    "lone_parent": 0.09,
    "multi_adult": 0.14,
}
P_MOVED = 0.10  # moved house in the 2 years before start (has a previous address)
P_MAIDEN_NAME = 0.55  # married women in couples with a different birth surname
P_DOUBLE_BARRELLED = 0.03  # children given a double-barrelled surname
P_MIDDLE_NAME = 0.45
P_NHS_NUMBER = 0.985  # persons with an NHS number (others: recent arrivals)

# ---------------------------------------------------------------- latent traits
P_DA_HOUSEHOLD = 0.05  # couples/families with domestic abuse (x deprivation multiplier)
P_OFFENDER_ADULT = 0.035  # known offender (has PNC) among adults (x age/sex/deprivation)
P_EXPLOITATION_TEEN = 0.012  # teenagers 12-17 at risk of CCE/CSE/gangs (x deprivation)
PROBATION_SHARE_OF_OFFENDERS = 0.16
MAPPA_SHARE_OF_PROBATION = 0.045
HOTSPOT_LSOAS_PER_LA = 3  # most deprived LSOAs per LA that concentrate serious violence

# relative event rate by IMD decile 1 (most deprived) .. 10
DEPRIVATION_MULTIPLIER = [2.6, 2.1, 1.7, 1.4, 1.15, 1.0, 0.85, 0.75, 0.65, 0.55]

# ---------------------------------------------------------------- events per 1,000 persons per year
EVENT_RATES = {
    "police_domestic_per_da_household": 1.1,  # DA occurrences per DA household per year
    "police_serious_violence": 2.5,  # 5A / 8F / 10D / 34B, young men, hotspots
    "police_other_violence": 20.0,  # 8G / 8N / 8L / 8Q / 9A (non-domestic)
    "police_sexual": 2.5,
    "police_acquisitive": 30.0,  # 28E burglary, 45 vehicle, 49 theft, 58A damage
    "police_drugs": 3.5,
    "police_missing_per_exploited_teen": 2.0,  # missing episodes per at-risk teen per year
    "police_missing_other": 1.5,
    "police_domestic_incident_per_da_household": 1.5,  # non-crime domestic incidents
    "police_incident_asb": 45.0,  # personal anti-social behaviour incidents (non-crime)
    "p_suspect_identified_violence": 0.75,
    "p_suspect_identified_acquisitive": 0.2,
    "p_witness": 0.25,
    "csc_referral_per_child": 0.045,  # baseline referrals per child per year
    "csc_referral_per_da_child": 0.45,  # children in DA households
    "csc_referral_per_exploited_teen": 0.9,
    "csc_p_cp_plan": 0.09,  # referrals leading to a CP plan (x2.5 if DA)
    "asc_s42_per_adult_65_plus": 0.012,
    "asc_s42_per_adult_18_64": 0.0015,
    "ed_attendances_per_person": 0.40,  # ECDS all attendances per person per year
    "ed_p_attend_after_assault_injury": 0.35,  # police violence victims who attend ED
    "streetsafe_reports": 3.0,
}

# ---------------------------------------------------------------- data errors (x error_scale)
ERROR_RATES = {
    #                      police  csc    asc    probation nhs
    "typo_forename": {
        "police": 0.03,
        "childrens_social_care": 0.015,
        "adult_social_care": 0.02,
        "probation": 0.01,
        "nhs": 0.01,
    },
    "typo_surname": {
        "police": 0.04,
        "childrens_social_care": 0.02,
        "adult_social_care": 0.02,
        "probation": 0.01,
        "nhs": 0.01,
    },
    "nickname": {
        "police": 0.12,
        "childrens_social_care": 0.05,
        "adult_social_care": 0.06,
        "probation": 0.08,
        "nhs": 0.02,
    },
    "previous_surname": {
        "police": 0.10,
        "childrens_social_care": 0.05,
        "adult_social_care": 0.15,
        "probation": 0.10,
        "nhs": 0.20,
    },
    "name_swap": {
        "police": 0.02,
        "childrens_social_care": 0.005,
        "adult_social_care": 0.01,
        "probation": 0.005,
        "nhs": 0.002,
    },
    "dob_day_month_swap": {
        "police": 0.03,
        "childrens_social_care": 0.01,
        "adult_social_care": 0.02,
        "probation": 0.01,
        "nhs": 0.003,
    },
    "dob_typo": {
        "police": 0.02,
        "childrens_social_care": 0.01,
        "adult_social_care": 0.01,
        "probation": 0.005,
        "nhs": 0.002,
    },
    "dob_missing": {
        "police": 0.06,
        "childrens_social_care": 0.01,
        "adult_social_care": 0.02,
        "probation": 0.0,
        "nhs": 0.0,
    },
    "old_postcode": {
        "police": 0.30,
        "childrens_social_care": 0.15,
        "adult_social_care": 0.20,
        "probation": 0.25,
        "nhs": 0.35,
    },
    "postcode_missing": {
        "police": 0.10,
        "childrens_social_care": 0.03,
        "adult_social_care": 0.05,
        "probation": 0.05,
        "nhs": 0.01,
    },
    "postcode_format": {
        "police": 0.15,
        "childrens_social_care": 0.05,
        "adult_social_care": 0.10,
        "probation": 0.05,
        "nhs": 0.02,
    },
    "case_whitespace": {
        "police": 0.20,
        "childrens_social_care": 0.05,
        "adult_social_care": 0.10,
        "probation": 0.30,
        "nhs": 0.02,
    },
    "strip_diacritics": {
        "police": 0.60,
        "childrens_social_care": 0.30,
        "adult_social_care": 0.50,
        "probation": 0.70,
        "nhs": 0.20,
    },
    "sex_error": {
        "police": 0.01,
        "childrens_social_care": 0.003,
        "adult_social_care": 0.005,
        "probation": 0.002,
        "nhs": 0.002,
    },
    "duplicate_person": {
        "police": 0.04,
        "childrens_social_care": 0.02,
        "adult_social_care": 0.03,
        "probation": 0.005,
        "nhs": 0.015,
    },
}
# probability that an agency's row carries an identifier the person has (not scaled)
IDENTIFIER_PRESENCE = {
    "police": {"nhs_number": 0.05, "pnc_id_offender_role": 0.9, "pnc_id_other_role": 0.15},
    "childrens_social_care": {"upn_school_age": 0.85, "upn_under_5": 0.15, "nhs_number": 0.3},
    "adult_social_care": {"nhs_number": 0.6},
    "probation": {"pnc_id": 0.93},
    "nhs": {"nhs_number": 0.96},
}
