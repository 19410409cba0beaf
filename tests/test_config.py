import pytest

from tapestry.config import CHECKOUT, ConfigError, Settings


def test_defaults_live_in_the_checkout_and_keys_outside_the_lake():
    s = Settings.from_env({})
    assert s.home == CHECKOUT / ".tapestry"
    assert s.secrets == CHECKOUT / ".tapestry-secrets"
    assert s.home not in s.secrets.parents
    assert s.landing == s.home / "landing"
    assert s.catalog == "sqlite"
    assert s.catalog_path == s.home / "lake" / "catalog.sqlite"
    assert s.data_path == str(s.home / "lake" / "data")


def test_secrets_inside_home_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="TAPESTRY_SECRETS"):
        Settings.from_env({"TAPESTRY_HOME": str(tmp_path), "TAPESTRY_SECRETS": str(tmp_path / "keys")})


def test_catalog_choices(tmp_path):
    base = {"TAPESTRY_HOME": str(tmp_path / "h"), "TAPESTRY_SECRETS": str(tmp_path / "s")}
    assert Settings.from_env({**base, "TAPESTRY_CATALOG": "duckdb"}).catalog_path.name == "catalog.ducklake"
    with pytest.raises(ConfigError, match="TAPESTRY_POSTGRES_DSN"):
        Settings.from_env({**base, "TAPESTRY_CATALOG": "postgres"})
    pg = Settings.from_env({**base, "TAPESTRY_CATALOG": "postgres", "TAPESTRY_POSTGRES_DSN": "dbname=x"})
    assert pg.catalog_path is None and pg.postgres_dsn == "dbname=x"
    with pytest.raises(ConfigError, match="TAPESTRY_CATALOG"):
        Settings.from_env({**base, "TAPESTRY_CATALOG": "oracle"})
