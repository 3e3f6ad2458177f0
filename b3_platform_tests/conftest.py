"""Shared fixtures: the B3 replay server, an isolated lake, and a pinned "today"."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from b3_platform_tests.replay import ReplayServer, sample_bytes

#: A day the samples cover and that is a trading day (Thursday).
SAMPLE_DAY = dt.date(2025, 7, 10)
SAMPLE_JSON = "GetPortfolioDay/IBOV/2025-07-10.json"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def replay_server():
    server = ReplayServer().start()
    yield server
    server.stop()


@pytest.fixture
def b3_server(replay_server):
    """The replay server, emptied; serves the real 2025-07-10 IBOV sample for IBOV by default."""
    replay_server.reset()
    replay_server.serve("IBOV", sample_bytes(SAMPLE_JSON))
    yield replay_server
    replay_server.reset()


@pytest.fixture
def lake_root(tmp_path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def today(monkeypatch):
    """Pin B3's "today" (São Paulo) so a sample's date can be the current portfolio."""
    from b3_platform import calendar

    def pin(day: dt.date = SAMPLE_DAY) -> dt.date:
        monkeypatch.setattr(calendar, "today_sao_paulo", lambda: day)
        return day

    return pin


def replay_b3_resource(server, **overrides):
    """The b3 resource pointed at the replay server: IBOV only, short timeouts, fast retries."""
    from b3_platform.resources import B3ApiResource

    config = dict(
        base_url=server.base_url,
        indices=["IBOV"],
        timeout_seconds=1.0,
        connect_timeout_seconds=1.0,
        backoff_seconds=0.01,
        max_attempts=3,
    )
    return B3ApiResource(**{**config, **overrides})


@pytest.fixture
def resources(lake_root, b3_server):
    """Resources for in-process runs: the temp lake, its DuckDB catalog, and the replay server."""
    from b3_platform.resources import LakeResource

    return {
        "lake": LakeResource(root=str(lake_root)),
        "catalog": duckdb_catalog(lake_root),
        "b3": replay_b3_resource(b3_server),
    }


def duckdb_catalog(lake_root):
    """The local catalog of a test lake (the file sits in the lake root, as by default)."""
    from dagster_duckdb import DuckDBResource

    from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource

    return DuckDBCatalogResource(duckdb=DuckDBResource(database=str(Path(lake_root) / "warehouse.duckdb")))


#: Settings a developer may have exported; no test may see them (module fixtures clear them too).
ENV_VARS = (
    "DAGSTER_HOME",
    "B3_PLATFORM_ENV",
    "B3_PLATFORM_DATA_DIR",
    "B3_PLATFORM_B3_URL",
    "B3_PLATFORM_INDICES",
    "B3_PLATFORM_DUCKDB",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # Nothing a test runs may touch the developer's ./data or DAGSTER_HOME.
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("B3_PLATFORM_DATA_DIR", str(tmp_path / "lake"))
