"""Children's social care: Children in Need census-style referrals, assessment factors and CP plans."""
from sources.agency import Agency, Entity
from sources.childrens_social_care.contract import ASSESSMENT_FACTORS, CP_PLANS, REFERRALS
from sources.readers import read_csv_text

AGENCY = Agency(
    name="childrens_social_care",
    title="Children's social care (CIN census)",
    entities=tuple(Entity(c, ".csv", read_csv_text) for c in (REFERRALS, ASSESSMENT_FACTORS, CP_PLANS)),
)
