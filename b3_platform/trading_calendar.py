"""B3's trading calendar, Dagster-free.

B3 overwrites each day's portfolio on the next trading day, so which days exist is the one fact the
whole lake is keyed on. It comes from `exchange_calendars` ("BVMF"), which agrees with B3 back to
2015 (pre-2022 São Paulo closures included, unlike `holidays`).
"""

from __future__ import annotations

import bisect
import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

TIMEZONE = "America/Sao_Paulo"
SAO_PAULO = ZoneInfo(TIMEZONE)

#: First partition of the lake: the calendar library agrees with B3 from 2015 on (see above), and the
#: oldest archives users hold (e.g. the 2021 CSV downloads in demo_data/) are well after it.
START_DATE = dt.date(2015, 1, 2)


class CalendarError(ValueError):
    """A date outside the span the calendar covers."""


@lru_cache(maxsize=1)
def _span() -> tuple[dt.date, dt.date, frozenset[dt.date]]:
    """(start, end, sessions), computed once per process so the horizon and the sessions agree.

    exchange_calendars extends BVMF by rule; one year past the current one covers any date the
    product can be asked about. Read from the real clock, not `today_sao_paulo`, which tests pin."""
    import exchange_calendars as xc

    end = dt.date(dt.datetime.now(SAO_PAULO).year + 1, 12, 31)
    calendar = xc.get_calendar("BVMF", start=START_DATE.isoformat(), end=end.isoformat())
    return START_DATE, end, frozenset(ts.date() for ts in calendar.sessions)


def _sessions() -> frozenset[dt.date]:
    return _span()[2]


def today_sao_paulo() -> dt.date:
    """Today's date on B3's clock (tests monkeypatch this to replay a past day)."""
    return dt.datetime.now(SAO_PAULO).date()


def horizon() -> tuple[dt.date, dt.date]:
    start, end, _ = _span()
    return start, end


def is_trading_day(day: dt.date) -> bool:
    start, end = horizon()
    if not start <= day <= end:
        raise CalendarError(f"{day} is outside the B3 calendar span {start}..{end}")
    return day in _sessions()


@lru_cache(maxsize=1)
def weekday_closures() -> tuple[dt.date, ...]:
    """Weekdays B3 is closed (holidays), sorted: weekends are not partition ticks at all."""
    start, end = horizon()
    sessions = _sessions()
    closed = []
    day = start
    while day <= end:
        if day.weekday() < 5 and day not in sessions:
            closed.append(day)
        day += dt.timedelta(days=1)
    return tuple(closed)


def trading_days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    sessions = _sessions()
    return sorted(d for d in sessions if first <= d <= last)


@lru_cache(maxsize=1)
def _sorted_sessions() -> tuple[dt.date, ...]:
    return tuple(sorted(_sessions()))


@lru_cache(maxsize=1)
def _ordinals() -> dict[dt.date, int]:
    return {d: i for i, d in enumerate(_sorted_sessions())}


def first_of_last_trading_days(day: dt.date, count: int) -> dt.date:
    """The first of the `count` B3 trading days that end at `day` (`day` counted when it is one;
    the calendar's first day when it holds fewer; `day` itself before the calendar starts)."""
    if count < 1:
        raise ValueError(f"a window holds at least one trading day, not {count}")
    sessions = _sorted_sessions()
    held = bisect.bisect_right(sessions, day)  # trading days on or before `day`
    return sessions[max(0, held - count)] if held else day


def trading_days_held(first: dt.date, last: dt.date) -> int:
    """Trading days from `first` to `last`, both included (both must be trading days)."""
    ordinals = _ordinals()
    for day in (first, last):
        if day not in ordinals:
            raise CalendarError(f"{day} is not a B3 trading day")
    return ordinals[last] - ordinals[first] + 1


def previous_trading_day(day: dt.date) -> dt.date:
    start, _ = horizon()
    candidate = day - dt.timedelta(days=1)
    sessions = _sessions()
    while candidate >= start:
        if candidate in sessions:
            return candidate
        candidate -= dt.timedelta(days=1)
    raise CalendarError(f"no trading day before {day} in the calendar (starts {start})")


def next_trading_day(day: dt.date) -> dt.date:
    """The first trading day after `day`: B3 publishes its portfolio before it opens."""
    _, end = horizon()
    candidate = day + dt.timedelta(days=1)
    sessions = _sessions()
    while candidate <= end:
        if candidate in sessions:
            return candidate
        candidate += dt.timedelta(days=1)
    raise CalendarError(f"no trading day after {day} in the calendar (ends {end})")
