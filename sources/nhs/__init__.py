"""NHS: FHIR R4 (UK Core) Bulk Data NDJSON, Patient and emergency-care Encounter resources."""
from sources.agency import Agency, Entity
from sources.readers import read_fhir_ndjson

AGENCY = Agency(
    name="nhs",
    title="NHS (FHIR R4 Patient, Encounter)",
    entities=(
        Entity("patient", ".ndjson", read_fhir_ndjson, "FHIR Patient resources"),
        Entity("encounter", ".ndjson", read_fhir_ndjson, "FHIR Encounter resources (emergency care)"),
    ),
    cadence="0 5 * * *",
)
