"""Shared fixtures: the B3 replay server, an isolated lake, and a pinned "today"."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from b3_platform_tests.moto_aws import CREDENTIALS, AwsTarget, MotoServer
from b3_platform_tests.replay import ReplayServer, sample_bytes

#: A day the samples cover and that is a trading day (Thursday).
SAMPLE_DAY = dt.date(2025, 7, 10)
SAMPLE_JSON = "GetPortfolioDay/IBOV/2025-07-10.json"
REPO = Path(__file__).resolve().parent.parent
#: Where nothing listens: a subprocess that tried to call B3 would fail at once.
UNREACHABLE_B3_URL = "http://127.0.0.1:9/indexProxy/indexCall"


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago: for a server a test starts, or
    for a connection that must be refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_home_and_lake(base: Path, raw: Sequence[Path]) -> tuple[dict[str, str], Path, Path]:
    """For a `dagster` subprocess: a DAGSTER_HOME with the repo's dagster.yaml, a lake with `raw`
    (sample files or folders) imported, and the environment to run in, holding none of the caller's
    DAGSTER_/B3_PLATFORM_ variables. Returns (env, home, lake)."""
    from b3_platform.importer import import_paths
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.storage import LocalStorage

    home, lake = base / "home", base / "lake"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    results = import_paths(RawStore(LocalStorage(lake)), list(raw))
    assert results and {r.status for r in results} == {"imported"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    env.update(DAGSTER_HOME=str(home), B3_PLATFORM_DATA_DIR=str(lake), B3_PLATFORM_B3_URL=UNREACHABLE_B3_URL)
    return env, home, lake


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
    from b3_platform import trading_calendar

    def pin(day: dt.date = SAMPLE_DAY) -> dt.date:
        monkeypatch.setattr(trading_calendar, "today_sao_paulo", lambda: day)
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
        pause_seconds=0.0,
    )
    return B3ApiResource(**{**config, **overrides})


@pytest.fixture
def resources(lake_root, b3_server):
    """Resources for in-process runs: the temp lake, its DuckDB catalog, and the replay server."""
    from b3_platform.resources import LakeResource, lake_resources

    return {
        **lake_resources(LakeResource(root=str(lake_root))),
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
    "B3_PLATFORM_S3_BUCKET",
    "B3_PLATFORM_S3_PREFIX",
    "B3_PLATFORM_AWS_REGION",
    "B3_PLATFORM_GLUE_DATABASE",
    "B3_PLATFORM_ATHENA_WORKGROUP",
    "B3_PLATFORM_ATHENA_OUTPUT",
    "B3_PLATFORM_S3_ENDPOINT_URL",
    "B3_PLATFORM_AWS_ENDPOINT_URL",
    "B3_PLATFORM_LANDING_QUEUE_URL",
    # A developer's AWS setup must never reach a test: moto's fake keys are set instead.
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@pytest.fixture(scope="session")
def _session_cache_home(tmp_path_factory) -> Path:
    """The user cache folder of the test session (the dashboard's built Vega bundle lands there):
    shared by the session's tests, never the developer's ~/.cache."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path, _session_cache_home):
    # Nothing a test runs may touch the developer's ./data or DAGSTER_HOME, or a real AWS account.
    monkeypatch.setenv("XDG_CACHE_HOME", str(_session_cache_home))
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in CREDENTIALS.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("B3_PLATFORM_DATA_DIR", str(tmp_path / "lake"))


@pytest.fixture(scope="session", autouse=True)
def _session_credentials():
    """moto's fake credentials in the environment for the whole session, from its first test on
    (module-scoped lakes are built before any test's own environment is set), for the code under
    test to find through the standard chain; a developer's AWS profile never reaches it.

    Set before any test, so every test's environment is undone back to them. Set by the moto
    server's fixture instead, they were lost whenever that fixture first started inside a test
    (`request.getfixturevalue`): that test's own monkeypatch, undone after it, removed them, and the
    S3 clients cached per endpoint afterwards had no credentials for the rest of the session."""
    with pytest.MonkeyPatch.context() as patch:
        for var, value in CREDENTIALS.items():
            patch.setenv(var, value)
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(var, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server(_session_credentials):
    """A moto server on 127.0.0.1 standing in for S3, Glue, Athena, SQS and CloudFormation."""
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws_target(moto_server) -> AwsTarget:
    """This test's own bucket (created), Glue database and workgroup names on the moto server."""
    return AwsTarget.create(moto_server)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test session (b3_platform_tests/postgres.py); each test
    takes its own database with `create_database()`. Never skipped: without the binaries the
    tests that need it fail, saying how to install them."""
    from b3_platform_tests.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()
