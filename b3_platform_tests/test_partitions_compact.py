"""The partitions definition excludes B3's fixed-date holidays by cron string instead of one date per
year: the same partition keys as listing every closure, at a fraction of the bytes Dagster stores
with every planned check row (one per check per date of a run)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import exchange_calendars as xc
import pytest
from dagster._serdes import serialize_value

from b3_platform import partitions
from b3_platform.trading_calendar import START_DATE, TIMEZONE, horizon, weekday_closures


def every_closure_listed(start: dt.date) -> dg.DailyPartitionsDefinition:
    """The reference, built differently on purpose: daily ticks, weekends excluded by cron, every
    weekday closure as its own date."""
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        timezone=TIMEZONE,
        end_offset=1,
        exclusions=[
            "0 0 * * 6,0",
            *[dt.datetime(d.year, d.month, d.day) for d in weekday_closures() if d >= start],
        ],
    )


def keys_until(partitions_def: dg.TimeWindowPartitionsDefinition, last: dt.date) -> list[str]:
    """Every key up to `last` (the definition's end_offset adds the next day: cut it off)."""
    keys = partitions_def.get_partition_keys(current_time=dt.datetime(last.year, last.month, last.day, 12))
    return [k for k in keys if k <= last.isoformat()]


@pytest.mark.parametrize("start", [START_DATE, dt.date(2021, 6, 21), dt.date(2022, 1, 3)], ids=str)
def test_the_same_keys_as_every_closure_listed_over_the_calendar_span(start):
    # 2021-06-21: São Paulo's own holidays (25 Jan, 9 Jul, 20 Nov) still closed B3 in 2021 and
    # not from 2022 on, so they must stay dates, never a yearly cron string.
    _, end = horizon()
    compact = partitions.trading_days_from(start)
    keys = keys_until(compact, end)
    assert keys == keys_until(every_closure_listed(start), end)
    sessions = xc.get_calendar("BVMF", start=start.isoformat(), end=end.isoformat()).sessions
    assert keys == [ts.date().isoformat() for ts in sessions]


def test_past_the_calendar_span_only_real_holidays_are_added_up_to_2030():
    # The calendar ends next year's 31 December; after it, listing closures excluded nothing but
    # weekends, while the yearly cron strings still exclude New Year, Tiradentes, Christmas... —
    # every key they drop is a day BVMF is closed.
    _, end = horizon()
    last = dt.date(2030, 12, 31)
    compact = set(keys_until(partitions.trading_days, last))
    listed = set(keys_until(every_closure_listed(START_DATE), last))
    assert compact <= listed
    dropped = sorted(listed - compact)
    assert dropped and all(k > end.isoformat() for k in dropped)
    open_days = {
        ts.date().isoformat()
        for ts in xc.get_calendar("BVMF", start=end.isoformat(), end=last.isoformat()).sessions
    }
    assert not open_days & set(dropped), "a dropped key is a BVMF session"


def test_fixed_date_holidays_are_cron_strings_and_the_rest_dates():
    exclusions = partitions.exclusions_from(START_DATE)
    crons = [e for e in exclusions if isinstance(e, str)]
    assert not any(c.endswith(("6,0", "0,6")) for c in crons)  # weekends are not ticks
    assert "0 0 1 1,5 *" in crons  # New Year and Labour Day
    assert "0 0 24,25,31 12 *" in crons
    assert "0 0 2,15 11 *" in crons  # All Souls' Day and the Republic
    dates = {e.date() for e in exclusions if isinstance(e, dt.datetime)}
    assert dt.date(2025, 3, 3) in dates  # Carnival moves with Easter
    assert dt.date(2021, 1, 25) in dates  # São Paulo's anniversary closed B3 until 2021 only
    assert dt.date(2025, 12, 25) not in dates  # Christmas is a cron string
    # Tiradentes (21 April) is fixed too, but one cron string for its 10 weekday dates would cost
    # every partition-range lookup more CPU than its bytes are worth: it stays dates.
    assert dt.date(2025, 4, 21) in dates
    assert len(crons) == 3
    assert len(dates) <= len(weekday_closures()) - 3 * partitions.MIN_DATES_PER_CRON


def test_a_date_closed_one_year_and_open_another_is_not_fixed():
    closures = [dt.date(2021, 1, 25), dt.date(2020, 1, 1), dt.date(2021, 1, 1)]
    # New Year: closed on the weekdays it fell on (2022-01-01 was a Saturday). 25 January:
    # 2020's was a Saturday, 2021's closed, 2022's a Tuesday B3 was open.
    fixed = partitions.fixed_date_closures(closures, dt.date(2020, 1, 1), dt.date(2022, 12, 31))
    assert fixed == {1: [1]}
    fixed = partitions.fixed_date_closures(closures, dt.date(2020, 1, 1), dt.date(2021, 12, 31))
    assert fixed == {1: [1, 25]}


def test_a_stored_run_subset_is_a_third_smaller():
    keys = keys_until(partitions.trading_days, dt.date(2025, 7, 11))[-60:]
    compact = partitions.trading_days.subset_with_partition_keys(keys).to_serializable_subset()
    listed_def = every_closure_listed(START_DATE)
    listed = listed_def.subset_with_partition_keys(keys).to_serializable_subset()
    assert len(serialize_value(compact)) < len(serialize_value(listed)) * 2 / 3
