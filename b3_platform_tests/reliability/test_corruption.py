"""Damaged files are named, and one damaged old date does not stop every later day.

Reproductions: a silver Parquet file truncated to half (gold failed with "Could not open Parquet
input source '<Buffer>'", no path, and because time in index walks back over history, gold of every
later date failed), and a raw capture sidecar truncated (a bare JSONDecodeError). What a user sees
now, through the real `dagster` and `python -m b3_platform` commands: the gold dates that read the
damaged file directly (its own date, the next trading day) fail naming the file and the command
that rebuilds it; later dates build, saying which history they skipped; the rebuild command from
the message works; nothing stored changes where nothing should.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b3_platform.lake.schemas import BRONZE_PORTFOLIO, GOLD_TIME_IN_INDEX, SILVER_ASSETS
from b3_platform_tests.conftest import REPO
from b3_platform_tests.reliability.lakes import (
    DAGSTER,
    GOLD,
    SILVER_STEP,
    build,
    cli_env,
    copy_lake,
    dagster_home,
    file_of,
    gold_files,
    import_archive,
    local_lake,
    materialize_args,
    redated_archive,
    run_cli,
    sync_catalog,
    trading_days,
)

DAYS = trading_days(8)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("corruption")
    lake = base / "lake"
    import_archive(local_lake(lake), redated_archive(base / "archive", DAYS, ("IBOV",)))
    assert build(local_lake(lake), DAYS, [*SILVER_STEP, *GOLD]).success
    return lake


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_silver_file_fails_only_the_days_reading_it_and_says_how_to_rebuild_it(built, tmp_path):
    lake = copy_lake(built, tmp_path / "lake")
    env = cli_env(dagster_home(tmp_path), lake)
    sync_catalog(lake)
    damaged_day = DAYS[1]
    damaged = file_of(lake, SILVER_ASSETS, damaged_day)
    truncate(damaged)
    before = gold_files(lake)

    # Gold of the next trading day compares with the damaged date: it fails, naming the file.
    proc = run_cli(materialize_args(GOLD, DAYS[2]), env)
    assert proc.returncode == 1
    assert f"{damaged} is not a readable Parquet file" in proc.stderr
    assert "<Buffer>" not in proc.stderr.split("is not a readable Parquet file", 1)[0][-300:]
    hint = re.search(r"rebuild it: (dagster asset materialize [^\n]*?--partition \S+)", proc.stderr)
    assert hint, proc.stderr[-3000:]
    assert gold_files(lake) == before  # nothing of gold changed

    # A later date carries time in index on from the day before's gold: it never reads the damaged
    # date, and its stays are what they were.
    later = DAYS[6]
    old_stays = pq.read_table(file_of(lake, GOLD_TIME_IN_INDEX, later)).to_pylist()
    proc = run_cli(materialize_args(GOLD, later), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped silver of" not in proc.stderr
    assert pq.read_table(file_of(lake, GOLD_TIME_IN_INDEX, later)).to_pylist() == old_stays

    # Without that gold, it walks back over the damaged date: it builds, and says so.
    file_of(lake, GOLD_TIME_IN_INDEX, DAYS[5]).unlink()
    proc = run_cli(materialize_args(GOLD, later), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"skipped silver of {damaged_day}, which cannot be read, as a date the lake lacks" in proc.stderr
    assert str(damaged) in proc.stderr
    new_stays = {r["ticker"]: r for r in pq.read_table(file_of(lake, GOLD_TIME_IN_INDEX, later)).to_pylist()}
    held_throughout = [r for r in old_stays if r["observed_days"] == later_position(later)]
    assert held_throughout, "some tickers are held on every date"
    for row in held_throughout:  # the skipped date counts as not observed, not as an exit
        assert new_stays[row["ticker"]]["first_seen"] == row["first_seen"]
        assert new_stays[row["ticker"]]["observed_days"] == row["observed_days"] - 1

    # The catalog holds what it loaded before the damage, so `query` still answers; its refresh
    # fails naming the file (whose identity changed), and leaves the catalog as it was.
    query = [
        sys.executable,
        "-m",
        "b3_platform",
        "query",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM silver_assets",
    ]
    answer = run_cli(query, env)
    assert answer.returncode == 0, answer.stderr
    proc = run_cli(
        [DAGSTER, "asset", "materialize", "-m", "b3_platform.definitions", "--select", "athena_tables"], env
    )
    assert proc.returncode == 1
    assert f"silver_assets: {damaged} is not readable Parquet" in proc.stderr
    assert "its tables are as they were before this sync" in proc.stderr
    assert run_cli(query, env).stdout == answer.stdout

    # The command the message gives rebuilds the damaged date, then gold of the next day builds.
    proc = run_cli([DAGSTER, *shlex.split(hint.group(1))[1:]], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert damaged.read_bytes() == file_of(built, SILVER_ASSETS, damaged_day).read_bytes()
    proc = run_cli(materialize_args(GOLD, DAYS[2]), env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def later_position(day) -> int:
    return DAYS.index(day) + 1


def test_a_truncated_raw_sidecar_is_named_and_blocks_only_its_date(built, tmp_path):
    lake = copy_lake(built, tmp_path / "lake")
    env = cli_env(dagster_home(tmp_path), lake)
    day = DAYS[3]
    (sidecar,) = (lake / "raw").glob(f"GetPortfolioDay/date={day}/index=IBOV/*.meta.json")
    truncate(sidecar)
    bronze = file_of(lake, BRONZE_PORTFOLIO, day).read_bytes()

    proc = run_cli(materialize_args(["bronze_portfolio"], day), env)
    assert proc.returncode == 1
    assert f"raw capture sidecar {sidecar} is damaged: not valid JSON" in proc.stderr
    assert "Restore it from a backup" in proc.stderr
    assert "JSONDecodeError" not in proc.stderr.split("is damaged", 1)[0][-200:]
    assert file_of(lake, BRONZE_PORTFOLIO, day).read_bytes() == bronze

    # The next date is not blocked.
    proc = run_cli(materialize_args(["bronze_portfolio"], DAYS[4]), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert REPO  # the commands ran from the repository root
