"""The one partitions definition: B3 trading days, in São Paulo time.

Weekends are excluded by cron and weekday holidays by date, from `exchange_calendars` (BVMF).
`end_offset=1` makes today's partition exist during the day (B3 serves the day's portfolio from
early morning), which is what the capture needs. Dagster bug #33551: on a weekend or holiday this
shows the *next* trading day as the latest partition; raw_portfolio refuses future dates clearly.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from b3_platform.trading_calendar import START_DATE, TIMEZONE, weekday_closures

trading_days = dg.DailyPartitionsDefinition(
    start_date=START_DATE.isoformat(),
    timezone=TIMEZONE,
    end_offset=1,
    exclusions=["0 0 * * 6,0", *[dt.datetime(d.year, d.month, d.day) for d in weekday_closures()]],
)


def partition_days(context) -> list[dt.date]:
    """The run's dates: one partition or a single-run range (excluded days already removed)."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]
