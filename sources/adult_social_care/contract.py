"""Adult social care contract: Care Act 2014 s42 safeguarding enquiries (SAC return categories)."""
from sources.contract import Column as C
from sources.contract import Contract

UK_DATE = ("%d/%m/%Y",)
ABUSE_TYPES = ("Physical", "Sexual", "Psychological", "Financial or material", "Discriminatory", "Organisational",
               "Neglect and acts of omission", "Self-neglect", "Domestic abuse", "Sexual exploitation",
               "Modern slavery")
LOCATIONS = ("Own home", "Care home - residential", "Care home - nursing", "Hospital - acute",
             "Hospital - mental health", "Hospital - community", "In the community", "In a community service", "Other")
SOURCES = ("Service provider", "Other - known to individual", "Other - unknown to individual")

S42_ENQUIRIES = Contract(
    agency="adult_social_care", entity="s42_enquiries", record_id="enquiry_id", person_id="person_id",
    description="Section 42 safeguarding enquiries: type and location of abuse, source of risk, outcome.",
    columns=(
        C("EnquiryID", "enquiry_id", required=True),
        C("PersonID", "person_id", required=True),
        C("NHSNumber", "nhs_number", identifier="nhs_number", personal=True),
        C("FirstName", "forename", personal=True),
        C("LastName", "surname", personal=True),
        C("DateOfBirth", "date_of_birth", "date", formats=UK_DATE, personal=True),
        C("Gender", "gender", codes=("MALE", "FEMALE", "UNKNOWN", "OTHER"), upper=True),
        C("Postcode", "postcode", personal=True),
        C("LACode", "la_code", required=True),
        C("EnquiryStartDate", "enquiry_start_date", "date", required=True, formats=UK_DATE),
        C("EnquiryEndDate", "enquiry_end_date", "date", formats=UK_DATE),
        C("TypeOfAbuse", "type_of_abuse", codes=ABUSE_TYPES),
        C("LocationOfRisk", "location_of_risk", codes=LOCATIONS),
        C("SourceOfRisk", "source_of_risk", codes=SOURCES),
        C("RiskOutcome", "risk_outcome"),
    ),
)
