"""Silver → gold: what analysts ask of the portfolios, as pure functions of Arrow tables.

No Dagster and no storage here (the asset reads and writes); each function takes one date's silver
tables, and the comparisons take the previous trading day's as well. Weights stay Decimal all the
way, so sums and the HHI are exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from b3_platform.lake.schemas import (
    GOLD_CHANGES,
    GOLD_COMPOSITION,
    GOLD_INDEX_SUMMARY,
    GOLD_TIME_IN_INDEX,
    WEIGHT,
)
from b3_platform.trading_calendar import trading_days_held

DIMENSIONS = ("sector", "share_class", "listing_segment", "company")
NO_SECTOR = "no sector: captured without segment 2 (a CSV download or a segment-1 response)"
NOTES = {
    "sector": "sector missing from the capture",
    "share_class": "no share class in B3's type field",
    "listing_segment": "no listing segment in B3's type field",
    "company": "no company name",
}
TOP = (5, 10)
_COMPONENT_COLUMNS = [
    "index",
    "ticker",
    "company",
    "share_class",
    "listing_segment",
    "sector",
    "weight",
    "theoretical_quantity",
]


@dataclass(frozen=True)
class IndexDay:
    """One index's portfolio on one date: components by ticker, and the header facts gold needs."""

    index: str
    components: Mapping[str, dict]  # ticker -> silver_assets row
    reductor: Decimal
    has_sector: bool
    #: The date's silver_assets table the components were read from (`index_days`): `composition`
    #: groups it by Arrow instead of row by row.
    assets: pa.Table | None = field(default=None, compare=False, repr=False)


class _Grouped:
    """A date's silver rows with each index's rows together (`index_days`), and their columns as
    Python values, each made once for every index when first asked for."""

    def __init__(self, rows: pa.Table) -> None:
        self.rows = rows
        self._columns: dict[str, list] = {}
        self._numbers: dict[str, np.ndarray | None] = {}

    def column(self, name: str) -> list:
        if name not in self._columns:
            self._columns[name] = python_values(self.rows.column(name))
        return self._columns[name]

    def numbers(self, name: str) -> np.ndarray | None:
        """A weight (as integers of thousandths, `_thousandths`) or integer column as one NumPy
        array for every index, made once; None when it holds a null or another type (the callers
        then read the Python values)."""
        if name not in self._numbers:
            column = self.rows.column(name)
            if column.null_count:
                self._numbers[name] = None
            elif column.type == WEIGHT:
                self._numbers[name] = _thousandths(column.combine_chunks())
            elif pa.types.is_integer(column.type):
                self._numbers[name] = column.to_numpy().astype(np.int64)
            else:
                self._numbers[name] = None
        return self._numbers[name]


class Components(Mapping[str, dict]):
    """One index's components by ticker as `index_days` reads them: the ticker -> row dicts
    (~3,000 per 34-index date, the costliest part of reading a date) are made only when a row path
    asks for a row. The fast paths read what they need without them: the tickers (time in index,
    the carried stays), how many there are (`_rows_of`), and each ticker's weight and quantity in
    row order (`index_summary`).

    The rows are the index's rows of the silver table in table order. When a ticker appears twice
    (`unique` False) the mapping is the dict as ever (its last row kept, first position), and
    `column` is not offered."""

    def __init__(self, grouped: _Grouped, start: int, stop: int, tickers: list[str]) -> None:
        self._grouped, self._start, self._stop = grouped, start, stop
        self.tickers = tickers
        self.unique = len(set(tickers)) == len(tickers)
        self._by_ticker: dict[str, dict] | None = None

    def _dict(self) -> dict[str, dict]:
        if self._by_ticker is None:
            by_ticker: dict[str, dict] = {}
            for values in zip(*(self._values(name) for name in _COMPONENT_COLUMNS)):
                row = dict(zip(_COMPONENT_COLUMNS, values))
                by_ticker[row["ticker"]] = row
            self._by_ticker = by_ticker
        return self._by_ticker

    def _values(self, name: str) -> list:
        return self._grouped.column(name)[self._start : self._stop]

    def __getitem__(self, ticker: str) -> dict:
        return self._dict()[ticker]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tickers) if self.unique else iter(self._dict())

    def __len__(self) -> int:
        return len(self.tickers) if self.unique else len(self._dict())

    def __contains__(self, ticker: object) -> bool:
        return ticker in self._dict()

    def column(self, name: str) -> list:
        """Every row's `name` in row order, one per ticker (only when `unique`)."""
        if not self.unique:
            raise ValueError("a ticker appears twice: read the rows by ticker instead")
        return self._values(name)


def index_days(assets: pa.Table, header: pa.Table) -> dict[str, IndexDay]:
    """A date's silver tables split by index (components in `Components`, rows made on demand)."""
    facts = {r["index"]: r for r in header.select(["index", "reductor", "has_sector"]).to_pylist()}
    if assets.num_rows == 0:
        return {}
    if assets.column("index").null_count:
        return index_days_by_row(assets, header)
    encoded = pc.dictionary_encode(assets.column("index")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")  # each index's rows together, in table order
    grouped = _Grouped(assets.select(_COMPONENT_COLUMNS).take(pa.array(order)))
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    tickers = grouped.column("ticker")
    days = {}
    for code, name in sorted(enumerate(names), key=lambda item: item[1]):
        if name not in facts:
            continue
        start, stop = int(bounds[code]), int(bounds[code + 1])
        components = Components(grouped, start, stop, tickers[start:stop])
        days[name] = IndexDay(name, components, facts[name]["reductor"], facts[name]["has_sector"], assets)
    return days


def index_days_by_row(assets: pa.Table, header: pa.Table) -> dict[str, IndexDay]:
    """`index_days` with every component's row dict made at once: the reference."""
    by_index: dict[str, dict[str, dict]] = {}
    for values in zip(*(python_values(assets.column(name)) for name in _COMPONENT_COLUMNS)):
        row = dict(zip(_COMPONENT_COLUMNS, values))
        by_index.setdefault(row["index"], {})[row["ticker"]] = row
    facts = {r["index"]: r for r in header.select(["index", "reductor", "has_sector"]).to_pylist()}
    return {
        index: IndexDay(index, components, facts[index]["reductor"], facts[index]["has_sector"], assets)
        for index, components in sorted(by_index.items())
        if index in facts
    }


def python_values(column: pa.ChunkedArray | pa.Array) -> list:
    """`column.to_pylist()`, with decimals read through their text: pyarrow makes each Decimal
    ~3x slower than `Decimal(text)` does (~1.6 against ~0.6 ms for a 34-index date's weights),
    and the text keeps the scale, so the values are the same Decimals (`1.000` stays `1.000`)."""
    if not pa.types.is_decimal(column.type):
        return column.to_pylist()
    return [None if text is None else Decimal(text) for text in pc.cast(column, pa.string()).to_pylist()]


def _thousandths(weights: pa.Array) -> np.ndarray:
    """A WEIGHT (decimal128(7, 3)) array without nulls as integers of thousandths, read from the
    decimals' own bytes (exact): 16 bytes each, little-endian, the low 8 holding any 7 digits."""
    count = len(weights)
    return np.frombuffer(weights.buffers()[1], dtype=np.int64)[2 * weights.offset :][: 2 * count : 2]


def _heaviest_first(rows: Iterable[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (-r["weight"], r["ticker"]))


def composition(days: Mapping[str, IndexDay]) -> pa.Table:
    """Weight and count per group, for each dimension; unknown groups are null and say why.

    Grouped by Arrow over the date's silver table when the days were read from one
    (`index_days`); `composition_by_row`, the reference, otherwise and wherever the two could
    differ (`_composition_by_arrow` says when)."""
    table = _composition_by_arrow(days)
    return table if table is not None else composition_by_row(days)


def _composition_by_arrow(days: Mapping[str, IndexDay]) -> pa.Table | None:
    """`composition_by_row(days)`, from the silver table the days were read from, a whole date at
    a time: ~3,000 rows × 4 dimensions stacked, sorted heaviest first, grouped and summed (exact
    decimals), the groups sorted by (index as in `days`, dimension, weight descending, name with
    null first: `name or ""`). None, for the row path, when the days do not share one table, when
    the table holds a ticker twice for an index (the row path keeps its last row), when a
    group is named "" (which ties with the null group there), or when a ticker or a weight is
    null or a weight not of scale 3.

    Every key is an integer in NumPy (`_ranks`: a string's rank among the column's sorted
    distinct values, null first): the rows sorted by (index, dimension, name, weight descending,
    ticker) make each group one run, heaviest first; its weight is the run's sum of integers of
    thousandths (exact), its tickers a slice of the sorted tickers; one more sort orders the
    groups. Only the output's strings are Arrow's."""
    order = pa.array(list(days), pa.string())
    rows = _rows_of(days, order, ["index", "ticker", "weight", *DIMENSIONS])
    if rows is None or rows.num_rows == 0:
        return None
    weight = rows.column("weight")
    if weight.null_count or weight.type != WEIGHT or rows.column("ticker").null_count:
        return None
    rows = rows.combine_chunks()
    count = rows.num_rows
    position = pc.index_in(rows.column("index"), value_set=order).chunk(0).to_numpy()
    has_sector = np.array([day.has_sector for day in days.values()], dtype=bool)
    ticker_rank, _ = _ranks(rows.column("ticker").chunk(0))
    weights = _thousandths(rows.column("weight").chunk(0))
    # Every dimension's names ranked together (one dictionary): the dimension is in the keys.
    name_rank, names = _ranks(pa.concat_arrays([rows.column(d).chunk(0) for d in DIMENSIONS]))
    if pc.any(pc.equal(names, "")).as_py():
        return None
    sector = slice(DIMENSIONS.index("sector") * count, (DIMENSIONS.index("sector") + 1) * count)
    name_rank[sector] = np.where(has_sector[position], name_rank[sector], -1)
    stacked = {
        "position": np.tile(position, len(DIMENSIONS)),
        "dimension": np.repeat(np.arange(len(DIMENSIONS)), count),
        "name": name_rank,
        "lighter": np.tile(-weights, len(DIMENSIONS)),
        "ticker": np.tile(ticker_rank, len(DIMENSIONS)),
    }
    heaviest = _sorted_by([stacked[k] for k in ("position", "dimension", "name", "lighter", "ticker")])
    keys = {k: v[heaviest] for k, v in stacked.items()}
    starts = np.flatnonzero(
        np.concatenate(
            ([True], np.any([keys[k][1:] != keys[k][:-1] for k in ("position", "dimension", "name")], axis=0))
        )
    )
    sums = -np.add.reduceat(keys["lighter"], starts)
    sizes = np.diff(np.append(starts, len(heaviest)))
    group = {k: keys[k][starts] for k in ("position", "dimension", "name")}
    # Groups by (index, dimension, weight descending, name with null first).
    ranked = _sorted_by([group["position"], group["dimension"], -sums, group["name"]])
    offsets = np.concatenate(([0], np.cumsum(sizes[ranked]))).astype(np.int32)
    # The sorted rows of each group, the groups in their order: its start, then one by one.
    members = np.arange(offsets[-1]) + np.repeat(starts[ranked] - offsets[:-1], sizes[ranked])
    tickers = rows.column("ticker").chunk(0).take(pa.array(heaviest[members] % count))
    sums, dimension, position = sums[ranked], group["dimension"][ranked], group["position"][ranked]
    name = group["name"][ranked]
    group_name = names.take(pa.array(np.maximum(name, 0), mask=name == -1))
    sum_bytes = np.column_stack((sums, sums >> 63)).astype("<i8").tobytes()
    # Why a group is null: its dimension's note, or NO_SECTOR for an index captured without sectors.
    notes = pa.array([NOTES[d] for d in DIMENSIONS] + [NO_SECTOR], pa.string())
    no_sector = (dimension == DIMENSIONS.index("sector")) & ~has_sector[position]
    note = notes.take(pa.array(np.where(no_sector, len(DIMENSIONS), dimension), mask=name != -1))
    return pa.Table.from_pydict(
        {
            "index": order.take(pa.array(position)),
            "dimension": pa.array(DIMENSIONS, pa.string()).take(pa.array(dimension)),
            "group_name": group_name,
            "weight": pa.Array.from_buffers(pa.decimal128(38, 3), len(sums), [None, pa.py_buffer(sum_bytes)]),
            "components": pa.array(sizes[ranked]),
            "tickers": pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), tickers), ","),
            "note": note,
        },
        schema=GOLD_COMPOSITION.schema,
    )


def _sorted_by(keys: list[np.ndarray]) -> np.ndarray:
    """The order sorting by integer `keys`, the first the primary (`np.lexsort`'s, keys reversed),
    as one stable sort of the keys packed into one int64 when their ranges fit in 62 bits: one
    sort instead of one per key (~4x less CPU for the ~12,000 rows of a 34-index date)."""
    shifted = [key - key.min() for key in keys] if len(keys[0]) else keys
    widths = [int(key.max()).bit_length() if len(key) else 0 for key in shifted]
    if sum(widths) > 62:
        return np.lexsort(keys[::-1])
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for key, width in zip(shifted, widths):
        packed = (packed << width) | key.astype(np.int64)
    return np.argsort(packed, kind="stable")


def _ranks(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Each value's rank among the array's distinct values sorted as Arrow sorts strings (-1 for
    a null), and those distinct values in that order."""
    encoded = pc.dictionary_encode(values)
    dictionary = encoded.dictionary
    by_value = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[by_value] = np.arange(len(dictionary))
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    # A null's code -1 takes the -1 appended last.
    return np.append(rank, -1)[codes], dictionary.take(pa.array(by_value))


def composition_by_row(days: Mapping[str, IndexDay]) -> pa.Table:
    """`composition` row by row, from the days' components: the reference."""
    columns: dict[str, list] = {f.name: [] for f in GOLD_COMPOSITION.schema}
    for index, day in days.items():
        # Sorted once: each group below collects its members in this order, heaviest first (one
        # sort per index instead of one per group: ~85 groups per index by company).
        heaviest_first = _heaviest_first(day.components.values())
        for dimension in DIMENSIONS:
            known = dimension != "sector" or day.has_sector
            groups: dict[str | None, list[str]] = {}
            totals: dict[str | None, Decimal] = {}
            for component in heaviest_first:
                name = component[dimension] if known else None
                groups.setdefault(name, []).append(component["ticker"])
                # Summed in the same order as before (heaviest first, from Decimal 0): same sums.
                totals[name] = totals.get(name, Decimal(0)) + component["weight"]
            names = sorted(groups, key=lambda g: (-totals[g], g or ""))
            unknown = NO_SECTOR if dimension == "sector" and not day.has_sector else NOTES[dimension]
            # Rows a column at a time (a date of 34 indices has ~3,000): no dict per row.
            columns["index"].extend([index] * len(names))
            columns["dimension"].extend([dimension] * len(names))
            columns["group_name"].extend(names)
            columns["weight"].extend([totals[name] for name in names])
            columns["components"].extend([len(groups[name]) for name in names])
            columns["tickers"].extend([",".join(groups[name]) for name in names])
            columns["note"].extend([None if name is not None else unknown for name in names])
    return pa.Table.from_pydict(columns, schema=GOLD_COMPOSITION.schema)


@dataclass(frozen=True)
class Concentration:
    components: int
    top5_weight: Decimal
    top10_weight: Decimal
    hhi: Decimal


def concentration(day: IndexDay) -> Concentration:
    return _concentration([c["weight"] for c in day.components.values()])


def _concentration(weights: list[Decimal]) -> Concentration:
    weights = sorted(weights, reverse=True)
    return Concentration(
        components=len(weights),
        top5_weight=sum(weights[: TOP[0]], Decimal(0)),
        top10_weight=sum(weights[: TOP[1]], Decimal(0)),
        hhi=sum((w * w for w in weights), Decimal(0)),
    )


def changes(
    days: Mapping[str, IndexDay], previous: Mapping[str, IndexDay], previous_date: dt.date
) -> pa.Table:
    """Entries, exits and changes of held tickers, for indices whose previous trading day is known.

    Paired by row numbers when each side's days are `index_days`' (`_changes_by_runs`), else
    joined by Arrow when each side's days were read from one silver table; `changes_by_row`, the
    reference, otherwise (`_changes_by_runs` and `_changes_by_arrow` say when)."""
    table = _changes_by_runs(days, previous, previous_date)
    if table is None:
        table = _changes_by_arrow(days, previous, previous_date)
    return table if table is not None else changes_by_row(days, previous, previous_date)


def _rows_of(days: Mapping[str, IndexDay], indices: pa.Array, columns: list[str]) -> pa.Table | None:
    """The rows of `indices` in the one silver table `days` were read from, or None when they do
    not share one or it holds a ticker twice for an index (the components keep its last row)."""
    sources = {id(days[index].assets) for index in indices.to_pylist()}
    source = days[indices[0].as_py()].assets if len(sources) == 1 else None
    if source is None:
        return None
    expected = sum(len(days[index].components) for index in indices.to_pylist())
    if expected == source.num_rows:
        # Every row is one of these indices' (a component counts one row at most): no filter.
        return source.select(columns)
    rows = source.filter(pc.is_in(source.column("index"), value_set=indices)).select(columns)
    if rows.num_rows != expected:
        return None
    return rows


def _changes_by_arrow(
    days: Mapping[str, IndexDay], previous: Mapping[str, IndexDay], previous_date: dt.date
) -> pa.Table | None:
    """`changes_by_row`, as one full outer join of the two dates' rows on (index, ticker), sorted
    by (index as in `days`, ticker). None, for the row path, when no index is compared or either
    side's rows cannot be taken from one table (`_rows_of`)."""
    compared = pa.array([index for index in days if index in previous], pa.string())
    if len(compared) == 0:
        return None
    columns = ["index", "ticker", "company", "weight", "theoretical_quantity"]
    now, then = _rows_of(days, compared, columns), _rows_of(previous, compared, columns)
    if now is None or then is None:
        return None
    then = then.rename_columns(
        ["index", "ticker", "previous_company", "previous_weight", "previous_quantity"]
    )
    joined = now.join(then, keys=["index", "ticker"], join_type="full outer", use_threads=False)
    position = pc.index_in(joined.column("index"), value_set=compared)
    joined = joined.append_column("position", position)
    joined = joined.take(
        pc.sort_indices(joined, sort_keys=[("position", "ascending"), ("ticker", "ascending")])
    )
    return _changes_table(
        joined, [days[i].reductor != previous[i].reductor for i in compared.to_pylist()], previous_date
    )


def _changes_table(joined: pa.Table, reductor_changed: list[bool], previous_date: dt.date) -> pa.Table:
    """gold_changes from the two dates' rows joined on (index, ticker) and sorted (both Arrow
    paths): each side's company, weight and quantity (the previous side's named `previous_...`),
    and the compared index's `position` (`reductor_changed` is by position)."""
    position = joined.column("position")
    # Weights and quantities are never null in silver: a null one is the ticker's absence.
    held_now, held_then = pc.is_valid(joined.column("weight")), pc.is_valid(joined.column("previous_weight"))
    held = pc.and_(held_now, held_then)
    weight, previous_weight = joined.column("weight"), joined.column("previous_weight")
    quantity, previous_quantity = joined.column("theoretical_quantity"), joined.column("previous_quantity")
    zero = pa.scalar(Decimal(0), weight.type)
    return pa.Table.from_pydict(
        {
            "index": joined.column("index"),
            "ticker": joined.column("ticker"),
            "company": pc.coalesce(joined.column("company"), joined.column("previous_company")),
            "membership": pc.if_else(held, "held", pc.if_else(held_now, "entered", "exited")),
            "previous_date": pa.repeat(pa.scalar(previous_date, pa.date32()), joined.num_rows),
            "weight": weight,
            "previous_weight": previous_weight,
            "weight_change_pp": pc.subtract(pc.coalesce(weight, zero), pc.coalesce(previous_weight, zero)),
            "theoretical_quantity": quantity,
            "previous_quantity": previous_quantity,
            "quantity_change": pc.subtract(pc.coalesce(quantity, 0), pc.coalesce(previous_quantity, 0)),
            "quantity_changed": pc.and_(held, pc.fill_null(pc.not_equal(quantity, previous_quantity), False)),
            "reductor_changed": pa.array(reductor_changed, pa.bool_()).take(position),
        },
        schema=GOLD_CHANGES.schema,
    )


def _changes_by_runs(
    days: Mapping[str, IndexDay], previous: Mapping[str, IndexDay], previous_date: dt.date
) -> pa.Table | None:
    """`_changes_by_arrow` without the join: each compared index's rows are one run of each
    date's grouped rows (`index_days`), each row of the date is paired with its previous-date row
    by `_matches`, and the previous rows no row pairs with (the exits) are appended; the two
    sides' columns are then taken by those row numbers (null where a side lacks the ticker) and
    sorted by (index as in `days`, ticker). None, for `_changes_by_arrow`, when no index is
    compared, when either side's components are not `index_days`' of one table or hold a ticker
    twice, or when a weight is null."""
    compared = [index for index in days if index in previous]
    if not compared:
        return None
    now, then = _one_grouped(days[i] for i in compared), _one_grouped(previous[i] for i in compared)
    if now is None or then is None or now.numbers("weight") is None or then.numbers("weight") is None:
        return None
    matches = _matches(now.rows, then.rows)
    if matches is None:
        return None
    spans_now = [(days[i].components._start, days[i].components._stop) for i in compared]  # type: ignore[attr-defined]
    spans_then = [(previous[i].components._start, previous[i].components._stop) for i in compared]  # type: ignore[attr-defined]
    rows_now = np.concatenate([np.arange(a, b) for a, b in spans_now])
    rows_then = np.concatenate([np.arange(a, b) for a, b in spans_then])
    paired = np.zeros(then.rows.num_rows, dtype=bool)
    paired[matches[rows_now][matches[rows_now] >= 0]] = True
    exits = ~paired[rows_then]
    take_now = np.concatenate([rows_now, np.full(int(exits.sum()), -1)])
    take_then = np.concatenate([matches[rows_now], rows_then[exits]])
    position = np.concatenate(
        [
            np.repeat(np.arange(len(compared)), [b - a for a, b in spans_now]),
            np.repeat(np.arange(len(compared)), [b - a for a, b in spans_then])[exits],
        ]
    )
    columns = ["index", "ticker", "company", "weight", "theoretical_quantity"]
    side_now = now.rows.select(columns).take(pa.array(take_now, mask=take_now < 0))
    side_then = then.rows.select(columns).take(pa.array(take_then, mask=take_then < 0))
    keyed = pa.table(
        {
            "position": pa.array(position.astype(np.int32)),
            "ticker": pc.coalesce(side_now.column("ticker"), side_then.column("ticker")),
        }
    )
    order = pc.sort_indices(keyed, sort_keys=[("position", "ascending"), ("ticker", "ascending")])
    side_now, side_then = side_now.take(order), side_then.take(order)
    joined = pa.table(
        {
            "index": pc.coalesce(side_now.column("index"), side_then.column("index")),
            "ticker": keyed.column("ticker").take(order),
            "company": side_now.column("company"),
            "weight": side_now.column("weight"),
            "theoretical_quantity": side_now.column("theoretical_quantity"),
            "previous_company": side_then.column("company"),
            "previous_weight": side_then.column("weight"),
            "previous_quantity": side_then.column("theoretical_quantity"),
            "position": keyed.column("position").take(order),
        }
    )
    return _changes_table(joined, [days[i].reductor != previous[i].reductor for i in compared], previous_date)


def changes_by_row(
    days: Mapping[str, IndexDay], previous: Mapping[str, IndexDay], previous_date: dt.date
) -> pa.Table:
    """`changes` row by row, from the days' components: the reference."""
    columns: dict[str, list] = {f.name: [] for f in GOLD_CHANGES.schema}
    zero = Decimal(0)
    for index, day in days.items():
        before = previous.get(index)
        if before is None:
            continue  # never compared with an older day: the summary says so
        reductor_changed = day.reductor != before.reductor
        tickers = sorted(day.components.keys() | before.components.keys())
        columns["index"].extend([index] * len(tickers))
        columns["ticker"].extend(tickers)
        columns["previous_date"].extend([previous_date] * len(tickers))
        columns["reductor_changed"].extend([reductor_changed] * len(tickers))
        for ticker in tickers:
            now, then = day.components.get(ticker), before.components.get(ticker)
            weight = now["weight"] if now else None
            previous_weight = then["weight"] if then else None
            quantity = now["theoretical_quantity"] if now else None
            previous_quantity = then["theoretical_quantity"] if then else None
            columns["company"].append((now or then)["company"])
            columns["membership"].append("held" if now and then else "entered" if now else "exited")
            columns["weight"].append(weight)
            columns["previous_weight"].append(previous_weight)
            columns["weight_change_pp"].append((weight or zero) - (previous_weight or zero))
            columns["theoretical_quantity"].append(quantity)
            columns["previous_quantity"].append(previous_quantity)
            columns["quantity_change"].append((quantity or 0) - (previous_quantity or 0))
            columns["quantity_changed"].append(bool(now and then and quantity != previous_quantity))
    return pa.Table.from_pydict(columns, schema=GOLD_CHANGES.schema)


def index_summary(
    days: Mapping[str, IndexDay], previous: Mapping[str, IndexDay], previous_date: dt.date
) -> pa.Table:
    """Concentration and the comparison with the previous trading day, one row per index.

    Read from each side's columns in row order when `index_days` read them and no ticker appears
    twice (`_summary_columns`), without making the components' row dicts; from the rows otherwise."""
    by_arrow = _summary_by_arrow(days, previous)
    rows = []
    for index, day in days.items():
        before = previous.get(index)
        if by_arrow is not None:
            rows.append(by_arrow[index])
        else:
            rows.append(_summary_columns(day, before) or _summary_by_row(day, before))
    columns = {name: [row[name] for row in rows] for name in _SUMMARY_VALUES}
    count = len(rows)
    columns.update(
        {
            "index": list(days),
            "reductor": [day.reductor for day in days.values()],
            "has_sector": [day.has_sector for day in days.values()],
            "previous_date": [previous_date] * count,
            "previous_in_lake": [previous.get(index) is not None for index in days],
            "reductor_changed": [
                day.reductor != before.reductor if (before := previous.get(index)) is not None else None
                for index, day in days.items()
            ],
        }
    )
    return pa.Table.from_pydict(
        {name: columns[name] for name in GOLD_INDEX_SUMMARY.schema.names}, schema=GOLD_INDEX_SUMMARY.schema
    )


#: The summary's values that come from the components (the rest from the header facts).
_SUMMARY_VALUES = ("components", "top5_weight", "top10_weight", "hhi", "entries", "exits", "quantity_changes")


def _summary_by_row(day: IndexDay, before: IndexDay | None) -> dict:
    """The reference: concentration and comparison from the components' rows by ticker."""
    c = concentration(day)
    compared = before is not None
    return {
        "components": c.components,
        "top5_weight": c.top5_weight,
        "top10_weight": c.top10_weight,
        "hhi": c.hhi,
        "entries": len(day.components.keys() - before.components.keys()) if compared else None,
        "exits": len(before.components.keys() - day.components.keys()) if compared else None,
        "quantity_changes": sum(
            1
            for t in day.components.keys() & before.components.keys()
            if day.components[t]["theoretical_quantity"] != before.components[t]["theoretical_quantity"]
        )
        if compared
        else None,
    }


def _summary_columns(day: IndexDay, before: IndexDay | None) -> dict | None:
    """`_summary_by_row` from each side's weight and quantity columns (None when a side's
    components are not `index_days`' or hold a ticker twice)."""
    sides = [day] if before is None else [day, before]
    if not all(isinstance(d.components, Components) and d.components.unique for d in sides):
        return None
    now: Components = day.components  # type: ignore[assignment]
    c = _concentration(now.column("weight"))
    values = {"components": c.components, "top5_weight": c.top5_weight, "top10_weight": c.top10_weight}
    values["hhi"] = c.hhi
    if before is None:
        return {**values, "entries": None, "exits": None, "quantity_changes": None}
    then: Components = before.components  # type: ignore[assignment]
    quantity_then = dict(zip(then.tickers, then.column("theoretical_quantity")))
    held = [
        quantity != quantity_then[ticker]
        for ticker, quantity in zip(now.tickers, now.column("theoretical_quantity"))
        if ticker in quantity_then
    ]
    return {
        **values,
        "entries": len(now.tickers) - len(held),
        "exits": len(quantity_then) - len(held),
        "quantity_changes": sum(held),
    }


def _one_grouped(days: Iterable[IndexDay]) -> _Grouped | None:
    """The one `_Grouped` every day's components come from (`index_days`), when no index holds a
    ticker twice; None otherwise."""
    sources = set()
    for day in days:
        components = day.components
        if not isinstance(components, Components) or not components.unique:
            return None
        sources.add(id(components._grouped))
        grouped = components._grouped
    return grouped if len(sources) == 1 else None


def _matches(now: pa.Table, then: pa.Table) -> np.ndarray | None:
    """For each row of `now`, the row of `then` with the same (index, ticker), or -1 (each pair
    once in `then` for the indices asked about: `_one_grouped`). None when an index or a ticker is
    null. The pairs are compared as integers: each column's values coded by one dictionary of
    both tables' values."""
    codes = []
    for name in ("index", "ticker"):
        both = pa.concat_arrays([*now.column(name).chunks, *then.column(name).chunks])
        if both.null_count:
            return None
        codes.append(pc.dictionary_encode(both).indices.to_numpy().astype(np.int64))
    keys = (codes[0] << 32) | codes[1]
    now_keys, then_keys = keys[: now.num_rows], keys[now.num_rows :]
    if not len(then_keys):
        return np.full(len(now_keys), -1, dtype=np.int64)
    order = np.argsort(then_keys, kind="stable")
    ordered = then_keys[order]
    found = np.minimum(np.searchsorted(ordered, now_keys), len(ordered) - 1)
    return np.where(ordered[found] == now_keys, order[found], -1)


def _summary_by_arrow(
    days: Mapping[str, IndexDay], previous: Mapping[str, IndexDay]
) -> dict[str, dict] | None:
    """`_summary_columns` of every index of the date at once, from the two dates' grouped rows as
    NumPy arrays: the weights as integers of thousandths (sums and the HHI exact, then made the
    same Decimals), each held ticker's row on the previous date found by one sorted search over
    (index, ticker) codes. None, for the per-index paths, when either side's components are not
    `index_days`' of one table, hold a ticker twice, or a weight or quantity is null or of
    another type."""
    grouped = _one_grouped(days.values())
    compared = [index for index in days if index in previous]
    before = _one_grouped(previous[index] for index in compared) if compared else None
    if grouped is None or (compared and before is None):
        return None
    weights, quantities = grouped.numbers("weight"), grouped.numbers("theoretical_quantity")
    if weights is None or quantities is None:
        return None
    if before is not None:
        quantities_then = before.numbers("theoretical_quantity")
        matches = _matches(grouped.rows, before.rows)
        if quantities_then is None or matches is None:
            return None
    # Each index's rows are one run of the grouped rows: sums over runs by `np.add.reduceat`, the
    # heaviest first within each run by one sort of (run, weight descending).
    spans = {index: (day.components._start, day.components._stop) for index, day in days.items()}  # type: ignore[attr-defined]
    # Runs start at 0 and at every span's bounds (rows of an index without a header row are a run too).
    bounds = {0} | {b for span in spans.values() for b in span}
    starts = np.array(sorted(bounds - {len(weights)}), dtype=np.int64)
    run = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(weights))))
    heaviest = np.lexsort((-weights, run))
    rank = np.arange(len(weights)) - starts[run]
    ordered = weights[heaviest]
    sums = {
        "top5": np.add.reduceat(np.where(rank < TOP[0], ordered, 0), starts),
        "top10": np.add.reduceat(np.where(rank < TOP[1], ordered, 0), starts),
        "hhi": np.add.reduceat(weights * weights, starts),
    }
    if before is not None:
        held = matches >= 0
        changed = held & (quantities != quantities_then[np.where(held, matches, 0)])
        sums["held"] = np.add.reduceat(held.astype(np.int64), starts)
        sums["changed"] = np.add.reduceat(changed.astype(np.int64), starts)
    values = {}
    for index, (start, stop) in spans.items():
        at = int(np.searchsorted(starts, start))
        values[index] = {
            "components": stop - start,
            "top5_weight": Decimal(int(sums["top5"][at])).scaleb(-3),
            "top10_weight": Decimal(int(sums["top10"][at])).scaleb(-3),
            "hhi": Decimal(int(sums["hhi"][at])).scaleb(-6),
            "entries": None,
            "exits": None,
            "quantity_changes": None,
        }
        if index in previous:
            held_count = int(sums["held"][at])
            values[index]["entries"] = stop - start - held_count
            values[index]["exits"] = len(previous[index].components) - held_count
            values[index]["quantity_changes"] = int(sums["changed"][at])
    return values


class Stay(NamedTuple):
    """A ticker's current stay in an index, as far as the lake shows.

    A named tuple, not a frozen dataclass: a range run makes one per component per date (~3,000
    at 34 indices), and a tuple is made ~5x faster (and is not tracked by the garbage collector)."""

    first_seen: dt.date
    observed_days: int
    history_start: bool  # first_seen is the index's first date in the lake


class StayTracker:
    """Carries each (index, ticker)'s stay from date to date through a run.

    An index seen for the first time in a run starts from what the lake already says about it:
    the stays its previous trading day's gold ended with (`carried`, see `carried_stays`) when
    that day's gold can be trusted, else the silver dates before it, walked newest first until
    every ticker's stay has begun (the stay began on the oldest consecutive date holding the
    ticker). The carry makes a daily run read one earlier date instead of the whole history; the
    walk is the fallback for a gap, the first date, or a previous gold that is missing or stale.
    Afterwards each date advances the state by one step, which gives the same answer as walking
    back from that date. Dates the lake lacks for an index are skipped, not treated as exits:
    `observed_days` shows them.

    `lake_dates` may be a callable: the listing of every silver date is then made only when a
    walk back needs it."""

    def __init__(
        self,
        lake_dates: Sequence[dt.date] | Callable[[], Sequence[dt.date]],
        load: Callable[[dt.date], Mapping[str, Iterable[str]]],
    ) -> None:
        self._lake_dates_source = lake_dates
        self._sorted_dates: list[dt.date] | None = None
        self._load = load  # date -> {index: tickers} of that date's silver_assets
        self._stays: dict[str, dict[str, Stay]] = {}
        self._seen: dict[str, bool] = {}  # index -> observed before the current date
        self.dates_read = 0
        self.carried: list[str] = []  # indices whose stays came from the previous day's gold
        self.walked: list[str] = []  # indices whose stays came from a walk back over silver

    @property
    def _lake_dates(self) -> list[dt.date]:
        if self._sorted_dates is None:
            source = self._lake_dates_source
            self._sorted_dates = sorted(source() if callable(source) else source)
        return self._sorted_dates

    def _walk_back(self, indices: set[str], before: dt.date) -> None:
        alive: dict[str, dict[str, Stay] | None] = {i: None for i in indices}
        ended: dict[str, dict[str, Stay]] = {i: {} for i in indices}
        exhausted = True
        for day in reversed([d for d in self._lake_dates if d < before]):
            if all(a is not None and not a for a in alive.values()):
                exhausted = False
                break
            self.dates_read += 1
            tickers_by_index = self._load(day)
            for index in indices:
                tickers = tickers_by_index.get(index)
                if tickers is None:
                    continue  # the lake lacks this index on that date: not an exit
                tickers = set(tickers)
                stays = alive[index]
                if stays is None:
                    alive[index] = {t: Stay(day, 1, False) for t in tickers}
                    continue
                for ticker in list(stays):
                    if ticker in tickers:
                        stays[ticker] = Stay(day, stays[ticker].observed_days + 1, False)
                    else:
                        ended[index][ticker] = stays.pop(ticker)
        for index in indices:
            stays = alive[index] or {}
            self._seen[index] = alive[index] is not None
            remaining = {t: Stay(s.first_seen, s.observed_days, exhausted) for t, s in stays.items()}
            self._stays[index] = {**ended[index], **remaining}

    def advance(
        self,
        day: dt.date,
        tickers_by_index: Mapping[str, Iterable[str]],
        carried: Callable[[], Mapping[str, Mapping[str, Stay]]] | None = None,
    ) -> pa.Table:
        """The stays on `day` (dates must come in increasing order).

        `carried()`, asked only when an index is new to this tracker, gives the stays the previous
        trading day's gold ended with, for the indices it can be trusted for (`carried_stays`)."""
        new = set(tickers_by_index) - self._stays.keys()
        if new and carried is not None:
            for index, stays in carried().items():
                if index in new:
                    self._stays[index] = dict(stays)
                    self._seen[index] = True
                    self.carried.append(index)
                    new.discard(index)
        if new:
            self.walked.extend(sorted(new))
            self._walk_back(new, day)
        indices: list[str] = []
        tickers: list[str] = []
        now: list[Stay] = []
        make = tuple.__new__  # Stay(...) without its Python-level __new__: ~3,000 a date
        for index in sorted(tickers_by_index):
            get = self._stays[index].get
            fresh = Stay(day, 1, not self._seen[index])  # every entry's stay: one shared tuple
            own = sorted(tickers_by_index[index])
            stays = [
                make(Stay, (old[0], old[1] + 1, old[2])) if (old := get(ticker)) is not None else fresh
                for ticker in own
            ]
            indices.extend([index] * len(own))
            tickers.extend(own)
            now.extend(stays)
            self._stays[index] = dict(zip(own, stays))
            self._seen[index] = True
        # The rows a column at a time (a date of 34 indices has ~3,000); the days held and since
        # entry once per distinct first_seen (a few per date).
        first_seen = list(map(itemgetter(0), now))
        since = set(first_seen)
        held = {d: trading_days_held(d, day) for d in since}
        calendar = {d: (day - d).days for d in since}
        columns = {
            "index": indices,
            "ticker": tickers,
            "first_seen": first_seen,
            "trading_days_held": list(map(held.__getitem__, first_seen)),
            "calendar_days_since_entry": list(map(calendar.__getitem__, first_seen)),
            "observed_days": list(map(itemgetter(1), now)),
            "first_seen_is_history_start": list(map(itemgetter(2), now)),
        }
        return pa.Table.from_pydict(columns, schema=GOLD_TIME_IN_INDEX.schema)


def tickers_by_index(assets: pa.Table) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    data = assets.select(["index", "ticker"]).to_pydict()
    for index, ticker in zip(data["index"], data["ticker"]):
        grouped.setdefault(index, []).append(ticker)
    return grouped


def carried_stays(
    time_in_index: pa.Table | None, tickers: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, Stay]]:
    """The stays a date's gold_time_in_index ended with, per index, for the next trading day to
    carry on from: each row is a ticker's stay on that date, exactly the state a walk back would
    rebuild. `tickers` is that date's silver ({index: tickers}); an index is carried only when the
    gold rows hold exactly silver's tickers for it, so a gold built before its silver was rebuilt
    (or one lacking the index) is not trusted and that index is walked back instead."""
    if time_in_index is None:
        return {}
    held: dict[str, dict[str, Stay]] = {}
    columns = ["index", "ticker", "first_seen", "observed_days", "first_seen_is_history_start"]
    for row in time_in_index.select(columns).to_pylist():
        held.setdefault(row["index"], {})[row["ticker"]] = Stay(
            row["first_seen"], row["observed_days"], row["first_seen_is_history_start"]
        )
    return {
        index: stays
        for index, stays in held.items()
        if index in tickers and set(stays) == set(tickers[index])
    }
