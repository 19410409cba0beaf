"""Probation contract: caseload snapshot (nDelius-style workbook) with OASys RoSH and MAPPA."""
from sources.contract import Column as C
from sources.contract import Contract

# Excel date cells arrive as "YYYY-MM-DD 00:00:00"; typed text dates are accepted too.
EXCEL_DATE = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%d/%m/%Y")

CASELOAD = Contract(
    agency="probation", entity="caseload", record_id="crn", person_id="crn",
    description="People under probation supervision on the snapshot date in the file name.",
    columns=(
        C("CRN", "crn", required=True, identifier="crn", identifier_hard=True, upper=True, personal=True,
          description="case reference number; also the record id"),
        C("PNC Number", "pnc_id", identifier="pnc_id", upper=True, personal=True),
        C("Surname", "surname", personal=True),
        C("Forename", "forename", personal=True),
        C("Date of Birth", "date_of_birth", "date", formats=EXCEL_DATE, personal=True),
        C("Gender", "gender", codes=("M", "F", "N"), upper=True),
        C("Postcode", "postcode", personal=True),
        C("Sentence Type", "sentence_type", codes=("Community Order", "Suspended Sentence Order", "Licence",
                                                   "Post Sentence Supervision")),
        C("Supervision Start Date", "supervision_start_date", "date", formats=EXCEL_DATE),
        C("OASys RoSH", "rosh", codes=("Low", "Medium", "High", "Very High")),
        C("MAPPA Category", "mappa_category", "int", codes=("1", "2", "3", "4")),
        C("MAPPA Level", "mappa_level", "int", codes=("1", "2", "3")),
        C("Probation Delivery Unit", "probation_delivery_unit"),
    ),
)
