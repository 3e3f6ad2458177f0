"""The settings that choose the environment and where the local lake and catalog are, free of
Dagster: `resources.build_resources` builds the resources from them, and `python -m b3_platform
query` reads the local catalog with them alone (no Dagster import: a query answers at once)."""

from __future__ import annotations

from collections.abc import Mapping

ENV_VAR = "B3_PLATFORM_ENV"
DATA_DIR_VAR = "B3_PLATFORM_DATA_DIR"
DUCKDB_VAR = "B3_PLATFORM_DUCKDB"
DEFAULT_DATA_DIR = "data"
CATALOG_FILE = "warehouse.duckdb"
LOCAL, AWS = "local", "aws"


def environment_mode(env: Mapping[str, str]) -> str:
    """`local` (the default) or `aws`, as B3_PLATFORM_ENV says (case and spaces ignored). Any other
    value is returned as given: build_resources refuses it, naming the variable."""
    return env.get(ENV_VAR, LOCAL).strip().lower() or LOCAL


def local_data_dir(env: Mapping[str, str]) -> str:
    return env.get(DATA_DIR_VAR, DEFAULT_DATA_DIR)


def local_catalog_file(env: Mapping[str, str]) -> str:
    """The local catalog's DuckDB file: B3_PLATFORM_DUCKDB, else `<data dir>/warehouse.duckdb`."""
    return env.get(DUCKDB_VAR) or f"{local_data_dir(env).rstrip('/')}/{CATALOG_FILE}"
