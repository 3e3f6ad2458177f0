"""The production instance (deploy/dagster.yaml) on a real PostgreSQL server: runs, event logs,
schedules and sensors are rows in PostgreSQL, read back with psycopg2 (not through Dagster), and
the repo root's dagster.yaml stays the sqlite default."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from b3_platform.definitions import build_defs
from b3_platform_tests.conftest import REPO, dagster_home_and_lake

DEPLOY_INSTANCE = REPO / "deploy" / "dagster.yaml"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
DAY = dt.date(2025, 7, 10)
SAMPLE = REPO / "demo_data" / "GetPortfolioDay" / "IBOV" / f"{DAY}.json"


@pytest.fixture
def pg_home(postgres_server, tmp_path, monkeypatch):
    """A DAGSTER_HOME holding deploy/dagster.yaml, its own database, and a lake with one date;
    the DAGSTER_PG_* variables set. Returns (env for subprocesses, home, database)."""
    env, home, _lake = dagster_home_and_lake(tmp_path, [SAMPLE])
    shutil.copy(DEPLOY_INSTANCE, home / "dagster.yaml")
    database = postgres_server.create_database()
    env.update(postgres_server.env(database))
    for var, value in env.items():
        if var.startswith(("DAGSTER_", "B3_PLATFORM_")):
            monkeypatch.setenv(var, value)
    return env, home, database


def test_runs_and_events_are_rows_in_postgresql(postgres_server, pg_home):
    env, home, database = pg_home
    defs = build_defs(env)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        kinds = {
            type(s).__name__
            for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        }
        assert kinds == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        job = defs.resolve_implicit_global_asset_job_def()
        layers = [
            dg.AssetKey(k) for k in ("raw_portfolio", "bronze_portfolio", "silver_header", "silver_assets")
        ]
        result = job.execute_in_process(
            instance=instance, asset_selection=layers, partition_key=DAY.isoformat()
        )
        assert result.success
    # Straight from PostgreSQL, as another process (the webserver, the daemon) would see it.
    assert postgres_server.query(database, "SELECT run_id, status FROM runs") == [(result.run_id, "SUCCESS")]
    materialized = postgres_server.query(
        database,
        "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "ORDER BY asset_key",
    )
    assert materialized == [
        ('["bronze_portfolio"]', "2025-07-10"),
        ('["raw_portfolio"]', "2025-07-10"),
        ('["silver_assets"]', "2025-07-10"),
        ('["silver_header"]', "2025-07-10"),
    ]
    # A fresh instance on the same database finds the run and the partitions.
    with dg.DagsterInstance.from_config(str(home)) as again:
        assert again.get_run_by_id(result.run_id).is_success
        assert again.get_materialized_partitions(dg.AssetKey("silver_assets")) == {"2025-07-10"}


def test_schedule_and_sensor_state_are_rows_in_postgresql(postgres_server, pg_home):
    """`dagster schedule stop` / `dagster sensor stop` (both on by default) as a user runs them:
    the state they write is in PostgreSQL's instigators table."""
    env, _home, database = pg_home
    for kind, name in (("schedule", "daily_capture_schedule"), ("sensor", "missed_capture_alert")):
        done = subprocess.run(
            [DAGSTER, kind, "stop", name, "-m", "b3_platform.definitions"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    rows = postgres_server.query(database, "SELECT instigator_type, status, instigator_body FROM instigators")
    found = {
        (kind, status, name)
        for kind, status, body in rows
        for name in ("daily_capture_schedule", "missed_capture_alert")
        if f'"{name}"' in body
    }
    assert found == {
        ("SCHEDULE", "STOPPED", "daily_capture_schedule"),
        ("SENSOR", "STOPPED", "missed_capture_alert"),
    }
    assert len(rows) == 2


def test_a_missing_setting_is_named(pg_home, monkeypatch):
    _env, home, _database = pg_home
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(Exception, match="DAGSTER_PG_HOST"):
        dg.DagsterInstance.from_config(str(home))


def test_sqlite_stays_the_default_and_both_instances_agree_on_everything_else(tmp_path, monkeypatch):
    root = yaml.safe_load((REPO / "dagster.yaml").read_text())
    deploy = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    assert "storage" not in root  # Dagster's default: sqlite under DAGSTER_HOME (asserted below)
    # ... with the sqlite event log written through kept connections; PostgreSQL has its own pool.
    assert root.pop("event_log_storage")["module"] == "b3_platform.sqlite_storage"
    assert set(deploy.pop("storage")) == {"postgres"}
    assert deploy == root  # concurrency, pools, telemetry, loggers: one behaviour in both
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"
