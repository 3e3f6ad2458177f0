"""The dashboard's data: the catalog's answers (dashboard.queries) shaped into the tables the charts
draw, plus what the lake's dates say about gaps.

Every table is columnar — `{"fields": [...], "rows": [[...], ...]}` — in one JSON document that the
page inlines and the PNG renderer reads: the same numbers in both. Weights and HHI are the catalog's
decimals as JSON numbers with the same digits (6.567 stays 6.567). Each date row also carries
`end` (the next trading day: the date's composition holds until then, so a block of consecutive
trading days is continuous and a date the lake lacks is an empty stretch) and `run` (a number that
changes after every gap, so line charts break there instead of drawing across missing dates).

The page's history is bounded (`queries.DAILY_DATES`): each index's newest dates day by day, older
ones one point per month (the month's last date in the lake). A month point holds until the next
month's point when the lake holds that month (no gap is drawn inside a month it holds), and a month
without a date is a gap; the summary's rows say how many lake dates each point stands for, so the
page's counts are the lake's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from b3_platform.catalog.base import CatalogResource, QueryResult
from b3_platform.dashboard import queries, reading
from b3_platform.trading_calendar import horizon, trading_days_between


@dataclass
class Table:
    """A columnar table: `fields` names the columns of every row in `rows`."""

    fields: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.fields, row)) for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {"fields": self.fields, "rows": self.rows}


def _value(value: Any) -> Any:
    """A catalog value as JSON: decimals as numbers with their digits, dates as ISO strings."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent >= 0
            else float(value)
        )
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _table(result: QueryResult) -> Table:
    """The answer's rows as JSON-ready lists. A date or a string seen before is the same object
    again (the same ISO string for a date): the tables repeat each date, index, ticker and band on
    many rows, and one object each instead of one per row (the catalog hands a new one per row)
    held the page's data ~20 MB smaller at 2,100 dates × 34 indices (~16 %)."""
    seen: dict[tuple[type, Any], Any] = {}

    def value(v: Any) -> Any:
        if type(v) not in _SHARED:
            return _value(v)
        key = (type(v), v)
        found = seen.get(key)
        if found is None:
            found = seen[key] = _value(v)
        return found

    return Table(list(result.columns), [[value(v) for v in row] for row in result.rows])


#: The types whose values `_table` shares between rows (hashable, repeated, converted the same way
#: every time); keyed with their type, so no value of one type stands for an equal one of another.
_SHARED = frozenset({str, dt.date})


class Calendar:
    """Next trading day and gap detection over a span of dates, from the B3 calendar."""

    def __init__(self, days: Iterable[dt.date]) -> None:
        days = sorted(set(days))
        last_known = horizon()[1]
        if days:
            end = min(days[-1] + dt.timedelta(days=15), last_known)
            sessions = trading_days_between(days[0], end)
        else:
            sessions = []
        self._next = {d: n for d, n in zip(sessions, sessions[1:])}

    def next_day(self, day: dt.date) -> dt.date:
        """The next trading day (the calendar day after, past the calendar's horizon)."""
        return self._next.get(day, day + dt.timedelta(days=1))

    def stretches(self, points: Sequence[tuple[dt.date, bool]]) -> dict[dt.date, tuple[dt.date, int]]:
        """Each point's `end` and `run`, for one index's points `(date, by_month)`.

        A date shown day by day holds until the next trading day, and the next point continues its
        stretch when it is that day. A month point (its month's last date in the lake) holds until
        the next point when that one is a month point of the following month (the lake holds dates
        in both months; which days of a month it lacks is not drawn at that resolution, only
        counted), and a month without a date is a gap. The daily part starts on a month's first day,
        so a month point is the last date the lake holds before the first daily one: the daily rule
        tells whether the lake lacks days between them."""
        ordered = sorted(points)
        shown: dict[dt.date, tuple[dt.date, int]] = {}
        run = 0
        for (day, by_month), following in zip(ordered, [*ordered[1:], None]):
            end = self.next_day(day)
            if following is None:
                shown[day] = (end, run)
                continue
            after, after_by_month = following
            if by_month and after_by_month:
                continues = _month_number(after) == _month_number(day) + 1
                end = after if continues else end
            else:
                continues = after == end
            shown[day] = (end, run)
            run += not continues
        return shown


def _month_number(day: dt.date) -> int:
    return day.year * 12 + day.month


@dataclass
class DashboardData:
    """Everything the page and the pictures draw. Tables are keyed by index in their rows."""

    indices: list[str]
    summary: Table
    weights: Table
    sectors: Table
    events: Table
    latest: Table
    overlap: Table
    top_n: int
    source: str
    #: The next rebalance panel: each index's latest preview, its changes, the latest rebalance's
    #: accuracy (empty tables when the lake holds no announced portfolio).
    rebalance_preview: Table = field(default_factory=lambda: Table([]))
    rebalance_changes: Table = field(default_factory=lambda: Table([]))
    rebalance_accuracy: Table = field(default_factory=lambda: Table([]))
    #: The lake's dates whatever the tables show of them (`queries.held`: how many, first, last);
    #: empty when the tables hold every date (gold's picture window).
    held: Table = field(default_factory=lambda: Table([]))
    #: `queries.DAILY_DATES` when older dates are one point per month (None: every date).
    daily_dates: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "indices": self.indices,
            "top_n": self.top_n,
            "others": queries.OTHERS,
            "source": self.source,
            "daily_dates": self.daily_dates,
            **{name: getattr(self, name).to_json() for name in TABLE_NAMES},
        }

    def dates(self, index: str | None = None) -> list[str]:
        """The dates the tables hold (for one index, or any): every date the lake holds, or with a
        bounded history (`daily_dates`) the ones drawn; `span` counts the lake's."""
        if not self.summary.rows:  # an empty answer may come without its columns (Athena)
            return []
        at_index, at_date = self.summary.fields.index("index"), self.summary.fields.index("date")
        return sorted({r[at_date] for r in self.summary.rows if index is None or r[at_index] == index})

    def span(self, index: str | None = None) -> tuple[int, str | None, str | None]:
        """How many dates the lake holds (for one index, or any), its first and its last, also
        where the tables show older dates one point per month."""
        if index is None and self.held.rows:
            (row,) = self.held.records()
            return int(row["dates"]), row["first_date"], row["last_date"]
        rows = [r for r in self.summary.records() if index is None or r["index"] == index]
        if not rows:
            return 0, None, None
        if "dates" not in self.summary.fields:  # every date is a row
            days = self.dates(index)
            return len(days), days[0], days[-1]
        return sum(r["dates"] for r in rows), min(r["first_date"] for r in rows), max(r["date"] for r in rows)


TABLE_NAMES = (
    "summary",
    "weights",
    "sectors",
    "events",
    "latest",
    "overlap",
    "rebalance_preview",
    "rebalance_changes",
    "rebalance_accuracy",
)


def _with_gaps(table: Table, stretches: dict[tuple[str, str], tuple[str, int]]) -> Table:
    """`end` (when the point's composition stops: the next trading day, or the next month's point)
    and `run` (gap-separated stretch) beside each row's date, added to the rows in place (no second
    copy of a table)."""
    table.fields = [*table.fields, "end", "run"]
    if not table.rows:  # an empty answer may come without its columns (Athena)
        return table
    at_index, at_date = table.fields.index("index"), table.fields.index("date")
    for row in table.rows:
        row.extend(stretches[(row[at_index], row[at_date])])
    return table


def shape(
    summary: QueryResult,
    weights: QueryResult,
    sectors: QueryResult,
    events: QueryResult,
    latest: QueryResult,
    overlap: QueryResult,
    *,
    top_n: int,
    source: str,
    rebalance: tuple[QueryResult, QueryResult, QueryResult] | None = None,
) -> DashboardData:
    """The catalog's answers as the dashboard's tables, with gaps marked per index. `rebalance`:
    the answers of the next rebalance panel (preview, changes, accuracy), when asked. Every date
    is a row (the summary's rows carry no `resolution`), as gold's picture window asks."""
    return _shaped(
        *(_table(r) for r in (summary, weights, sectors, events, latest, overlap)),
        top_n=top_n,
        source=source,
        rebalance=tuple(_table(r) for r in rebalance) if rebalance else None,
    )


def _shaped(
    summary_t: Table,
    weights_t: Table,
    sectors_t: Table,
    events_t: Table,
    latest_t: Table,
    overlap_t: Table,
    *,
    top_n: int,
    source: str,
    rebalance: tuple[Table, ...] | None = None,
    held: Table | None = None,
    daily_dates: int | None = None,
) -> DashboardData:
    """`shape` over answers already made tables (`load` makes each as it arrives, so the catalog's
    rows and their JSON-ready copy are never both held for every query). A summary with a
    `resolution` column has month points ('month'), whose `end` and `run` follow months."""
    preview, changes, accuracy = rebalance if rebalance else (Table([]),) * 3
    by_index: dict[str, list[tuple[dt.date, bool]]] = defaultdict(list)
    if summary_t.rows:  # an empty answer may come without its columns (Athena)
        at_index, at_date = summary_t.fields.index("index"), summary_t.fields.index("date")
        at_resolution = summary_t.fields.index("resolution") if "resolution" in summary_t.fields else None
        for row in summary_t.rows:
            by_month = at_resolution is not None and row[at_resolution] == "month"
            by_index[row[at_index]].append((dt.date.fromisoformat(row[at_date]), by_month))
    calendar = Calendar(day for points in by_index.values() for day, _ in points)
    stretches = {
        (index, day.isoformat()): (end.isoformat(), run)
        for index, points in by_index.items()
        for day, (end, run) in calendar.stretches(points).items()
    }
    return DashboardData(
        indices=sorted(by_index),
        summary=_with_gaps(summary_t, stretches),
        weights=_with_gaps(weights_t, stretches),
        sectors=_with_gaps(sectors_t, stretches),
        events=events_t,
        latest=latest_t,
        overlap=overlap_t,
        top_n=top_n,
        source=source,
        rebalance_preview=preview,
        rebalance_changes=changes,
        rebalance_accuracy=accuracy,
        held=held if held is not None else Table([]),
        daily_dates=daily_dates,
    )


def load(
    catalog: CatalogResource,
    *,
    top_n: int = queries.DEFAULT_TOP_N,
    daily_dates: int | None = None,
) -> DashboardData:
    """Ask the catalog every question of the dashboard (ten queries) and shape the answers, each
    made a table as it arrives (its catalog rows then freed). The history is bounded: each index's
    newest `daily_dates` dates (`queries.DAILY_DATES` when not given; from their month's first
    day) day by day, older ones one point per month, the lake's own counts beside them; the events
    are every one (a record, sparse in real data: rebalances)."""

    daily_dates = queries.DAILY_DATES if daily_dates is None else daily_dates
    query = reading.asker(catalog)  # a local catalog under the page's own memory bound

    def ask(sql: str) -> Table:
        return _table(query(sql))

    return _shaped(
        ask(queries.summary(daily=daily_dates)),
        ask(queries.weights(top_n, daily=daily_dates)),
        ask(queries.sectors(daily=daily_dates)),
        ask(queries.events()),
        ask(queries.latest_composition()),
        ask(queries.overlap()),
        top_n=top_n,
        source=catalog.location,
        rebalance=(
            ask(queries.rebalance_preview()),
            ask(queries.rebalance_changes()),
            ask(queries.rebalance_accuracy()),
        ),
        held=ask(queries.held()),
        daily_dates=daily_dates,
    )


# ----------------------------------------------------------------- gold's picture of a window


def load_window(
    catalog: CatalogResource, since: dt.date, last: dt.date, *, top_n: int = queries.DEFAULT_TOP_N
) -> DashboardData:
    """The dates from `since` to `last` (both included) of the charts gold's picture draws, every
    query bounded by `date >=` so its cost does not grow with the lake's age; the top-N tickers
    are the heaviest over that window."""
    before = last + dt.timedelta(days=1)
    empty = QueryResult([], [], [])
    return shape(
        catalog.query(queries.summary(before=before, since=since)),
        catalog.query(queries.weights(top_n, before=before, since=since)),
        catalog.query(queries.sectors(before=before, since=since)),
        catalog.query(queries.events(before=before, since=since)),
        empty,
        empty,
        top_n=top_n,
        source=catalog.location,
    )
