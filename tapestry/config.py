"""Settings from environment variables, with defaults that work in a fresh checkout.

The only place that reads TAPESTRY_* variables. Everything else asks `Settings.from_env()`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]

CATALOG_KINDS = ("sqlite", "duckdb", "postgres")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    home: Path  # lakehouse catalog + data files, Dagster storage, run artefacts
    secrets: Path  # keys; deliberately outside `home`
    landing: Path  # where agency files arrive: landing/<agency>/<files>
    catalog: str  # sqlite (default) | duckdb | postgres
    catalog_path: Path | None  # file catalogs only
    postgres_dsn: str | None  # libpq connection string for the postgres catalog
    data_path: str  # where DuckLake writes Parquet (a folder; may be another disk)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("TAPESTRY_HOME") or CHECKOUT / ".tapestry").expanduser().resolve()
        secrets = Path(env.get("TAPESTRY_SECRETS") or CHECKOUT / ".tapestry-secrets").expanduser().resolve()
        if secrets == home or home in secrets.parents:
            raise ConfigError(
                f"TAPESTRY_SECRETS ({secrets}) must be outside TAPESTRY_HOME ({home}): "
                "keys never live beside the data they protect"
            )
        landing = Path(env.get("TAPESTRY_LANDING") or home / "landing").expanduser().resolve()
        catalog = (env.get("TAPESTRY_CATALOG") or "sqlite").strip().lower()
        if catalog not in CATALOG_KINDS:
            raise ConfigError(f"TAPESTRY_CATALOG={catalog!r}: expected one of {', '.join(CATALOG_KINDS)}")
        catalog_path = None
        postgres_dsn = None
        if catalog == "postgres":
            postgres_dsn = env.get("TAPESTRY_POSTGRES_DSN")
            if not postgres_dsn:
                raise ConfigError(
                    "TAPESTRY_CATALOG=postgres needs TAPESTRY_POSTGRES_DSN, a libpq string such as "
                    "'host=localhost port=5432 dbname=tapestry user=tapestry'"
                )
        else:
            default = home / "lake" / ("catalog.sqlite" if catalog == "sqlite" else "catalog.ducklake")
            catalog_path = Path(env.get("TAPESTRY_CATALOG_PATH") or default).expanduser().resolve()
        data_path = env.get("TAPESTRY_DATA_PATH") or str(home / "lake" / "data")
        return cls(home, secrets, landing, catalog, catalog_path, postgres_dsn, data_path)

    @property
    def truth(self) -> Path | None:
        """Ground truth of GENERATED data (TAPESTRY_TRUTH, else the generator's default
        ``<landing>_truth``) when it exists: linkage and marts then report their measured error
        against it. Real deployments have none."""
        path = Path(os.environ.get("TAPESTRY_TRUTH") or f"{self.landing}_truth").expanduser()
        return path if (path / "records.parquet").is_file() else None

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def archive_dir(self) -> Path:
        """Delivered files after loading (they leave the landing folder)."""
        return self.home / "archive"

    @property
    def rejected_dir(self) -> Path:
        """Files that could not be read, each with a .reason.txt beside it."""
        return self.home / "rejected"
