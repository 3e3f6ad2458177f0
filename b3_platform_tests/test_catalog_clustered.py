"""The local catalog's clustered tables (silver_assets, gold_changes): each closed year stored
sorted by (index, ticker, date), so a whole-history lookup of one ticker reads a row group or two
per year. What a query sees must not change, and a rebuilt date must still replace its rows
exactly, a removed or unpublished date stay out, whatever year it falls in.

The lake is test_catalog's (two real IBOV samples of 2025 through every layer); each test files
copies of those dates under dates of other years through the lake's own writer.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from b3_platform.catalog import duckdb_catalog as duckdb_catalog_module
from b3_platform.catalog.duckdb_catalog import CLUSTERED_BY, DuckDBCatalogResource
from b3_platform.lake.schemas import SILVER_ASSETS
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import delete_date, manifest_key, read_partition, write_date
from b3_platform_tests.conftest import duckdb_catalog
from b3_platform_tests.test_catalog import (  # noqa: F401  (fixtures: the built lake and its copies)
    DAYS,
    built,
    contents,
    lake_copy,
    small_lake,
    sync,
)
from b3_platform_tests.test_catalog_in_step import GOLD, SILVER, _fewer_and_reweighted

UNITS = (SILVER, GOLD)
#: Dates of 2023 and 2024 the tests file copies of DAYS under (DAYS are in 2025).
Y2023 = (dt.date(2023, 3, 1), dt.date(2023, 3, 2))
Y2024 = (dt.date(2024, 5, 2), dt.date(2024, 5, 3), dt.date(2024, 5, 6))
WEIGHT_HISTORY = (Path(__file__).resolve().parent.parent / "queries" / "weight_history.sql").read_text()


def file_as(root: Path, source: dt.date, day: dt.date, change=None) -> None:
    """`source`'s silver and gold filed again under `day` (through the lake's writer, published);
    `change` alters silver_assets' rows."""
    storage = LocalStorage(root)
    for unit in UNITS:
        tables = {name: read_partition(storage, t, source) for name, t in unit.items()}
        if change is not None and SILVER_ASSETS.name in tables:
            tables[SILVER_ASSETS.name] = change(tables[SILVER_ASSETS.name])
        write_date(storage, unit, day, {n: t for n, t in tables.items() if t is not None})


def stored(catalog: DuckDBCatalogResource, name: str) -> list[tuple]:
    """(date, index, ticker) of a table's rows in the order DuckDB stores them."""
    return catalog.query(f'SELECT "date", "index", ticker FROM "{name}" ORDER BY rowid').rows


def clustered_years(rows: list[tuple]) -> set[int]:
    """The years whose rows are stored together, sorted by (index, ticker, date)."""
    years = set()
    for year in {r[0].year for r in rows}:
        positions = [i for i, r in enumerate(rows) if r[0].year == year]
        together = positions == list(range(positions[0], positions[-1] + 1))
        mine = [rows[i] for i in positions]
        if together and mine == sorted(mine, key=lambda r: (r[1], r[2], r[0])):
            years.add(year)
    return years


def plain_copy(root: Path, tmp_path: Path, monkeypatch) -> dict[str, list[tuple]]:
    """What a catalog of the same lake without clustering holds (every table, sorted), and its
    weight_history answer under "weight_history"."""
    plain = tmp_path / "plain"
    shutil.copytree(root, plain, ignore=shutil.ignore_patterns("warehouse.duckdb*"))
    with monkeypatch.context() as mp:
        mp.setattr(duckdb_catalog_module, "CLUSTERED_BY", {})
        catalog = duckdb_catalog(plain)
        sync(plain, catalog)
        return {**contents(catalog), "weight_history": catalog.query(WEIGHT_HISTORY).rows}


def test_closed_years_are_stored_by_ticker_and_queries_see_the_same_rows(lake_copy, tmp_path, monkeypatch):  # noqa: F811 (the imported fixture)
    for source, day in zip(DAYS * 3, (*Y2023, *Y2024)):
        file_as(lake_copy, source, day)
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)

    for name in CLUSTERED_BY:
        assert clustered_years(stored(catalog, name)) == {2023, 2024, 2025}, name
    # A year holds two dates of the same tickers: sorted by ticker, a year's rows are not in date
    # order (in date order they would be, so this layout is really there).
    assert [d for d, _, _ in stored(catalog, SILVER_ASSETS.name)] != sorted(
        d for d, _, _ in stored(catalog, SILVER_ASSETS.name)
    )
    expected = plain_copy(lake_copy, tmp_path, monkeypatch)
    assert {**contents(catalog), "weight_history": catalog.query(WEIGHT_HISTORY).rows} == expected
    assert len(expected["weight_history"]) == 7  # PETR4 on every date


def test_the_newest_year_is_appended_to_until_a_later_year_arrives(lake_copy, tmp_path, monkeypatch):  # noqa: F811 (the imported fixture)
    """The daily run adds one date of the newest year at a time: appended, not the whole year
    reloaded each time; the first sync after a later year's date reloads that year once, sorted."""
    for source, day in zip(DAYS, Y2024[:2]):
        file_as(lake_copy, source, day)
    for day in DAYS:  # 2025 not there yet: 2024 is the newest year
        for unit in UNITS:
            delete_date(LocalStorage(lake_copy), unit, day)
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    assert clustered_years(stored(catalog, SILVER_ASSETS.name)) == {2024}

    file_as(lake_copy, Y2024[0], Y2024[2])  # a daily run's date
    sync(lake_copy, catalog)
    rows = stored(catalog, SILVER_ASSETS.name)
    appended = [r for r in rows if r[0] == Y2024[2]]
    assert rows[-len(appended) :] == appended  # after the rest, not sorted into it
    assert clustered_years(rows) == set()
    assert catalog.query("SELECT * FROM _sync.unclustered ORDER BY ALL").rows == [
        (name, 2024) for name in sorted(CLUSTERED_BY)
    ]

    file_as(lake_copy, Y2024[1], DAYS[1])  # 2025's first date: 2024 is closed
    sync(lake_copy, catalog)
    for name in CLUSTERED_BY:
        assert clustered_years(stored(catalog, name)) == {2024, 2025}, name
    assert catalog.query("SELECT * FROM _sync.unclustered").rows == []
    assert contents(catalog) == {
        k: v for k, v in plain_copy(lake_copy, tmp_path, monkeypatch).items() if k != "weight_history"
    }


def test_a_rebuilt_date_of_a_closed_year_replaces_its_rows_exactly(lake_copy, tmp_path, monkeypatch):  # noqa: F811 (the imported fixture)
    for source, day in zip(DAYS * 2, Y2024):
        file_as(lake_copy, source, day)
    # Y2024[2] is being rewritten (its manifest gone, a new file in place): not published.
    storage = LocalStorage(lake_copy)
    storage.delete(manifest_key("silver", Y2024[2]))
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    history = catalog.query(WEIGHT_HISTORY).rows

    file_as(lake_copy, DAYS[1], Y2024[1], _fewer_and_reweighted)  # rebuilt: 50 rows, weights doubled
    sync(lake_copy, catalog)

    new = read_partition(storage, SILVER_ASSETS, Y2024[1])
    columns = ", ".join(f'"{f.name}"' for f in SILVER_ASSETS.schema)
    assert catalog.query(
        f"SELECT {columns} FROM silver_assets WHERE \"date\" = DATE '{Y2024[1]}' ORDER BY row_number"
    ).rows == [tuple(r.values()) for r in new.to_pylist()]
    assert new.num_rows == 50
    dates = {d for d, _, _ in stored(catalog, SILVER_ASSETS.name)}
    assert Y2024[2] not in dates and {Y2024[0], Y2024[1], *DAYS} <= dates
    assert clustered_years(stored(catalog, SILVER_ASSETS.name)) == {2024, 2025}
    changed = catalog.query(WEIGHT_HISTORY).rows
    assert changed != history  # PETR4's weight on the rebuilt date doubled
    assert {**contents(catalog), "weight_history": changed} == plain_copy(lake_copy, tmp_path, monkeypatch)

    # Removed: its rows go, the year stays sorted.
    delete_date(storage, SILVER, Y2024[1])
    sync(lake_copy, catalog)
    assert Y2024[1] not in {d for d, _, _ in stored(catalog, SILVER_ASSETS.name)}
    assert clustered_years(stored(catalog, SILVER_ASSETS.name)) == {2024, 2025}


def test_a_catalog_stored_in_date_order_is_relaid_once(lake_copy, monkeypatch):  # noqa: F811 (the imported fixture)
    """A catalog built before clustering (every table in date order, nothing changed in the lake
    since) is reloaded year by year on its next sync, then left alone."""
    for source, day in zip(DAYS * 2, Y2024):
        file_as(lake_copy, source, day)
    catalog = duckdb_catalog(lake_copy)
    with monkeypatch.context() as mp:
        mp.setattr(duckdb_catalog_module, "CLUSTERED_BY", {})
        sync(lake_copy, catalog)
    before = contents(catalog)
    rows = stored(catalog, SILVER_ASSETS.name)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and clustered_years(rows) == set()

    sync(lake_copy, catalog)
    for name in CLUSTERED_BY:
        assert clustered_years(stored(catalog, name)) == {2024, 2025}, name
    assert contents(catalog) == before
    identities = catalog.query("SELECT * FROM _sync.files ORDER BY ALL").rows
    # Nothing changed: nothing reloaded (a reload keeps the identities but moves the year's rows
    # to the table's end, after 2025's).
    layout = stored(catalog, SILVER_ASSETS.name)
    sync(lake_copy, catalog)
    assert catalog.query("SELECT * FROM _sync.files ORDER BY ALL").rows == identities
    assert layout == stored(catalog, SILVER_ASSETS.name)
