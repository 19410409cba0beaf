"""Police contracts: POLE occurrence extract and the public data.police.uk street-level crime CSV."""
from sources.contract import Column as C
from sources.contract import Contract

# Home Office crime classifications seen in occurrence extracts (code -> offence group);
# unknown codes are kept with a warning (the classification list grows every April).
HO_CLASSES = ("1", "4.1", "4.10", "5A", "5D", "5E", "8F", "8G", "8L", "8M", "8N", "8P", "8Q", "8R", "8S", "9A",
              "10A", "10C", "10D", "17A", "19C", "19D", "20A", "20B", "22A", "28E", "28F", "29", "30A", "34A", "34B",
              "37.1", "39", "44", "45", "48", "49", "53A", "56A", "58A", "58B", "58C", "66", "92A", "92D", "92E", "195")
ETHNICITY_18_PLUS_1 = ("W1", "W2", "W3", "W9", "M1", "M2", "M3", "M9", "A1", "A2", "A3", "A4", "A9", "B1", "B2", "B9",
                       "O1", "O9", "NS")
ROLES = ("VICTIM", "SUSPECT", "OFFENDER", "WITNESS", "MISSING")

OCCURRENCES = Contract(
    agency="police", entity="occurrences", record_id="involvement_ref", person_id="person_ref",
    description="One row per person involved in an occurrence (POLE: person, location, event).",
    columns=(
        C("OccurrenceRef", "occurrence_ref", required=True),
        C("InvolvementRef", "involvement_ref", required=True, description="row id in the records system"),
        C("RecordedDateTime", "recorded_at", "datetime", required=True, formats=("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S")),
        C("OccurrenceType", "occurrence_type", required=True, codes=("CRIME", "INCIDENT", "MISSING"), codes_hard=True,
          upper=True),
        C("HOClassCode", "ho_class_code", codes=HO_CLASSES, upper=True),
        C("HOClassDescription", "ho_class_description"),
        C("DomesticAbuseFlag", "domestic_abuse", "flag"),
        C("KnifeFlag", "knife_or_sharp_instrument", "flag"),
        # where it happened: for a domestic incident, the victim's home; vaulted, raw keeps its LSOA
        C("Latitude", "latitude", "float", personal=True),
        C("Longitude", "longitude", "float", personal=True),
        C("BeatCode", "beat_code"),
        C("LocationDescription", "location_description"),
        C("PersonRole", "person_role", required=True, codes=ROLES, codes_hard=True, upper=True),
        C("PersonRef", "person_ref", required=True, description="the force's nominal id"),
        C("Surname", "surname", personal=True),
        C("Forenames", "forenames", personal=True),
        C("DateOfBirth", "date_of_birth", "date", formats=("%d/%m/%Y",), personal=True),
        C("Gender", "gender", codes=("MALE", "FEMALE", "UNKNOWN"), upper=True),
        C("Address", "address", personal=True),
        C("Postcode", "postcode", personal=True),
        C("PNCId", "pnc_id", identifier="pnc_id", upper=True, personal=True),
        C("NHSNumber", "nhs_number", identifier="nhs_number", personal=True, optional_column=True),
        C("SelfDefinedEthnicity", "self_defined_ethnicity", codes=ETHNICITY_18_PLUS_1, upper=True),
    ),
)

STREET_CRIME_TYPES = ("Anti-social behaviour", "Bicycle theft", "Burglary", "Criminal damage and arson", "Drugs",
                      "Other crime", "Other theft", "Possession of weapons", "Public order", "Robbery", "Shoplifting",
                      "Theft from the person", "Vehicle crime", "Violence and sexual offences")

STREET = Contract(
    agency="police", entity="street", record_id="crime_id", unique_record_id=False,
    description="data.police.uk street-level crime (public, anonymised: no persons; anti-social "
                "behaviour rows have no Crime ID).",
    columns=(
        C("Crime ID", "crime_id"),
        C("Month", "month", "date", required=True, formats=("%Y-%m",)),
        C("Reported by", "reported_by"),
        C("Falls within", "falls_within"),
        C("Longitude", "longitude", "float"),
        C("Latitude", "latitude", "float"),
        C("Location", "location"),
        C("LSOA code", "lsoa_code"),
        C("LSOA name", "lsoa_name"),
        C("Crime type", "crime_type", required=True, codes=STREET_CRIME_TYPES),
        C("Last outcome category", "last_outcome_category"),
        C("Context", "context"),
    ),
)
