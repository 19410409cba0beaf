"""StreetSafe: anonymous public reports of places that feel unsafe (no person identifiers)."""
from sources.agency import Agency, Entity
from sources.readers import read_json_records

AGENCY = Agency(
    name="streetsafe",
    title="StreetSafe (anonymous place reports)",
    entities=(Entity("reports", ".json", read_json_records, "one row per report"),),
    person_bearing=False,
)
