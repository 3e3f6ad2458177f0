"""`dg`, the CLI Dagster 1.13 recommends, run as a user runs it from the repo root: it finds the
code location through `[tool.dg]` in pyproject.toml, `dg check defs` validates it, and
`dg launch` materializes a date through every layer. Neither prints a Beta/Preview warning: the
two deliberate ones (single-run backfills, partitioned check specs) are silenced by exact text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b3_platform.lake.schemas import GOLD_INDEX_SUMMARY, SILVER_ASSETS
from b3_platform_tests.conftest import REPO, dagster_home_and_lake, duckdb_catalog

DG = str(Path(sys.executable).with_name("dg"))
TIMEOUT = 180


@pytest.fixture(scope="module")
def dg_env(tmp_path_factory):
    return dagster_home_and_lake(tmp_path_factory.mktemp("dg"), [REPO / "demo_data/GetPortfolioDay/IBOV"])


def dg(env, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([DG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_dg_check_defs_loads_the_code_location(dg_env):
    env, _home, _lake = dg_env
    proc = dg(env, "check", "defs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr


def test_dg_check_defs_works_without_dagster_home(dg_env):
    """Without DAGSTER_HOME Dagster makes a throw-away instance from ./dagster.yaml, which must not
    require the variable."""
    env, _home, _lake = dg_env
    env = {k: v for k, v in env.items() if k != "DAGSTER_HOME"}
    proc = dg(env, "check", "defs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(REPO.glob(".tmp_dagster_home_*")), "the throw-away instance was left behind"


def test_dg_launch_materializes_one_date_through_every_layer(dg_env):
    env, _home, lake = dg_env
    proc = dg(env, "launch", "--assets", "raw_portfolio*", "--partition", "2025-07-10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert output.count("RUN_SUCCESS") == 1
    assert "BetaWarning" not in output and "PreviewWarning" not in output
    # One process for the run (the in-process executor), not one per step.
    assert "STEP_WORKER_STARTING" not in output
    silver = lake / SILVER_ASSETS.location / "date=2025-07-10" / "data.parquet"
    assert pq.read_metadata(silver).num_rows == 84
    summary = lake / GOLD_INDEX_SUMMARY.location / "date=2025-07-10" / "data.parquet"
    assert pq.read_table(summary).column("index").to_pylist() == ["IBOV"]
    rows = (
        duckdb_catalog(lake)
        .query("SELECT count(*) FROM silver_assets WHERE \"date\" = DATE '2025-07-10'")
        .rows
    )
    assert rows == [(84,)]
