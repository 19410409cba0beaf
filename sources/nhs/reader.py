"""FHIR R4 Bulk Data NDJSON -> flat text columns named as in sources/nhs/contract.py."""
from pathlib import Path

import polars as pl

from sources.readers import read_ndjson_flattened

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
EXTENSION_BASE = "https://fhir.tapestry.example/StructureDefinition/"

PATIENT_COLUMNS = {
    "resourceType": "json->>'resourceType'",
    "id": "json->>'id'",
    "nhs_number": "list_extract(json_extract_string(json, '$.identifier[*].value'), "
                  f"list_position(json_extract_string(json, '$.identifier[*].system'), '{NHS_NUMBER_SYSTEM}'))",
    "family": "json->>'$.name[0].family'",
    "given": "json->>'$.name[0].given[0]'",
    "middle_names": "nullif(array_to_string(list_slice(json_extract_string(json, '$.name[0].given[*]'), 2, NULL), ' '), '')",
    "birthDate": "json->>'birthDate'",
    "gender": "json->>'gender'",
    "address_line": "nullif(array_to_string(json_extract_string(json, '$.address[0].line[*]'), ', '), '')",
    "city": "json->>'$.address[0].city'",
    "postalCode": "json->>'$.address[0].postalCode'",
}


def _extension(name: str) -> str:
    urls = "json_extract_string(json, '$.extension[*].url')"
    values = ("list_transform(json_extract(json, '$.extension[*]'), "
              "e -> coalesce(e->>'$.valueCoding.code', e->>'$.valueString'))")
    return f"list_extract({values}, list_position({urls}, '{EXTENSION_BASE}{name}'))"


ENCOUNTER_COLUMNS = {
    "resourceType": "json->>'resourceType'",
    "id": "json->>'id'",
    "patient_id": "regexp_replace(json->>'$.subject.reference', '^Patient/', '')",
    "status": "json->>'status'",
    "class_code": "json->>'$.class.code'",
    "period_start": "json->>'$.period.start'",
    "period_end": "json->>'$.period.end'",
    "reason_code": "json->>'$.reasonCode[0].coding[0].code'",
    "reason_text": "coalesce(json->>'$.reasonCode[0].text', json->>'$.reasonCode[0].coding[0].display')",
    "provider_ods": "json->>'$.serviceProvider.identifier.value'",
    "injury_intent": _extension("injury-intent"),
    "injury_place": _extension("injury-place"),
    "assault_method": _extension("assault-method"),
}


def read_patients(path: Path) -> pl.DataFrame:
    return read_ndjson_flattened(path, PATIENT_COLUMNS)


def read_encounters(path: Path) -> pl.DataFrame:
    return read_ndjson_flattened(path, ENCOUNTER_COLUMNS)
