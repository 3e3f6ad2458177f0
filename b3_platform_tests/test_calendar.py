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


def test_trading_days_is_daily_in_sao_paulo():
    assert isinstance(trading_days, dg.DailyPartitionsDefinition)
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


def test_each_partition_is_one_day_window():
    # Exclusions (not a weekdays-only cron) keep Friday's window one day long, not Friday to Monday.
    window = trading_days.time_window_for_partition_key("2025-07-11")
    assert window.start.isoformat() == "2025-07-11T00:00:00-03:00"
    assert window.end.isoformat() == "2025-07-12T00:00:00-03:00"


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
