"""Dagster resources: the lakehouse, configured from TAPESTRY_* environment variables."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from tapestry import lakehouse
from tapestry.config import Settings


class LakehouseResource(dg.ConfigurableResource):
    """Opens the DuckLake lakehouse through tapestry.lakehouse (the only place that knows how)."""

    def settings(self) -> Settings:
        return Settings.from_env()

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with lakehouse.connect(self.settings(), read_only=read_only) as con:
            yield con
