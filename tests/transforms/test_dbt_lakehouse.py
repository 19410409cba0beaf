"""dbt against a real (small) lakehouse: one generated population loaded by the pipeline, with
one delivery superseded, shared by every test of this module; one `transform` run over it."""
import json
import re
import shutil

import dagster as dg
import polars as pl
import pytest

from orchestration.dbt_project import TRANSFORMS_DIR, legal_gateways, run_dbt
from sources.registry import AGENCIES, BY_NAME
from tapestry import lakehouse

PERSONS = 400
MONTHS = 12  # with SEED, every event source has rows
SEED = 1
EVENT_TABLES = [e.contract.table for a in AGENCIES for e in a.entities if e.contract.table != "raw.nhs__patient"]
NO_PERSONS = ("raw.police__street", "raw.streetsafe__reports")


def _create_person_record_if_absent(con) -> None:
    """linked.person_record as the linkage writes it, for a lake where linkage has not run:
    one person per agency person key (the record itself when it is the person)."""
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'linked' "
                   "AND table_name = 'person_record'").fetchone()[0]:
        return
    parts = []
    for agency in AGENCIES:
        for entity in agency.entities:
            if not entity.contract.person_bearing:
                continue
            person = "person_key" if "person_key" in entity.contract.key_columns().values() else "record_key"
            parts.append(f"SELECT DISTINCT record_key, '{agency.name}' AS agency, '{entity.name}' AS entity, "
                         f"'p_' || {person} AS person_id, 1.0::DOUBLE AS match_confidence, 'fixture' AS run_id "
                         f"FROM {entity.contract.table}")
    con.execute("CREATE TABLE linked.person_record AS " + " UNION ALL ".join(parts))


@pytest.fixture(scope="module")
def lake(tmp_path_factory, dbt_manifest):
    """Settings of a lakehouse with PERSONS generated persons (and their reference geography)
    loaded and linked by the pipeline, then one police delivery superseded by a corrected file of
    the same name (one row fewer). The pipeline's own dbt and later jobs are left to the tests."""
    from orchestration import run
    from sources.landing import land_agency
    from sources.synthetic import generate
    from tapestry.config import Settings

    base = tmp_path_factory.mktemp("dbt_lake")
    patch = pytest.MonkeyPatch()
    patch.setenv("TAPESTRY_HOME", str(base / "home"))
    patch.setenv("TAPESTRY_SECRETS", str(base / "secrets"))
    for name in ("TAPESTRY_LANDING", "TAPESTRY_CATALOG", "TAPESTRY_CATALOG_PATH", "TAPESTRY_DATA_PATH",
                 "TAPESTRY_POSTGRES_DSN", "TAPESTRY_TRUTH"):
        patch.delenv(name, raising=False)
    settings = Settings.from_env()
    patch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    if "transform" in run.DOWNSTREAM_JOBS:
        patch.setattr(run, "DOWNSTREAM_JOBS", run.DOWNSTREAM_JOBS[:run.DOWNSTREAM_JOBS.index("transform")])
    try:
        generate(PERSONS, SEED, settings.landing, months=MONTHS, write_reference=True)
        police = sorted((settings.landing / "police").glob("occurrences_*.csv"), key=lambda p: p.stat().st_size)[-1]
        kept = shutil.copyfile(police, base / police.name)
        assert run.run_all(settings) == 0
        corrected = kept.read_text().splitlines(keepends=True)[:-1]  # the agency withdraws one row
        police.write_text("".join(corrected))
        with lakehouse.connect(settings) as con:
            [result] = land_agency(con, BY_NAME["police"], settings, "run-supersede")
            assert result.status == "loaded" and result.superseded
            _create_person_record_if_absent(con)
        yield settings
    finally:
        patch.undo()


# the models and seeds of this project part: staging, intermediate (marts build on them)
OURS = [p.stem for folder in ("models/staging", "models/intermediate", "seeds")
        for p in (TRANSFORMS_DIR / folder).glob("*") if p.suffix in (".sql", ".csv")]


@pytest.fixture(scope="module")
def transform_run(lake):
    """One in-process run of the `transform` job over the staging and intermediate models
    (`dbt build` of them, their seeds and their tests)."""
    from orchestration.definitions import defs

    with dg.DagsterInstance.get() as instance:
        return defs.resolve_job_def("transform").execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=[dg.AssetKey(["staging", n]) for n in OURS])


def _rows(settings, sql: str, params=None) -> pl.DataFrame:
    with lakehouse.connect(settings, read_only=True) as con:
        return con.sql(sql, params=params).pl()


def test_transform_job_builds_every_model_into_the_staging_zone(lake, transform_run):
    assert transform_run.success
    materialised = {e.asset_key for e in transform_run.get_asset_materialization_events()}
    models = {dg.AssetKey(["staging", name]) for name in OURS}
    assert models == materialised
    checks = transform_run.get_asset_check_evaluations()
    assert len(checks) > 50 and [c.check_name for c in checks if not c.passed] == []
    objects = _rows(lake, "SELECT schema_name, table_name AS name, 'table' AS kind FROM duckdb_tables() "
                          "WHERE database_name = 'lake' UNION ALL SELECT schema_name, view_name, 'view' "
                          "FROM duckdb_views() WHERE database_name = 'lake' AND NOT internal")
    staging = {(n, k) for s, n, k in objects.iter_rows() if s == "staging"}
    assert {(k.path[1], "view") for k in models if k.path[1].startswith("stg_")} <= staging
    assert ("int_events", "table") in staging
    assert not [s for s in objects["schema_name"].unique() if s.startswith("main")]  # zones, not main_staging
    # int_events lives in Parquet under the data path, not inlined in the catalog database
    files = _rows(lake, "SELECT count(*) AS n FROM ducklake_list_files('lake', 'int_events', schema => 'staging')")
    assert files["n"][0] >= 1
    # the run's lakehouse snapshot is recorded per model: time travel shows what it built
    recorded = _rows(lake, "SELECT asset_key, snapshot_id FROM audit.run_snapshots WHERE run_id = ?",
                     [transform_run.run_id])
    assert set(recorded["asset_key"]) == {k.to_user_string() for k in materialised}
    snapshot = recorded.filter(pl.col("asset_key") == "staging/int_events")["snapshot_id"][0]
    assert _rows(lake, f"SELECT count(*) AS n FROM staging.int_events AT (VERSION => {snapshot})")["n"][0] == \
        _rows(lake, "SELECT count(*) AS n FROM staging.int_events")["n"][0] > 0


def test_int_events_has_every_current_raw_row_once_and_no_superseded_one(lake, transform_run):
    current = " UNION ALL ".join(
        f"SELECT '{t.split('.')[1].split('__')[0]}' AS agency, '{t.split('__')[1]}' AS entity, count(*) AS n "
        f"FROM {t} WHERE _delivery_id IN (SELECT delivery_id FROM raw.current_deliveries)" for t in EVENT_TABLES)
    expected = _rows(lake, f"SELECT agency, sum(n)::BIGINT AS n FROM ({current}) GROUP BY ALL ORDER BY agency")
    actual = _rows(lake, "SELECT agency, count(*) AS n FROM staging.int_events GROUP BY ALL ORDER BY agency")
    assert expected.filter(pl.col("n") > 0).to_dicts() == actual.to_dicts()
    assert {"police", "childrens_social_care", "adult_social_care", "probation", "nhs", "streetsafe"} == \
        set(actual["agency"])
    superseded = _rows(lake, "SELECT d.delivery_id, count(o.record_key) AS raw_rows FROM raw.deliveries d "
                             "JOIN raw.police__occurrences o ON o._delivery_id = d.delivery_id "
                             "WHERE d.status = 'superseded' GROUP BY ALL")
    assert superseded.height == 1 and superseded["raw_rows"][0] > 0  # raw keeps it ...
    assert _rows(lake, "SELECT count(*) AS n FROM staging.int_events WHERE delivery_id = ?",
                 [superseded["delivery_id"][0]])["n"][0] == 0  # ... events do not count it
    assert _rows(lake, "SELECT count(*) - count(DISTINCT event_id) AS n FROM staging.int_events")["n"][0] == 0


def test_int_events_are_linked_to_persons_and_cite_the_policy_gateway(lake, transform_run):
    events = _rows(lake, "SELECT agency, entity, person_id, person_role, legal_gateway, event_type, lsoa_code, "
                         "residence_lsoa_code FROM staging.int_events")
    person_bearing = events.filter(~pl.col("entity").is_in(["street"]) & (pl.col("agency") != "streetsafe"))
    assert person_bearing["person_id"].null_count() == 0
    assert events.filter(pl.col("agency") == "streetsafe")["person_id"].null_count() == \
        events.filter(pl.col("agency") == "streetsafe").height
    gateways = {agency: grant["gateway"] for agency, grant in legal_gateways().items()}
    assert dict(events.select("agency", "legal_gateway").unique().iter_rows()) == \
        {a: gateways[a] for a in events["agency"].unique()}
    police = events.filter(pl.col("agency") == "police")
    assert {"victim", "suspect"} <= set(police["person_role"])
    # with reference geography loaded, ingestion placed events and homes in LSOAs
    assert police["lsoa_code"].null_count() < police.height and police["residence_lsoa_code"].null_count() < police.height
    assert events.filter(pl.col("agency") == "nhs")["residence_lsoa_code"].null_count() < \
        events.filter(pl.col("agency") == "nhs").height
    assert set(police["event_type"]) & {"violent_crime", "domestic_abuse", "knife_crime"}


def test_no_identifier_columns_flags_identifier_names_only(lake, transform_run):
    with lakehouse.connect(lake) as con:
        con.execute("CREATE TABLE staging.identifier_probe (record_key VARCHAR, child_date_of_birth DATE, "
                    "\"Surname\" VARCHAR, postcode VARCHAR, postcode_district VARCHAR, residence_lsoa_code VARCHAR, "
                    "nhs_number_hash VARCHAR, person_id VARCHAR, birth_year INTEGER, upnorth VARCHAR)")
    try:
        probe = "api.Relation.create(database='lake', schema='staging', identifier='identifier_probe')"
        result = run_dbt(["show", "--inline", f"{{{{ test_no_identifier_columns({probe}) }}}}", "--output", "json",
                          "--log-format", "json", "--quiet"], settings=lake, capture=True)
        assert result.returncode == 0, result.stdout[-3000:]
        preview = next(json.loads(line)["data"]["preview"] for line in result.stdout.splitlines()
                       if '"preview"' in line)
        flagged = {row["column_name"] for row in json.loads(preview)}
        assert flagged == {"child_date_of_birth", "Surname", "postcode", "nhs_number_hash"}
    finally:
        with lakehouse.connect(lake) as con:
            con.execute("DROP TABLE staging.identifier_probe")


def test_dbt_artefacts_hold_no_row_values(lake, transform_run):
    """dbt's target/ and logs (transforms/target, $TAPESTRY_HOME/dbt) carry no values from rows:
    no store_failures, test results are counts. Pseudonyms stand in for any value here."""
    keys = _rows(lake, "SELECT DISTINCT record_key AS v FROM staging.int_events WHERE record_key IS NOT NULL "
                       "UNION SELECT DISTINCT person_id FROM staging.int_events WHERE person_id IS NOT NULL")["v"]
    assert keys.len() > 100
    assert not (TRANSFORMS_DIR / "logs").exists()
    texts = [p for folder in (TRANSFORMS_DIR / "target", lake.home / "dbt") for p in folder.rglob("*")
             if p.is_file() and p.suffix in (".json", ".sql", ".log", ".txt", ".msgpack")]
    assert any(p.name == "run_results.json" for p in texts) and any(p.suffix == ".log" for p in texts)
    values = set(keys.to_list())
    found = [p for p in texts if values & set(re.findall(r"[A-Za-z0-9_]{8,}", p.read_text(errors="ignore")))]
    assert found == []


def test_a_failing_dbt_test_is_a_failed_asset_check(lake, transform_run):
    from orchestration.definitions import defs

    reports = dg.AssetKey(["staging", "stg_streetsafe__reports"])
    with lakehouse.connect(lake) as con:  # a report placed off the globe, in a current delivery
        con.execute("INSERT INTO raw.streetsafe__reports SELECT * REPLACE (200.0 AS latitude, -1 AS _row_number) "
                    "FROM raw.streetsafe__reports LIMIT 1")
    try:
        with dg.DagsterInstance.get() as instance:
            result = defs.resolve_job_def("transform").execute_in_process(
                instance=instance, asset_selection=[reports], raise_on_error=False)
    finally:
        with lakehouse.connect(lake) as con:
            con.execute("DELETE FROM raw.streetsafe__reports WHERE _row_number = -1")
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key == reports}
    failed = [name for name, c in checks.items() if not c.passed]
    assert failed == ["stg_streetsafe__reports_latitude_on_the_globe"]
    assert checks[failed[0]].severity == dg.AssetCheckSeverity.ERROR
    assert checks["not_null_stg_streetsafe__reports_report_id"].passed
