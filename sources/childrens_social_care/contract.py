"""Children's social care contracts (Children in Need census conventions; dates YYYY-MM-DD)."""
from sources.contract import Column as C
from sources.contract import Contract

ISO = ("%Y-%m-%d",)
GENDER = ("0", "1", "2", "9")  # CIN: not known, male, female, not specified
ETHNICITY = ("WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND", "APKN", "ABAN", "AOTH",
             "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT")
REFERRAL_SOURCES = ("1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F", "4", "5A", "5B", "5C",
                    "5D", "6", "7", "8", "9", "10")
PRIMARY_NEED = tuple(f"N{i}" for i in range(0, 10))
FACTORS = ("1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B", "3C", "4A", "4B", "4C", "5A", "5B", "5C", "6A", "6B",
           "6C", "7A", "8B", "8C", "8D", "8E", "8F", "9A", "10A", "11A", "12A", "13A", "14A", "15A", "16A", "17A",
           "18A", "18B", "18C", "19A", "19B", "19C", "20", "21", "22A", "23A", "24A")
CP_CATEGORIES = ("NEG", "PHY", "SAB", "EMO", "MUL")


def _child():
    return (
        C("ChildID", "child_id", required=True, description="the local authority's case id"),
        C("UPN", "upn", identifier="upn", upper=True, personal=True),
    )


REFERRALS = Contract(
    agency="childrens_social_care", entity="referrals", record_id="referral_id", person_id="child_id",
    description="Referrals to children's social care with their source (CIN census).",
    columns=(
        C("ReferralID", "referral_id", required=True),
        *_child(),
        C("Forename", "forename", personal=True),
        C("Surname", "surname", personal=True),
        C("DateOfBirth", "date_of_birth", "date", formats=ISO, personal=True),
        C("Gender", "gender", codes=GENDER),
        C("Ethnicity", "ethnicity", codes=ETHNICITY, upper=True),
        C("Postcode", "postcode", personal=True),
        C("LACode", "la_code", required=True),
        C("ReferralDate", "referral_date", "date", required=True, formats=ISO),
        C("ReferralSource", "referral_source", codes=REFERRAL_SOURCES, upper=True),
        C("PrimaryNeedCode", "primary_need_code", codes=PRIMARY_NEED, upper=True),
        C("NHSNumber", "nhs_number", identifier="nhs_number", personal=True, optional_column=True),
    ),
)

ASSESSMENT_FACTORS = Contract(
    agency="childrens_social_care", entity="assessment_factors", record_id="assessment_factor_id",
    person_id="child_id",
    description="One row per factor identified at the end of a child and family assessment.",
    columns=(
        C("AssessmentFactorID", "assessment_factor_id", required=True),
        C("AssessmentID", "assessment_id", required=True),
        C("ReferralID", "referral_id", key=True),
        *_child(),
        C("LACode", "la_code", required=True),
        C("AssessmentActualStartDate", "assessment_start_date", "date", required=True, formats=ISO),
        C("AssessmentAuthorisationDate", "assessment_authorisation_date", "date", formats=ISO),
        C("FactorCode", "factor_code", required=True, codes=FACTORS, upper=True),
        C("FactorDescription", "factor_description"),
    ),
)

CP_PLANS = Contract(
    agency="childrens_social_care", entity="cp_plans", record_id="cp_plan_id", person_id="child_id",
    description="Child protection plans with the initial category of abuse.",
    columns=(
        C("CPPlanID", "cp_plan_id", required=True),
        *_child(),
        C("Forename", "forename", personal=True),
        C("Surname", "surname", personal=True),
        C("DateOfBirth", "date_of_birth", "date", formats=ISO, personal=True),
        C("Gender", "gender", codes=GENDER),
        C("Postcode", "postcode", personal=True),
        C("LACode", "la_code", required=True),
        C("ReferralID", "referral_id", key=True),
        C("CPPlanStartDate", "cp_plan_start_date", "date", required=True, formats=ISO),
        C("CPPlanEndDate", "cp_plan_end_date", "date", formats=ISO),
        C("InitialCategoryOfAbuse", "initial_category_of_abuse", required=True, codes=CP_CATEGORIES, upper=True),
    ),
)
