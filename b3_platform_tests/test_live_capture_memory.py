"""What one run learns of a raw store about live capturing is kept for the next runs in the process
(`live_capture._KNOWN`): a backfill split into consecutive runs lists the whole store once, then only
the days each later run adds, and still finds a live capture that begins after what it knew."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from b3_platform import live_capture, trading_calendar
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.live_capture import LIVE_MARGIN, LiveCaptures
from b3_platform.trading_calendar import trading_days_between

BODY = (
    Path(__file__).resolve().parent.parent / "demo_data" / "GetPortfolioDay" / "IBOV" / "2025-07-10.json"
).read_bytes()
DAYS = trading_days_between(dt.date(2025, 3, 3), dt.date(2025, 4, 30))
IMPORTED_AT = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)


class CountingStorage(LocalStorage):
    """A local storage that records the prefix of every listing."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.listed: list[str] = []

    def list_keys(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().list_keys(prefix)


@pytest.fixture
def store(tmp_path) -> RawStore:
    store = RawStore(CountingStorage(tmp_path / "lake"))
    for day in DAYS:
        store.store(
            day, "IBOV", [BODY], fetched_at=IMPORTED_AT, source_format="json", meta={"source": "import"}
        )
    return store


def whole_listings(store: RawStore) -> int:
    return store.storage.listed.count("raw/GetPortfolioDay/")


def test_a_later_run_lists_only_the_days_after_what_an_earlier_run_learnt(store):
    first_run, second_run = DAYS[:20], DAYS[20:]
    live = LiveCaptures(store)
    assert not any(live.began_by(day) for day in first_run)
    assert whole_listings(store) == 1

    store.storage.listed.clear()
    later = LiveCaptures(store)  # the next run: a new object, in the same process
    assert not any(later.began_by(day) for day in second_run)
    assert whole_listings(store) == 0
    # One listing per calendar day after the first run's last date, none before it.
    listed_days = {p.split("date=")[1].rstrip("/") for p in store.storage.listed}
    assert min(listed_days) == (first_run[-1] + dt.timedelta(days=1)).isoformat()
    assert max(listed_days) == second_run[-1].isoformat()


def test_a_live_capture_after_what_was_learnt_is_found(store):
    assert not LiveCaptures(store).began_by(DAYS[-1])
    live_day = DAYS[-1] + dt.timedelta(days=3)
    live_at = dt.datetime.combine(live_day, dt.time(12), tzinfo=dt.timezone.utc)
    store.store(live_day, "IBOV", [BODY], fetched_at=live_at, source_format="json", meta={"source": "api"})
    store.storage.listed.clear()
    later = LiveCaptures(store)
    assert not later.began_by(live_day - dt.timedelta(days=1))
    assert later.began_by(live_day)
    assert whole_listings(store) == 0
    # What was learnt is kept: a third run answers from memory, listing nothing.
    store.storage.listed.clear()
    assert LiveCaptures(store).began_by(live_day + dt.timedelta(days=30))
    assert store.storage.listed == []


def test_no_live_capture_of_recent_days_is_not_kept_as_lasting(tmp_path):
    """A capture fetched from now on may still land on the last LIVE_MARGIN days before B3's today:
    "none through" is kept only up to before them."""
    store = RawStore(CountingStorage(tmp_path / "lake"))
    today = trading_calendar.today_sao_paulo()
    assert not LiveCaptures(store).began_by(today)
    remembered = live_capture._KNOWN[(store.storage.uri(), store.method)]
    assert remembered == (None, today - LIVE_MARGIN - dt.timedelta(days=1))
