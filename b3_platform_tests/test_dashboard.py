"""The index dashboard built from the demo lake (every real sample), looked at the way a person
does: the page in headless Chromium, served from 127.0.0.1 as a bucket would serve it and opened
from disk, with every request and console message recorded; what the charts draw compared with
the catalog's own answer to the same question; and the PNG the dashboard's run reports on gold's
newest partition decoded."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import http.server
import importlib
import os
import re
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlglot
from playwright.sync_api import sync_playwright

from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.dashboard import PICTURE_WINDOW_DAYS, dashboard
from b3_platform.b3.announced import PREVIEW, THEORETICAL
from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader
from b3_platform.dashboard import queries, reading
from b3_platform.dashboard.site import PAGE_KEY, build_site
from b3_platform.definitions import build_defs
from b3_platform.lake.schemas import CATALOG_TABLES
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import LakeResource, lake_resources
from b3_platform.trading_calendar import (
    first_of_last_trading_days,
    previous_trading_day,
    trading_days_between,
)
from b3_platform_tests.chromium import browser_page
from b3_platform_tests.conftest import REPO, SAMPLE_DAY, duckdb_catalog
from b3_platform_tests.pngs import decode_png
from b3_platform_tests.test_announced import (
    ADDED,
    ANNOUNCED_SUBGRAPH,
    DROPPED,
    PREVIEW_DAYS,
    REAL,
    REBALANCE,
    accuracy_lake,
    graph_resources,
    materialize,
    synthetic_preview,
)
from b3_platform_tests.test_raw_capture import failure_text

SWAP_DAY = "2025-07-02"
GOLD = [
    dg.AssetKey(k) for k in ("gold_composition", "gold_changes", "gold_index_summary", "gold_time_in_index")
]
NEWEST = "2025-10-03"
#: The module of the dashboard asset and gold's pictures (the package exports the asset by that name).
dashboard_assets = importlib.import_module("b3_platform.assets.dashboard")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    return {**env, **extra}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "b3_platform", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """`python -m b3_platform --data-dir LAKE demo` in a subprocess: every layer, the catalog and the
    dashboard, on a temporary instance."""
    lake = tmp_path_factory.mktemp("dashboard") / "lake"
    done = _cli("--data-dir", str(lake), "demo", env=_clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dashboard: {lake / PAGE_KEY}" in done.stdout
    return lake


@pytest.fixture(scope="module")
def catalog(demo):
    return duckdb_catalog(demo)


@pytest.fixture(scope="module")
def served(demo):
    """The lake's dashboard folder over HTTP on 127.0.0.1, as the bucket would serve it."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(demo / "dashboard"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/index.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, served, tmp_path_factory):
    """One Chromium for the module, on the served page, rendered once."""
    with browser_page(playwright, tmp_path_factory.mktemp("profile")) as (page, recorded):
        page.goto(served)
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=60_000)
        yield page, recorded


def _act(page, action) -> None:
    """Do `action` (a control change) and wait until the page has drawn its result."""
    before = page.evaluate("window.dashboard.rendered")
    action()
    page.wait_for_function(f"window.dashboard.rendered > {before}", timeout=60_000)


def _show(page, index: str, first: str | None = None, last: str | None = None) -> None:
    _act(page, lambda: page.click("#range-all"))
    _act(page, lambda: page.select_option("#index-select", index))
    if first:
        _act(page, lambda: page.fill("#date-from", first))
    if last:
        _act(page, lambda: page.fill("#date-to", last))


def _chart_rows(page, chart: str) -> list[dict]:
    """The rows a chart draws, read from its live Vega view."""
    return page.evaluate(f"window.dashboard.views[{chart!r}].data('rows')")


# ------------------------------------------------------------------------------------ the page itself


def test_the_page_is_written_under_the_lake_and_is_self_contained(demo):
    page = (demo / PAGE_KEY).read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    # Nothing is loaded from elsewhere: no external script, stylesheet, image or font.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"(https?:)?//", page)
    assert "@import" not in page and "url(http" not in page
    assert "window.vegaEmbed=" in page  # Vega itself is inlined


def test_served_page_loads_without_console_errors_and_requests_only_itself(browser, served):
    page, recorded = browser
    _show(page, "IBOV")
    _act(page, lambda: page.click("#tab-overview"))
    assert recorded.errors == []
    assert [m for m in recorded.console if m[0] in ("error", "warning")] == []
    assert recorded.requests and set(recorded.requests) == {served}


def test_page_opened_from_disk_requests_nothing_but_the_file(playwright, demo, tmp_path):
    url = (demo / PAGE_KEY).as_uri()
    with browser_page(playwright, tmp_path / "profile") as (page, recorded):
        page.goto(url)
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=60_000)
        _act(page, lambda: page.select_option("#index-select", "IBOV"))
        assert page.locator("#weights svg").count() == 1
    assert recorded.errors == [] and [m for m in recorded.console if m[0] == "error"] == []
    assert set(recorded.requests) == {url}


def test_a_catalog_without_dates_gives_a_page_that_says_so(playwright, tmp_path):
    root = tmp_path / "lake"
    storage = LocalStorage(root)
    catalog = duckdb_catalog(root)
    catalog.sync(storage, list(CATALOG_TABLES.values()))  # typed, empty views: nothing built yet
    built = build_site(catalog, storage)
    assert (built.dates, built.last_date) == (0, None) and (root / PAGE_KEY).is_file()
    with browser_page(playwright, tmp_path / "profile") as (page, recorded):
        page.goto((root / PAGE_KEY).as_uri())
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=60_000)
        assert "The catalog holds no date yet" in page.inner_text("main")
    assert recorded.errors == [] and [m for m in recorded.console if m[0] == "error"] == []


# ------------------------------------------------------------------------ the charts versus the catalog


def test_weights_drawn_equal_the_catalogs_answer(browser, catalog):
    page, _ = browser
    _show(page, "IBOV")
    drawn = {(r["date"], r["series"]): r["weight"] for r in _chart_rows(page, "weights")}
    stored = catalog.query(
        """SELECT weight FROM silver_assets
        WHERE "index" = 'IBOV' AND ticker = 'PETR4' AND "date" = DATE '2025-07-08'"""
    ).rows
    assert stored == [(Decimal("6.567"),)]
    assert drawn[("2025-07-08", "PETR4")] == 6.567
    # Every date's bands add up to the whole index, exactly as stored.
    totals = dict(
        catalog.query(
            """SELECT "date", SUM(weight) FROM silver_assets WHERE "index" = 'IBOV' GROUP BY 1"""
        ).rows
    )
    by_date: dict[str, Decimal] = {}
    for (day, _series), weight in drawn.items():
        by_date[day] = by_date.get(day, Decimal(0)) + Decimal(str(weight))
    assert by_date == {d.isoformat(): total for d, total in totals.items()}
    # The top 10 over the lake's history are drawn one by one, the rest as Others.
    assert len({s for _, s in drawn if s != queries.OTHERS}) == 10


def test_concentration_and_size_drawn_equal_the_catalogs_answer(browser, catalog):
    page, _ = browser
    _show(page, "IBOV")
    stored = catalog.query(
        """SELECT "date", components, top5_weight, top10_weight, hhi FROM gold_index_summary
        WHERE "index" = 'IBOV' ORDER BY "date\""""
    ).rows
    drawn = sorted(
        (r["date"], r["components"], r["top5_weight"], r["top10_weight"], r["hhi"])
        for r in _chart_rows(page, "hhi")
    )
    assert drawn == [(d.isoformat(), c, float(t5), float(t10), float(h)) for d, c, t5, t10, h in stored]
    assert len(drawn) == 14


def test_the_date_range_control_limits_every_chart(browser, catalog):
    page, _ = browser
    _show(page, "IBOV", "2025-07-01", "2025-07-08")
    expected = {
        d.isoformat()
        for (d,) in catalog.query(
            """SELECT "date" FROM gold_index_summary WHERE "index" = 'IBOV'
            AND "date" BETWEEN DATE '2025-07-01' AND DATE '2025-07-08'"""
        ).rows
    }
    assert len(expected) == 6
    for chart in ("weights", "concentration", "hhi", "components"):
        assert {r["date"] for r in _chart_rows(page, chart)} == expected, chart
    assert "2025-07-01 to 2025-07-08" in page.inner_text("#index-title")
    assert "from=2025-07-01" in page.evaluate("location.hash")


def test_the_ntco3_natu3_swap_is_on_the_entries_and_exits_timeline(browser):
    page, _ = browser
    _show(page, "IBOV")
    events = {(r["date"], r["membership"], r["ticker"]) for r in _chart_rows(page, "events")}
    assert events == {(SWAP_DAY, "entered", "NATU3"), (SWAP_DAY, "exited", "NTCO3")}
    labels = page.evaluate("[...document.querySelectorAll('#events svg text')].map(t => t.textContent)")
    assert "NATU3" in labels and "NTCO3" in labels
    listed = page.inner_text("#events-list")
    assert (
        SWAP_DAY in listed
        and "+ NATU3 (NATURA, 0.424 %)" in listed
        and "− NTCO3 (GRUPO NATURA, 0.436 %)" in listed
    )


def test_dates_the_lake_lacks_are_gaps_not_lines(browser, catalog):
    page, _ = browser
    _show(page, "IBOV")
    days = sorted(
        d for (d,) in catalog.query("""SELECT "date" FROM gold_index_summary WHERE "index" = 'IBOV'""").rows
    )
    # A new stretch starts wherever the previous trading day is not in the lake.
    breaks = sum(previous_trading_day(d) != p for p, d in zip(days, days[1:]))
    rows = _chart_rows(page, "components")
    assert len({r["run"] for r in rows}) == breaks + 1 == 7
    # Each date's band ends on the next trading day: 2025-07-08's ends on 07-09, a day the lake lacks.
    ends = {r["date"]: r["end"] for r in _chart_rows(page, "weights")}
    assert ends["2025-07-08"] == "2025-07-09" and ends["2025-07-04"] == "2025-07-07"
    assert "2025-07-09" not in ends
    # One line path per stretch of consecutive dates (single dates are points only).
    stretches_of_two_or_more = 2  # 2025-06-30 … 07-08 and 07-10 … 07-11
    assert (
        page.locator("#components svg path[aria-roledescription='line mark']").count()
        >= stretches_of_two_or_more
    )


def test_the_composition_table_shows_weights_as_stored(browser, catalog):
    page, _ = browser
    _show(page, "IBOV")
    assert f"Composition of IBOV on {NEWEST}" in page.inner_text("#composition-title")
    cells = page.locator("#composition tr").all_inner_texts()
    (vale,) = catalog.query(
        f"""SELECT weight FROM silver_assets WHERE "index" = 'IBOV' AND ticker = 'VALE3' AND "date" = DATE '{NEWEST}'"""
    ).rows[0]
    assert any(c.startswith("VALE3\tVALE") and f"\t{vale:.3f}\t" in c for c in cells)
    assert str(vale) == "11.587"
    assert len(cells) == 1 + 82  # header + every component


def test_overview_compares_the_indices(browser):
    page, _ = browser
    _act(page, lambda: page.click("#tab-overview"))
    table = page.inner_text("#overview-table")
    for line in ("IBOV\t14\t2021-03-26\t2025-10-03\t82", "IBRA\t3\t2021-06-22\t2021-07-01\t178", "IBXX\t1"):
        assert line in table
    assert {r["index"] for r in _chart_rows(page, "overview-components")} == {"IBOV", "IBRA", "IBXX"}
    # No two indices share a date in the demo lake: the overlap says so instead of comparing dates apart.
    assert "No two indices are in the lake on the same date" in page.inner_text("#overlap-note")


def test_screenshots_of_the_overview_and_of_ibov(browser, tmp_path_factory):
    page, _ = browser
    folder = tmp_path_factory.mktemp("screenshots")
    _act(page, lambda: page.click("#tab-overview"))
    overview = page.screenshot(path=str(folder / "overview.png"), full_page=True)
    _show(page, "IBOV")
    ibov = page.screenshot(path=str(folder / "ibov.png"), full_page=True)
    for shot, min_height in ((overview, 1000), (ibov, 3000)):
        width, height = decode_png(shot)
        assert width == 1100 and height >= min_height
        assert len(shot) > 80_000  # charts and tables, not a blank page


# ------------------------------------------------------------------------------- the PNGs in metadata


def _png_of(markdown: str) -> bytes:
    match = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:200]
    return base64.b64decode(match.group(1))


def _draw_dashboard(demo, catalog) -> dg.ExecuteInProcessResult:
    """The dashboard asset materialized alone, as automation runs it after the catalog."""
    return dg.materialize(
        [dashboard],
        resources={**lake_resources(LakeResource(root=str(demo))), "catalog": catalog},
        instance=dg.DagsterInstance.ephemeral(),
    )


def _observed(result: dg.ExecuteInProcessResult) -> dg.AssetObservation:
    """The run's one observation: gold_index_summary at the catalog's newest date."""
    (observation,) = result.asset_observations_for_node("dashboard")
    assert observation.asset_key == dg.AssetKey("gold_index_summary")
    return observation


def test_dashboard_asset_writes_the_page_and_reports_gold_s_picture(demo, catalog):
    (demo / PAGE_KEY).unlink()
    result = _draw_dashboard(demo, catalog)
    (materialization,) = result.asset_materializations_for_node("dashboard")
    metadata = materialization.metadata
    assert metadata["dagster/uri"].value == str(demo / PAGE_KEY) and (demo / PAGE_KEY).is_file()
    assert metadata["indices"].value == "IBOV, IBRA, IBXX" and metadata["dates"].value == 18
    # No picture in the dashboard's own materialization: it says where the picture is.
    assert not any("data:image" in str(entry.value) for entry in metadata.values())
    assert metadata["picture"].value == f"picture_IBOV on gold_index_summary {NEWEST}"
    # The picture: an observation of gold's newest partition, a PNG of IBOV's main charts.
    observation = _observed(result)
    assert observation.partition == NEWEST and list(observation.metadata) == ["picture_IBOV"]
    width, height = decode_png(_png_of(observation.metadata["picture_IBOV"].value))
    assert width > 400 and height > 400


def test_gold_draws_no_picture_and_needs_no_catalog(demo, tmp_path):
    """Gold's step of the newest date draws nothing (the dashboard's run does, after the catalog):
    no picture entry and no catalog query, so it builds even where no catalog exists."""
    defs = build_defs(
        {"B3_PLATFORM_DATA_DIR": str(demo), "B3_PLATFORM_DUCKDB": str(tmp_path / "none.duckdb")}
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=GOLD, partition_key=NEWEST
    )
    assert result.success
    materializations = result.asset_materializations_for_node("gold_tables")
    assert len(materializations) == 4
    assert not any(k.startswith("picture") for m in materializations for k in m.metadata)
    assert not (tmp_path / "none.duckdb").exists()


def test_gold_s_picture_draws_a_trailing_window_queried_date_pruned(demo, catalog, monkeypatch):
    """The demo lake holds dates from 2021 on; the picture of its newest date draws only the last
    PICTURE_WINDOW_DAYS trading days up to it: every query the picture sends the catalog keeps
    `date >=` the window's first day (and stops after the date), the data handed to the drawing holds
    no older row, and the caption says the dates."""
    since = first_of_last_trading_days(dt.date.fromisoformat(NEWEST), PICTURE_WINDOW_DAYS)
    held = [r[0] for r in catalog.query('SELECT DISTINCT "date" FROM gold_index_summary ORDER BY 1').rows]
    assert held[0] < since < held[-1], (held, since)  # a history longer than the window
    assert catalog.query(queries.sectors()).rows  # the whole history has sectors (2022's capture)

    drawn, sent, bounds = [], [], []
    draw, ask = dashboard_assets.index_png, DuckDBCatalogReader.query
    monkeypatch.setattr(
        dashboard_assets,
        "index_png",
        lambda data, index, **kw: drawn.append((data, index)) or draw(data, index, **kw),
    )
    # Every read of the local catalog goes through its reader: the page's under its own bound.
    monkeypatch.setattr(
        DuckDBCatalogReader,
        "query",
        lambda self, sql, *a, **kw: (
            sent.append(sql) or bounds.append(self.config) or ask(self, sql, *a, **kw)
        ),
    )
    observation = _observed(_draw_dashboard(demo, catalog))

    # The page's ten questions cover the whole history; the picture's four, the window only.
    page, picture = sent[:-4], sent[-4:]
    assert len(page) == 10 and not any(f"DATE '{since}'" in sql for sql in page)
    assert bounds == [reading.READ_CONFIG] * 10 + [None] * 4
    after = dt.date.fromisoformat(NEWEST) + dt.timedelta(days=1)
    assert all(f"\"date\" >= DATE '{since}'" in sql and f"< DATE '{after}'" in sql for sql in picture), (
        picture
    )
    assert [index for _, index in drawn] == ["IBOV"]  # the one index of the newest date
    data = drawn[0][0]
    for name in ("summary", "weights", "sectors", "events"):
        dates = {r["date"] for r in getattr(data, name).records()}
        assert all(since.isoformat() <= d <= NEWEST for d in dates), (name, sorted(dates))
    assert data.sectors.rows == []  # the 2022 capture with sectors is outside the window
    ibov_in_window = catalog.query(
        f"""SELECT DISTINCT "date" FROM gold_index_summary WHERE "index" = 'IBOV' AND "date" >= DATE '{since}'"""
    ).rows
    assert data.dates("IBOV") == sorted(d.isoformat() for (d,) in ibov_in_window)
    assert data.dates("IBOV")[-1] == NEWEST
    first = data.dates("IBOV")[0]
    assert observation.metadata["picture_IBOV"].value.startswith(
        f"![IBOV, {first} to {NEWEST}](data:image/png;base64,"
    )


#: The tables gold's picture reads.
PICTURE_TABLES = ("gold_index_summary", "gold_composition", "gold_changes", "silver_assets")


@pytest.fixture
def two_indices(demo, tmp_path):
    """A copy of the demo's catalog whose newest date also holds AAAA (sorted before IBOV): IBOV's
    rows of that date filed again under AAAA in every table the picture reads."""
    import shutil

    import duckdb

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(demo / "warehouse.duckdb", copy)
    with duckdb.connect(str(copy)) as conn:
        for table in PICTURE_TABLES:
            columns = [c for (c,) in conn.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]
            chosen = ", ".join("'AAAA'" if c == "index" else f'"{c}"' for c in columns)
            conn.execute(
                f"INSERT INTO {table} SELECT {chosen} FROM {table} "
                f"WHERE \"index\" = 'IBOV' AND \"date\" = DATE '{NEWEST}'"
            )
    return copy


def test_gold_s_picture_is_one_the_featured_index_of_a_date_holding_several(two_indices, monkeypatch):
    """A date holding several indices carries one picture: IBOV's when the date holds it (else the
    first index held), never one per index (each is ~320 kB of run history and ~0.5 s of CPU)."""
    import duckdb

    catalog = duckdb_catalog(two_indices.parent)
    day = dt.date.fromisoformat(NEWEST)
    drawn = []
    draw = dashboard_assets.index_png
    monkeypatch.setattr(
        dashboard_assets,
        "index_png",
        lambda data, index, **kw: drawn.append(index) or draw(data, index, **kw),
    )
    pictures = dashboard_assets.gold_picture(catalog, day)
    assert drawn == ["IBOV"] and list(pictures) == ["picture_IBOV"]
    width, height = decode_png(_png_of(pictures["picture_IBOV"].value))
    assert width > 400 and height > 400

    # Without the featured index on that date, the first index the date holds is drawn.
    with duckdb.connect(str(two_indices)) as conn:
        for table in PICTURE_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE \"index\" = 'IBOV' AND \"date\" = DATE '{NEWEST}'")
    drawn.clear()
    pictures = dashboard_assets.gold_picture(catalog, day)
    assert drawn == ["AAAA"] and list(pictures) == ["picture_AAAA"], pictures
    assert pictures["picture_AAAA"].value.startswith(f"![AAAA, {NEWEST} to {NEWEST}]")


def test_a_picture_that_cannot_be_drawn_says_why_and_the_page_is_still_written(demo, catalog, monkeypatch):
    """The renderer failing does not fail the page: gold's newest partition is observed with
    `picture: not drawn: <why>`, and the dashboard's materialization says the same."""

    def broken(*args, **kwargs):
        raise RuntimeError("the renderer is broken")

    monkeypatch.setattr(dashboard_assets, "index_png", broken)
    (demo / PAGE_KEY).unlink()
    result = _draw_dashboard(demo, catalog)
    assert result.success and (demo / PAGE_KEY).is_file()
    observation = _observed(result)
    assert observation.partition == NEWEST
    assert observation.metadata["picture"].value == "not drawn: RuntimeError: the renderer is broken"
    (materialization,) = result.asset_materializations_for_node("dashboard")
    assert materialization.metadata["picture"].value == "not drawn: RuntimeError: the renderer is broken"
    # Without a catalog at all, the picture says so (the page itself then fails: tested below).
    missing = duckdb_catalog(demo / "nowhere")
    assert dashboard_assets.gold_picture(missing, dt.date.fromisoformat(NEWEST))["picture"].startswith(
        "not drawn: no catalog at"
    )


def test_the_window_is_that_many_trading_days_ending_at_the_date():
    day = dt.date(2025, 7, 10)
    first = first_of_last_trading_days(day, PICTURE_WINDOW_DAYS)
    assert len(trading_days_between(first, day)) == PICTURE_WINDOW_DAYS
    assert first == dt.date(2024, 7, 10)  # B3's calendar: a year of sessions, holidays skipped
    assert first_of_last_trading_days(day, 1) == day
    # Near the calendar's start, the window starts there.
    assert first_of_last_trading_days(dt.date(2015, 1, 5), PICTURE_WINDOW_DAYS) == dt.date(2015, 1, 2)
    with pytest.raises(ValueError, match="at least one trading day"):
        first_of_last_trading_days(day, 0)


# --------------------------------------------------------------------------------------- the CLI, SQL


def test_cli_dashboard_builds_the_page_and_refuses_without_a_catalog(demo, tmp_path):
    done = _cli("--data-dir", str(demo), "dashboard", env=_clean_env())
    assert done.returncode == 0, done.stderr
    assert "dashboard: IBOV, IBRA, IBXX over 18 dates (2021-03-26 … 2025-10-03)" in done.stdout
    assert f"written to {demo / PAGE_KEY}" in done.stdout
    missing = _cli("--data-dir", str(tmp_path / "empty"), "dashboard", env=_clean_env())
    assert missing.returncode == 2 and "error: no catalog at" in missing.stderr
    assert not (tmp_path / "empty" / PAGE_KEY).exists()


@pytest.mark.parametrize(
    "sql",
    [
        queries.summary(),
        queries.weights(),
        queries.sectors(),
        queries.events(),
        queries.latest_composition(),
        queries.overlap(),
        queries.weights(before=dt.date(2025, 7, 8)),
        queries.weights(before=dt.date(2025, 7, 8), since=dt.date(2024, 7, 10)),
        queries.summary(before=dt.date(2025, 7, 8), since=dt.date(2024, 7, 10)),
        queries.sectors(since=dt.date(2024, 7, 10)),
        queries.events(before=dt.date(2025, 7, 8), since=dt.date(2024, 7, 10)),
        queries.rebalance_preview(),
        queries.rebalance_changes(),
        queries.rebalance_accuracy(),
    ],
)
def test_every_dashboard_query_is_one_trino_select(sql):
    (statement,) = sqlglot.parse(sql, read="trino")
    assert isinstance(statement, (sqlglot.exp.Select, sqlglot.exp.Union))


# ------------------------------------------------------------------------ the next rebalance panel


def test_the_demo_lake_holds_no_preview_and_the_panel_says_so(browser, catalog):
    page, recorded = browser
    _show(page, "IBOV")
    assert catalog.query("SELECT COUNT(*) FROM announced_changes").rows == [(0,)]
    assert page.evaluate("window.dashboard.data.rebalance_preview") == []
    assert "No preview of the next rebalance has been captured for IBOV yet" in page.inner_text("#rebalance")
    assert page.locator("#rebalance-table").count() == 0
    assert recorded.errors == []


def test_the_next_rebalance_panel_shows_the_latest_previews_changes(
    playwright, b3_server, today, lake_root, tmp_path
):
    """The day portfolio and the announced portfolios captured on one day (the preview drops two
    tickers and adds one), the catalog and the dashboard built; the panel in Chromium shows what
    the catalog's announced_changes says for the index and date."""
    day = today(SAMPLE_DAY)
    b3_server.serve_method(THEORETICAL, "IBOV", REAL)
    b3_server.serve_method(PREVIEW, "IBOV", synthetic_preview(REAL))
    resources = graph_resources(lake_root, b3_server)
    day_portfolio = [
        "raw_portfolio",
        "bronze_portfolio",
        "silver_header",
        "silver_assets",
        *(k.path[0] for k in GOLD),
    ]
    result = materialize(resources, [*day_portfolio, *ANNOUNCED_SUBGRAPH], day)
    assert result.success, failure_text(result)
    built = dg.materialize(ALL_ASSETS, selection=["athena_tables", "dashboard"], resources=resources)
    assert built.success

    catalog = resources["catalog"]
    stored = catalog.query(
        f"""SELECT ticker, company, change, current_weight, preview_weight, weight_change_pp, rebalance_date
        FROM announced_changes WHERE "index" = 'IBOV' AND "date" = DATE '{day}'
        AND (change <> 'staying' OR weight_change_pp <> 0)"""
    ).rows
    moves = sorted((change, ticker) for ticker, _, change, *_ in stored if change != "staying")
    assert moves == [("entering", ADDED), *(("leaving", t) for t in DROPPED)]
    [rebalance_day] = {r[-1] for r in stored}
    assert rebalance_day == dt.date(2025, 9, 1)

    def number(value):
        return None if value is None else float(value)

    with browser_page(playwright, tmp_path / "profile") as (page, recorded):
        page.goto((lake_root / PAGE_KEY).as_uri())
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=60_000)
        _act(page, lambda: page.select_option("#index-select", "IBOV"))
        drawn = page.evaluate("window.dashboard.data.rebalance_changes")
        assert sorted(
            (
                r["ticker"],
                r["company"],
                r["change"],
                r["current_weight"],
                r["preview_weight"],
                r["weight_change_pp"],
            )
            for r in drawn
            if r["index"] == "IBOV" and r["captured_on"] == str(day)
        ) == sorted((t, c, ch, number(cw), number(pw), number(pp)) for t, c, ch, cw, pw, pp, _ in stored)
        assert {r["ticker"]: r["weight_change_pp"] for r in drawn}.keys() >= {"PETR4", "VALE3"}
        title = page.inner_text("#rebalance-title")
        assert title == f"Next rebalance of IBOV: 2025-09-01, as the preview captured on {day} announces it"
        assert page.inner_text("#rebalance-entering").startswith(f"entering (1): {ADDED} (NEW CO, ")
        leaving = page.inner_text("#rebalance-leaving")
        assert leaving.startswith("leaving (2): ") and all(t in leaving for t in DROPPED)
        rows = page.locator("#rebalance-table tr").all_inner_texts()
        assert any(r.startswith("PETR4\t") and r.endswith("\t+0.100") for r in rows)
        assert any(r.startswith("VALE3\t") and r.endswith("\t-0.100") for r in rows)
        assert "No preview" not in page.inner_text("#rebalance")
    assert recorded.errors == [] and [m for m in recorded.console if m[0] in ("error", "warning")] == []
    assert set(recorded.requests) == {(lake_root / PAGE_KEY).as_uri()}


def test_after_a_rebalance_the_panel_shows_how_accurate_the_previews_were(
    playwright, b3_server, today, lake_root, tmp_path
):
    """Three previews before the 2025-09-01 rebalance and that date's day portfolio (test_announced's
    accuracy lake), gold, the catalog and the dashboard built: the panel's accuracy table is the
    catalog's announced_accuracy; no preview of a later rebalance is captured, and it says so."""
    gold = [k.path[0] for k in GOLD]
    resources = accuracy_lake(today, lake_root, tmp_path, b3_server, also=gold)
    assert dg.materialize(ALL_ASSETS, selection=["athena_tables", "dashboard"], resources=resources).success
    stored = (
        resources["catalog"]
        .query(
            f"""SELECT preview_date, tickers_matched, actual_components, missing_tickers, unexpected_tickers,
        quantities_equal, "exact" FROM announced_accuracy
        WHERE "index" = 'IBOV' AND "date" = DATE '{REBALANCE}' ORDER BY preview_date"""
        )
        .rows
    )
    assert [r[0] for r in stored] == PREVIEW_DAYS
    with browser_page(playwright, tmp_path / "profile") as (page, recorded):
        page.goto((lake_root / PAGE_KEY).as_uri())
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=60_000)
        _act(page, lambda: page.select_option("#index-select", "IBOV"))
        assert "No preview of the next rebalance has been captured for IBOV yet" in page.inner_text(
            "#rebalance-preview"
        )
        assert f"How accurate the previews of the {REBALANCE} rebalance were" in page.inner_text(
            "#rebalance-accuracy"
        )
        rows = page.locator("#accuracy-table tr").all_inner_texts()[1:]
        assert rows == [
            f"{day}\t{before}\t{matched} of {actual}\t{missing or '—'}\t{unexpected or '—'}\t{equal}\t0.000\t"
            + ("yes" if exact else "no")
            for (day, matched, actual, missing, unexpected, equal, exact), before in zip(stored, (3, 2, 1))
        ]
    assert recorded.errors == [] and [m for m in recorded.console if m[0] in ("error", "warning")] == []


def test_answers_without_rows_or_columns_shape_an_empty_dashboard():
    """A catalog may answer an empty result without naming its columns (Athena does): the page's
    tables are then empty, not an error."""
    from b3_platform.catalog.base import QueryResult
    from b3_platform.dashboard.data import shape

    empty = QueryResult([], [], [])
    data = shape(empty, empty, empty, empty, empty, empty, top_n=10, source="nowhere")
    assert (data.indices, data.dates(), data.summary.rows, data.weights.rows) == ([], [], [], [])
    assert data.summary.fields == ["end", "run"]
