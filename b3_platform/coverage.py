"""Which trading days each index has in raw, and which it lacks: the question a daily capture that
can never be redone must answer first ("did we miss a day?"). Dagster-free: it reads the raw
store's keys (one listing, on a folder or on S3) and the B3 calendar, so it costs the same with or
without a Dagster instance and counts captures however they arrived (schedule, import, landing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from b3_platform import trading_calendar
from b3_platform.lake.paths import META_SUFFIX, PARQUET_FILE, date_in_key, index_in_key, raw_prefix
from b3_platform.lake.schemas import COVERAGE
from b3_platform.lake.storage import Storage
from b3_platform.lake.tables import to_parquet_bytes


@dataclass(frozen=True)
class IndexCoverage:
    index: str
    #: In the capture list (so a missing day is a miss), or only seen in raw (imported).
    expected: bool
    days: int
    captured: list[dt.date] = field(repr=False)
    missing: list[dt.date] = field(repr=False)

    @property
    def first(self) -> dt.date | None:
        return self.captured[0] if self.captured else None

    @property
    def last(self) -> dt.date | None:
        return self.captured[-1] if self.captured else None


def captured_days(storage: Storage) -> dict[str, set[dt.date]]:
    """Per index, the dates with at least one committed capture (a sidecar) in raw."""
    found: dict[str, set[dt.date]] = {}
    for key in storage.list_keys(raw_prefix()):
        if not key.endswith(META_SUFFIX):
            continue
        day, index = date_in_key(key), index_in_key(key)
        if day is not None and index is not None:
            found.setdefault(index, set()).add(day)
    return found


def coverage(
    found: dict[str, set[dt.date]],
    expected: Iterable[str],
    first: dt.date,
    last: dt.date,
) -> list[IndexCoverage]:
    """Coverage of every expected index and every index seen in raw, over the trading days from
    `first` to `last` (both included): expected indices first, then the others, by code."""
    days = trading_calendar.trading_days_between(first, last)
    expected = list(dict.fromkeys(expected))
    others = sorted(set(found) - set(expected))
    result = []
    for index in [*expected, *others]:
        have = found.get(index, set())
        result.append(
            IndexCoverage(
                index=index,
                expected=index in expected,
                days=len(days),
                captured=[d for d in days if d in have],
                missing=[d for d in days if d not in have],
            )
        )
    return result


def ranges(days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive trading days folded into (first, last) runs: 2025-07-07..2025-07-10 stays one
    run when only the weekend or a holiday lies between its days."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if runs and trading_calendar.previous_trading_day(day) == runs[-1][1]:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def describe_ranges(days: Sequence[dt.date], limit: int = 6) -> str:
    """`2025-07-09, 2025-07-14..2025-07-18 (+3 more runs)`; `none` when empty."""
    runs = ranges(days)
    shown = [f"{a}" if a == b else f"{a}..{b}" for a, b in runs[:limit]]
    more = f" (+{len(runs) - limit} more runs)" if len(runs) > limit else ""
    return (", ".join(shown) + more) if shown else "none"


def coverage_rows(report: Sequence[IndexCoverage]) -> list[tuple[str, dt.date, str, bool]]:
    """(index, trading day, captured or missing, expected) per index per day: what `coverage --days`
    lists, and the catalog's `coverage` table holds."""
    return [
        (c.index, day, "captured" if day in captured else "missing", c.expected)
        for c in report
        for captured in [set(c.captured)]
        for day in sorted([*c.captured, *c.missing])
    ]


def coverage_table(storage: Storage, expected: Iterable[str], today: dt.date) -> pa.Table:
    """The coverage table of the lake: every expected index and every index seen in raw, from the
    first captured day to `today` (the command's default range); empty when raw holds nothing."""
    found = captured_days(storage)
    rows = (
        coverage_rows(coverage(found, expected, min(min(d) for d in found.values()), today)) if found else []
    )
    columns = list(zip(*rows)) if rows else [[] for _ in COVERAGE.schema]
    return pa.Table.from_arrays(
        [pa.array(list(c), f.type) for c, f in zip(columns, COVERAGE.schema)], schema=COVERAGE.schema
    )


def write_coverage(storage: Storage, expected: Iterable[str], today: dt.date) -> str:
    """Write the coverage table into the lake (`catalog/coverage/data.parquet`, one atomic write),
    only when it changed: the catalogs register that file (Glue as an unpartitioned table), and an
    unchanged file keeps its identity, so the local catalog does not load it again. Returns its key."""
    key = f"{COVERAGE.location}{PARQUET_FILE}"
    data = to_parquet_bytes(coverage_table(storage, expected, today))
    if storage.read_if_exists(key) != data:
        storage.write_bytes(key, data)
    return key
