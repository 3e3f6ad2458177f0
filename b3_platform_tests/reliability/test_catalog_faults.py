"""The local catalog under two faults, seen through the real commands.

A full disk while athena_tables syncs the DuckDB tables: the COMMIT fails, and the ROLLBACK after it
used to fail too ("cannot rollback - no transaction is active"), hiding "No space left on device".
The catalog file sits on a small tmpfs that is then filled (mounting needs root, which the suite
runs as). A writer holding the DuckDB file's lock: `query` used to fail at once ("Could not set
lock"); it waits a bounded time now, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from b3_platform.lake.paths import DATE_DIR_PREFIX, PARQUET_FILE
from b3_platform_tests.reliability.lakes import (
    DAGSTER,
    GOLD,
    SILVER_STEP,
    build,
    cli_env,
    dagster_home,
    fill,
    import_archive,
    local_lake,
    redated_archive,
    run_cli,
    small_tmpfs,
    sync_catalog,
    trading_days,
)
from b3_platform_tests.test_catalog import lock_held

DAYS = trading_days(3)
COUNT = "SELECT count(*) AS n FROM gold_index_summary"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("catalog_faults")
    lake = base / "lake"
    import_archive(local_lake(lake), redated_archive(base / "archive", DAYS, ("IBOV",)))
    assert build(local_lake(lake), DAYS, [*SILVER_STEP, *GOLD]).success
    sync_catalog(lake)
    return lake


@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "small") as mount:
        yield mount


def test_a_full_disk_during_the_catalog_sync_reports_no_space_left(lake, small_disk, tmp_path):
    catalog_file = small_disk / "warehouse.duckdb"
    env = cli_env(dagster_home(tmp_path), lake, B3_PLATFORM_DUCKDB=str(catalog_file))
    args = [DAGSTER, "asset", "materialize", "-m", "b3_platform.definitions", "--select", "athena_tables"]
    proc = run_cli([*args], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    query = [sys.executable, "-m", "b3_platform", "query", "--format", "csv", COUNT]
    answer = run_cli(query, env)
    assert answer.returncode == 0 and answer.stdout == "n\n3\n", answer.stderr
    before = {p.name: p.read_bytes() for p in small_disk.iterdir()}

    # A sync writes only what changed: every date's file made new (the same bytes, a new mtime, as a
    # rebuild leaves them) gives it every table's rows to replace, which the full disk then refuses.
    for rebuilt in lake.glob(f"*/*/{DATE_DIR_PREFIX}*/{PARQUET_FILE}"):
        os.utime(rebuilt, ns=(time.time_ns(), time.time_ns()))
    fill(small_disk)
    proc = run_cli([*args], env)
    assert proc.returncode == 1
    assert f"cannot update the catalog {catalog_file}: " in proc.stderr
    assert "No space left on device" in proc.stderr
    assert "its tables are as they were before this sync" in proc.stderr
    assert "cannot rollback" not in proc.stderr

    # Nothing committed: the file is as it was, and once there is room the tables answer as before.
    (small_disk / "filler").unlink()
    assert {p.name: p.read_bytes() for p in small_disk.iterdir() if p.name in before} == before
    assert run_cli(query, env).stdout == "n\n3\n"


def test_query_waits_for_a_writer_then_answers(lake):
    env = cli_env(lake.parent, lake)
    catalog_file = lake / "warehouse.duckdb"
    with lock_held(catalog_file) as holder:
        proc = subprocess.Popen(
            [sys.executable, "-m", "b3_platform", "query", "--format", "csv", COUNT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # It says it waits (while the writer still holds the file) ...
        notice = proc.stderr.readline()
        assert notice == (
            f"the catalog {catalog_file} is being updated by another process; waiting up to 30 s for it\n"
        )
        assert proc.poll() is None
        holder.stdin.close()  # ... the writer finishes ...
        out, err = proc.communicate(timeout=30)
    # ... and it answers.
    assert proc.returncode == 0, err
    assert out == "n\n3\n" and err == ""


def test_query_gives_up_after_its_wait_with_a_clear_message(lake):
    env = cli_env(lake.parent, lake)
    catalog_file = lake / "warehouse.duckdb"
    with lock_held(catalog_file):
        started = time.monotonic()
        proc = run_cli([sys.executable, "-m", "b3_platform", "query", "--wait", "1", COUNT], env)
        waited = time.monotonic() - started
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert (
        lines[0]
        == f"the catalog {catalog_file} is being updated by another process; waiting up to 1 s for it"
    )
    assert lines[1].startswith(
        f"error: the catalog {catalog_file} is still locked by another process after 1 s"
    )
    assert "Traceback" not in proc.stderr
    assert 1.0 <= waited < 20
