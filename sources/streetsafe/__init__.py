"""StreetSafe: anonymous public reports of places that feel unsafe (no person identifiers)."""
from sources.agency import Agency, Entity
from sources.readers import read_json_records
from sources.streetsafe.contract import REPORTS

AGENCY = Agency(
    name="streetsafe",
    title="StreetSafe (anonymous place reports)",
    entities=(Entity(REPORTS, ".json", read_json_records),),
)
