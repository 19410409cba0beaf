"""Adult social care: Care Act 2014 s42 safeguarding enquiries."""
from sources.adult_social_care.contract import S42_ENQUIRIES
from sources.agency import Agency, Entity
from sources.readers import read_csv_text

AGENCY = Agency(
    name="adult_social_care",
    title="Adult social care (s42 enquiries)",
    entities=(Entity(S42_ENQUIRIES, ".csv", read_csv_text),),
)
