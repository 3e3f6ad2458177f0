"""The dashboard's data: the catalog's answers (dashboard.queries) shaped into the tables the charts
draw, plus what the lake's dates say about gaps.

Every table is columnar — `{"fields": [...], "rows": [[...], ...]}` — in one JSON document that the
page inlines and the PNG renderer reads: the same numbers in both. Weights and HHI are the catalog's
decimals as JSON numbers with the same digits (6.567 stays 6.567). Each date row also carries
`end` (the next trading day: the date's composition holds until then, so a block of consecutive
trading days is continuous and a date the lake lacks is an empty stretch) and `run` (a number that
changes after every gap, so line charts break there instead of drawing across missing dates).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from b3_platform.catalog.base import CatalogResource, QueryResult
from b3_platform.dashboard import queries
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
    return Table(list(result.columns), [[_value(v) for v in row] for row in result.rows])


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
        self._position = {d: i for i, d in enumerate(sessions)}

    def next_day(self, day: dt.date) -> dt.date:
        """The next trading day (the calendar day after, past the calendar's horizon)."""
        return self._next.get(day, day + dt.timedelta(days=1))

    def runs(self, days: Sequence[dt.date]) -> dict[dt.date, int]:
        """Each date's run: consecutive trading days share one; a missing trading day starts the next."""
        runs, run, previous = {}, 0, None
        for day in sorted(days):
            here = self._position.get(day)
            if previous is not None and (here is None or self._position.get(previous) != here - 1):
                run += 1
            runs[day], previous = run, day
        return runs


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

    def to_json(self) -> dict[str, Any]:
        return {
            "indices": self.indices,
            "top_n": self.top_n,
            "others": queries.OTHERS,
            "source": self.source,
            **{name: getattr(self, name).to_json() for name in TABLE_NAMES},
        }

    def dates(self, index: str | None = None) -> list[str]:
        """The dates the lake holds (for one index, or any)."""
        if not self.summary.rows:  # an empty answer may come without its columns (Athena)
            return []
        at_index, at_date = self.summary.fields.index("index"), self.summary.fields.index("date")
        return sorted({r[at_date] for r in self.summary.rows if index is None or r[at_index] == index})


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


def _with_gaps(table: Table, runs: dict[tuple[str, str], int], calendar: Calendar) -> Table:
    """`end` (next trading day) and `run` (gap-separated stretch) beside each row's date, added to
    the rows in place (no second copy of a table that grows with the history: at 1,000 dates × 34
    indices the page's tables are ~0.5 M rows)."""
    table.fields = [*table.fields, "end", "run"]
    if not table.rows:  # an empty answer may come without its columns (Athena)
        return table
    at_index, at_date = table.fields.index("index"), table.fields.index("date")
    ends: dict[str, str] = {}
    for row in table.rows:
        day = row[at_date]
        end = ends.get(day)
        if end is None:
            end = ends[day] = calendar.next_day(dt.date.fromisoformat(day)).isoformat()
        row.extend((end, runs[(row[at_index], day)]))
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
    the answers of the next rebalance panel (preview, changes, accuracy), when asked."""
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
) -> DashboardData:
    """`shape` over answers already made tables (`load` makes each as it arrives, so the catalog's
    rows and their JSON-ready copy are never both held for every query)."""
    preview, changes, accuracy = rebalance if rebalance else (Table([]),) * 3
    by_index: dict[str, list[dt.date]] = defaultdict(list)
    if summary_t.rows:  # an empty answer may come without its columns (Athena)
        at_index, at_date = summary_t.fields.index("index"), summary_t.fields.index("date")
        for row in summary_t.rows:
            by_index[row[at_index]].append(dt.date.fromisoformat(row[at_date]))
    calendar = Calendar(d for days in by_index.values() for d in days)
    runs = {
        (index, day.isoformat()): run
        for index, days in by_index.items()
        for day, run in calendar.runs(days).items()
    }
    return DashboardData(
        indices=sorted(by_index),
        summary=_with_gaps(summary_t, runs, calendar),
        weights=_with_gaps(weights_t, runs, calendar),
        sectors=_with_gaps(sectors_t, runs, calendar),
        events=events_t,
        latest=latest_t,
        overlap=overlap_t,
        top_n=top_n,
        source=source,
        rebalance_preview=preview,
        rebalance_changes=changes,
        rebalance_accuracy=accuracy,
    )


def load(catalog: CatalogResource, *, top_n: int = queries.DEFAULT_TOP_N) -> DashboardData:
    """Ask the catalog every question of the dashboard (nine queries) and shape the answers, each
    made a table as it arrives (its catalog rows then freed)."""

    def ask(sql: str) -> Table:
        return _table(catalog.query(sql))

    return _shaped(
        ask(queries.summary()),
        ask(queries.weights(top_n)),
        ask(queries.sectors()),
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
