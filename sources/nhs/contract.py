"""NHS contracts over FHIR R4 resources, flattened by sources/nhs/reader.py (column = FHIR path)."""
from sources.contract import Column as C
from sources.contract import Contract

FHIR_INSTANT = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%dT%H:%M:%S")

PATIENT = Contract(
    agency="nhs", entity="patient", record_id="patient_id", person_id="patient_id",
    description="FHIR Patient (UK Core): NHS number, name, birth date, gender, home address.",
    columns=(
        C("resourceType", "resource_type", required=True, codes=("Patient",), codes_hard=True),
        C("id", "patient_id", required=True),
        C("nhs_number", "nhs_number", identifier="nhs_number", personal=True,
          description="identifier with system https://fhir.nhs.uk/Id/nhs-number"),
        C("family", "surname", personal=True),
        C("given", "forename", personal=True, description="first given name"),
        C("middle_names", "middle_names", personal=True, description="other given names, space-separated"),
        C("birthDate", "date_of_birth", "date", formats=("%Y-%m-%d",), personal=True),
        C("gender", "gender", codes=("male", "female", "other", "unknown")),
        C("address_line", "address", personal=True),
        C("city", "city"),
        C("postalCode", "postcode", personal=True),
    ),
)

ENCOUNTER = Contract(
    agency="nhs", entity="encounter", record_id="encounter_id", person_id="patient_id",
    description="FHIR Encounter for emergency care attendances; injury intent, place and assault method "
                "(Cardiff Model) from extensions.",
    columns=(
        C("resourceType", "resource_type", required=True, codes=("Encounter",), codes_hard=True),
        C("id", "encounter_id", required=True),
        C("patient_id", "patient_id", required=True, description="subject.reference without 'Patient/'"),
        C("status", "status", codes=("planned", "arrived", "triaged", "in-progress", "onleave", "finished",
                                     "cancelled", "entered-in-error", "unknown")),
        C("class_code", "class_code"),
        C("period_start", "arrived_at", "datetime", required=True, formats=FHIR_INSTANT),
        C("period_end", "departed_at", "datetime", formats=FHIR_INSTANT),
        C("reason_code", "chief_complaint_code"),
        C("reason_text", "chief_complaint"),
        C("provider_ods", "provider_ods_code"),
        C("injury_intent", "injury_intent", codes=("assault", "self-harm", "accidental", "undetermined")),
        C("injury_place", "injury_place"),
        C("assault_method", "assault_method"),
    ),
)
