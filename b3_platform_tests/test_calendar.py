"""B3 trading days (b3_platform.trading_calendar), the partitions definition built on them, and the
configured index list.

The closures pinned here are the ones exchange_calendars, pandas_market_calendars and holidays all
agree on for 2024–2026: if a calendar upgrade moves a holiday, these tests say so before a partition
silently appears or disappears.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from b3_platform import partitions, trading_calendar
from b3_platform.b3 import indices
from b3_platform.trading_calendar import CalendarError


def _days(year: int, *month_days: str) -> list[dt.date]:
    return [dt.date.fromisoformat(f"{year}-{md}") for md in month_days]


WEEKDAY_CLOSURES = {
    2024: _days(
        2024,
        "01-01",
        "02-12",
        "02-13",
        "03-29",
        "05-01",
        "05-30",
        "11-15",
        "11-20",
        "12-24",
        "12-25",
        "12-31",
    ),
    2025: _days(
        2025,
        "01-01",
        "03-03",
        "03-04",
        "04-18",
        "04-21",
        "05-01",
        "06-19",
        "11-20",
        "12-24",
        "12-25",
        "12-31",
    ),
    2026: _days(
        2026,
        "01-01",
        "02-16",
        "02-17",
        "04-03",
        "04-21",
        "05-01",
        "06-04",
        "09-07",
        "10-12",
        "11-02",
        "11-20",
        "12-24",
        "12-25",
        "12-31",
    ),
}
SESSIONS = {2024: 251, 2025: 250, 2026: 247}

#: Closed weekdays the tests name individually (Carnival, Black Consciousness Day, the last two
#: days of the year, and a pre-2022 São Paulo city holiday that only exchange_calendars knows).
CLOSED = [
    dt.date(2025, 3, 3),
    dt.date(2025, 3, 4),
    dt.date(2025, 11, 20),
    dt.date(2025, 12, 24),
    dt.date(2025, 12, 31),
    dt.date(2021, 1, 25),
    dt.date(2024, 3, 29),
    dt.date(2026, 2, 16),
]
SATURDAY = dt.date(2025, 7, 12)
SUNDAY = dt.date(2025, 7, 13)
#: Open: São Paulo's Jul 9 since 2022, Nov 20 before it became national (2023), Ash Wednesday.
OPEN = [
    dt.date(2025, 7, 9),
    dt.date(2025, 7, 10),
    dt.date(2023, 11, 20),
    dt.date(2025, 3, 5),
    dt.date(2022, 1, 25),
]


# --- calendar -------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", sorted(WEEKDAY_CLOSURES))
def test_weekday_closures_match_the_b3_calendar(year):
    closures = [d for d in trading_calendar.weekday_closures() if d.year == year]
    assert closures == WEEKDAY_CLOSURES[year]


@pytest.mark.parametrize("year", sorted(SESSIONS))
def test_session_count_per_year(year):
    sessions = trading_calendar.trading_days_between(dt.date(year, 1, 1), dt.date(year, 12, 31))
    assert len(sessions) == SESSIONS[year]
    # Every weekday is either a session or a pinned closure, and no weekend is a session.
    weekdays = [dt.date(year, 1, 1) + dt.timedelta(days=i) for i in range(366)]
    weekdays = [d for d in weekdays if d.year == year and d.weekday() < 5]
    assert sorted(set(weekdays) - set(WEEKDAY_CLOSURES[year])) == sessions


def test_weekday_closures_are_sorted_weekdays_only():
    closures = trading_calendar.weekday_closures()
    assert list(closures) == sorted(set(closures))
    assert all(d.weekday() < 5 for d in closures)
    assert closures[0] >= trading_calendar.START_DATE


@pytest.mark.parametrize("day", CLOSED, ids=str)
def test_closed_weekdays_are_not_trading_days(day):
    assert day.weekday() < 5
    assert trading_calendar.is_trading_day(day) is False


@pytest.mark.parametrize("day", [SATURDAY, SUNDAY], ids=str)
def test_weekends_are_not_trading_days(day):
    assert trading_calendar.is_trading_day(day) is False


@pytest.mark.parametrize("day", OPEN, ids=str)
def test_open_days_are_trading_days(day):
    assert trading_calendar.is_trading_day(day) is True


def test_previous_trading_day_skips_carnival_and_weekend():
    assert trading_calendar.previous_trading_day(dt.date(2025, 3, 5)) == dt.date(2025, 2, 28)
    assert trading_calendar.previous_trading_day(dt.date(2025, 7, 10)) == dt.date(2025, 7, 9)
    assert trading_calendar.previous_trading_day(dt.date(2025, 7, 14)) == dt.date(2025, 7, 11)


def test_previous_trading_day_before_the_start_raises():
    with pytest.raises(CalendarError, match="no trading day before"):
        trading_calendar.previous_trading_day(trading_calendar.START_DATE)


@pytest.mark.parametrize(
    "day",
    [trading_calendar.START_DATE - dt.timedelta(days=1), dt.date(2014, 6, 2), dt.date(2099, 1, 2)],
    ids=str,
)
def test_outside_the_horizon_raises_calendar_error(day):
    with pytest.raises(CalendarError, match="outside the B3 calendar span"):
        trading_calendar.is_trading_day(day)


def test_calendar_error_is_a_value_error():
    assert issubclass(CalendarError, ValueError)


def test_horizon_reaches_the_year_after_today():
    start, end = trading_calendar.horizon()
    assert start == trading_calendar.START_DATE == dt.date(2015, 1, 2)
    assert end == dt.date(trading_calendar.today_sao_paulo().year + 1, 12, 31)
    assert trading_calendar.is_trading_day(start) is True


def test_trading_days_between_is_inclusive_and_sorted():
    assert trading_calendar.trading_days_between(dt.date(2025, 11, 17), dt.date(2025, 11, 24)) == [
        dt.date(2025, 11, 17),
        dt.date(2025, 11, 18),
        dt.date(2025, 11, 19),
        dt.date(2025, 11, 21),
        dt.date(2025, 11, 24),
    ]
    assert trading_calendar.trading_days_between(dt.date(2025, 7, 12), dt.date(2025, 7, 13)) == []


def test_today_is_on_sao_paulo_clock():
    assert trading_calendar.TIMEZONE == "America/Sao_Paulo"
    assert trading_calendar.today_sao_paulo() == dt.datetime.now(trading_calendar.SAO_PAULO).date()


# --- partitions definition ------------------------------------------------------------------------

trading_days = partitions.trading_days


def test_trading_days_tick_on_weekdays_in_sao_paulo():
    assert isinstance(trading_days, dg.TimeWindowPartitionsDefinition)
    assert trading_days.cron_schedule == partitions.WEEKDAYS == "0 0 * * 1-5"
    assert trading_days.timezone == "America/Sao_Paulo"
    assert trading_days.get_first_partition_key() == trading_calendar.START_DATE.isoformat() == "2015-01-02"


@pytest.mark.parametrize("day", [SATURDAY, SUNDAY, *CLOSED], ids=str)
def test_no_partition_for_non_trading_days(day):
    assert trading_days.has_partition_key(day.isoformat()) is False


@pytest.mark.parametrize("day", OPEN, ids=str)
def test_partition_for_trading_days(day):
    assert trading_days.has_partition_key(day.isoformat()) is True


def test_partition_range_skips_holiday_and_weekend():
    keys = trading_days.get_partition_keys_in_range(dg.PartitionKeyRange("2025-11-17", "2025-11-24"))
    assert keys == ["2025-11-17", "2025-11-18", "2025-11-19", "2025-11-21", "2025-11-24"]


def test_a_partition_window_runs_to_the_next_weekday():
    # Friday's window runs to Monday; a weekday's to the next day (a holiday is still a tick, so the
    # day before it ends at the holiday's midnight).
    friday = trading_days.time_window_for_partition_key("2025-07-11")
    assert friday.start.isoformat() == "2025-07-11T00:00:00-03:00"
    assert friday.end.isoformat() == "2025-07-14T00:00:00-03:00"
    before_holiday = trading_days.time_window_for_partition_key("2025-11-19")
    assert before_holiday.end.isoformat() == "2025-11-20T00:00:00-03:00"


def test_consecutive_trading_days_windows_touch_except_across_holidays():
    # Why weekdays are ticks, not weekends exclusions: Dagster merges touching windows at once and
    # walks its exclusion iterators for every gap, in every partition subset it builds for a run.
    keys = trading_days.get_partition_keys_in_range(dg.PartitionKeyRange("2025-01-02", "2025-12-30"))
    windows = [trading_days.time_window_for_partition_key(k) for k in keys]
    gaps = [later.start.date() for earlier, later in zip(windows, windows[1:]) if earlier.end != later.start]
    holidays = [
        d for d in trading_calendar.weekday_closures() if dt.date(2025, 1, 2) < d < dt.date(2025, 12, 30)
    ]
    after_holidays = sorted({trading_calendar.next_trading_day(d) for d in holidays})
    assert gaps == after_holidays and 5 <= len(gaps) <= len(holidays)
    subset = trading_days.subset_with_partition_keys(keys)
    assert len(subset.included_time_windows) == 1 and list(subset.get_partition_keys()) == keys


def _latest_key_at(when: str) -> str:
    from dagster._core.definitions.partitions.context import partition_loading_context

    moment = dt.datetime.fromisoformat(when).replace(tzinfo=trading_calendar.SAO_PAULO)
    with partition_loading_context(effective_dt=moment):
        return trading_days.get_last_partition_key()


@pytest.mark.parametrize(
    "when, latest",
    [
        ("2025-07-11 08:00", "2025-07-11"),  # a trading day: today's partition exists from midnight
        ("2025-07-12 10:00", "2025-07-11"),  # Saturday: Friday's
        ("2025-07-13 23:00", "2025-07-11"),  # Sunday: Friday's
        ("2025-07-14 00:30", "2025-07-14"),  # Monday just after midnight
        ("2025-11-20 10:00", "2025-11-21"),  # a holiday: the next trading day (Dagster #33551)
    ],
)
def test_the_latest_partition(when, latest):
    assert _latest_key_at(when) == latest


@pytest.mark.parametrize("year", sorted(SESSIONS))
def test_partition_keys_equal_calendar_sessions(year):
    keys = trading_days.get_partition_keys_in_range(dg.PartitionKeyRange(f"{year}-01-02", f"{year}-12-30"))
    sessions = trading_calendar.trading_days_between(dt.date(year, 1, 1), dt.date(year, 12, 31))
    assert keys == [d.isoformat() for d in sessions]
    assert len(keys) == SESSIONS[year]


def test_partition_keys_equal_sessions_over_the_whole_history():
    first, last = trading_calendar.START_DATE, dt.date(2025, 12, 30)
    keys = trading_days.get_partition_keys_in_range(dg.PartitionKeyRange(first.isoformat(), last.isoformat()))
    assert keys == [d.isoformat() for d in trading_calendar.trading_days_between(first, last)]


def test_partition_days_reads_the_run_keys():
    class Ctx:
        partition_keys = ["2025-07-09", "2025-07-10"]

    assert partitions.partition_days(Ctx()) == [dt.date(2025, 7, 9), dt.date(2025, 7, 10)]


# --- configured indices ---------------------------------------------------------------------------


def test_unset_means_discovered_and_the_built_in_list_is_the_34_listed_indices(monkeypatch):
    monkeypatch.delenv(indices.INDICES_ENV, raising=False)
    assert indices.configured_indices() is None  # every index B3 lists is captured
    assert len(indices.BUILTIN_INDICES) == 34 == len(set(indices.BUILTIN_INDICES))
    assert {"IBOV", "IBXX", "IBXL", "SMLL", "IDIV"} <= set(indices.BUILTIN_INDICES)
    assert set(indices.BUILTIN_INDICES) <= indices.KNOWN_INDEX_CODES


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_env_means_discovered(monkeypatch, value):
    monkeypatch.setenv(indices.INDICES_ENV, value)
    assert indices.configured_indices() is None


@pytest.mark.parametrize("value", ["ibov,smll", " IBOV , smll ", "IBOV,SMLL,ibov,"])
def test_env_overrides_indices(monkeypatch, value):
    monkeypatch.setenv("B3_PLATFORM_INDICES", value)
    assert indices.configured_indices() == ("IBOV", "SMLL")


@pytest.mark.parametrize("value", ["IBOVESPA", "IBOV,IB", "IBOV;SMLL", "ibov,1BOV"])
def test_invalid_index_code_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("B3_PLATFORM_INDICES", value)
    with pytest.raises(ValueError, match="^B3_PLATFORM_INDICES: .* is not a B3 index code"):
        indices.configured_indices()


def test_validate_index_code():
    assert indices.validate_index_code("IBXX") == "IBXX"
    for bad in ("ibov", "IBOVESPA", "IBO", "", "1BOV"):
        with pytest.raises(ValueError, match="is not a B3 index code"):
            indices.validate_index_code(bad)
