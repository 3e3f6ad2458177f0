"""Which trading days each index has in raw, and which it lacks: the question a daily capture that
can never be redone must answer first ("did we miss a day?"). Dagster-free: it reads the raw
inventory (lake.raw_inventory: a state in the lake plus the dates written since, on a folder or on
S3) and the B3 calendar, so it costs the same with or without a Dagster instance and counts captures
however they arrived (schedule, import, landing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from b3_platform import trading_calendar
from b3_platform.lake.paths import PARQUET_FILE, is_index_folder_code
from b3_platform.lake.raw_inventory import RawInventory, inventory
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


def captured_days(storage: Storage, *, update: bool = False) -> dict[str, set[dt.date]]:
    """Per index, the dates with at least one committed capture (a sidecar) in raw. From the raw
    inventory (lake.raw_inventory): its state plus the dates written since, not a walk of all raw;
    `update` writes the state forward (the catalog refresh does). Index folders whose name is not an
    index code (`paths.is_index_folder_code`, what paths.index_in_key reads) are left out."""
    found = inventory(storage, update=update).captured_days()
    return {index: days for index, days in found.items() if is_index_folder_code(index)}


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


def coverage_table(raw: RawInventory, expected: Iterable[str], today: dt.date) -> pa.Table:
    """The coverage table of raw's inventory (lake.raw_inventory): every expected index and every
    index seen in raw, from the first captured day to `today` (the command's default range); empty
    when raw holds nothing.

    The rows of `coverage_rows(coverage(...))`, built as columns (one index-by-day grid of booleans,
    each column a dictionary cast to strings): 34 indices x 1,250 trading days are 42,500 rows on
    every catalog refresh, which as Python tuples cost more than reading raw's inventory itself.
    The grid is filled from the inventory's {date: {index: count}} as it is, a date at a time:
    turning it into a set of dates per index first (`captured_days`) was most of the build."""
    counts = raw.counts
    seen: set[str] = set()
    for per_day in counts.values():
        seen.update(per_day)
    seen = {index for index in seen if is_index_folder_code(index)}
    if not seen:
        return COVERAGE.schema.empty_table()
    first = min(day for day, per_day in counts.items() if not seen.isdisjoint(per_day))
    days = trading_calendar.trading_days_between(first, today)
    expected = list(dict.fromkeys(expected))
    order = [*expected, *sorted(seen - set(expected))]
    row_of = {index: row for row, index in enumerate(order)}
    position = {day: i for i, day in enumerate(days)}
    captured = np.zeros((len(order), len(days)), dtype=np.int8)
    for day, per_day in counts.items():
        column = position.get(day)
        if column is not None:  # a capture filed on a day that is not a trading day is not covered
            captured[[row_of[i] for i in per_day if i in row_of], column] = 1
    epoch = dt.date(1970, 1, 1).toordinal()
    columns = [
        _repeated(order, np.repeat(np.arange(len(order), dtype=np.int32), len(days))),
        pa.array(np.tile(np.array([d.toordinal() - epoch for d in days], dtype=np.int32), len(order))).cast(
            pa.date32()
        ),
        _repeated(["missing", "captured"], captured.ravel()),
        pa.array(np.repeat(np.array([i in expected for i in order], dtype=bool), len(days))),
    ]
    return pa.Table.from_arrays(columns, schema=COVERAGE.schema)


def _repeated(values: list[str], codes: np.ndarray) -> pa.Array:
    """`values[code]` for each code, as a plain string column."""
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(values, pa.string())).cast(pa.string())


def write_coverage(
    storage: Storage, expected: Iterable[str], today: dt.date, *, raw: RawInventory | None = None
) -> str:
    """Write the coverage table into the lake (`catalog/coverage/data.parquet`, one atomic write),
    only when it changed: the catalogs register that file (Glue as an unpartitioned table), and an
    unchanged file keeps its identity, so the local catalog does not load it again. Without `raw`
    (the inventory the caller brought up to date) it brings the raw inventory's state up to date on
    the way (what the catalog's raw counts then read). Returns its key."""
    key = f"{COVERAGE.location}{PARQUET_FILE}"
    raw = inventory(storage, update=True) if raw is None else raw
    data = to_parquet_bytes(coverage_table(raw, expected, today))
    if storage.read_if_exists(key) != data:
        storage.write_bytes(key, data)
    return key
