"""The dashboard page's build holds its memory flat in the lake's age without changing the page.

- The page reads a local catalog under a DuckDB bound of its own (`dashboard.reading.READ_CONFIG`),
  which the query command does not share; the page's data is the same with and without it, and a
  query the bound cannot hold, or a catalog already open with other settings, is asked again
  without it (never a failed page).
- The overlap query joins only the components of the pairs' dates (not the whole history): what it
  answers is checked here against the rule computed in Python, on indices whose newest shared
  dates differ.
- A table's repeated dates and strings are one object each, the values and their types unchanged.

Peak memory itself is measured by `benchmarks/dashboard.py --page-of`, not here."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from b3_platform.catalog.base import QueryError, QueryResult
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader
from b3_platform.dashboard import queries, reading
from b3_platform.dashboard.data import _table, load
from b3_platform.dashboard.site import build_site
from b3_platform.lake.schemas import CATALOG_TABLES
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.conftest import duckdb_catalog
from b3_platform_tests.test_dashboard_history import DAILY, held_days, make_catalog

SETTINGS = "SELECT current_setting('memory_limit') AS memory_limit, current_setting('threads') AS threads"
#: A query that needs far more than 1 MB of DuckDB's memory (a hash aggregate of 3 million groups).
HUNGRY = "SELECT COUNT(*) AS n FROM (SELECT i, COUNT(*) AS c FROM range(3000000) AS t(i) GROUP BY i)"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory") / "lake"
    make_catalog(root, held_days())
    return root


def test_the_page_reads_a_local_catalog_under_its_own_bound_and_the_query_command_does_not(lake):
    catalog = duckdb_catalog(lake)
    (bounded,) = reading.asker(catalog)(SETTINGS).rows
    (default,) = catalog.query(SETTINGS).rows
    (command,) = DuckDBCatalogReader(catalog.location).query(SETTINGS).rows
    assert bounded[1] == int(reading.READ_CONFIG["threads"])
    assert bounded[0] == "61.0 MiB"  # 64 MB as DuckDB says it
    assert default == command and default[0] != bounded[0]


def test_the_bound_changes_nothing_the_page_holds(lake, monkeypatch):
    """The reference path (DuckDB's defaults) and the bounded one give the same data and page."""
    catalog = duckdb_catalog(lake)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    storage = LocalStorage(lake)
    bounded = load(catalog, daily_dates=DAILY).to_json()
    bounded_page = storage.read_bytes(build_site(catalog, storage, now=now).key)
    monkeypatch.setattr(reading, "READ_CONFIG", None)
    assert reading.asker(catalog) == catalog.query
    assert load(catalog, daily_dates=DAILY).to_json() == bounded
    assert storage.read_bytes(build_site(catalog, storage, now=now).key) == bounded_page
    assert bounded["weights"]["rows"] and bounded["summary"]["rows"]


def test_a_query_beyond_the_bound_is_asked_again_without_it(lake, monkeypatch, caplog):
    catalog = duckdb_catalog(lake)
    monkeypatch.setattr(reading, "READ_CONFIG", {"memory_limit": "1MB", "threads": "1"})
    with pytest.raises(QueryError, match="Out of Memory"):  # the premise: the bound alone fails
        DuckDBCatalogReader(catalog.location, config=reading.READ_CONFIG).query(HUNGRY)
    with caplog.at_level(logging.INFO, logger=reading.__name__):
        assert reading.asker(catalog)(HUNGRY).rows == [(3_000_000,)]
    assert "asks again without its DuckDB bound" in caplog.text


def test_a_catalog_this_process_holds_open_with_other_settings_is_asked_as_it_is(lake):
    catalog = duckdb_catalog(lake)
    with duckdb.connect(catalog.location, read_only=True):
        assert reading.asker(catalog)(SETTINGS).rows == catalog.query(SETTINGS).rows


def test_an_error_in_the_sql_is_not_asked_again(lake, monkeypatch):
    asked_again = []
    monkeypatch.setattr(DuckDBCatalogResource, "query", lambda self, sql, **_: asked_again.append(sql))
    with pytest.raises(QueryError, match="no_such_table"):
        reading.asker(duckdb_catalog(lake))("SELECT * FROM no_such_table")
    assert asked_again == []


# ------------------------------------------------------------------------------------ the overlap

D1, D2, D3 = dt.date(2025, 7, 1), dt.date(2025, 7, 2), dt.date(2025, 7, 3)
#: (date, index) -> {ticker: weight}. A and B share D1 and D2; C shares only D1 with them, and D3
#: with nobody: each pair is compared on its own newest shared date.
HOLDINGS = {
    (D1, "A"): {"T1": 50.0, "T2": 30.0, "T3": 20.0},
    (D1, "B"): {"T1": 60.0, "T4": 40.0},
    (D1, "C"): {"T2": 70.0, "T3": 20.0, "T5": 10.0},
    (D2, "A"): {"T1": 40.0, "T2": 35.0, "T6": 25.0},
    (D2, "B"): {"T2": 55.0, "T6": 45.0},
    (D3, "C"): {"T1": 100.0},
}


def expected_overlap() -> list[tuple]:
    """The rule in Python: for each ordered pair (a, b) of indices held on a common date, on the
    newest such date, a's members, how many are also b's, and a's weight in those."""
    indices = sorted({i for _, i in HOLDINGS})
    rows = []
    for a in indices:
        for b in indices:
            shared_days = [d for d, i in HOLDINGS if i == a and (d, b) in HOLDINGS]
            if not shared_days:
                continue
            day = max(shared_days)
            members_a, members_b = HOLDINGS[(day, a)], HOLDINGS[(day, b)]
            shared = [t for t in members_a if t in members_b]
            rows.append((day, a, b, len(members_a), len(shared), sum(members_a[t] for t in shared)))
    return rows


def test_the_overlap_compares_each_pair_on_its_newest_shared_date(tmp_path):
    root = tmp_path / "lake"
    catalog = duckdb_catalog(root)
    catalog.sync(LocalStorage(root), list(CATALOG_TABLES.values()))
    assets = [(d, i, t, w) for (d, i), members in HOLDINGS.items() for t, w in members.items()]
    with duckdb.connect(catalog.location) as conn:
        for table, columns in (
            ("silver_header", {"date": [d for d, _ in HOLDINGS], "index": [i for _, i in HOLDINGS]}),
            ("silver_assets", dict(zip(("date", "index", "ticker", "weight"), map(list, zip(*assets))))),
        ):
            conn.register("rows", pa.table(columns))
            names = ", ".join(f'"{c}"' for c in columns)
            conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM rows")
            conn.unregister("rows")
    answered = [
        (d, a, b, members, shared, float(weight))
        for d, a, b, members, shared, weight in catalog.query(queries.overlap()).rows
    ]
    assert answered == expected_overlap()
    assert ("A", "C") in {(a, b) for _, a, b, *_ in answered}  # compared on D1, not on A's newest D2
    assert next(r for r in answered if r[1:3] == ("A", "C"))[0] == D1


# ------------------------------------------------------------------------------ the shaped tables


def test_a_tables_repeated_dates_and_strings_are_one_object_with_the_same_values():
    day = dt.date(2025, 7, 1)
    result = QueryResult(
        ["date", "index", "weight", "flag", "count"],
        [],
        [(day, "IBOV", Decimal("1"), True, 1), (dt.date(2025, 7, 1), "IB" + "OV", Decimal("1.5"), False, 1)],
    )
    rows = _table(result).rows
    assert rows == [["2025-07-01", "IBOV", 1, True, 1], ["2025-07-01", "IBOV", 1.5, False, 1]]
    assert rows[0][0] is rows[1][0] and rows[0][1] is rows[1][1]
    # Equal values of other types are not taken for one another (True == 1 == Decimal("1")).
    assert [type(v) for v in rows[0]] == [str, str, int, bool, int]
