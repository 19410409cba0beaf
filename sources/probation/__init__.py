"""Probation: caseload snapshots with OASys risk of serious harm and MAPPA (XLSX workbook)."""
from functools import partial

from sources.agency import Agency, Entity
from sources.readers import read_xlsx_text

AGENCY = Agency(
    name="probation",
    title="Probation (caseload, RoSH, MAPPA)",
    entities=(Entity("caseload", ".xlsx", partial(read_xlsx_text, sheet="Caseload"), "caseload snapshot"),),
)
