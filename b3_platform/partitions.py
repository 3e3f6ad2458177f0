"""The one partitions definition: B3 trading days, in São Paulo time.

Weekends are excluded by cron and weekday holidays by date, from `exchange_calendars` (BVMF).
`end_offset=1` makes today's partition exist during the day (B3 serves the day's portfolio from
early morning), which is what the capture needs. Dagster bug #33551: on a weekend or holiday this
shows the *next* trading day as the latest partition; raw_portfolio refuses future dates clearly.

The first partition is a setting, `B3_PLATFORM_PARTITIONS_START` (default: the calendar's first
day, 2015-01-02): a lake whose history starts in 2021 should not show six years of "missing"
partitions in the UI. It is read when the code loads, like every other setting.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

import dagster as dg

from b3_platform.settings_errors import ConfigError
from b3_platform.trading_calendar import START_DATE, TIMEZONE, weekday_closures

#: The first trading day Dagster offers as a partition (YYYY-MM-DD).
PARTITIONS_START_VAR = "B3_PLATFORM_PARTITIONS_START"


def partitions_start(env: Mapping[str, str] | None = None) -> dt.date:
    """`B3_PLATFORM_PARTITIONS_START`, validated; the calendar's first day when unset."""
    text = (os.environ if env is None else env).get(PARTITIONS_START_VAR, "").strip()
    if not text:
        return START_DATE
    try:
        start = dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{PARTITIONS_START_VAR}={text!r}: expected a date, YYYY-MM-DD") from None
    if start < START_DATE:
        raise ConfigError(
            f"{PARTITIONS_START_VAR}={text!r}: the B3 calendar starts on {START_DATE} "
            "(earlier closures are not known reliably)"
        )
    return start


def trading_days_from(start: dt.date) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        timezone=TIMEZONE,
        end_offset=1,
        exclusions=[
            "0 0 * * 6,0",
            *[dt.datetime(d.year, d.month, d.day) for d in weekday_closures() if d >= start],
        ],
    )


trading_days = trading_days_from(partitions_start())


def partition_days(context) -> list[dt.date]:
    """The run's dates: one partition or a single-run range (excluded days already removed)."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]
