"""StreetSafe contract: anonymous place reports (no person identifiers)."""
from sources.contract import Column as C
from sources.contract import Contract

ENVIRONMENTAL = ("Badly lit", "Absence of CCTV", "Isolated area", "Overgrown vegetation", "Graffiti or vandalism",
                 "Litter and rubbish", "Empty or derelict buildings", "Underpass or alleyway",
                 "No visible security or staff")
BEHAVIOURAL = ("Verbal harassment", "Being followed", "Groups loitering", "Drug dealing or use",
               "Anti-social behaviour", "Drunk people", "Sexual harassment", "Physical intimidation", "Catcalling")

REPORTS = Contract(
    agency="streetsafe", entity="reports", record_id="report_id",
    description="A map pin with the time and the environmental / behavioural reasons a place felt unsafe.",
    columns=(
        C("report_id", "report_id", required=True),
        C("submitted_at", "submitted_at", "datetime", required=True,
          formats=("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.fZ")),
        C("latitude", "latitude", "float", required=True),
        C("longitude", "longitude", "float", required=True),
        C("environmental_reasons", "environmental_reasons", "list", codes=ENVIRONMENTAL, optional_column=True),
        C("behavioural_reasons", "behavioural_reasons", "list", codes=BEHAVIOURAL, optional_column=True),
    ),
)
