"""The first partition is a setting: a lake whose history starts in 2021 shows partitions from
then on (not six years of "missing" days), and a malformed value stops the code location from
loading, naming the variable."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from b3_platform.partitions import PARTITIONS_START_VAR, partitions_start, trading_days_from
from b3_platform.settings_errors import ConfigError
from b3_platform.trading_calendar import START_DATE
from b3_platform_tests.conftest import REPO

FIRST_KEY = """
import dagster as dg
from b3_platform.definitions import defs
graph = defs.resolve_asset_graph()
print(sorted({graph.get(k).partitions_def.get_first_partition_key()
              for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}))
"""


def test_unset_the_partitions_start_with_the_calendar():
    assert partitions_start({}) == START_DATE == dt.date(2015, 1, 2)
    assert partitions_start({PARTITIONS_START_VAR: "  "}) == START_DATE


def test_a_start_on_a_saturday_gives_the_next_trading_day_first():
    days = trading_days_from(partitions_start({PARTITIONS_START_VAR: "2021-06-19"}))
    assert days.get_partition_keys()[:3] == ["2021-06-21", "2021-06-22", "2021-06-23"]
    # Holidays after the start stay excluded (2021-09-07, Independence Day).
    assert not days.has_partition_key("2021-09-07") and days.has_partition_key("2021-09-08")


@pytest.mark.parametrize(
    ("value", "says"),
    [("2021-13-01", "expected a date, YYYY-MM-DD"), ("2014-12-30", "the B3 calendar starts on 2015-01-02")],
)
def test_a_bad_start_is_refused_naming_the_variable(value, says):
    with pytest.raises(ConfigError, match=PARTITIONS_START_VAR) as raised:
        partitions_start({PARTITIONS_START_VAR: value})
    assert says in str(raised.value)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_partitioned_asset_of_the_code_location_starts_there():
    proc = run_python(FIRST_KEY, **{PARTITIONS_START_VAR: "2021-06-19"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['2021-06-21']"


def test_the_code_location_does_not_load_with_a_malformed_start():
    proc = run_python(FIRST_KEY, **{PARTITIONS_START_VAR: "June 2021"})
    assert proc.returncode != 0
    assert f"ConfigError: {PARTITIONS_START_VAR}='June 2021': expected a date" in proc.stderr
