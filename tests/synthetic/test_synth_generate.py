"""Synthetic generator: determinism, ground truth, formats, correlations, faults, guards."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from sources import identifiers as ids
from sources.synthetic import generate
from sources.synthetic.extracts import COLUMNS, ID_COLUMNS


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


README = Path(__file__).resolve().parents[2] / "sources" / "synthetic" / "README.md"
AGENCIES = {"police", "childrens_social_care", "adult_social_care", "probation", "nhs", "streetsafe"}


def entity_of(path: Path) -> str:
    """The raw-table naming rule: stem minus a trailing _<token starting with a digit>, lowercased."""
    return re.sub(r"_\d[^_]*$", "", path.stem).lower()


def clean_files(out: Path, faults: list[dict]) -> list[Path]:
    bad = {f["file"] for f in faults}
    return [p for p in sorted(out.rglob("*")) if p.is_file() and str(p.relative_to(out)) not in bad]


# ----------------------------------------------------------------- layout and formats
def test_layout_and_entity_naming(synth):
    out = synth["out"]
    assert {p.name for p in out.iterdir()} == AGENCIES
    entities = {(p.parent.name, entity_of(p)) for p in out.rglob("*") if p.is_file()}
    assert entities == {
        ("police", "occurrences"),
        ("childrens_social_care", "referrals"),
        ("childrens_social_care", "assessment_factors"),
        ("childrens_social_care", "cp_plans"),
        ("adult_social_care", "s42_enquiries"),
        ("probation", "caseload"),
        ("nhs", "patient"),
        ("nhs", "encounter"),
        ("streetsafe", "reports"),
    }
    assert len(list((out / "police").glob("occurrences_????-??.csv"))) == 24
    assert len(list((out / "childrens_social_care").glob("referrals_????-Q?.csv"))) == 8
    assert len(list((out / "probation").glob("caseload_????-??-??.xlsx"))) == 8
    assert not (synth["truth"]).is_relative_to(out)


def _readme_columns() -> dict[tuple[str, str], list[str]]:
    text = README.read_text(encoding="utf-8")
    found = {}
    for m in re.finditer(r"<!-- columns (\w+)/(\w+) -->\n```\n(.*?)\n```", text, re.S):
        found[(m.group(1), m.group(2))] = [c.strip() for c in m.group(3).split("\n") if c.strip()]
    return found


def test_readme_documents_every_column():
    assert _readme_columns() == {k: v for k, v in COLUMNS.items()}


def test_csv_headers_match_contract(synth):
    faults = json.loads((synth["truth"] / "faults.json").read_text())
    for p in clean_files(synth["out"], faults):
        if p.suffix != ".csv":
            continue
        header = p.read_text(encoding="utf-8").splitlines()[0].split(",")
        assert header == COLUMNS[(p.parent.name, entity_of(p))], p.name


def test_csv_value_conventions(synth):
    out = synth["out"]
    pol = pl.read_csv(out / "police" / "occurrences_2025-06.csv", infer_schema_length=0)
    assert pol.height > 0
    assert pol["RecordedDateTime"].str.contains(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$").all()
    assert pol["DateOfBirth"].drop_nulls().str.contains(r"^\d{2}/\d{2}/\d{4}$").all()
    assert set(pol["PersonRole"].unique()) <= {"VICTIM", "SUSPECT", "OFFENDER", "WITNESS", "MISSING"}
    assert set(pol["DomesticAbuseFlag"].unique()) <= {"Y", "N"}
    lat = pol["Latitude"].cast(pl.Float64)
    assert lat.min() > 51.2 and lat.max() < 52.3
    refs = pl.read_csv(out / "childrens_social_care" / "referrals_2025-Q2.csv", infer_schema_length=0)
    assert refs["DateOfBirth"].drop_nulls().str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert set(refs["Gender"].unique()) <= {"0", "1", "2", "9"}
    assert set(refs["LACode"].unique()) <= {
        "E06000036",
        "E06000037",
        "E06000038",
        "E06000039",
        "E06000040",
        "E06000041",
        "E06000042",
        "E06000060",
        "E10000025",
    }


def test_probation_workbook(synth):
    books = sorted((synth["out"] / "probation").glob("caseload_*.xlsx"))
    assert len(books) == 8
    frames = [pl.read_excel(b, sheet_name="Caseload") for b in books]
    assert all(f.columns == COLUMNS[("probation", "caseload")] for f in frames)
    df = max(frames, key=lambda f: f.height)
    assert df.columns == COLUMNS[("probation", "caseload")]
    assert df.height > 0
    assert df["CRN"].map_elements(ids.is_valid_crn, return_dtype=pl.Boolean).all()
    assert set(df["OASys RoSH"].unique()) <= {"Low", "Medium", "High", "Very High"}
    assert set(df["MAPPA Category"].drop_nulls().cast(pl.String).unique()) <= {"1", "2", "3", "4"}


def test_fhir_resources_parse(synth):
    from fhir.resources.R4B.encounter import Encounter
    from fhir.resources.R4B.patient import Patient

    nhs = synth["out"] / "nhs"
    n_pat = n_enc = 0
    for line in (nhs / "Patient_001.ndjson").read_text(encoding="utf-8").splitlines()[:400]:
        p = Patient.model_validate_json(line)
        n_pat += 1
        for ident in p.identifier or []:
            assert ident.system == "https://fhir.nhs.uk/Id/nhs-number"
            assert ids.is_valid_nhs_number(ident.value)
    for line in (nhs / "Encounter_001.ndjson").read_text(encoding="utf-8").splitlines()[:400]:
        e = Encounter.model_validate_json(line)
        n_enc += 1
        assert e.class_fhir.code == "EMER"
        assert e.subject.reference.startswith("Patient/")
    assert n_pat > 50 and n_enc > 50


def test_streetsafe_has_no_person_fields(synth):
    total = 0
    for p in (synth["out"] / "streetsafe").glob("reports_*.json"):
        items = json.loads(p.read_text(encoding="utf-8"))
        total += len(items)
        for it in items:
            assert set(it) == {
                "report_id",
                "submitted_at",
                "latitude",
                "longitude",
                "environmental_reasons",
                "behavioural_reasons",
            }
            assert it["environmental_reasons"] or it["behavioural_reasons"]
    assert total > 0


def test_identifiers_valid_in_clean_files(synth):
    out = synth["out"]
    faults = json.loads((synth["truth"] / "faults.json").read_text())
    checks = {"NHSNumber": ids.is_valid_nhs_number, "PNCId": ids.is_valid_pnc_id, "UPN": ids.is_valid_upn}
    seen = {k: 0 for k in checks}
    for p in clean_files(out, faults):
        if p.suffix != ".csv":
            continue
        df = pl.read_csv(p, infer_schema_length=0)
        for col, fn in checks.items():
            if col in df.columns:
                vals = df[col].drop_nulls().to_list()
                seen[col] += len(vals)
                assert all(fn(v) for v in vals), (p.name, col)
    assert all(v > 0 for v in seen.values()), seen


# ----------------------------------------------------------------- ground truth
def test_every_person_row_traces_to_a_true_person(synth):
    out, truth = synth["out"], synth["truth"]
    rec = pl.read_parquet(truth / "records.parquet")
    persons = pl.read_parquet(truth / "persons.parquet", columns=["person_uid"])
    assert persons.height == synth["summary"]["persons"]
    assert rec["person_uid"].null_count() == 0
    assert rec.join(persons, on="person_uid", how="anti").height == 0
    counts = rec.group_by("agency", "file").agg(pl.len().alias("n"), pl.col("row_number").max().alias("mx"))
    by_file = {f"{r['agency']}/{r['file']}": (r["n"], r["mx"]) for r in counts.iter_rows(named=True)}
    for p in out.rglob("*"):
        rel = str(p.relative_to(out))
        if not p.is_file() or rel.startswith("streetsafe/") or p.stat().st_size == 0:
            continue
        if p.suffix == ".csv":
            try:
                n = pl.read_csv(p, infer_schema_length=0).height
            except Exception:  # the cp1252 fault file
                n = pl.read_csv(p, infer_schema_length=0, encoding="utf8-lossy").height
        elif p.suffix == ".ndjson":
            n = len(p.read_bytes().splitlines())
        else:
            n = pl.read_excel(p, sheet_name="Caseload").height
        if n == 0:
            assert rel not in by_file
            continue
        assert by_file[rel] == (n, n), rel


def test_record_ids_match_extract_columns(synth):
    out, truth = synth["out"], synth["truth"]
    rec = pl.read_parquet(truth / "records.parquet")
    for rel, col in [
        ("police/occurrences_2025-01.csv", "InvolvementRef"),
        ("childrens_social_care/referrals_2025-Q1.csv", "ReferralID"),
        ("adult_social_care/s42_enquiries_2025-Q3.csv", "EnquiryID"),
    ]:
        df = pl.read_csv(out / rel, infer_schema_length=0)
        got = rec.filter(pl.col("file") == rel.split("/")[1]).sort("row_number")["source_record_id"].to_list()
        assert got == df[col].to_list()
    assert set(ID_COLUMNS) >= set(COLUMNS)


def test_records_link_to_events_and_names_are_mostly_right(synth):
    out, truth = synth["out"], synth["truth"]
    rec = pl.read_parquet(truth / "records.parquet").filter(pl.col("file") == "referrals_2025-Q2.csv")
    persons = pl.read_parquet(truth / "persons.parquet")
    df = pl.read_csv(out / "childrens_social_care" / "referrals_2025-Q2.csv", infer_schema_length=0)
    joined = df.with_columns(person_uid=rec.sort("row_number")["person_uid"]).join(persons, on="person_uid")
    same = (joined["Surname"] == joined["surname"]).mean()
    assert 0.75 < same < 1.0  # noisy but mostly right
    events = pl.read_parquet(truth / "events.parquet")
    assert rec["event_id"].drop_nulls().is_in(events["event_id"].implode()).all()


def test_duplicate_person_ids_within_a_source(synth):
    rec = pl.read_parquet(synth["truth"] / "records.parquet").filter(pl.col("agency") == "police")
    per_person = rec.group_by("person_uid").agg(pl.col("source_person_id").n_unique().alias("ids"))
    assert per_person.filter(pl.col("ids") > 1).height > 0


def test_population_shape(synth):
    p = pl.read_parquet(synth["truth"] / "persons.parquet")
    age = p["age_at_start"]
    assert 0.17 < (age < 18).mean() < 0.28
    assert 0.12 < (age >= 65).mean() < 0.24
    assert 0.47 < (p["sex"] == "F").mean() < 0.55
    assert 0.55 < (p["ethnic_group"] == "white_british").mean() < 0.85
    assert p["lsoa_code"].str.starts_with("E019").all()
    assert p["nhs_number"].drop_nulls().map_elements(ids.is_valid_nhs_number, return_dtype=pl.Boolean).all()
    assert p["upn"].drop_nulls().map_elements(ids.is_valid_upn, return_dtype=pl.Boolean).all()
    assert p["pnc_id"].drop_nulls().map_elements(ids.is_valid_pnc_id, return_dtype=pl.Boolean).all()
    assert p.filter(pl.col("mappa_nominal") & ~pl.col("on_probation")).height == 0
    assert p.filter(pl.col("on_probation"))["crn"].null_count() == 0
    # households share address and postcode; each postcode sits in one LSOA
    assert p.group_by("household_id").agg(pl.col("postcode").n_unique()).filter(pl.col("postcode") > 1).height == 0
    lsoas = pl.read_parquet(synth["truth"] / "lsoas.parquet")
    assert lsoas["lsoa_code"].str.contains(r"^E019\d{5}$").all()
    assert p.group_by("postcode").agg(pl.col("lsoa_code").n_unique()).filter(pl.col("lsoa_code") > 1).height == 0


# ----------------------------------------------------------------- correlations
def test_domestic_abuse_households_correlate_with_referrals(synth):
    truth = synth["truth"]
    p = pl.read_parquet(truth / "persons.parquet", columns=["person_uid", "household_id", "age_at_start"])
    ev = pl.read_parquet(truth / "events.parquet").join(p, on="person_uid")
    da_hh = set(
        ev.filter(
            (pl.col("event_type") == "police_involvement")
            & pl.col("code").is_in(["8N", "8G", "8R", "8L", "5A", "58A", "8Q", "9A", "INC-DOM"])
        ).join(pl.read_parquet(truth / "households.parquet").filter("domestic_abuse"), on="household_id")[
            "household_id"
        ]
    )
    ref_hh = set(
        ev.filter((pl.col("event_type") == "csc_assessment_factor") & pl.col("code").is_in(["3A", "3B", "3C"]))[
            "household_id"
        ]
    )
    kids_hh = set(p.filter(pl.col("age_at_start") < 18)["household_id"])
    assert da_hh and ref_hh
    rate_da = len(ref_hh & da_hh) / max(1, len(da_hh & kids_hh))
    rate_other = len(ref_hh - da_hh) / max(1, len(kids_hh - da_hh))
    assert rate_da > 5 * rate_other
    # victim and suspect of domestic occurrences share a household
    rec = pl.read_parquet(truth / "records.parquet").filter(pl.col("agency") == "police")
    pol = pl.concat(
        [
            pl.read_csv(f, infer_schema_length=0).select(
                "OccurrenceRef", "InvolvementRef", "PersonRole", "DomesticAbuseFlag"
            )
            for f in sorted((synth["out"] / "police").glob("occurrences_????-??.csv"))
        ]
    )
    pol = pol.join(
        rec.select(pl.col("source_record_id").alias("InvolvementRef"), "person_uid"), on="InvolvementRef"
    ).join(p, on="person_uid")
    da = pol.filter((pl.col("DomesticAbuseFlag") == "Y") & pl.col("PersonRole").is_in(["VICTIM", "SUSPECT"]))
    per_occ = da.group_by("OccurrenceRef").agg(pl.col("household_id").n_unique().alias("h"), pl.len().alias("n"))
    pairs = per_occ.filter(pl.col("n") == 2)
    assert pairs.height > 5 and (pairs["h"] == 1).all()


def test_serious_violence_skews_to_young_men(synth):
    truth = synth["truth"]
    p = pl.read_parquet(truth / "persons.parquet", columns=["person_uid", "sex", "age_at_start"])
    ev = (
        pl.read_parquet(truth / "events.parquet")
        .filter((pl.col("event_type") == "police_involvement") & pl.col("code").is_in(["5A", "8F", "10D", "34B"]))
        .join(p, on="person_uid")
    )
    young_men = (pl.col("sex") == "M") & pl.col("age_at_start").is_between(13, 24)
    share_events = ev.select(young_men.mean()).item()
    share_pop = p.select(young_men.mean()).item()
    assert ev.height > 10
    assert share_events > 3 * share_pop


def test_s42_mostly_older_adults(synth):
    truth = synth["truth"]
    p = pl.read_parquet(truth / "persons.parquet", columns=["person_uid", "age_at_start"])
    ev = (
        pl.read_parquet(truth / "events.parquet").filter(pl.col("event_type") == "s42_enquiry").join(p, on="person_uid")
    )
    assert ev.height > 5
    assert ev["age_at_start"].min() >= 18
    assert (ev["age_at_start"] >= 65).mean() > 0.5


# ----------------------------------------------------------------- faults
def test_faults_present_as_documented(synth):
    out = synth["out"]
    faults = json.loads((synth["truth"] / "faults.json").read_text())
    kinds = {f["kind"] for f in faults}
    assert kinds == {
        "wrong_encoding",
        "missing_column",
        "invalid_check_digit",
        "duplicate_delivery",
        "unparseable_dates",
        "empty_file",
        "truncated_ndjson",
    }
    assert synth["summary"]["faults_injected"] == len(faults)
    for f in faults:
        p = out / f["file"]
        assert p.exists(), f["file"]
        assert entity_of(p) in {"occurrences", "referrals", "cp_plans", "patient", "encounter"}
        raw = p.read_bytes()
        if f["kind"] == "wrong_encoding":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
        elif f["kind"] == "missing_column":
            assert "DateOfBirth" not in raw.decode().splitlines()[0].split(",")
        elif f["kind"] == "empty_file":
            assert raw == b""
        elif f["kind"] == "duplicate_delivery":
            original = out / f["file"].replace("-resend", "")
            assert raw == original.read_bytes()
        elif f["kind"] == "truncated_ndjson":
            lines = raw.decode().split("\n")
            json.loads(lines[0])
            with pytest.raises(json.JSONDecodeError):
                json.loads(lines[-1])
        elif f["kind"] == "unparseable_dates":
            df = pl.read_csv(p, infer_schema_length=0)
            parsed = df["DateOfBirth"].str.strptime(pl.Date, "%Y-%m-%d", strict=False)
            assert parsed.null_count() >= f["rows_affected"] > 0
        elif f["kind"] == "invalid_check_digit":
            if p.suffix == ".csv":
                df = pl.read_csv(p, infer_schema_length=0)
                col = "PNCId" if "PNCId" in df.columns else "UPN"
                fn = ids.is_valid_pnc_id if col == "PNCId" else ids.is_valid_upn
                assert not any(fn(v) for v in df[col].to_list())
            else:
                for line in raw.decode().splitlines():
                    assert not ids.is_valid_nhs_number(json.loads(line)["identifier"][0]["value"])


def test_progress_has_no_personal_data(synth):
    msgs = synth["messages"]
    assert any(m.startswith("persons ") for m in msgs)
    p = pl.read_parquet(synth["truth"] / "persons.parquet", columns=["surname", "postcode"])
    text = "\n".join(msgs)
    assert not any(s in text for s in p["surname"].unique().to_list() if len(s) > 3)
    assert not any(pc in text for pc in p["postcode"].unique().to_list())


# ----------------------------------------------------------------- determinism and guards
def test_deterministic_and_seed_sensitive(tmp_path):
    a = generate(600, 7, tmp_path / "a", inject_faults=True)
    b = generate(600, 7, tmp_path / "b", inject_faults=True)
    generate(600, 8, tmp_path / "c", inject_faults=True)
    ha, hb, hc = tree_hashes(tmp_path / "a"), tree_hashes(tmp_path / "b"), tree_hashes(tmp_path / "c")
    assert ha == hb
    assert tree_hashes(tmp_path / "a_truth") == tree_hashes(tmp_path / "b_truth")
    assert ha != hc
    clean = {k: v for k, v in ha.items() if "-resend" not in k}
    assert len(set(clean.values())) == len(clean)  # no two deliveries are byte-identical by accident
    assert a["files"] == b["files"]


def test_refuses_truth_inside_out_and_busy_folders(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        generate(50, 1, tmp_path / "land", truth=tmp_path / "land" / "truth")
    generate(50, 1, tmp_path / "land")
    with pytest.raises(ValueError, match="already holds files"):
        generate(50, 1, tmp_path / "land")
    s = generate(60, 2, tmp_path / "land", overwrite=True)
    assert s["persons"] == 60
    assert pl.read_parquet(tmp_path / "land_truth" / "persons.parquet").height == 60


def test_error_scale_zero_gives_clean_names(tmp_path):
    generate(1500, 3, tmp_path / "z", error_scale=0.0)
    truth = tmp_path / "z_truth"
    rec = pl.read_parquet(truth / "records.parquet")
    assert (rec["errors"] == "").all()
    per_src = (
        rec.filter(pl.col("agency") != "probation")
        .group_by("agency", "person_uid")
        .agg(pl.col("source_person_id").n_unique())
    )
    assert (per_src["source_person_id"] == 1).all()


@pytest.mark.skipif(
    not Path("/work/shared/data/geography/lsoa21").is_dir()
    and not (Path(__file__).resolve().parents[3] / "shared" / "data").is_dir(),
    reason="shared public data not available",
)
def test_real_geography_mode(tmp_path):
    data = Path("/work/shared/data")
    if not data.is_dir():
        data = Path(__file__).resolve().parents[3] / "shared" / "data"
    s = generate(1500, 5, tmp_path / "r", geography=data)
    assert s["geography"] == "real"
    p = pl.read_parquet(tmp_path / "r_truth" / "persons.parquet")
    codes = set()
    for f in (data / "geography" / "lsoa21").glob("*.geojson"):
        codes |= set(re.findall(r'"LSOA21CD": "(E01\d{6})"', f.read_text()))
    assert set(p["lsoa_code"].unique()) <= codes
    lsoas = pl.read_parquet(tmp_path / "r_truth" / "lsoas.parquet")
    assert lsoas["imd_decile"].is_between(1, 10).all() and lsoas["imd_decile"].n_unique() >= 8
    # deprived areas generate more police events per head than affluent ones
    ev = pl.read_parquet(tmp_path / "r_truth" / "events.parquet").filter(pl.col("agency") == "police")
    lsoa_dec = lsoas.select("lsoa_code", "imd_decile")
    per_head = (
        p.join(lsoa_dec, on="lsoa_code")
        .group_by(pl.col("imd_decile") <= 3)
        .len()
        .join(ev.join(lsoa_dec, on="lsoa_code").group_by(pl.col("imd_decile") <= 3).len(), on="imd_decile")
    )
    rates = {r["imd_decile"]: r["len_right"] / r["len"] for r in per_head.iter_rows(named=True)}
    assert rates[True] > rates[False]


def test_incomplete_geography_folder_names_missing_file(tmp_path):
    (tmp_path / "geo" / "geography").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="lsoa21"):
        generate(10, 1, tmp_path / "g", geography=tmp_path / "geo")


def test_ndjson_parts_split_and_records_follow(tmp_path, monkeypatch):
    from sources.synthetic import generator

    monkeypatch.setattr(generator, "NDJSON_PART_LINES", 300)
    monkeypatch.setattr(generator, "CHUNK_PERSONS", 400)  # several chunks, so parts continue across chunks
    generate(1000, 11, tmp_path / "p")
    nhs = tmp_path / "p" / "nhs"
    parts = sorted(nhs.glob("Encounter_*.ndjson"))
    assert len(parts) >= 3 and [p.name for p in parts][:2] == ["Encounter_001.ndjson", "Encounter_002.ndjson"]
    assert all(len(p.read_bytes().splitlines()) <= 300 for p in parts)
    rec = pl.read_parquet(tmp_path / "p_truth" / "records.parquet").filter(pl.col("entity") == "encounter")
    for p in parts:
        lines = p.read_text(encoding="utf-8").splitlines()
        got = rec.filter(pl.col("file") == p.name).sort("row_number")
        assert got["row_number"].to_list() == list(range(1, len(lines) + 1))
        assert got["source_record_id"].to_list() == [json.loads(x)["id"] for x in lines]
    # encounter subjects all resolve to a Patient resource
    pats = {json.loads(x)["id"] for p in nhs.glob("Patient_*.ndjson") for x in p.read_text().splitlines()}
    subj = {json.loads(x)["subject"]["reference"].split("/")[1] for p in parts for x in p.read_text().splitlines()}
    assert subj <= pats
    # persons and households are unique across chunks
    persons = pl.read_parquet(tmp_path / "p_truth" / "persons.parquet")
    assert persons["person_uid"].n_unique() == 1000
    assert persons["nhs_number"].drop_nulls().is_unique().all()
    hh = pl.read_parquet(tmp_path / "p_truth" / "households.parquet")
    assert hh["household_id"].is_unique().all() and hh["size"].sum() == 1000


def test_deterministic_across_processes(tmp_path):
    """Byte-identical output in a fresh interpreter with another hash seed (no set/dict-order leaks)."""
    import os
    import subprocess
    import sys

    generate(500, 21, tmp_path / "here", inject_faults=True)
    code = (
        "import sys; from pathlib import Path; from sources.synthetic import generate; "
        "generate(500, 21, Path(sys.argv[1]), inject_faults=True)"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], check=True, cwd=root, env=env)
    assert tree_hashes(tmp_path / "here") == tree_hashes(tmp_path / "there")
    assert tree_hashes(tmp_path / "here_truth") == tree_hashes(tmp_path / "there_truth")
