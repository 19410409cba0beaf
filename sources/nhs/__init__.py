"""NHS: FHIR R4 (UK Core) Bulk Data NDJSON, Patient and emergency-care Encounter resources."""
from sources.agency import Agency, Entity
from sources.nhs.contract import ENCOUNTER, PATIENT
from sources.nhs.reader import read_encounters, read_patients

AGENCY = Agency(
    name="nhs",
    title="NHS (FHIR R4 Patient, Encounter)",
    entities=(
        Entity(PATIENT, ".ndjson", read_patients, pattern=r"Patient(_\d.*)?\.ndjson"),
        Entity(ENCOUNTER, ".ndjson", read_encounters, pattern=r"Encounter(_\d.*)?\.ndjson"),
    ),
    cadence="0 5 * * *",
)
