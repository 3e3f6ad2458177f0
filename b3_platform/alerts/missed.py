"""When a missed capture is judged, Dagster-free.

B3 publishes a day's portfolio early in the morning and replaces it on the next trading day. The
capture schedule tries at 09:00 and 20:00 São Paulo time; an hour after each attempt the day is
judged: every expected index must have a capture by 10:00, and whatever is still missing is
reported again at 21:00, the last chance before B3 moves on. Days B3 is closed are never judged.
"""

from __future__ import annotations

import datetime as dt

from b3_platform.trading_calendar import SAO_PAULO, is_trading_day

#: São Paulo times by which every expected index should have a capture (an hour after each
#: attempt of the capture schedule).
DEADLINES: tuple[dt.time, ...] = (dt.time(10, 0), dt.time(21, 0))


def deadline_key(day: dt.date, deadline: dt.time) -> str:
    """A deadline as the sensor's cursor stores it: sortable, e.g. `2025-07-10T10:00`."""
    return f"{day.isoformat()}T{deadline:%H:%M}"


def due_deadline(now: dt.datetime, handled: str | None) -> tuple[dt.date, dt.time] | None:
    """The latest deadline of today (São Paulo) that has passed and was not judged yet, or None.

    Only today's deadlines are judged: a day whose 21:00 passed while nothing ran is not reported
    the next morning (the portfolio is gone by then; the raw completeness check shows it)."""
    local = now.astimezone(SAO_PAULO)
    day = local.date()
    if not is_trading_day(day):
        return None
    passed = [d for d in DEADLINES if local.time() >= d]
    if not passed:
        return None
    latest = passed[-1]
    if handled is not None and deadline_key(day, latest) <= handled:
        return None
    return day, latest


def now_sao_paulo() -> dt.datetime:
    """The current time on B3's clock (tests replace it to replay a day)."""
    return dt.datetime.now(SAO_PAULO)
