"""The catalog's `coverage` table against the `coverage` command, on the demo lake, both run as a
user runs them (subprocesses reading real output): the table holds exactly the rows the command's
`--days` listing prints, and its per-index counts are the command's summary."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from b3_platform_tests.conftest import REPO


def run(lake: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    env.update(B3_PLATFORM_DATA_DIR=str(lake), DAGSTER_HOME=str(lake.parent))
    return subprocess.run(
        [sys.executable, "-m", "b3_platform", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def rows(output: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(output)))


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("coverage") / "data"
    proc = run(lake, "demo")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return lake


def test_the_catalogs_coverage_table_is_the_coverage_commands_listing(demo_lake):
    listed = run(demo_lake, "coverage", "--days", "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    table = run(
        demo_lake, "query", "--format", "csv", 'SELECT "index", "date", status FROM coverage ORDER BY ALL'
    )
    assert table.returncode == 0, table.stderr

    header, *expected = rows(listed.stdout)
    assert header == ["index", "date", "status"]
    got = rows(table.stdout)
    assert got[0] == header
    assert got[1:] == sorted(expected)
    statuses = {status for _, _, status in expected}
    assert statuses == {"captured", "missing"}  # the demo's samples leave gaps between them


def test_the_coverage_tables_counts_are_the_commands_summary(demo_lake):
    summary = run(demo_lake, "coverage", "--format", "csv")
    assert summary.returncode == 0, summary.stderr
    header, *lines = rows(summary.stdout)
    wanted = sorted(
        (
            line[header.index("index")],
            line[header.index("expected")],
            *line[header.index("trading_days") :][:3],
        )
        for line in lines
    )
    counted = run(
        demo_lake,
        "query",
        "--format",
        "csv",
        "SELECT \"index\", bool_and(expected), count(*), count(*) FILTER (status = 'captured'), "
        "count(*) FILTER (status = 'missing') FROM coverage GROUP BY 1 ORDER BY 1",
    )
    assert counted.returncode == 0, counted.stderr
    got = [tuple(r) for r in rows(counted.stdout)[1:]]
    assert got == wanted and len(got) >= 1
