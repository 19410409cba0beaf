"""Children's social care: Children in Need census-style referrals, assessment factors and CP plans."""
from sources.agency import Agency, Entity
from sources.readers import read_csv_text

AGENCY = Agency(
    name="childrens_social_care",
    title="Children's social care (CIN census)",
    entities=(
        Entity("referrals", ".csv", read_csv_text, "referrals with source code"),
        Entity("assessment_factors", ".csv", read_csv_text, "factors identified at assessment"),
        Entity("cp_plans", ".csv", read_csv_text, "child protection plans and category"),
    ),
)
