"""The real `dagster` CLI in a subprocess, as a user runs it from the repo root: the whole graph
(raw → bronze → silver → gold, then the catalog) for one partition and for a partition range (one
single run), a holiday refused, and the workspace loading.

Each `dagster asset materialize` costs seconds, so the file keeps to three of them on one lake and
one DAGSTER_HOME (a sqlite instance built from the repo's dagster.yaml)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b3_platform.lake.raw_store import RawStore

# The tables below raw_portfolio (index_members follows raw_stock_index instead).
from b3_platform.lake.schemas import PORTFOLIO_TABLES as TABLES
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.conftest import REPO, dagster_home_and_lake, duckdb_catalog
from b3_platform_tests.replay import sample_bytes, with_changes

DAGSTER = str(Path(sys.executable).with_name("dagster"))
#: Raw and everything downstream, as the README shows it: every layer and the (unpartitioned) catalog.
SELECT = "raw_portfolio*"
#: The in-process executor: the default multiprocess one costs ~5 s more per call on 2 cores and
#: tests Dagster's machinery rather than ours.
IN_PROCESS = '{"execution":{"config":{"in_process":{}}}}'
TIMEOUT = 180


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """DAGSTER_HOME with the repo's dagster.yaml, and a lake seeded with the IBOV JSON samples."""
    return dagster_home_and_lake(
        tmp_path_factory.mktemp("dagster_cli"), [REPO / "demo_data/GetPortfolioDay/IBOV"]
    )


def dagster(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def table_dates(lake: Path) -> dict[str, list[str]]:
    """The dates of every table, bronze to gold."""
    return {
        name: sorted(
            p.parent.name.removeprefix("date=")
            for p in (lake / table_def.location).glob("date=*/data.parquet")
        )
        for name, table_def in TABLES.items()
    }


def catalog_dates(lake: Path, table: str) -> list[str]:
    rows = duckdb_catalog(lake).query(f'SELECT DISTINCT "date" FROM {table} ORDER BY 1').rows
    return [d.isoformat() for (d,) in rows]


def test_materialize_one_partition(cli_env):
    env, home, lake = cli_env
    proc = dagster(
        env,
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        SELECT,
        "--partition",
        "2025-07-10",
        "--config-json",
        IN_PROCESS,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("RUN_SUCCESS") == 1
    assert table_dates(lake) == {name: ["2025-07-10"] for name in TABLES}
    for name, table_def in TABLES.items():
        path = lake / table_def.location / "date=2025-07-10" / "data.parquet"
        assert pq.read_schema(path).equals(table_def.schema, check_metadata=False), name
    # The catalog ran in the same run, after gold, and answers for the date.
    assert 'Finished execution of step "athena_tables"' in proc.stderr
    assert catalog_dates(lake, "gold_index_summary") == ["2025-07-10"]
    assert (home / "history" / "runs.db").is_file()  # the run went to the DAGSTER_HOME instance


def test_materialize_partition_range_then_refuse_a_holiday(cli_env):
    env, _home, lake = cli_env
    before = table_dates(lake)
    proc = dagster(
        env,
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        SELECT,
        "--partition-range",
        "2025-06-30...2025-07-03",
        "--config-json",
        IN_PROCESS,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("RUN_SUCCESS") == 1  # one single run for the whole range
    assert proc.stderr.count('Finished execution of step "athena_tables"') == 1  # the catalog once
    built = ["2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03"]
    after = table_dates(lake)
    for name in TABLES:
        assert sorted(set(after[name]) - set(before[name])) == built, (name, after)
        assert "2025-07-04" not in after[name], name
    assert catalog_dates(lake, "gold_changes") == ["2025-07-01", "2025-07-02", "2025-07-03"]
    swap = duckdb_catalog(lake).query(
        "SELECT membership, ticker FROM gold_changes WHERE membership <> 'held' ORDER BY 1"
    )
    assert swap.rows == [("entered", "NATU3"), ("exited", "NTCO3")]

    # 2025-11-20 (Consciência Negra) is a weekday B3 is closed: no such partition.
    holiday = dagster(
        env,
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        SELECT,
        "--partition",
        "2025-11-20",
        "--config-json",
        IN_PROCESS,
    )
    assert holiday.returncode != 0
    assert "2025-11-20" in holiday.stderr
    assert table_dates(lake) == after
    assert not list(lake.glob("*/*/date=2025-11-20"))


def test_definitions_validate_loads_workspace(cli_env):
    env, _home, _lake = cli_env
    proc = dagster(env, "definitions", "validate", "-w", "workspace.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_a_mid_range_parse_error_reads_as_its_cause_in_the_cli(cli_env, tmp_path):
    """A value that does not parse on the third date of a range: the CLI's output names the asset,
    the date, the field and the value (not only Dagster's "Error occurred while handling output"),
    and the dates before it were built. On a copy of the module's lake, which stays untouched."""
    env, home, lake = cli_env
    own_lake, own_home = tmp_path / "lake", tmp_path / "home"
    shutil.copytree(lake, own_lake)
    own_home.mkdir()
    shutil.copy(home / "dagster.yaml", own_home / "dagster.yaml")
    body = with_changes(
        sample_bytes("GetPortfolioDay/IBOV/2025-07-02.json"),
        lambda data: data["results"][3].update(part="1,2,3"),
    )
    RawStore(LocalStorage(own_lake)).store(
        dt.date(2025, 7, 2),
        "IBOV",
        [body],
        fetched_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5),
        source_format="json",
        meta={"source": "test"},
    )
    for day in ("2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03"):
        shutil.rmtree(own_lake / "silver" / "assets" / f"date={day}", ignore_errors=True)
    proc = dagster(
        {**env, "DAGSTER_HOME": str(own_home), "B3_PLATFORM_DATA_DIR": str(own_lake)},
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        "bronze_portfolio*",
        "--partition-range",
        "2025-06-30...2025-07-03",
        "--config-json",
        IN_PROCESS,
    )
    assert proc.returncode != 0
    assert "silver 2025-07-02: IBOV 2025-07-02 row 4 (AURE3): field 'part' = '1,2,3'" in proc.stderr, (
        proc.stderr[-3000:]
    )
    built = sorted(p.parent.name for p in (own_lake / "silver" / "assets").glob("date=*/data.parquet"))
    assert "date=2025-07-01" in built and "date=2025-07-02" not in built
