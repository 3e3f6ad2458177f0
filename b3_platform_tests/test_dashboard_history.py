"""The dashboard page holds a bounded history (dashboard.queries.DAILY_DATES): each index's newest
dates day by day, older ones one point per month (the month's last date in the lake), thinned in
the catalog's SQL; gaps, `end` and `run` stay right across the boundary, the counts the page shows
stay the lake's, and a longer history adds one point per month, not a row per date.

The catalog here is made by hand (a DuckDB catalog synced from an empty lake, its tables then
filled): one index over 18 months of B3 trading days with a month missing, a week missing inside a
month of the thinned part and a day missing in the daily part, and a small window (DAILY)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from playwright.sync_api import sync_playwright

from b3_platform.dashboard import queries
from b3_platform.dashboard.data import load
from b3_platform.dashboard.site import PAGE_KEY, build_site
from b3_platform.lake.schemas import CATALOG_TABLES
from b3_platform.lake.storage import LocalStorage
from b3_platform.trading_calendar import previous_trading_day, trading_days_between
from b3_platform_tests.chromium import browser_page
from b3_platform_tests.conftest import duckdb_catalog

INDEX = "AAAA"
FIRST, LAST = dt.date(2023, 1, 2), dt.date(2024, 6, 28)
#: A month the lake lacks entirely (a gap at month resolution), a week it lacks inside a thinned
#: month (counted, not drawn) and a day it lacks in the daily part (drawn as a gap).
MISSING = {
    *trading_days_between(dt.date(2023, 5, 1), dt.date(2023, 5, 31)),
    *trading_days_between(dt.date(2023, 8, 14), dt.date(2023, 8, 18)),
    dt.date(2024, 6, 10),
}
#: The window: June 2024 holds 19 dates, so the 30th newest is in May 2024 and May is daily.
DAILY = 30
TICKERS = [f"T{i:02d}" for i in range(12)]  # 10 drawn one by one, 2 as "Others": 11 bands
#: An entry on a date the page draws only as part of its month: events are kept whole.
EVENT_DAY = dt.date(2023, 3, 15)


def held_days(first: dt.date = FIRST) -> list[dt.date]:
    return [d for d in trading_days_between(first, LAST) if d not in MISSING]


def make_catalog(root: Path, days: list[dt.date]):
    """A synced (empty) catalog whose tables the dashboard reads are then filled for `days`."""
    catalog = duckdb_catalog(root)
    catalog.sync(LocalStorage(root), list(CATALOG_TABLES.values()))
    held = set(days)
    summary = {
        "date": days,
        "index": [INDEX] * len(days),
        "components": [len(TICKERS)] * len(days),
        "top5_weight": [50.0] * len(days),
        "top10_weight": [80.0] * len(days),
        "hhi": [900.0] * len(days),
        "has_sector": [d.day % 2 == 0 for d in days],
        "previous_in_lake": [previous_trading_day(d) in held for d in days],
    }
    assets = {"date": [], "index": [], "ticker": [], "company": [], "weight": []}
    for day in days:
        for rank, ticker in enumerate(TICKERS):
            assets["date"].append(day)
            assets["index"].append(INDEX)
            assets["ticker"].append(ticker)
            assets["company"].append(f"COMPANY {ticker}")
            assets["weight"].append(float(len(TICKERS) - rank))
    sectors = {
        "date": [d for d in days for _ in (1, 2)],
        "index": [INDEX] * 2 * len(days),
        "dimension": ["sector"] * 2 * len(days),
        "group_name": ["S1", "S2"] * len(days),
        "weight": [60.0, 40.0] * len(days),
        "components": [6, 6] * len(days),
    }
    changes = {
        "date": [EVENT_DAY],
        "index": [INDEX],
        "ticker": ["T11"],
        "company": ["COMPANY T11"],
        "membership": ["entered"],
        "weight": [1.0],
    }
    with duckdb.connect(str(root / "warehouse.duckdb")) as conn:
        for table, columns in (
            ("gold_index_summary", summary),
            ("silver_assets", assets),
            ("silver_header", {"date": days, "index": [INDEX] * len(days)}),
            ("gold_composition", sectors),
            ("gold_changes", changes),
        ):
            rows = pa.table(columns)
            conn.register("rows", rows)
            names = ", ".join(f'"{c}"' for c in columns)
            conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM rows")
            conn.unregister("rows")
    return catalog


def expected_points(days: list[dt.date], daily: int = DAILY) -> tuple[list[dt.date], dt.date]:
    """The rule, spelled out: every date from the first of the month of the `daily`-th newest on,
    and before that each month's last date."""
    cut = sorted(days)[-daily]
    daily_from = min(d for d in days if (d.year, d.month) == (cut.year, cut.month))
    month_ends: dict[tuple[int, int], dt.date] = {}
    for day in days:
        if day < daily_from:
            month_ends[(day.year, day.month)] = max(day, month_ends.get((day.year, day.month), day))
    return sorted(month_ends.values()) + [d for d in days if d >= daily_from], daily_from


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("history") / "lake"
    make_catalog(root, held_days())
    return root


@pytest.fixture(scope="module")
def data(lake):
    return load(duckdb_catalog(lake), daily_dates=DAILY)


def test_older_dates_are_one_point_per_month_and_recent_ones_daily(data):
    days = held_days()
    shown, daily_from = expected_points(days)
    assert daily_from == dt.date(2024, 5, 2)  # 2024-05-01 is a holiday
    assert data.dates(INDEX) == [d.isoformat() for d in shown]
    rows = data.summary.records()
    month_points = [r["date"] for r in rows if r["resolution"] == "month"]
    assert month_points[:4] == ["2023-01-31", "2023-02-28", "2023-03-31", "2023-04-28"]
    assert "2023-05-31" not in month_points and month_points[4] == "2023-06-30"
    assert all(r["resolution"] == "day" for r in rows if r["date"] >= daily_from.isoformat())
    assert len(month_points) == 15  # 2023-01 … 2024-04 but May 2023
    # Weights and sectors hold the same dates; the top 10 are drawn one by one, the rest as Others.
    assert sorted({r["date"] for r in data.weights.records()}) == data.dates(INDEX)
    assert sorted({r["date"] for r in data.sectors.records()}) == data.dates(INDEX)
    assert Counter(r["date"] for r in data.weights.records()) == {d: 11 for d in data.dates(INDEX)}


def test_each_point_says_how_many_lake_dates_it_stands_for(data, lake):
    days = held_days()
    by_month = Counter((d.year, d.month) for d in days)
    august = next(r for r in data.summary.records() if r["date"] == "2023-08-31")
    assert august["dates"] == by_month[(2023, 8)] == 18 and august["first_date"] == "2023-08-01"
    # 2023-08-21 follows a week the lake lacks: one date of August not compared.
    assert august["compared"] == 17 and august["first_compared"] is True
    june_2023 = next(r for r in data.summary.records() if r["date"] == "2023-06-30")
    assert june_2023["first_compared"] is False  # May 2023 is not in the lake
    assert sum(r["dates"] for r in data.summary.records()) == len(days)
    assert sum(r["with_sectors"] for r in data.summary.records()) == sum(d.day % 2 == 0 for d in days)
    assert data.span(INDEX) == (len(days), FIRST.isoformat(), LAST.isoformat())
    assert data.span() == (len(days), FIRST.isoformat(), LAST.isoformat())
    # The events are a record: every one, also on a date drawn only as part of its month.
    assert [(r["date"], r["ticker"]) for r in data.events.records()] == [(EVENT_DAY.isoformat(), "T11")]


def test_gaps_and_runs_are_right_across_the_boundary(data):
    """A month point holds until the next month's point (the lake holds that month); a month the
    lake lacks is a gap; the last month point meets the first daily date when that is the next
    trading day; a day the lake lacks in the daily part is a gap, as before."""
    rows = {r["date"]: r for r in data.summary.records()}
    assert rows["2023-01-31"]["end"] == "2023-02-28" and rows["2023-01-31"]["run"] == 0
    assert rows["2023-04-28"]["run"] == 0
    assert rows["2023-04-28"]["end"] == "2023-05-02"  # May 2023 is missing: its next trading day
    assert rows["2023-06-30"]["run"] == 1  # the gap
    # August lacks a week: not drawn at month resolution (counted above), no break.
    assert rows["2023-07-31"]["end"] == "2023-08-31" and rows["2023-08-31"]["run"] == 1
    # The boundary: 2024-04-30's next trading day is 2024-05-02, the first daily date.
    assert rows["2024-04-30"]["resolution"] == "month" and rows["2024-04-30"]["end"] == "2024-05-02"
    assert rows["2024-05-02"]["run"] == 1 and rows["2024-05-02"]["end"] == "2024-05-03"
    assert rows["2024-06-07"]["end"] == "2024-06-10" and rows["2024-06-07"]["run"] == 1
    assert rows["2024-06-11"]["run"] == 2 and len({r["run"] for r in rows.values()}) == 3
    # The weights' bands carry the same end and run as their point.
    for band in data.weights.records():
        assert (band["end"], band["run"]) == (rows[band["date"]]["end"], rows[band["date"]]["run"])


def test_the_boundary_meets_a_gap_when_the_lake_lacks_the_days_between(tmp_path):
    """When the lake lacks the first days of the first daily month, the last month point does not
    run into the daily part."""
    days = [d for d in held_days() if not dt.date(2024, 5, 2) <= d <= dt.date(2024, 5, 6)]
    data = load(make_catalog(tmp_path / "lake", days), daily_dates=DAILY)
    rows = {r["date"]: r for r in data.summary.records()}
    assert rows["2024-04-30"]["end"] == "2024-05-02"  # its next trading day: the lake lacks it
    assert rows["2024-05-07"]["resolution"] == "day"
    assert rows["2024-05-07"]["run"] == rows["2024-04-30"]["run"] + 1


def test_a_longer_history_adds_one_point_per_month_not_a_row_per_date(tmp_path, data):
    """Two more years of history: the same daily part, 24 more month points, each 11 bands of
    weights and 2 sectors; without the bound it would be ~500 more dates."""
    longer_days = held_days(dt.date(2021, 1, 4))
    longer = load(make_catalog(tmp_path / "lake", longer_days), daily_dates=DAILY)
    assert len(longer.summary.rows) - len(data.summary.rows) == 24
    assert len(longer.weights.rows) - len(data.weights.rows) == 24 * 11
    assert len(longer.sectors.rows) - len(data.sectors.rows) == 24 * 2
    assert longer.span()[0] - data.span()[0] == len(longer_days) - len(held_days()) > 490
    # The page's data grows by those points only.
    size = {name: len(json.dumps(d.to_json())) for name, d in (("short", data), ("long", longer))}
    per_point = size["short"] / len(data.summary.rows)
    assert size["long"] - size["short"] < 24 * per_point * 1.2
    # Unbounded (every date a row), for comparison: the same catalog answers ~10× the rows.
    every = load(duckdb_catalog(tmp_path / "lake"), daily_dates=10**6)
    assert len(every.summary.rows) == len(longer_days) > 8 * len(longer.summary.rows)


def test_the_ranking_sums_the_whole_history(tmp_path):
    """A ticker heavy only in the thinned years still ranks by its weight on every date (an
    aggregate in SQL), not on the month points alone."""
    days = held_days()
    root = tmp_path / "lake"
    catalog = make_catalog(root, days)
    # T10 and T11 (otherwise 11th and 12th) made heavy on every 2023 date but the month ends.
    month_ends = {max(d for d in days if (d.year, d.month) == (m.year, m.month)) for m in days}
    with duckdb.connect(str(root / "warehouse.duckdb")) as conn:
        heavy = [d for d in days if d.year == 2023 and d not in month_ends]
        conn.execute(
            "UPDATE silver_assets SET weight = 50 WHERE ticker IN ('T10', 'T11') AND \"date\" IN "
            f"({', '.join(f'DATE {chr(39)}{d}{chr(39)}' for d in heavy)})"
        )
    bands = {r["series"] for r in load(catalog, daily_dates=DAILY).weights.records()}
    assert {"T10", "T11"} <= bands and "T09" not in bands and "T08" not in bands


def test_the_page_says_where_daily_resolution_starts_and_counts_every_date(lake, tmp_path, monkeypatch):
    """The page in Chromium: the index's facts count the lake's dates and gaps (a month point its
    month's), and a note says where daily resolution starts and how to query every date; the
    overview the same. `build_site` reports the lake's dates, not the points drawn."""
    monkeypatch.setattr(queries, "DAILY_DATES", DAILY)
    days = held_days()
    built = build_site(duckdb_catalog(lake), LocalStorage(lake))
    assert (built.dates, built.first_date, built.last_date) == (
        len(days),
        FIRST.isoformat(),
        LAST.isoformat(),
    )
    with sync_playwright() as playwright, browser_page(playwright, tmp_path / "profile") as (page, recorded):
        page.goto((lake / PAGE_KEY).as_uri())
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=60_000)
        overview = page.inner_text("#overview-table")
        assert f"{INDEX}\t{len(days)}\t{FIRST}\t{LAST}\t12" in overview
        note = page.inner_text("#overview-resolution")
        assert (
            "before 2024-05-02 (AAAA) one point per month" in note and "python -m b3_platform query" in note
        )
        before = page.evaluate("window.dashboard.rendered")
        page.select_option("#index-select", INDEX)
        page.wait_for_function(f"window.dashboard.rendered > {before}", timeout=60_000)
        facts = dict(
            zip(
                page.locator("#index-facts dt").all_inner_texts(),
                page.locator("#index-facts dd").all_inner_texts(),
            )
        )
        assert facts["dates in range"] == str(len(days)) and facts["first"] == str(FIRST)
        assert facts["gaps"] == "3"  # May 2023, a week of August 2023, 2024-06-10
        assert page.inner_text("#resolution-note") == (
            "Before 2024-05-02: one point per month — the month's last date in the lake (the counts "
            "above are of every date); every date stays queryable with python -m b3_platform query."
        )
        assert page.inner_text("#events-note").startswith(f"{len(days) - 3 - 1} of {len(days)} dates")
        assert page.locator("#weights svg").count() == 1
    assert recorded.errors == [] and [m for m in recorded.console if m[0] == "error"] == []


def test_the_bounded_queries_are_trino_selects():
    import sqlglot

    for sql in (
        queries.summary(daily=250),
        queries.weights(daily=250),
        queries.sectors(daily=250),
        queries.sectors(daily=250, before=dt.date(2025, 7, 8), since=dt.date(2024, 7, 10)),
        queries.held(),
    ):
        (statement,) = sqlglot.parse(sql, read="trino")
        assert isinstance(statement, sqlglot.exp.Select), sql
