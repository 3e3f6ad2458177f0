"""The local catalog kept in step with the lake: a rebuilt date replaces its old rows exactly, an
unpublished date is not loaded (and a loaded one whose manifest went away is removed), a removed
date's rows go, the coverage table's year is replaced when raw changes, and a sync re-reads only what changed (a date whose file kept its identity is not
read again, which a file garbled in place but keeping its size and mtime shows).

The lake is test_catalog's (two real IBOV samples through every layer); each test works on a copy.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from b3_platform.catalog import duckdb_catalog as duckdb_catalog_module
from b3_platform.catalog.base import CatalogError
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.coverage import write_coverage
from b3_platform.lake.schemas import COVERAGE, GOLD_TABLES, SILVER_ASSETS, SILVER_HEADER, TABLES
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import delete_date, manifest_key, read_partition, to_parquet_bytes, write_date
from b3_platform_tests.conftest import duckdb_catalog
from b3_platform_tests.test_catalog import (  # noqa: F401  (fixtures: the built lake and its copies)
    DAYS,
    NEW_DAY,
    built,
    contents,
    import_days,
    lake_copy,
    small_lake,
    state,
    sync,
)

SILVER = {t.name: t for t in (SILVER_HEADER, SILVER_ASSETS)}
GOLD = {t.name: t for t in GOLD_TABLES}


def silver_assets_of(catalog: DuckDBCatalogResource, day) -> list[tuple]:
    columns = ", ".join(f'"{f.name}"' for f in SILVER_ASSETS.schema)
    return catalog.query(
        f'SELECT {columns}, "date" FROM silver_assets WHERE "date" = DATE \'{day}\' ORDER BY row_number'
    ).rows


def rebuild_silver(root: Path, day, change) -> pa.Table:
    """Write `day` of silver again through the lake's own writer (manifest deleted, both files
    replaced, manifest written), its assets changed by `change`; returns the new assets."""
    storage = LocalStorage(root)
    header = read_partition(storage, SILVER_HEADER, day)
    assets = change(read_partition(storage, SILVER_ASSETS, day))
    write_date(storage, SILVER, day, {SILVER_HEADER.name: header, SILVER_ASSETS.name: assets})
    return assets


def _fewer_and_reweighted(table: pa.Table) -> pa.Table:
    kept = table.slice(0, 50)
    doubled = pc.multiply(kept.column("weight"), pa.scalar(2, pa.decimal128(1, 0))).cast(
        SILVER_ASSETS.schema.field("weight").type
    )
    return kept.set_column(
        kept.schema.get_field_index("weight"), SILVER_ASSETS.schema.field("weight"), doubled
    )


def test_a_rebuilt_date_replaces_its_old_rows_exactly(lake_copy):  # noqa: F811 (the imported fixture)
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    before = silver_assets_of(catalog, DAYS[0])
    assert len(silver_assets_of(catalog, DAYS[1])) == 84

    new = rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)
    assert silver_assets_of(catalog, DAYS[1]) != [(*r.values(), DAYS[1]) for r in new.to_pylist()]
    sync(lake_copy, catalog)

    # Exactly the new rows: 50 of them, the doubled weights, none of the 84 old ones left over.
    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in new.to_pylist()]
    assert len(silver_assets_of(catalog, DAYS[1])) == 50
    assert silver_assets_of(catalog, DAYS[0]) == before  # the other date untouched
    assert catalog.query("SELECT count(*) FROM silver_assets").rows == [(len(before) + 50,)]


def counted(catalog: DuckDBCatalogResource, name: str) -> dict:
    """{date: rows} as the table holds them, every date in the sync's state (0 for an empty file)."""
    loaded = dict(catalog.query(f'SELECT "date", count(*) FROM "{name}" GROUP BY ALL').rows)
    dates = catalog.query(f"SELECT date FROM _sync.files WHERE table_name = '{name}'").rows
    return {d: loaded.get(d, 0) for (d,) in dates}


def recorded(catalog: DuckDBCatalogResource, name: str) -> dict:
    """{date: rows} as the sync's state recorded them."""
    return dict(catalog.query(f"SELECT date, rows FROM _sync.files WHERE table_name = '{name}'").rows)


def test_the_registered_counts_follow_rebuilt_emptied_and_withdrawn_dates_and_an_older_catalog(lake_copy):  # noqa: F811 (the imported fixture)
    """A partitioned table's rows, dates, first and last date come from the per-date counts the sync
    records as it loads each date (not from counting the whole table on every sync): they must equal
    the table's rows after a rebuilt date, a date rebuilt empty, a withdrawn date, and on a catalog
    stored before the state kept counts (counted once, on its next sync)."""
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)

    def registered(name: str):
        return next(t for t in sync(lake_copy, catalog) if t.name == name)

    first = registered(SILVER_ASSETS.name)
    assert (first.rows, first.dates, first.first_date, first.last_date) == (168, 2, *DAYS)
    for name in (*SILVER, *GOLD):
        assert recorded(catalog, name) == counted(catalog, name), name

    rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)  # 84 rows -> 50
    assert (registered(SILVER_ASSETS.name).rows, recorded(catalog, SILVER_ASSETS.name)[DAYS[1]]) == (134, 50)

    rebuild_silver(lake_copy, DAYS[0], lambda t: t.slice(0, 0))  # a date whose file holds no row
    now = registered(SILVER_ASSETS.name)
    assert (now.rows, now.dates, now.first_date, now.last_date) == (50, 1, DAYS[1], DAYS[1])
    assert recorded(catalog, SILVER_ASSETS.name) == {DAYS[0]: 0, DAYS[1]: 50}

    storage.delete(manifest_key("silver", DAYS[1]))  # withdrawn: unpublished, its rows removed
    now = registered(SILVER_ASSETS.name)
    assert (now.rows, now.dates, now.first_date, now.last_date) == (0, 0, None, None)

    # A catalog stored before the state kept counts: no `rows` column; the next sync counts every date.
    write_date(storage, SILVER, DAYS[1], {t: read_partition(storage, SILVER[t], DAYS[1]) for t in SILVER})
    expected = sync(lake_copy, catalog)
    with duckdb.connect(catalog.duckdb.database) as conn:
        conn.execute("ALTER TABLE _sync.files DROP COLUMN rows")
    assert sync(lake_copy, catalog) == expected
    for name in (*SILVER, *GOLD):
        assert recorded(catalog, name) == counted(catalog, name), name


def test_sync_reads_only_the_dates_whose_files_changed(lake_copy):  # noqa: F811 (the imported fixture)
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    before = silver_assets_of(catalog, DAYS[0])

    # DAYS[0]'s file garbled in place, keeping its size, inode and mtime: a sync that read it again
    # would fail (not Parquet) or change its rows.
    path = lake_copy / SILVER_ASSETS.location / f"date={DAYS[0]}" / "data.parquet"
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new = rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)

    sync(lake_copy, catalog)
    assert silver_assets_of(catalog, DAYS[0]) == before
    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in new.to_pylist()]


def test_an_unpublished_date_is_not_loaded_and_a_withdrawn_one_is_removed(lake_copy):  # noqa: F811 (the imported fixture)
    storage = LocalStorage(lake_copy)
    # A rebuild killed after deleting the manifest and replacing one file: DAYS[1] unpublished.
    storage.delete(manifest_key("silver", DAYS[1]))
    assets = _fewer_and_reweighted(read_partition(storage, SILVER_ASSETS, DAYS[1]))
    storage.write_bytes(f"{SILVER_ASSETS.location}date={DAYS[1]}/data.parquet", to_parquet_bytes(assets))
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    dates = {t: catalog.query(f'SELECT DISTINCT "date" FROM {t} ORDER BY 1').rows for t in SILVER}
    assert dates == {t: [(DAYS[0],)] for t in SILVER}
    assert [(n, d) for n, d, _ in state(catalog) if n in SILVER] == [(n, DAYS[0]) for n in sorted(SILVER)]

    # Published again (the rebuild finishing): loaded. Then withdrawn: removed, rows and state.
    new = rebuild_silver(lake_copy, DAYS[1], lambda t: t)
    sync(lake_copy, catalog)
    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in new.to_pylist()]
    storage.delete(manifest_key("silver", DAYS[1]))
    sync(lake_copy, catalog)
    assert catalog.query(f"SELECT count(*) FROM silver_header WHERE \"date\" = DATE '{DAYS[1]}'").rows == [
        (0,)
    ]
    assert DAYS[1] not in {d for n, d, _ in state(catalog) if n in SILVER}


def test_a_deleted_date_leaves_the_catalog_and_the_rest_is_unchanged(lake_copy):  # noqa: F811 (the imported fixture)
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    before = contents(catalog)

    delete_date(LocalStorage(lake_copy), GOLD, DAYS[1])
    sync(lake_copy, catalog)
    after = contents(catalog)
    for name in TABLES:
        if name in GOLD:
            assert after[name] == [r for r in before[name] if r[-1] != DAYS[1]], name
        else:
            assert after[name] == before[name], name


def test_the_coverage_tables_year_is_replaced_when_raw_changes(lake_copy):  # noqa: F811 (the imported fixture)
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)
    today = NEW_DAY + dt.timedelta(days=4)  # a Monday: 07-03, 07-04 and 07-07 are trading days after DAYS

    def refresh() -> list[tuple]:
        write_coverage(storage, ["IBOV"], today)
        catalog.sync(storage, [COVERAGE])
        return catalog.query('SELECT "index", "date", status, expected FROM coverage ORDER BY ALL').rows

    def captured(*days: dt.date) -> list[tuple]:
        span = [DAYS[0], DAYS[1], NEW_DAY, dt.date(2025, 7, 4), dt.date(2025, 7, 7)]
        return [("IBOV", d, "captured" if d in days else "missing", True) for d in span]

    assert refresh() == captured(*DAYS)
    identity = state(catalog)
    assert refresh() == captured(*DAYS) and state(catalog) == identity  # unchanged: not rewritten or reloaded

    import_days(lake_copy, NEW_DAY)
    assert refresh() == captured(*DAYS, NEW_DAY)  # the old rows replaced, none left over
    assert [n for n, _, _ in state(catalog)] == ["coverage"] and state(catalog) != identity


def test_a_subset_rebuild_reloads_only_the_table_it_wrote(lake_copy):  # noqa: F811 (the imported fixture)
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    header_state = [r for r in state(catalog) if r[0] == SILVER_HEADER.name]
    header_rows = contents(catalog)[SILVER_HEADER.name]

    # silver_assets alone (a subset of silver): its file replaced, the manifest carrying the header over.
    assets = _fewer_and_reweighted(read_partition(storage, SILVER_ASSETS, DAYS[1]))
    write_date(storage, {SILVER_ASSETS.name: SILVER_ASSETS}, DAYS[1], {SILVER_ASSETS.name: assets})
    sync(lake_copy, catalog)

    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in assets.to_pylist()]
    assert [r for r in state(catalog) if r[0] == SILVER_HEADER.name] == header_state  # not reloaded
    assert contents(catalog)[SILVER_HEADER.name] == header_rows


def test_a_load_in_batches_holds_the_same_rows_in_date_order(lake_copy, tmp_path, monkeypatch):  # noqa: F811 (the imported fixture)
    """The first load of a long history goes in date-ordered batches (LOAD_BATCH_DATES per INSERT,
    so the rows of the whole history are never in memory at once): one date per batch loads the
    same rows as one INSERT of every date, stored in date order (a clustered table: a year per
    batch, test_catalog_clustered)."""
    whole = tmp_path / "whole"
    shutil.copytree(lake_copy, whole)
    sync(whole)
    expected = contents(duckdb_catalog(whole))

    monkeypatch.setattr(duckdb_catalog_module, "LOAD_BATCH_DATES", 1)
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    assert contents(catalog) == expected
    # Stored in date order both ways: one date per INSERT, and every date in one INSERT (no ORDER
    # BY: the files' order, read in one thread).
    for loaded in (catalog, duckdb_catalog(whole)):
        for name in (SILVER_ASSETS.name, *GOLD):
            if name in duckdb_catalog_module.CLUSTERED_BY:
                continue
            stored = [d for (d,) in loaded.query(f'SELECT "date" FROM "{name}" ORDER BY rowid').rows]
            assert stored == sorted(stored) and set(stored) <= set(DAYS), name
    assert {d for (d,) in catalog.query(f'SELECT DISTINCT "date" FROM {SILVER_ASSETS.name}').rows} == set(
        DAYS
    )


def test_the_sync_runs_under_its_memory_limit_and_a_load_over_it_keeps_the_previous_tables(
    lake_copy,  # noqa: F811 (the imported fixture)
    monkeypatch,
):
    """A sync sets DuckDB's memory_limit (SYNC_MEMORY_LIMIT), so a first load of years of history
    stays within it instead of holding its whole transaction in memory. A load that cannot fit
    fails whole, says which limit it ran under, and leaves the catalog as it was; a limit in the
    resource's connection_config is the one used."""
    from dagster_duckdb import DuckDBResource

    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)  # under the default limit
    before = state(catalog), contents(catalog)
    rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)

    monkeypatch.setattr(duckdb_catalog_module, "SYNC_MEMORY_LIMIT", "1MB")
    with pytest.raises(CatalogError) as caught:
        sync(lake_copy, catalog)
    message = str(caught.value)
    assert "Out of Memory Error" in message
    assert "the sync runs under DuckDB's memory_limit 1MB" in message
    assert message.endswith("its tables are as they were before this sync")
    assert (state(catalog), contents(catalog)) == before

    roomy = DuckDBCatalogResource(
        duckdb=DuckDBResource(database=catalog.duckdb.database, connection_config={"memory_limit": "1GB"})
    )
    sync(lake_copy, roomy)
    assert len(silver_assets_of(roomy, DAYS[1])) == 50  # the rebuilt date, loaded under the resource's limit


def test_a_sync_in_more_threads_from_the_resources_config_loads_the_same_rows_in_date_order(
    lake_copy,  # noqa: F811 (the imported fixture)
    tmp_path,
):
    """The sync runs in one DuckDB thread (LOAD_SETTINGS) unless the resource's connection_config
    says otherwise; with two, the load (no ORDER BY date) still keeps the files' date order and
    the same rows."""
    from dagster_duckdb import DuckDBResource

    whole = tmp_path / "one-thread"
    shutil.copytree(lake_copy, whole)
    one = duckdb_catalog(whole)
    sync(whole, one)
    two = DuckDBCatalogResource(
        duckdb=DuckDBResource(database=str(tmp_path / "two.duckdb"), connection_config={"threads": 2})
    )
    sync(lake_copy, two)
    assert contents(two) == contents(one)
    for name in (SILVER_ASSETS.name, *GOLD):
        if name in duckdb_catalog_module.CLUSTERED_BY:
            continue
        stored = [d for (d,) in two.query(f'SELECT "date" FROM "{name}" ORDER BY rowid').rows]
        assert stored == sorted(stored), name
