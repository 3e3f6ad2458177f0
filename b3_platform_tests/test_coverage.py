"""`python -m b3_platform coverage`: per index, the trading days captured in raw and the ones
missing — run as a user runs it, in a subprocess over a lake holding the bundled real samples."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from b3_platform.coverage import coverage, coverage_rows, coverage_table, describe_ranges, ranges
from b3_platform.importer import import_paths
from b3_platform.lake.raw_inventory import RawInventory
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.conftest import REPO

IBOV_JSON = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: The IBOV JSON samples' dates: 2025-06-30 … 2025-07-10 without 2025-07-09.
JULY = [
    "2025-06-30",
    "2025-07-01",
    "2025-07-02",
    "2025-07-03",
    "2025-07-04",
    "2025-07-07",
    "2025-07-08",
    "2025-07-10",
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("coverage") / "lake"
    files = [IBOV_JSON / f"{d}.json" for d in JULY] + [REPO / "demo_data/csv/IBRADia_22-06-21.csv"]
    assert {r.status for r in import_paths(RawStore(LocalStorage(root)), files)} == {"imported"}
    return root


def cli(lake, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    env.update(B3_PLATFORM_DATA_DIR=str(lake), B3_PLATFORM_INDICES="IBOV,IBXX")
    return subprocess.run(
        [sys.executable, "-m", "b3_platform", "coverage", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_index_shows_its_captured_and_missing_trading_days(lake):
    proc = cli(lake, "--since", "2025-06-30", "--until", "2025-07-11", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["index"]: r for r in json.loads(proc.stdout)}
    # The capture list first (IBXX expected but never captured), then what raw holds besides.
    assert list(rows) == ["IBOV", "IBXX", "IBRA"]
    ibov = rows["IBOV"]
    assert (ibov["expected"], ibov["first"], ibov["last"]) == (True, "2025-06-30", "2025-07-10")
    assert (ibov["trading_days"], ibov["captured"], ibov["missing"]) == (10, 8, 2)
    assert ibov["missing_days"] == "2025-07-09, 2025-07-11"
    assert (rows["IBXX"]["captured"], rows["IBXX"]["missing_days"]) == (0, "2025-06-30..2025-07-11")
    assert rows["IBRA"]["expected"] is False and rows["IBRA"]["captured"] == 0


def test_days_lists_every_index_and_trading_day(lake):
    proc = cli(
        lake, "--index", "ibov", "--days", "--since", "2025-07-08", "--until", "2025-07-14", "--format", "csv"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "index,date,status",
        "IBOV,2025-07-08,captured",
        "IBOV,2025-07-09,missing",
        "IBOV,2025-07-10,captured",
        "IBOV,2025-07-11,missing",
        "IBOV,2025-07-14,missing",
    ]


def test_by_default_the_span_starts_at_the_first_capture(lake):
    proc = cli(lake, "--until", "2025-07-10")
    assert proc.returncode == 0, proc.stderr
    assert "trading days 2021-06-22..2025-07-10" in proc.stdout  # IBRA's 2021 CSV is the first capture


def test_an_empty_lake_says_so(tmp_path):
    proc = cli(tmp_path / "empty")
    assert proc.returncode == 1
    assert "no captures in" in proc.stderr


def test_runs_fold_over_weekends_and_holidays():
    # 2025-04-17 (Thu) and 2025-04-22 (Tue) are consecutive trading days: Good Friday and
    # Tiradentes (Mon 04-21) lie between them.
    days = [dt.date(2025, 4, 16), dt.date(2025, 4, 17), dt.date(2025, 4, 22), dt.date(2025, 4, 24)]
    assert ranges(days) == [(dt.date(2025, 4, 16), dt.date(2025, 4, 22)), (dt.date(2025, 4, 24),) * 2]
    assert describe_ranges(days) == "2025-04-16..2025-04-22, 2025-04-24"
    assert describe_ranges([]) == "none"


def test_an_index_only_seen_in_raw_is_listed_after_the_expected_ones():
    found = {"SMLL": {dt.date(2025, 7, 10)}, "IBOV": {dt.date(2025, 7, 10)}}
    report = coverage(found, ["IBOV", "IDIV"], dt.date(2025, 7, 10), dt.date(2025, 7, 10))
    assert [(c.index, c.expected, len(c.captured)) for c in report] == [
        ("IBOV", True, 1),
        ("IDIV", True, 0),
        ("SMLL", False, 1),
    ]


def test_the_catalogs_table_is_the_listing_of_the_inventory_as_it_is():
    """coverage_table fills its grid from the raw inventory's {date: {index: count}} directly; it must
    list exactly what `coverage --days` lists from the per-index dates: expected indices first (one
    never captured among them), a capture on a Saturday and one after `today` left out, a folder
    that is not an index code ignored (also on a date of its own before the first capture)."""
    today = dt.date(2025, 7, 10)
    counts = {
        dt.date(2025, 6, 20): {"not-a-code": 1},
        dt.date(2025, 6, 30): {"SMLL": 2},
        dt.date(2025, 7, 1): {"IBOV": 1, "SMLL": 1, "not-a-code": 3},
        dt.date(2025, 7, 5): {"IBOV": 1},  # a Saturday
        dt.date(2025, 7, 8): {"IBOV": 4, "AGFS": 1},
        dt.date(2025, 7, 14): {"IBOV": 1},  # after today
    }
    found: dict[str, set[dt.date]] = {}
    for day, per_day in counts.items():
        for index in per_day:
            if index != "not-a-code":
                found.setdefault(index, set()).add(day)
    listing = coverage_rows(coverage(found, ["IBOV", "IDIV"], dt.date(2025, 6, 30), today))
    table = coverage_table(RawInventory(counts), ["IBOV", "IDIV"], today)
    assert [tuple(r.values()) for r in table.to_pylist()] == listing
    assert [r[0] for r in listing[:: len(listing) // 4]] == ["IBOV", "IDIV", "AGFS", "SMLL"]
    assert coverage_table(RawInventory({today: {"x y": 1}}), ["IBOV"], today).num_rows == 0
