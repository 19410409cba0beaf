"""Probation: caseload snapshots with OASys risk of serious harm and MAPPA (XLSX workbook)."""
from functools import partial

from sources.agency import Agency, Entity
from sources.probation.contract import CASELOAD
from sources.readers import read_xlsx_text

AGENCY = Agency(
    name="probation",
    title="Probation (caseload, RoSH, MAPPA)",
    entities=(Entity(CASELOAD, ".xlsx", partial(read_xlsx_text, sheet="Caseload")),),
)
