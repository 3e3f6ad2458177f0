"""Announced portfolios, pure: typed silver rows from validated responses, what the next rebalance
changes (preview vs theoretical), and how a rebalance date's day portfolio matched the previews.

Rebalances fall on the first B3 trading day of January, May and September (the first day of a
quadrimester); the calendar is trading_calendar's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

from b3_platform.b3.announced import AnnouncedPortfolio, Quadrimester, StatedPeriod
from b3_platform.b3.parse import ParseError, parse_decimal, parse_int, parse_reductor, split_type
from b3_platform.lake.paths import fetched_at_from_stem
from b3_platform.lake.schemas import ANNOUNCED_ACCURACY, ANNOUNCED_CHANGES, SILVER_THEORETICAL
from b3_platform.trading_calendar import trading_days_between, trading_days_held
from b3_platform.transforms.silver import typed_table

ENTERING, LEAVING, STAYING = "entering", "leaving", "staying"


# --- the rebalance calendar -----------------------------------------------------------------------


def rebalance_date(quadrimester: Quadrimester) -> dt.date:
    """The first B3 trading day of the quadrimester: the day its portfolio takes effect."""
    first = dt.date(quadrimester.year, quadrimester.start_month, 1)
    return trading_days_between(first, first + dt.timedelta(days=14))[0]


def is_rebalance_date(day: dt.date) -> bool:
    return rebalance_date(Quadrimester.containing(day)) == day


def next_rebalance_date(day: dt.date) -> dt.date:
    """The next rebalance strictly after `day`."""
    current = Quadrimester.containing(day)
    when = rebalance_date(current)
    return when if when > day else rebalance_date(current.following())


# --- silver ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnouncedItem:
    """One index's validated announced portfolio and the raw capture it comes from."""

    index: str
    capture_id: str
    portfolio: AnnouncedPortfolio


def announced_table(items: Iterable[AnnouncedItem], period: StatedPeriod, day: dt.date) -> pa.Table:
    """One date's typed rows (silver_theoretical / silver_preview share the schema). `period` is
    the quadrimester the portfolios are for. A value that does not parse stops the date with an
    error naming the method, index, date, row, field and value."""
    schema = SILVER_THEORETICAL.schema
    columns: dict[str, list] = {f.name: [] for f in schema}
    for item in sorted(items, key=lambda i: i.index):
        portfolio = item.portfolio
        if not portfolio.published or portfolio.header is None or portfolio.language is None:
            continue
        locale, header = portfolio.language, portfolio.header
        where = f"{portfolio.method} {item.index} {day}"
        try:
            shared = {
                "theoretical_quantity_total": parse_int(
                    header.theoricalQty, locale, field="header.theoricalQty"
                ),
                "part_total": parse_decimal(header.part, locale, field="header.part"),
                "reductor": parse_reductor(header.reductor, locale, field="header.reductor").value,
            }
        except ParseError as exc:
            raise exc.at(where) from None
        for number, row in enumerate(portfolio.results, start=1):
            try:
                type_code = split_type(row.type)
                values = {
                    "ticker": row.cod.strip(),
                    "company": row.asset.strip(),
                    "share_class": type_code.share_class,
                    "event_flag": type_code.event_flag,
                    "listing_segment": type_code.listing_segment,
                    "type_code": row.type,
                    "weight": parse_decimal(row.part, locale, field="part"),
                    "theoretical_quantity": parse_int(row.theoricalQty, locale, field="theoricalQty"),
                    "cont": portfolio.cont(row),
                    "row_number": number,
                }
            except ParseError as exc:
                raise exc.at(f"{where} row {number} ({row.cod})") from None
            for name, value in values.items():
                columns[name].append(value)
        # What is the same on every row of the portfolio, computed once for its rows.
        same = {
            "index": item.index,
            **shared,
            "period_year": period.quadrimester.year,
            "period_start_month": period.quadrimester.start_month,
            "period_end_month": period.quadrimester.end_month,
            "period_source": period.source,
            "language": locale,
            "capture_id": item.capture_id,
            "fetched_at": fetched_at_from_stem(item.capture_id),
        }
        for name, value in same.items():
            columns[name].extend([value] * len(portfolio.results))
    return typed_table(columns, schema, day)


def _by_index(table: pa.Table, columns: Sequence[str] | None = None) -> dict[str, dict[str, dict]]:
    """{index: {ticker: row}} of a silver table; each row holds only `columns` when given (with
    `index` and `ticker`): turning every column of every row into Python objects is most of the
    cost, at 34 indices ~2,700 rows a table."""
    if columns is not None:
        table = table.select(list(dict.fromkeys(["index", "ticker", *columns])))
    grouped: dict[str, dict[str, dict]] = {}
    for row in table.to_pylist():
        grouped.setdefault(row["index"], {})[row["ticker"]] = row
    return grouped


# --- gold: what the next rebalance changes --------------------------------------------------------


#: The silver columns `changes` reads of each row.
_CHANGES_READS = (
    "company",
    "weight",
    "theoretical_quantity",
    "period_year",
    "period_start_month",
    "capture_id",
)


def changes(theoretical: pa.Table, preview: pa.Table) -> tuple[pa.Table, list[str]]:
    """Preview vs theoretical portfolio per index of one date: every ticker of either, entering,
    leaving or staying, with the expected weight and quantity changes. Returns (table, indices
    not compared and why): an index needs both portfolios on the date."""
    current, upcoming = _by_index(theoretical, _CHANGES_READS), _by_index(preview, _CHANGES_READS)
    columns: dict[str, list] = {f.name: [] for f in ANNOUNCED_CHANGES.schema}
    not_compared = [
        f"{ix}: no {'preview' if ix in current else 'theoretical portfolio'} on the date"
        for ix in sorted(set(current) ^ set(upcoming))
    ]
    order = {ENTERING: 0, LEAVING: 1, STAYING: 2}
    for index in sorted(set(current) & set(upcoming)):
        now, nxt = current[index], upcoming[index]
        first = next(iter(nxt.values()))
        when = rebalance_date(Quadrimester(first["period_year"], first["period_start_month"]))
        theoretical_id = next(iter(now.values()))["capture_id"]
        rows = []
        for ticker in now.keys() | nxt.keys():
            before, after = now.get(ticker), nxt.get(ticker)
            change = ENTERING if before is None else LEAVING if after is None else STAYING
            weight_before = before["weight"] if before else None
            weight_after = after["weight"] if after else None
            qty_before = before["theoretical_quantity"] if before else None
            qty_after = after["theoretical_quantity"] if after else None
            rows.append(
                {
                    "index": index,
                    "ticker": ticker,
                    "company": (after or before)["company"],
                    "change": change,
                    "rebalance_date": when,
                    "current_weight": weight_before,
                    "preview_weight": weight_after,
                    "weight_change_pp": (weight_after or Decimal(0)) - (weight_before or Decimal(0)),
                    "current_quantity": qty_before,
                    "preview_quantity": qty_after,
                    "quantity_change": (qty_after or 0) - (qty_before or 0),
                    "theoretical_capture_id": theoretical_id,
                    "preview_capture_id": first["capture_id"],
                }
            )
        for row in sorted(rows, key=lambda r: (order[r["change"]], r["ticker"])):
            for name, value in row.items():
                columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=ANNOUNCED_CHANGES.schema), not_compared


# --- gold: how accurate the previews were ---------------------------------------------------------


def _stable_since(dated: Sequence[tuple[dt.date, object]]) -> dt.date:
    """The first date from which every later value equals the last one (dates ascending)."""
    since = dated[-1][0]
    for day, value in reversed(dated):
        if value != dated[-1][1]:
            break
        since = day
    return since


def accuracy(day: dt.date, actual: pa.Table, previews: Sequence[tuple[dt.date, pa.Table]]) -> pa.Table:
    """For rebalance date `day`: each index of the day portfolio (`actual`, silver_assets) against
    every preview captured before it for this quadrimester (`previews`: (capture date, silver_preview)),
    one row per (index, preview date). Previews of another quadrimester are ignored."""
    target = Quadrimester.containing(day)
    days_portfolio = _by_index(actual)
    history: dict[str, list[tuple[dt.date, dict[str, dict]]]] = {}
    for preview_date, table in sorted(previews, key=lambda p: p[0]):
        if preview_date >= day:
            continue
        for index, rows in _by_index(table).items():
            first = next(iter(rows.values()))
            if Quadrimester(first["period_year"], first["period_start_month"]) == target:
                history.setdefault(index, []).append((preview_date, rows))
    columns: dict[str, list] = {f.name: [] for f in ANNOUNCED_ACCURACY.schema}
    for index in sorted(set(days_portfolio) & set(history)):
        real, seen = days_portfolio[index], history[index]
        tickers_since = _stable_since([(d, frozenset(rows)) for d, rows in seen])
        quantities_since = _stable_since(
            [(d, frozenset((t, r["theoretical_quantity"]) for t, r in rows.items())) for d, rows in seen]
        )
        for preview_date, predicted in seen:
            both = predicted.keys() & real.keys()
            equal = sum(
                1 for t in both if predicted[t]["theoretical_quantity"] == real[t]["theoretical_quantity"]
            )
            errors = [abs(real[t]["weight"] - predicted[t]["weight"]) for t in both]
            row = {
                "index": index,
                "preview_date": preview_date,
                "trading_days_before": trading_days_held(preview_date, day) - 1,
                "predicted_components": len(predicted),
                "actual_components": len(real),
                "tickers_matched": len(both),
                "missing_tickers": ", ".join(sorted(predicted.keys() - real.keys())),
                "unexpected_tickers": ", ".join(sorted(real.keys() - predicted.keys())),
                "quantities_equal": equal,
                "weight_max_abs_error_pp": max(errors) if errors else None,
                "exact": predicted.keys() == real.keys() and equal == len(both),
                "tickers_stable_since": tickers_since,
                "quantities_stable_since": quantities_since,
                "preview_capture_id": next(iter(predicted.values()))["capture_id"],
            }
            for name, value in row.items():
                columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=ANNOUNCED_ACCURACY.schema)
