"""Every agency Tapestry ingests, in one list (add a package, add it here)."""
from sources.adult_social_care import AGENCY as ADULT_SOCIAL_CARE
from sources.agency import Agency
from sources.childrens_social_care import AGENCY as CHILDRENS_SOCIAL_CARE
from sources.nhs import AGENCY as NHS
from sources.police import AGENCY as POLICE
from sources.probation import AGENCY as PROBATION
from sources.streetsafe import AGENCY as STREETSAFE

AGENCIES: tuple[Agency, ...] = (POLICE, CHILDRENS_SOCIAL_CARE, ADULT_SOCIAL_CARE, PROBATION, NHS, STREETSAFE)
BY_NAME = {a.name: a for a in AGENCIES}
