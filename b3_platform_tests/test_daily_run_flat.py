"""A one-date gold run after a long history reads a bounded number of earlier dates, and writes the
same bytes as a range run over the whole history.

The lake: silver of 40 consecutive B3 trading days written directly (the hand-built portfolios of
test_gold), in which IBOV's last component alternates between CSNA3 and GOLL4 every three days
(exits, entries, re-entries), SMLL appears on the 10th date and is missing on the 25th, and the
30th date is missing altogether (a gap). Every read and listing of the storage is recorded through
the LocalStorage class the lake resource opens.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pytest

from b3_platform import trading_calendar
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import GOLD_TIME_IN_INDEX, SILVER_ASSETS, SILVER_HEADER
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import write_date
from b3_platform.live_capture import LiveCaptures, may_be_live
from b3_platform.trading_calendar import next_trading_day, trading_days_between
from b3_platform_tests.test_gold import IBOV_TODAY, SMLL_TODAY, gold_files, run_gold, silver
from b3_platform_tests.test_pipeline import materializations

DEMO = Path(__file__).resolve().parent.parent / "demo_data" / "GetPortfolioDay" / "IBOV"
DAYS = trading_days_between(dt.date(2025, 3, 3), dt.date(2025, 6, 30))[:40]
GAP = DAYS[29]
SILVER = {SILVER_ASSETS.name: SILVER_ASSETS, SILVER_HEADER.name: SILVER_HEADER}


def portfolios(i: int, *, swapped: bool = False) -> dict:
    """The silver of the i-th date: {index: (components, reductor, has_sector)}."""
    last = "CSNA3" if (i // 3) % 2 == 0 else "GOLL4"
    if swapped:
        last = "PRIO3"
    ibov = [*IBOV_TODAY[:-1], {**IBOV_TODAY[-1], "ticker": last}]
    found = {"IBOV": (ibov, "15440487.14969838", True)}
    if i >= 9 and i != 24:
        found["SMLL"] = (SMLL_TODAY, "1.00000000", False)
    return found


def write_silver(root, i: int, **kwargs) -> None:
    assets, header = silver(DAYS[i], portfolios(i, **kwargs))
    tables = {SILVER_ASSETS.name: assets, SILVER_HEADER.name: header}
    write_date(LocalStorage(root), SILVER, DAYS[i], tables, was_published=False)


@pytest.fixture(scope="module")
def silver_history(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat") / "silver"
    for i, day in enumerate(DAYS):
        if day != GAP:
            write_silver(root, i)
    return root


@pytest.fixture(scope="module")
def ranged(silver_history, tmp_path_factory):
    """Gold of every date from one range run: what a one-date run must reproduce byte for byte."""
    root = tmp_path_factory.mktemp("flat") / "ranged"
    shutil.copytree(silver_history, root)
    assert run_gold(root, first=DAYS[0], last=DAYS[-1]).success
    return gold_files(root)


@pytest.fixture
def io_log(monkeypatch):
    """Every key read and every prefix listed through LocalStorage while the test runs."""
    log = {"read": [], "listed": [], "looked_up": []}
    read, listed, exists = LocalStorage.read_bytes, LocalStorage.list_keys, LocalStorage.exists
    monkeypatch.setattr(LocalStorage, "read_bytes", lambda s, k: log["read"].append(k) or read(s, k))
    monkeypatch.setattr(LocalStorage, "list_keys", lambda s, p: log["listed"].append(p) or listed(s, p))
    monkeypatch.setattr(LocalStorage, "exists", lambda s, k: log["looked_up"].append(k) or exists(s, k))
    return log


def dates_touched(keys: list[str]) -> set[str]:
    """The dates of the silver and gold keys among `keys`."""
    return {k.split("date=")[1][:10] for k in keys if k.startswith(("silver/", "gold/")) and "date=" in k}


def time_in_index_from(result, day: dt.date) -> str:
    return materializations(result)[GOLD_TIME_IN_INDEX.name, day.isoformat()]["time_in_index_from"]


def test_a_daily_run_after_a_long_history_reads_two_dates_and_writes_the_range_runs_bytes(
    silver_history, ranged, tmp_path, io_log, monkeypatch
):
    root = tmp_path / "lake"
    shutil.copytree(silver_history, root)
    assert run_gold(root, first=DAYS[0], last=DAYS[-2]).success  # the history, every date but the last
    for log in io_log.values():
        log.clear()

    day, before = DAYS[-1], DAYS[-2]
    monkeypatch.setattr(trading_calendar, "today_sao_paulo", lambda: day)  # the daily run of `day`
    result = run_gold(root, day=day)
    assert result.success
    assert time_in_index_from(result, day) == f"carried from gold of {before}: IBOV, SMLL"
    # Of the 39 earlier dates, only the previous trading day is read or looked up (and the next
    # day's manifest, to know `day` is the newest), and no listing of silver or gold (which would
    # grow with the history) is made.
    touched = dates_touched(io_log["read"] + io_log["looked_up"])
    assert touched <= {d.isoformat() for d in (before, day, next_trading_day(day))}, touched
    assert before.isoformat() in dates_touched(io_log["read"])
    assert not [p for p in io_log["listed"] if p.startswith(("silver", "gold"))], io_log["listed"]
    assert gold_files(root) == ranged


def test_the_date_after_a_gap_walks_back_and_writes_the_range_runs_bytes(silver_history, ranged, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(silver_history, root)
    after_gap = DAYS[30]
    assert run_gold(root, first=DAYS[0], last=DAYS[28]).success
    result = run_gold(root, day=after_gap)
    assert result.success
    # 28 dates back to the last one holding a ticker since the first date (the lake's start).
    assert time_in_index_from(result, after_gap) == "walked back over 29 earlier silver date(s): IBOV, SMLL"
    got = gold_files(root)
    assert {k: v for k, v in got.items() if f"date={after_gap}" in k} == {
        k: v for k, v in ranged.items() if f"date={after_gap}" in k
    }
    # And the next date carries on from it.
    result = run_gold(root, day=DAYS[31])
    assert time_in_index_from(result, DAYS[31]) == f"carried from gold of {after_gap}: IBOV, SMLL"
    assert {k: v for k, v in gold_files(root).items() if f"date={DAYS[31]}" in k} == {
        k: v for k, v in ranged.items() if f"date={DAYS[31]}" in k
    }


def test_a_previous_gold_older_than_its_rebuilt_silver_is_walked_back(silver_history, tmp_path):
    """Silver of the previous day rebuilt after its gold (another membership): gold of the day
    does not trust that gold, walks back, and writes what a lake without any gold gives."""
    root, fresh = tmp_path / "lake", tmp_path / "fresh"
    shutil.copytree(silver_history, root)
    assert run_gold(root, first=DAYS[0], last=DAYS[-2]).success
    write_silver(root, len(DAYS) - 2, swapped=True)  # silver of the previous day, rebuilt
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("gold"))
    shutil.rmtree(fresh / "gold", ignore_errors=True)

    day = DAYS[-1]
    result = run_gold(root, day=day)
    assert result.success
    # SMLL's rows still match its silver: carried; IBOV's do not: walked back to the first date.
    assert time_in_index_from(result, day) == (
        f"carried from gold of {DAYS[-2]}: SMLL; walked back over 38 earlier silver date(s): IBOV"
    )
    assert run_gold(fresh, day=day, instance=dg.DagsterInstance.ephemeral()).success
    mine = {k: v for k, v in gold_files(root).items() if f"date={day}" in k}
    assert mine and mine == gold_files(fresh)


def test_judging_a_day_after_an_imported_history_reads_no_old_sidecar(tmp_path, io_log):
    """`previous_trading_day_in_lake` asks whether live capturing had begun by the previous day:
    after years of imported history (stamped when imported) the answer is found by the captures'
    names, without reading each date's sidecar; the live day's own sidecar answers at once."""
    store = RawStore(LocalStorage(tmp_path / "lake"))
    body = (DEMO / "2025-07-10.json").read_bytes()
    imported_at = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
    for day in DAYS:
        store.store(
            day, "IBOV", [body], fetched_at=imported_at, source_format="json", meta={"source": "import"}
        )
    live_day = next_trading_day(DAYS[-1])
    live_at = dt.datetime.combine(live_day, dt.time(12), tzinfo=dt.timezone.utc)
    store.store(live_day, "IBOV", [body], fetched_at=live_at, source_format="json", meta={"source": "api"})
    io_log["read"].clear()

    live = LiveCaptures(store)
    assert not live.began_by(DAYS[-1])
    assert not [k for k in io_log["read"] if k.endswith(".meta.json")]
    assert live.began_by(live_day)
    assert [k for k in io_log["read"] if k.endswith(".meta.json")] == [
        k
        for k in LocalStorage(tmp_path / "lake").list_keys(f"raw/GetPortfolioDay/date={live_day}/")
        if k.endswith(".meta.json")
    ]
    # A capture stamped near its date is read, whatever it says.
    assert may_be_live(live_day, f"x/{live_at:%Y%m%dT%H%M%S%fZ}-abc.meta.json")
    assert not may_be_live(DAYS[0], f"x/{imported_at:%Y%m%dT%H%M%S%fZ}-abc.meta.json")
    assert may_be_live(DAYS[0], "x/not-a-stamp.meta.json")
