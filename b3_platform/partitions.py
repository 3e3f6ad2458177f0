"""The one partitions definition: B3 trading days, in São Paulo time.

The partitions tick at midnight Monday to Friday (`WEEKDAYS`), and weekday holidays from
`exchange_calendars` (BVMF) are excluded: the commonest ones B3 closes on every year by cron strings,
the others by date (`exclusions_from`). `end_offset=1` makes today's partition exist during the day
(B3 serves the day's portfolio from early morning), which is what the capture needs. On a weekend
the latest partition is therefore Friday's (Friday's window runs to Monday). Dagster bug #33551: on
a holiday (and on a weekend right after one) the latest partition is the *next* trading day;
raw_portfolio refuses future dates clearly.

The first partition is a setting, `B3_PLATFORM_PARTITIONS_START` (default: the calendar's first
day, 2015-01-02): a lake whose history starts in 2021 should not show six years of "missing"
partitions in the UI. It is read when the code loads, like every other setting.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

import dagster as dg

from b3_platform.settings_errors import ConfigError
from b3_platform.trading_calendar import START_DATE, TIMEZONE, horizon, weekday_closures

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


#: A partition key's format: the ISO date.
DATE_FORMAT = "%Y-%m-%d"

#: The partitions' ticks: midnight, Monday to Friday. Weekends are not ticks, so no exclusion has to
#: remove them and consecutive trading days' windows touch (Friday's runs to Monday): Dagster merges
#: touching windows at once, while every gap between two windows (an excluded day) costs it a walk of
#: the exclusions' cron iterators. With weekends as exclusions a 250-date range had ~50 such gaps and
#: Dagster built each run's partition subsets ~15 times (output and input contexts, data versions):
#: ~150 ms each on a slow machine, against ~30 with only the holidays as gaps. Measured in
#: benchmarks/RESULTS.md.
WEEKDAYS = "0 0 * * 1-5"

#: A cron string for fixed-date holidays only where it replaces at least this many dates. Every
#: cron string slows each partition-range lookup (~0.3 ms at 60 dates), and Dagster looks the run's
#: range up again for every partition's metadata (8 per date): the strings that replace ~10 dates
#: each save ~1 KB per stored subset but cost more CPU than they save. Measured in
#: benchmarks/RESULTS.md.
MIN_DATES_PER_CRON = 15


def fixed_date_closures(closures: Sequence[dt.date], start: dt.date, end: dt.date) -> dict[int, list[int]]:
    """{month: [days]} of the calendar dates B3 closes on in every year of `start`..`end` where
    they fall on a weekday (New Year, Tiradentes, Christmas...): each can be excluded by one cron
    string instead of one timestamp per year."""
    closed = set(closures)
    fixed: dict[int, list[int]] = {}
    for month, day in sorted({(d.month, d.day) for d in closures}):
        dates = []
        for year in range(start.year, end.year + 1):
            try:
                dates.append(dt.date(year, month, day))
            except ValueError:  # 29 February
                continue
        weekdays = [d for d in dates if start <= d <= end and d.weekday() < 5]
        if all(d in closed for d in weekdays):
            fixed.setdefault(month, []).append(day)
    return fixed


def exclusions_from(start: dt.date) -> list[str | dt.datetime]:
    """B3's weekday closures from `start` on, as few exclusions as give the same days (weekends are
    not ticks of `WEEKDAYS`).

    Dagster copies the whole partitions definition into every planned check row and every
    partitions subset it stores (one row per check per date of a run), so its size is paid per
    date in the instance database: one timestamp costs ~95 bytes serialized, a cron string ~15.
    Dates B3 closes every year (where they fall on a weekday of the calendar's span) become cron
    strings grouped by day of month, where one replaces `MIN_DATES_PER_CRON` dates or more; the
    others, and the moveable and one-off closures (Carnival, Good Friday, Corpus Christi, São
    Paulo's holidays before 2022, a year-end Friday), stay dates. The partition keys are the same
    as listing every closure over the calendar's span; past its end (next year's last day) the
    cron strings' holidays stay excluded, which is what B3 does."""
    _, end = horizon()
    closures = [d for d in weekday_closures() if d >= start]
    fixed = fixed_date_closures(closures, start, end)
    months_by_days: dict[tuple[int, ...], list[int]] = {}
    for month, days in fixed.items():
        months_by_days.setdefault(tuple(days), []).append(month)
    crons: list[str] = []
    by_cron: set[tuple[int, int]] = set()
    for days, months in months_by_days.items():
        covered = {(m, d) for m in months for d in days}
        if sum((c.month, c.day) in covered for c in closures) >= MIN_DATES_PER_CRON:
            crons.append(f"0 0 {','.join(map(str, days))} {','.join(map(str, months))} *")
            by_cron |= covered
    dates = [dt.datetime(d.year, d.month, d.day) for d in closures if (d.month, d.day) not in by_cron]
    return [*crons, *dates]


def _next_midnight(timestamp: float, timezone: ZoneInfo) -> float:
    """The first midnight in `timezone` after `timestamp`."""
    day = dt.datetime.fromtimestamp(timestamp, timezone).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0), tzinfo=timezone).timestamp()


def memoize_partition_keys(
    partitions_def: dg.TimeWindowPartitionsDefinition,
    keys_through: Callable[[dt.date], tuple[str, ...] | None] | None = None,
) -> dg.TimeWindowPartitionsDefinition:
    """`partitions_def`, whose `get_partition_keys()` lists its keys once per latest partition.

    A run of an unpartitioned asset that reads partitioned ones (athena_tables: twelve tables)
    has Dagster list every key of each input's partitions, ~3,000 trading days since 2015, only to
    count them (`DataVersionCache`: from 100 keys on it uses the input's latest materialization's
    data version instead): ~0.16 s of CPU per input, ~1.9 s of a daily run. The listing depends
    only on the latest partition's window (it walks the windows from the first up to it), so it is
    kept for that window and listed again when the window changes. Finding the latest window costs
    ~13 ms, so it is looked up again only when the effective time leaves the day it was looked up
    in: every window starts and ends on a tick of the cron schedule, which ticks at midnight, so the
    latest window cannot change between one midnight and the next. Each call returns a new list, as
    Dagster's does.

    `keys_through(day)`, when given, lists the keys up to the latest partition's `day` as Dagster
    would, without walking the schedule (None: it cannot, and Dagster lists them).

    The lookups that depend only on their arguments (`PURE_LOOKUPS`: a key's window, a range's
    keys) are memoized on it too.

    The memo is set on this one object, not on Dagster's class: every other method, equality,
    hashing and the serialized definition Dagster stores are the class's own."""
    if not partitions_def.cron_schedule.startswith("0 0 "):
        raise ValueError(
            f"memoize_partition_keys needs ticks at midnight, not {partitions_def.cron_schedule!r}"
        )
    listing = type(partitions_def).get_partition_keys
    timezone = ZoneInfo(partitions_def.timezone)
    #: The effective times [from, until) the latest window is known for, that window's start, its keys.
    memo: dict[str, tuple] = {}

    def get_partition_keys(current_time=None, dynamic_partitions_store=None) -> list[str]:
        with dg.partition_loading_context(current_time, dynamic_partitions_store) as context:
            now = context.effective_dt
            # A naive time is in the partitions' timezone, as Dagster reads it.
            timestamp = (now if now.tzinfo else now.replace(tzinfo=timezone)).timestamp()
            if "keys" in memo and memo["since"] <= timestamp < memo["until"]:
                return list(memo["keys"])
            last = partitions_def.get_last_partition_window()
            window = last.start.timestamp() if last else None
            if "keys" not in memo or memo["window"] != window:
                known = keys_through(last.start.date()) if keys_through and last else None
                memo["window"] = window
                memo["keys"] = known if known is not None else tuple(listing(partitions_def))
            until = _next_midnight(timestamp, timezone)
            # At a tick itself the window may change just after it: known for that instant only.
            on_tick = _next_midnight(timestamp - 1e-3, timezone) == timestamp
            memo["since"], memo["until"] = timestamp, (timestamp if on_tick else until)
            return list(memo["keys"])

    # An instance attribute shadows the class's method for this object only.
    object.__setattr__(partitions_def, "get_partition_keys", get_partition_keys)
    for name, copy in PURE_LOOKUPS.items():
        _memoize_lookup(partitions_def, name, copy)
    return partitions_def


#: The definition's lookups whose answer depends only on their arguments (a key, a range of keys),
#: never on the time: {method name: whether a caller gets its own copy (a list) or the value}.
#: Each costs a walk of the cron schedule and of every exclusion (a few ms), and Dagster asks them
#: again for every step's input and output, every partition's metadata and check: ~10 % of a
#: 34-index daily run's CPU went to the same few answers. Dagster's own caches on some of them
#: hash the definition for every call, which formats its whole repr (exclusions included).
PURE_LOOKUPS = {
    "start_time_for_partition_key": False,
    "end_time_for_partition_key": False,
    "time_window_for_partition_key": False,
    "get_partition_keys_in_range": True,
}
#: Answers kept per lookup: far more than the keys and ranges of any run (a range run asks its one
#: range), bounded for a long-lived code server.
LOOKUP_MEMO_SIZE = 8192


def _memoize_lookup(partitions_def: dg.TimeWindowPartitionsDefinition, name: str, copy: bool) -> None:
    """Shadow `name` on this object with a memo of the class's own answers. An error (a key that
    does not parse, a range outside the definition) is raised again on every call, never kept."""
    lookup = getattr(type(partitions_def), name)
    remembered = functools.lru_cache(maxsize=LOOKUP_MEMO_SIZE)(
        lambda *args, **kwargs: lookup(partitions_def, *args, **kwargs)
    )

    def memoized(*args, **kwargs):
        answer = remembered(*args, **kwargs)
        return list(answer) if copy else answer

    memoized.__doc__ = lookup.__doc__
    object.__setattr__(partitions_def, name, memoized)


def trading_days_from(start: dt.date) -> dg.TimeWindowPartitionsDefinition:
    """B3's trading days from `start`: one key per session, `YYYY-MM-DD`. A partition's time window
    runs to the next weekday's midnight (Friday's to Monday's); nothing here reads windows, only
    keys. Its key listing is memoized (`memoize_partition_keys`), and made from the calendar
    (`weekdays_open_through`)."""
    return memoize_partition_keys(
        dg.TimeWindowPartitionsDefinition(
            cron_schedule=WEEKDAYS,
            fmt=DATE_FORMAT,
            start=start.isoformat(),
            timezone=TIMEZONE,
            end_offset=1,
            exclusions=exclusions_from(start),
        ),
        keys_through=lambda last: weekdays_open_through(start, last),
    )


def weekdays_open_through(start: dt.date, last: dt.date) -> tuple[str, ...] | None:
    """The keys Dagster lists for `trading_days_from(start)` up to `last`: the weekdays (`WEEKDAYS`'
    ticks) from `start` to `last` that are not closures, which within the calendar's span is
    exactly what `exclusions_from` excludes. Dagster's own listing walks the cron schedule and
    checks every exclusion on each tick (~0.16 s for the ~3,000 days since 2015, once in every
    process that lists them: the catalog's run does, through its inputs' data versions); this is a
    loop over dates. None past the calendar's span, where only the cron strings' holidays are
    known to Dagster: it lists them itself then."""
    if last > horizon()[1]:
        return None
    closed = set(weekday_closures())
    keys = []
    day = start
    while day <= last:
        if day.weekday() < 5 and day not in closed:
            keys.append(day.isoformat())
        day += dt.timedelta(days=1)
    return tuple(keys)


trading_days = trading_days_from(partitions_start())


def partition_days(context) -> list[dt.date]:
    """The run's dates: one partition or a single-run range (excluded days already removed)."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]
