"""Police: POLE-style occurrence extracts, and the public data.police.uk street-level crime CSV."""
from sources.agency import Agency, Entity
from sources.police.contract import OCCURRENCES, STREET
from sources.readers import read_csv_text

AGENCY = Agency(
    name="police",
    title="Police (occurrences, POLE model; data.police.uk street-level crime)",
    entities=(
        Entity(OCCURRENCES, ".csv", read_csv_text),
        # data.police.uk monthly download, e.g. 2018-10-thames-valley-street.csv
        Entity(STREET, ".csv", read_csv_text, pattern=r"\d{4}-\d{2}-[a-z0-9-]+-street\.csv"),
    ),
    cadence="0 6 * * *",
)
