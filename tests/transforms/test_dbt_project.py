"""The dbt project's wiring, without a lakehouse: environment, profile, seeds, Dagster assets."""
import csv
import json
from pathlib import Path

import dagster as dg
import yaml

from governance.policy import Policy
from orchestration.dbt_project import TRANSFORMS_DIR, dbt_env, identifier_columns, legal_gateways
from sources.police.contract import HO_CLASSES, STREET_CRIME_TYPES
from sources.registry import AGENCIES
from tapestry import lakehouse
from tapestry.config import Settings


def test_dbt_env_takes_the_catalog_from_tapestry_lakehouse(tmp_path):
    for catalog, extra in (("sqlite", {}), ("duckdb", {}),
                           ("postgres", {"TAPESTRY_POSTGRES_DSN": "host=db dbname=tapestry"})):
        settings = Settings.from_env({"TAPESTRY_HOME": str(tmp_path / "h"), "TAPESTRY_SECRETS": str(tmp_path / "s"),
                                      "TAPESTRY_CATALOG": catalog, **extra})
        env = dbt_env(settings)
        assert env["TAPESTRY_DBT_TARGET"] == catalog
        assert env["TAPESTRY_DBT_CATALOG"] == lakehouse.catalog_uri(settings)
        assert env["TAPESTRY_DBT_DATA_PATH"].rstrip("/") == settings.data_path.rstrip("/")
        assert Path(env["DBT_LOG_PATH"]).is_relative_to(settings.home)  # logs never in the checkout
    profile = yaml.safe_load((TRANSFORMS_DIR / "profiles.yml").read_text())["tapestry"]
    assert set(profile["outputs"]) == {"sqlite", "duckdb", "postgres"}
    for output in profile["outputs"].values():
        assert output["path"] == ":memory:" and output["database"] == "lake"
        [attach] = output["attach"]
        assert attach["alias"] == "lake" and "env_var('TAPESTRY_DBT_CATALOG')" in attach["path"]
        assert attach["options"]["data_inlining_row_limit"] == 0  # no row data in the catalog database
    project = yaml.safe_load((TRANSFORMS_DIR / "dbt_project.yml").read_text())
    assert project["flags"]["send_anonymous_usage_stats"] is False
    assert project["data_tests"]["tapestry"]["+store_failures"] is False


def test_legal_gateways_and_identifier_names_come_from_the_policy():
    policy = Policy.load()
    gateways = legal_gateways()
    assert set(gateways) == {a.name for a in AGENCIES}
    for agency, grant in gateways.items():
        decision = policy.decide("safeguarding_lead", agency, "pseudonymous", "safeguarding_assessment")
        assert grant["gateway"] == decision.gateway and grant["title"] == policy.gateways[decision.gateway].title
    names = identifier_columns()
    assert set(policy.identifiers) <= set(names["identifiers"])
    assert {"forename", "surname", "date_of_birth", "postcode", "nhs_number", "pnc_id", "upn", "crn",
            "address"} <= set(names["identifiers"])
    # the coarse attributes raw keeps in place of identifiers (policy coarse_attributes)
    assert {"birth_year", "postcode_district"} <= set(names["allowed"])
    assert set(names["allowed"]) == {c for a in AGENCIES for e in a.entities for c in e.contract.coarse_columns()}
    assert not set(names["allowed"]) & set(names["identifiers"])
    assert json.loads(dbt_env(Settings.from_env())["TAPESTRY_DBT_LEGAL_GATEWAYS"]) == gateways


def test_seeds_cover_the_police_contract_code_lists():
    def seed(name, key):
        with open(TRANSFORMS_DIR / "seeds" / f"{name}.csv") as f:
            return {row[key]: row["event_type"] for row in csv.DictReader(f)}

    assert set(seed("police_offence_groups", "ho_class_code")) == set(HO_CLASSES)
    assert set(seed("police_street_crime_types", "crime_type")) == set(STREET_CRIME_TYPES)


def test_one_staging_model_per_raw_table_with_its_yaml():
    models = TRANSFORMS_DIR / "models" / "staging"
    for agency in AGENCIES:
        for entity in agency.entities:
            name = f"stg_{agency.name}__{entity.name}"
            assert (models / f"{name}.sql").is_file() and (models / f"{name}.yml").is_file(), name
    sources = yaml.safe_load((models / "_sources.yml").read_text())["sources"]
    raw = {t["name"]: t["meta"]["dagster"]["asset_key"] for s in sources if s["name"] == "raw" for t in s["tables"]}
    assert raw == {e.contract.table.removeprefix("raw."): ["raw", a.name] for a in AGENCIES for e in a.entities}


def test_dbt_models_are_assets_and_tests_are_checks_in_the_definitions(dbt_manifest):
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    events = dg.AssetKey(["staging", "int_events"])
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    assert specs[events].group_name == "staging"
    staging = {k for k in specs if k.path[0] == "staging"}
    assert {dg.AssetKey(["staging", f"stg_{a.name}__{e.name}"]) for a in AGENCIES for e in a.entities} <= staging
    # dbt sources are the raw assets and the linkage asset that write them
    upstream = {dep.asset_key for key in staging for dep in specs[key].deps}
    assert {dg.AssetKey(["raw", a.name]) for a in AGENCIES} | {dg.AssetKey(["linked", "person_record"])} <= upstream
    assert not {k for k in upstream if k.path[0] == "raw" and len(k.path) > 2}
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == events}
    assert {"int_events_rows_match_current_raw", "int_events_event_type_in_vocabulary", "unique_int_events_event_id",
            "no_identifier_columns_int_events_"} <= checks
    job = defs.resolve_job_def("transform")
    assert events in job.asset_layer.executable_asset_keys
    assert not {k for k in job.asset_layer.executable_asset_keys if k.path[0] in ("raw", "linked")}
