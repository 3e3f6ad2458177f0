"""Which trading days each index has in raw, and which it lacks: the question a daily capture that
can never be redone must answer first ("did we miss a day?"). Dagster-free: it reads the raw
inventory (lake.raw_inventory: a state in the lake plus the dates written since, on a folder or on
S3) and the B3 calendar, so it costs the same with or without a Dagster instance and counts captures
however they arrived (schedule, import, landing).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from b3_platform import trading_calendar
from b3_platform.lake.paths import COVERAGE_BASIS_KEY, is_index_folder_code, year_file
from b3_platform.lake.raw_inventory import Counts, RawInventory, inventory
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


@dataclass(frozen=True)
class _Layout:
    """What every year of the coverage table shares: its indices in row order (expected first, then
    the others seen in raw, by code), which of them are expected, and its first day."""

    order: list[str]
    expected: list[bool]
    first: dt.date


def _layout(raw: RawInventory, expected: Iterable[str]) -> _Layout | None:
    """From the inventory's summaries alone (each index's first day): no year is read. None when raw
    holds no capture of an index code."""
    firsts = {index: day for index, day in raw.first_days().items() if is_index_folder_code(index)}
    if not firsts:
        return None
    wanted = list(dict.fromkeys(expected))
    order = [*wanted, *sorted(set(firsts) - set(wanted))]
    return _Layout(order, [index in wanted for index in order], min(firsts.values()))


def coverage_table(raw: RawInventory, expected: Iterable[str], today: dt.date) -> pa.Table:
    """The coverage table of raw's inventory (lake.raw_inventory): every expected index and every
    index seen in raw, from the first captured day to `today` (the command's default range); empty
    when raw holds nothing. The lake stores it a year per file (`write_coverage`)."""
    layout = _layout(raw, expected)
    if layout is None:
        return COVERAGE.schema.empty_table()
    return _grid(raw.counts, layout, trading_calendar.trading_days_between(layout.first, today))


def _grid(counts: Counts, layout: _Layout, days: list[dt.date]) -> pa.Table:
    """The rows of `coverage_rows(coverage(...))` for `days`, built as columns (one index-by-day grid
    of booleans, each column a dictionary cast to strings): 34 indices x 1,250 trading days are
    42,500 rows, which as Python tuples cost more than reading raw's inventory itself. The grid is
    filled from the inventory's {date: {index: count}} as it is, a date at a time: turning it into a
    set of dates per index first (`captured_days`) was most of the build."""
    order = layout.order
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
        pa.array(np.repeat(np.array(layout.expected, dtype=bool), len(days))),
    ]
    return pa.Table.from_arrays(columns, schema=COVERAGE.schema)


def _repeated(values: list[str], codes: np.ndarray) -> pa.Array:
    """`values[code]` for each code, as a plain string column."""
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(values, pa.string())).cast(pa.string())


def write_coverage(
    storage: Storage, expected: Iterable[str], today: dt.date, *, raw: RawInventory | None = None
) -> list[str]:
    """Write the coverage table into the lake, one file per year (`paths.year_file` under
    `catalog/coverage/`, each one atomic write), rebuilding only the years that may have changed:
    the catalogs register that folder (Glue as an unpartitioned table), and a year whose bytes are
    the same keeps its file's identity, so the local catalog does not load it again.

    Which years may have changed is told by the basis of the last write (`COVERAGE_BASIS_KEY`,
    written after the files): the layout (indices, which are expected, the first day), the day it
    ran through and each year's inventory digest. A year is rebuilt when its digest differs or the
    range grew into it (the years from the last write's day on); every year when the layout
    changed or there is no basis (then files the folder holds for no year of the range, such as an
    older version's one file, are deleted). So the daily refresh builds the current year only,
    whatever the history. Without `raw` (the inventory the caller brought up to date) it brings the
    raw inventory's state up to date on the way (what the catalog's raw counts then read). Returns
    the keys of the years' files."""
    raw = inventory(storage, update=True, whole=False) if raw is None else raw
    layout = _layout(raw, expected)
    years = list(range(layout.first.year, today.year + 1)) if layout and layout.first <= today else []
    summaries = raw.years
    basis = {
        "format": _BASIS_FORMAT,
        "order": layout.order if layout else [],
        "expected": layout.expected if layout else [],
        "first": layout.first.isoformat() if layout else None,
        "through": today.isoformat(),
        "years": {str(y): summaries[y].digest if y in summaries else "" for y in years},
    }
    before = _read_basis(storage)
    keys = {y: _year_key(y) for y in years}
    if before is not None and all(before[k] == basis[k] for k in ("order", "expected", "first")):
        since = min(dt.date.fromisoformat(before["through"]).year, today.year)
        rebuild = [y for y in years if y >= since or before["years"].get(str(y)) != basis["years"][str(y)]]
        stale = [_year_key(int(y)) for y in before["years"] if int(y) not in keys]
    else:
        rebuild = years
        stale = [k for k in storage.list_keys(COVERAGE.location) if k not in keys.values()]
    for year in rebuild:
        days = trading_calendar.trading_days_between(
            max(layout.first, dt.date(year, 1, 1)), min(today, dt.date(year, 12, 31))
        )
        data = to_parquet_bytes(_grid(raw.year(year), layout, days))
        if storage.read_if_exists(keys[year]) != data:
            storage.write_bytes(keys[year], data)
    if stale:
        storage.delete_keys(stale)
    if basis != before:
        storage.write_bytes(COVERAGE_BASIS_KEY, json.dumps(basis, separators=(",", ":")).encode("utf-8"))
    return list(keys.values())


_BASIS_FORMAT = 1


def _year_key(year: int) -> str:
    """The key of the coverage table's file of `year`."""
    return f"{COVERAGE.location}{year_file(year)}"


def _read_basis(storage: Storage) -> dict | None:
    """The basis of the last write, or None when there is none this code can trust (then every year
    is rebuilt)."""
    data = storage.read_if_exists(COVERAGE_BASIS_KEY)
    try:
        basis = json.loads(data) if data is not None else None
        if basis is None or basis["format"] != _BASIS_FORMAT:
            return None
        dt.date.fromisoformat(basis["through"])
        if not isinstance(basis["years"], dict) or not all(k.isdigit() for k in basis["years"]):
            return None
        return basis
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
