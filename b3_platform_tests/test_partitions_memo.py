"""The trading days' key listing is memoized per latest partition (`partitions.memoize_partition_keys`):
the same keys as Dagster's own listing at every effective time, listed once per latest partition,
and nothing else of the definition changes (equality, the serialized form Dagster stores)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from dagster_shared.check import CheckError

from b3_platform import partitions
from b3_platform.trading_calendar import START_DATE, TIMEZONE

CLASS = dg.TimeWindowPartitionsDefinition


def plain(start: dt.date = START_DATE) -> dg.TimeWindowPartitionsDefinition:
    """The same definition without the memo."""
    memoized = partitions.trading_days_from(start)
    return CLASS(
        cron_schedule=memoized.cron_schedule,
        fmt=memoized.fmt,
        start=memoized.start,
        timezone=memoized.timezone,
        end_offset=memoized.end_offset,
        exclusions=memoized.exclusions,
    )


def counted(monkeypatch) -> list[int]:
    """Counts the class's own listings (the work the memo saves)."""
    calls = [0]
    listing = CLASS.get_partition_keys

    def counting(self, *args, **kwargs):
        calls[0] += 1
        return listing(self, *args, **kwargs)

    monkeypatch.setattr(CLASS, "get_partition_keys", counting)
    return calls


def counted_listings(monkeypatch) -> list[int]:
    """Counts every listing the memo makes: Dagster's own, and the calendar's."""
    calls = counted(monkeypatch)
    from_calendar = partitions.weekdays_open_through

    def counting(*args):
        calls[0] += 1
        return from_calendar(*args)

    monkeypatch.setattr(partitions, "weekdays_open_through", counting)
    return calls


def test_the_same_keys_as_dagsters_listing_at_each_effective_time():
    memoized, reference = partitions.trading_days_from(START_DATE), plain()
    # A trading day, a holiday (Tiradentes), a weekend, the day after a weekend, a year-end.
    for moment in [
        dt.datetime(2025, 7, 10, 12),
        dt.datetime(2025, 4, 21, 12),
        dt.datetime(2025, 7, 12, 12),
        dt.datetime(2025, 7, 14, 9),
        dt.datetime(2024, 12, 31, 23),
    ]:
        with dg.partition_loading_context(effective_dt=moment):
            assert memoized.get_partition_keys() == reference.get_partition_keys(), moment
        # The time passed as an argument, as Dagster's callers may.
        assert memoized.get_partition_keys(current_time=moment) == reference.get_partition_keys(
            current_time=moment
        )


def moments(first: dt.date, last: dt.date) -> list[dt.datetime]:
    """Noon of each day from `first` to `last` in São Paulo time, and a second before, at and after
    each midnight (where the latest partition may change)."""
    sao_paulo = ZoneInfo(TIMEZONE)
    times = []
    day = first
    while day <= last:
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=sao_paulo)
        times += [midnight + dt.timedelta(seconds=s) for s in (-1, 0, 1)]
        times.append(midnight + dt.timedelta(hours=12))
        day += dt.timedelta(days=1)
    return times


def test_the_same_keys_around_every_midnight_across_weekends_and_holidays():
    # Carnival (3-4 March 2025), Good Friday (18 April), Tiradentes (21 April), weekends; the memo
    # is asked in time order (the fast path: the same day) and then backwards.
    memoized, reference = partitions.trading_days_from(dt.date(2025, 1, 2)), plain(dt.date(2025, 1, 2))
    times = moments(dt.date(2025, 2, 27), dt.date(2025, 4, 23))
    for moment in [*times, *reversed(times)]:
        with dg.partition_loading_context(effective_dt=moment):
            assert memoized.get_partition_keys() == reference.get_partition_keys(), moment


def test_listed_once_per_latest_partition(monkeypatch):
    calls = counted_listings(monkeypatch)  # before the memo takes the class's listing
    memoized = partitions.trading_days_from(dt.date(2024, 1, 2))
    morning, evening = dt.datetime(2025, 7, 10, 9), dt.datetime(2025, 7, 10, 20)
    with dg.partition_loading_context(effective_dt=morning):
        first = memoized.get_partition_keys()
    with dg.partition_loading_context(effective_dt=evening):  # the same latest partition
        again = memoized.get_partition_keys()
    assert calls[0] == 1 and first == again
    before = calls[0]
    with dg.partition_loading_context(effective_dt=evening):
        memoized.get_partition_keys()
    assert calls[0] == before
    with dg.partition_loading_context(effective_dt=dt.datetime(2025, 7, 11, 9)):  # the next day's
        later = memoized.get_partition_keys()
    assert calls[0] == 2
    assert later[: len(first)] == first and len(later) == len(first) + 1


def test_each_call_returns_its_own_list():
    memoized = partitions.trading_days_from(dt.date(2024, 1, 2))
    with dg.partition_loading_context(effective_dt=dt.datetime(2025, 7, 10, 12)):
        keys = memoized.get_partition_keys()
        keys.append("changed by a caller")
        assert "changed by a caller" not in memoized.get_partition_keys()


def test_only_a_schedule_ticking_at_midnight_is_memoized():
    hourly = dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 * * * *", fmt="%Y-%m-%d-%H:%M", start="2025-01-01-00:00"
    )
    with pytest.raises(ValueError, match="midnight"):
        partitions.memoize_partition_keys(hourly)


def test_the_definition_is_otherwise_dagsters_own():
    memoized, reference = partitions.trading_days_from(START_DATE), plain()
    assert memoized == reference and hash(memoized) == hash(reference)
    assert serialize_value(memoized) == serialize_value(reference)
    assert "get_partition_keys" not in vars(reference)
    assert partitions.trading_days.get_partition_keys != CLASS.get_partition_keys.__get__(
        partitions.trading_days
    )


# ---------------------------------------------------------------------------- the pure lookups


def test_the_pure_lookups_answer_as_dagsters_own():
    memoized, reference = partitions.trading_days_from(dt.date(2024, 1, 2)), plain(dt.date(2024, 1, 2))
    # Trading days either side of Carnival, Good Friday, Tiradentes and a weekend; each asked twice
    # (the second answer is the memo's).
    keys = ["2025-02-28", "2025-03-05", "2025-04-17", "2025-04-22", "2025-07-11", "2025-07-14"]
    for key in keys * 2:
        assert memoized.start_time_for_partition_key(key) == reference.start_time_for_partition_key(key)
        assert memoized.end_time_for_partition_key(key) == reference.end_time_for_partition_key(key)
        assert memoized.time_window_for_partition_key(key) == reference.time_window_for_partition_key(key)
    for start, end in [
        ("2025-02-28", "2025-03-05"),
        ("2025-04-17", "2025-04-22"),
        ("2024-01-02", "2025-07-14"),
    ]:
        for _ in range(2):
            span = dg.PartitionKeyRange(start, end)
            assert memoized.get_partition_keys_in_range(span) == reference.get_partition_keys_in_range(span)
    # Carnival's Monday and Tuesday are not keys of the range.
    carnival = memoized.get_partition_keys_in_range(dg.PartitionKeyRange("2025-02-28", "2025-03-05"))
    assert carnival == ["2025-02-28", "2025-03-05"]


def test_each_lookup_is_computed_once_per_argument(monkeypatch):
    calls: list[str] = []
    for name in partitions.PURE_LOOKUPS:
        own = getattr(CLASS, name)

        def counting(self, *args, _own=own, _name=name, **kwargs):
            calls.append(_name)
            return _own(self, *args, **kwargs)

        monkeypatch.setattr(CLASS, name, counting)
    memoized = partitions.trading_days_from(dt.date(2024, 1, 2))
    span = dg.PartitionKeyRange("2025-07-10", "2025-07-11")
    for _ in range(3):
        memoized.get_partition_keys_in_range(span)
        memoized.start_time_for_partition_key("2025-07-10")
    assert calls.count("get_partition_keys_in_range") == 1
    # The range's own look-up of its first key is the memo's too.
    assert calls.count("start_time_for_partition_key") == 1


def test_a_range_is_a_new_list_and_errors_are_not_kept():
    memoized = partitions.trading_days_from(dt.date(2024, 1, 2))
    span = dg.PartitionKeyRange("2025-07-10", "2025-07-11")
    keys = memoized.get_partition_keys_in_range(span)
    keys.append("changed by a caller")
    assert memoized.get_partition_keys_in_range(span) == ["2025-07-10", "2025-07-11"]
    for _ in range(2):  # raised by Dagster every time, as without the memo
        with pytest.raises(ValueError):
            memoized.start_time_for_partition_key("not a date")
    for _ in range(2):  # a range before the first partition: Dagster's own check, every time
        with pytest.raises(CheckError, match="before the partitions definition start"):
            memoized.get_partition_keys_in_range(dg.PartitionKeyRange("2023-07-10", "2023-07-11"))
    assert memoized.has_partition_key("2025-07-10") and not memoized.has_partition_key("2025-07-12")


# ---------------------------------------------------------------------- the listing from the calendar


def test_the_calendar_lists_the_keys_within_its_span_and_dagster_past_it(monkeypatch):
    calls = counted(monkeypatch)
    memoized, reference = partitions.trading_days_from(START_DATE), plain()
    _, end = partitions.horizon()
    inside = dt.datetime(2025, 7, 10, 12)
    with dg.partition_loading_context(effective_dt=inside):
        assert memoized.get_partition_keys() == reference.get_partition_keys()
    assert calls[0] == 1  # the reference's own listing only: the calendar made the memo's
    # Past the calendar's last day Dagster lists them (only its cron strings' holidays are known).
    beyond = dt.datetime(end.year + 1, 3, 10, 12)
    assert partitions.weekdays_open_through(START_DATE, beyond.date()) is None
    with dg.partition_loading_context(effective_dt=beyond):
        assert memoized.get_partition_keys() == reference.get_partition_keys()
    assert calls[0] == 3


def test_the_calendar_listing_from_a_holiday_start_and_across_every_kind_of_closure():
    # Started on a holiday (New Year 2021 is a Friday: the first key is Monday the 4th), through
    # Carnival, Good Friday, Tiradentes, Corpus Christi, São Paulo's holidays and year ends.
    start = dt.date(2021, 1, 1)
    memoized, reference = partitions.trading_days_from(start), plain(start)
    for moment in [dt.datetime(2021, 1, 4, 12), dt.datetime(2022, 12, 30, 12), dt.datetime(2024, 11, 20, 12)]:
        with dg.partition_loading_context(effective_dt=moment):
            keys = memoized.get_partition_keys()
            assert keys == reference.get_partition_keys(), moment
    assert keys[0] == "2021-01-04" and "2024-11-20" not in keys  # Black Consciousness Day, from 2024
