"""Thames Valley Police: POLE-style occurrence extracts (one row per person involvement)."""
from sources.agency import Agency, Entity
from sources.readers import read_csv_text

AGENCY = Agency(
    name="police",
    title="Police (occurrences, POLE model)",
    entities=(Entity("occurrences", ".csv", read_csv_text, "one row per person involved in an occurrence"),),
    cadence="0 6 * * *",
)
