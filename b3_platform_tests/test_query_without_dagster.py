"""`python -m b3_platform query` on the local lake answers without importing Dagster: the catalog
file holds everything a query reads, and Dagster's import alone costs most of a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb

from b3_platform_tests.conftest import REPO


def run_query(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "b3_platform", "query", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules `-X importtime` reports ("import time: self | cumulative | name")."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_a_local_query_answers_without_importing_dagster(tmp_path):
    catalog = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(catalog)) as conn:
        conn.execute(
            "CREATE TABLE prices AS SELECT * FROM (VALUES ('PETR4', 37.5), ('VALE3', 55.25)) t(ticker, price)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("B3_PLATFORM_")}
    env["B3_PLATFORM_DATA_DIR"] = str(tmp_path)

    ran = run_query(env, "SELECT ticker, price * 2 AS doubled FROM prices ORDER BY ticker", "--format", "csv")

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["ticker,doubled", "PETR4,75.00", "VALE3,110.50"]
    modules = imported_modules(ran.stderr)
    assert "duckdb" in modules  # the measurement did see the query path's imports
    assert not {m for m in modules if m.split(".")[0] in ("dagster", "dagster_duckdb", "pydantic")}

    # select 1, as a user types it (its time as a whole process: benchmarks/query_startup.py).
    ran = subprocess.run(
        [sys.executable, "-m", "b3_platform", "query", "select 1 AS one", "--format", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (ran.returncode, json.loads(ran.stdout), ran.stderr) == (0, [{"one": 1}], "")


def test_the_aws_query_path_still_builds_its_catalog_from_the_settings(tmp_path):
    """B3_PLATFORM_ENV=aws goes through the resources (Glue + Athena): a missing setting is named
    like before, by the settings check, not answered from a local file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_PLATFORM_", "AWS_"))}
    env["B3_PLATFORM_ENV"] = "aws"
    env["B3_PLATFORM_DATA_DIR"] = str(tmp_path)
    ran = subprocess.run(
        [sys.executable, "-m", "b3_platform", "query", "select 1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.startswith("error: ") and "B3_PLATFORM_" in ran.stderr, ran.stderr
