"""Text of the README.md written into every truth folder."""

TRUTH_README = """# Synthetic ground truth (NOT landing data)

Written by `tapestry synth` / `sources.synthetic.generate`. The pipeline never reads this
folder. It says who every synthetic person really is, so linkage, marts and data-quality
checks can be evaluated. Everything here is synthetic: no real person is described.

| file | one row per | columns |
|---|---|---|
| persons.parquet | true person | person_uid, household_id, household_role, forename, middle_names, surname, previous_surname, sex, dob, age_at_start, ethnic_group, address, town, postcode, previous_postcode, previous_address, lsoa_code, la_code, imd_decile, nhs_number, pnc_id, upn, crn, known_offender, da_victim, da_perpetrator, exploitation_risk, on_probation, mappa_nominal |
| households.parquet | household | household_id, household_type, size, address, town, postcode, lsoa_code, la_code, imd_decile, lat, lon, previous_address, previous_postcode, moved_in_date, domestic_abuse |
| records.parquet | person-bearing landing row | agency, file (file name inside the agency folder, e.g. occurrences_2025-01.csv), entity, row_number (1-based data row; for NDJSON the line number), source_record_id, source_person_id, person_uid, event_id, errors (';'-separated corruptions applied, or fault:<kind>) |
| events.parquet | true event for one person | event_id, agency, event_type, code, event_date, lsoa_code, la_code, person_uid, role |
| lsoas.parquet | LSOA used | lsoa_code, lsoa_name, la_code, la_name, lat, lon, population, imd_decile, synthetic |
| faults.json | injected bad delivery | file, kind, rows_affected, description |
| summary.json | - | generation parameters and per-file row counts |

Source record ids per entity (`source_record_id` / `source_person_id`):
police occurrences InvolvementRef / PersonRef; childrens_social_care referrals ReferralID / ChildID,
assessment_factors AssessmentFactorID / ChildID, cp_plans CPPlanID / ChildID; adult_social_care
s42_enquiries EnquiryID / PersonID; probation caseload CRN / CRN; nhs patient Patient.id / Patient.id,
encounter Encounter.id / Patient id of Encounter.subject.

One person may hold two source person ids in the same agency (duplicate registrations):
group records by person_uid to see them. `previous_surname` is a birth (maiden) surname;
`previous_postcode` the address before a move; agencies may still hold either.
"""
