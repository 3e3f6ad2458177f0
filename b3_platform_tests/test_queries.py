"""The example queries in queries/*.sql: each runs on the catalog of the demo lake (every real sample)
and returns what the samples hold, computed again here from the silver Parquet files with pyarrow
and the raw sample itself; and each is one Trino SELECT, so the same file runs on Athena.

A new .sql file fails `test_query_returns_what_the_samples_hold` until EXPECTATIONS checks it."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import exchange_calendars as xc
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from b3_platform.catalog.base import QueryResult
from b3_platform.cli import main
from b3_platform.lake.schemas import SILVER_ASSETS, TABLES
from b3_platform_tests.conftest import ENV_VARS, REPO, duckdb_catalog

QUERIES = REPO / "queries"
QUERY_FILES = sorted(QUERIES.glob("*.sql"))
SEGMENT2_SAMPLE = REPO / "demo_data" / "GetPortfolioDay" / "IBOV" / "2022-12-08_segment2_pt-br_vcr.json"
SEGMENT2_DAY = dt.date(2022, 12, 8)


# ------------------------------------------------------------------------------------ the demo lake


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory) -> Path:
    """`python -m b3_platform --data-dir DIR demo`, once for the module, on a temporary instance."""
    root = tmp_path_factory.mktemp("demo") / "lake"
    printed = io.StringIO()
    # The conftest's env isolation is per test; this runs before it, so isolate here.
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("B3_PLATFORM_DATA_DIR", str(root))
        with contextlib.redirect_stdout(printed):
            code = main(["--data-dir", str(root), "demo"])
    assert code == 0, printed.getvalue()
    assert "temporary instance" in printed.getvalue()
    return root


@dataclass
class Lake:
    """The demo lake's silver_assets read straight from the Parquet files (no DuckDB involved)."""

    root: Path

    @cached_property
    def assets(self) -> dict[dt.date, list[dict]]:
        by_date = {}
        for path in sorted((self.root / SILVER_ASSETS.location).glob("date=*/data.parquet")):
            by_date[dt.date.fromisoformat(path.parent.name.removeprefix("date="))] = pq.read_table(
                path
            ).to_pylist()
        return by_date

    @cached_property
    def ibov(self) -> dict[dt.date, dict[str, dict]]:
        """{date: {ticker: row}} of IBOV, for the dates that hold it."""
        days = {}
        for day, rows in sorted(self.assets.items()):
            components = {r["ticker"]: r for r in rows if r["index"] == "IBOV"}
            if components:
                days[day] = components
        return days


@pytest.fixture(scope="module")
def lake(demo_lake) -> Lake:
    return Lake(demo_lake)


@pytest.fixture(scope="module")
def results(demo_lake) -> dict[str, QueryResult]:
    catalog = duckdb_catalog(demo_lake)
    return {path.stem: catalog.query(path.read_text(encoding="utf-8")) for path in QUERY_FILES}


@pytest.fixture(scope="module")
def bvmf():
    return xc.get_calendar("BVMF", start="2020-01-02", end="2025-12-31")


def previous_session(calendar, day: dt.date) -> dt.date:
    return calendar.previous_session(pd.Timestamp(day)).date()


# --------------------------------------------------------------------- what each query must return


def check_entries_exits(result: QueryResult, lake: Lake, calendar) -> None:
    assert result.columns == ["date", "index", "membership", "ticker", "company", "weight"]
    # Membership against the previous B3 session, only where that session is in the lake.
    expected = []
    for day, components in lake.ibov.items():
        before = lake.ibov.get(previous_session(calendar, day))
        if not dt.date(2025, 6, 30) <= day <= dt.date(2025, 7, 11) or before is None:
            continue
        for ticker in components.keys() - before.keys():
            expected.append((day, "IBOV", "entered", ticker, components[ticker]["company"]))
            expected[-1] += (components[ticker]["weight"],)
        for ticker in before.keys() - components.keys():
            expected.append((day, "IBOV", "exited", ticker, before[ticker]["company"]))
            expected[-1] += (before[ticker]["weight"],)
    expected.sort(key=lambda r: (r[0], r[2], r[3]))
    assert result.rows == expected
    # …which is the Natura swap of 2025-07-02 (NTCO3's weight is its 2025-07-01 one).
    assert result.rows == [
        (dt.date(2025, 7, 2), "IBOV", "entered", "NATU3", "NATURA", Decimal("0.424")),
        (dt.date(2025, 7, 2), "IBOV", "exited", "NTCO3", "GRUPO NATURA", Decimal("0.436")),
    ]


def check_sector_weights(result: QueryResult, lake: Lake, calendar) -> None:
    with_sectors = [d for d, c in lake.ibov.items() if any(r["sector"] for r in c.values())]
    assert with_sectors == [SEGMENT2_DAY], "the query's date should be the only segment-2 sample"
    totals: dict[str, list] = {}
    for row in lake.ibov[SEGMENT2_DAY].values():
        total = totals.setdefault(row["sector"], [Decimal(0), 0])
        total[0] += row["weight"]
        total[1] += 1
    expected = sorted(((s, w, n, None) for s, (w, n) in totals.items()), key=lambda r: (-r[1], r[0]))
    assert result.columns == ["sector", "weight", "components", "note"]
    assert result.rows == expected
    assert abs(sum(r[1] for r in result.rows) - 100) <= Decimal("0.05")
    # B3 states each sector's total itself (partAcum): the raw sample agrees with the sums.
    raw = json.loads(SEGMENT2_SAMPLE.read_text(encoding="utf-8"))["results"]
    stated = {r["segment"]: Decimal(r["partAcum"].replace(".", "").replace(",", ".")) for r in raw}
    assert {s: w for s, w, _, _ in result.rows} == stated
    # The heaviest sector (the vcr cassette turned every non-ASCII character into U+FFFD).
    assert result.rows[0][:3] == ("Mats B\ufffdsicos / Minera\ufffd\ufffdo", Decimal("19.625"), 3)
    assert len(result.rows) == len(stated) == 29


def check_weight_history(result: QueryResult, lake: Lake, calendar) -> None:
    assert result.columns == ["date", "ticker", "weight", "weight_change_pp", "theoretical_quantity"]
    expected = []
    for day, components in lake.ibov.items():
        petr4 = components.get("PETR4")
        if petr4 is None:
            continue
        before = lake.ibov.get(previous_session(calendar, day))
        change = None
        if before is not None:  # compared only with the previous session, and only if the lake has it
            change = petr4["weight"] - before.get("PETR4", {"weight": Decimal(0)})["weight"]
        expected.append((day, "PETR4", petr4["weight"], change, petr4["theoretical_quantity"]))
    assert result.rows == expected
    assert len(result.rows) == len(lake.ibov) == 14  # every IBOV sample holds PETR4
    # 2025-07-10 follows a day with no sample (07-09): not compared, not compared with 07-08.
    by_date = {r[0]: r for r in result.rows}
    assert by_date[dt.date(2025, 7, 10)][3] is None
    assert by_date[dt.date(2025, 7, 1)][3] == Decimal("6.456") - Decimal("6.509")


def check_top10_concentration(result: QueryResult, lake: Lake, calendar) -> None:
    assert result.columns == [
        "date",
        "components",
        "top5_weight",
        "top10_weight",
        "hhi",
        "equivalent_components",
    ]
    assert [r[0] for r in result.rows] == list(lake.ibov)
    for row in result.rows:
        weights = sorted((c["weight"] for c in lake.ibov[row[0]].values()), reverse=True)
        hhi = sum(w * w for w in weights)
        assert row[1:5] == (len(weights), sum(weights[:5]), sum(weights[:10]), hhi), row
        assert row[5] == pytest.approx(round(10000 / float(hhi), 1), abs=0.051), row
        assert 10 <= row[5] <= len(weights)


def check_index_memberships(result: QueryResult, lake: Lake, calendar) -> None:
    """Against the real GetStockIndex sample the demo files (its listing of 2025-04-07)."""
    listing = json.loads((REPO / "demo_data" / "GetStockIndex" / "2025-04-07_vcr.json").read_bytes())
    [petr4] = [r for r in listing["results"] if r["code"] == "PETR4"]
    assert result.columns == [
        "date",
        "ticker",
        "company",
        "spotlight",
        "index",
        "period_year",
        "period_start_month",
        "period_end_month",
    ]
    assert result.rows == [
        (dt.date(2025, 4, 7), "PETR4", "PETROBRAS", "PN   N2", index, 2025, 1, 4)
        for index in sorted(petr4["indexes"].split(","))
    ]
    assert len(result.rows) == 15 and ("IBOV" in {r[4] for r in result.rows})


EXPECTATIONS: dict[str, Callable[[QueryResult, Lake, object], None]] = {
    "index_memberships": check_index_memberships,
    "entries_exits": check_entries_exits,
    "sector_weights": check_sector_weights,
    "weight_history": check_weight_history,
    "top10_concentration": check_top10_concentration,
}


#: Queries over tables the demo lake does not fill (B3's announced portfolios are captured live and
#: cannot be imported): on the demo lake they must run and return nothing; their results are
#: asserted on a lake captured for them, by the named test.
ASSERTED_ELSEWHERE = {
    "next_rebalance": "test_announced.py::test_next_rebalance_query_over_captured_announcements",
}


# -------------------------------------------------------------------------------------------- tests


def test_there_are_queries_and_every_expectation_has_its_file():
    assert QUERY_FILES, f"no .sql files in {QUERIES}"
    assert set(EXPECTATIONS) <= {p.stem for p in QUERY_FILES}, "an expectation has lost its file"


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.name)
def test_query_returns_what_the_samples_hold(path, results, lake, bvmf):
    if path.stem in ASSERTED_ELSEWHERE:
        module, test = ASSERTED_ELSEWHERE[path.stem].split("::")
        assert f"def {test}(" in (Path(__file__).parent / module).read_text(encoding="utf-8")
        assert results[path.stem].rows == [], "the demo lake holds no announced portfolios"
        return
    check = EXPECTATIONS.get(path.stem)
    assert check is not None, (
        f"queries/{path.name} has no expectations: add a check of its result on the demo lake to "
        "EXPECTATIONS in b3_platform_tests/test_queries.py"
    )
    result = results[path.stem]
    assert result.rows, f"queries/{path.name} returns nothing on the demo lake"
    check(result, lake, bvmf)


def _parse_trino(path: Path) -> list[exp.Expression]:
    return sqlglot.parse(path.read_text(encoding="utf-8"), read="trino", error_level=sqlglot.ErrorLevel.RAISE)


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.name)
def test_query_is_one_trino_select_over_lake_tables(path):
    statements = _parse_trino(path)
    assert len(statements) == 1, f"{path.name}: {len(statements)} statements"
    (statement,) = statements
    assert isinstance(statement, exp.Select), f"{path.name}: a {type(statement).__name__}, not a SELECT"
    for node in (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Merge):
        assert statement.find(node) is None, f"{path.name} contains {node.__name__}"
    aliases = {cte.alias for cte in statement.find_all(exp.CTE)}
    tables = {t.name for t in statement.find_all(exp.Table)} - aliases
    assert tables and tables <= set(TABLES), f"{path.name} reads {tables - set(TABLES)}, not lake tables"
    transpiled = sqlglot.transpile(
        path.read_text(encoding="utf-8"),
        read="trino",
        write="trino",
        error_level=sqlglot.ErrorLevel.RAISE,
        unsupported_level=sqlglot.ErrorLevel.RAISE,
    )
    assert len(transpiled) == 1 and transpiled[0].strip()


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.name)
def test_query_means_the_same_when_transpiled_from_trino_to_duckdb(path, demo_lake, results):
    """The file is run as written on DuckDB; as Trino SQL read by sqlglot it must mean the same."""
    (duckdb_sql,) = sqlglot.transpile(
        path.read_text(encoding="utf-8"),
        read="trino",
        write="duckdb",
        error_level=sqlglot.ErrorLevel.RAISE,
        unsupported_level=sqlglot.ErrorLevel.RAISE,
    )
    transpiled = duckdb_catalog(demo_lake).query(duckdb_sql)
    assert transpiled == results[path.stem]
