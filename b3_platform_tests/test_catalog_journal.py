"""The lake's change journal (lake.changes) and the catalog sync that reads it (a one-date run's
refresh): it follows every change the lake's writers make, as a sync that lists the lake whole
would, without listing any table; it is not trusted where it cannot vouch (no cursor, another lake
or journal, a cursor older than what it keeps); a change under way or abandoned mid-write is seen;
any number of catalogs see every change; and the catalog asset reads it in a run for one date only.

The lake is test_catalog's (two real IBOV samples through every layer); each test works on a copy.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.catalog import duckdb_catalog as duckdb_catalog_module
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.lake import changes
from b3_platform.lake.paths import CHANGES_ROOT
from b3_platform.lake.schemas import (
    BRONZE_PORTFOLIO,
    GOLD_CHANGES,
    GOLD_TABLES,
    SILVER_ASSETS,
    SILVER_HEADER,
    TABLES,
)
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import (
    delete_date,
    manifest_bytes,
    manifest_key,
    read_partition,
    to_parquet_bytes,
    write_date,
)
from b3_platform_tests.conftest import duckdb_catalog
from b3_platform_tests.test_catalog import (  # noqa: F401  (fixtures: the built lake and its copies)
    DAYS,
    built,
    contents,
    lake_copy,
    platform_resources,
    rewrite_partition,
    run_catalog_asset,
    small_lake,
    state,
    sync,
)
from b3_platform_tests.test_catalog_in_step import _fewer_and_reweighted, rebuild_silver, silver_assets_of

SILVER = {t.name: t for t in (SILVER_HEADER, SILVER_ASSETS)}
GOLD = {t.name: t for t in GOLD_TABLES}
LISTED = "catalog: listed every table's files"
LOOKED = "catalog: looked at the "


@pytest.fixture(autouse=True)
def exact_cursor(monkeypatch):
    """No clock margin: a sync reads exactly the markers since the previous one started, so what
    it looked at can be counted (with the margin, it also looks at the last minute's again)."""
    monkeypatch.setattr(changes, "CLOCK_MARGIN_SECONDS", 0)


def journal_sync(root: Path, catalog: DuckDBCatalogResource) -> tuple[list, list[str]]:
    """A sync that may read the journal; returns what it registered and what it said."""
    said: list[str] = []
    registered = catalog.sync(LocalStorage(root), list(TABLES.values()), journal=True, say=said.append)
    return registered, said


def looked_at(count: int) -> list[str]:
    return [f"{LOOKED}{count} table date(s) the lake's change journal names since its last sync"]


def test_a_journal_sync_follows_every_change_the_lakes_writers_make(lake_copy, tmp_path):  # noqa: F811
    """After each change made through the lake's writers, a journal sync leaves the catalog exactly
    as a catalog built by listing the lake whole: rows, and the counts it registers."""
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)  # lists whole; from now on the journal vouches

    steps = [
        (2, lambda: rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)),  # rebuilt
        (2, lambda: rebuild_silver(lake_copy, DAYS[0], lambda t: t.slice(0, 0))),  # rebuilt empty
        (4, lambda: delete_date(storage, GOLD, DAYS[1])),  # removed
        (  # a subset of a unit: the manifest carries the header over
            2,
            lambda: write_date(
                storage,
                {SILVER_ASSETS.name: SILVER_ASSETS},
                DAYS[1],
                {SILVER_ASSETS.name: read_partition(storage, SILVER_ASSETS, DAYS[1]).slice(0, 7)},
            ),
        ),
    ]
    for i, (count, step) in enumerate(steps):
        step()
        registered, said = journal_sync(lake_copy, catalog)
        assert said == looked_at(count)
        whole = duckdb_catalog(tmp_path / f"whole-{i}")
        assert whole.sync(LocalStorage(lake_copy), list(TABLES.values())) == registered
        assert contents(catalog) == contents(whole)
    assert len(silver_assets_of(catalog, DAYS[1])) == 7
    assert catalog.query(f"SELECT count(*) FROM gold_composition WHERE \"date\" = DATE '{DAYS[1]}'").rows == [
        (0,)
    ]


def test_a_journal_sync_lists_no_table_and_so_misses_a_file_changed_by_hand(lake_copy, monkeypatch):  # noqa: F811
    """What the journal costs: a file replaced by hand (no writer announced it) is not seen by a
    journal sync, only by the next sync that lists the lake whole (as the catalog asset does in
    any run that is not for one date)."""
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    before = silver_assets_of(catalog, DAYS[0])
    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], lambda t: t.slice(0, 3))
    new = rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)

    def no_listing(*args):
        raise AssertionError(f"a journal sync listed {args}")

    with monkeypatch.context() as patched:
        patched.setattr(duckdb_catalog_module, "_stat_files", no_listing)
        _, said = journal_sync(lake_copy, catalog)
    assert said == looked_at(2)  # silver's two tables of DAYS[1]
    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in new.to_pylist()]
    assert silver_assets_of(catalog, DAYS[0]) == before  # the hand-made change: not seen

    sync(lake_copy, catalog)  # lists whole
    assert len(silver_assets_of(catalog, DAYS[0])) == 3


def test_the_journal_is_not_trusted_where_it_cannot_vouch(lake_copy, tmp_path, monkeypatch):  # noqa: F811
    catalog = duckdb_catalog(lake_copy)

    # A catalog that never synced lists whole, whatever it is asked.
    _, said = journal_sync(lake_copy, catalog)
    assert said == [f"{LISTED} (no change journal covers the time since its last sync)"]
    _, said = journal_sync(lake_copy, catalog)
    assert said[0].startswith(LOOKED)
    said = []  # and a sync not asked to read it (any refresh but a one-date run's) lists whole
    catalog.sync(LocalStorage(lake_copy), list(TABLES.values()), say=said.append)
    assert said == [f"{LISTED} (a whole listing was asked for)"]

    # The same catalog pointed at another copy of the lake (same journal, other files): lists whole.
    other = tmp_path / "other-lake"
    shutil.copytree(lake_copy, other, ignore=shutil.ignore_patterns("warehouse.duckdb*"))
    _, said = journal_sync(other, catalog)
    assert said[0].startswith(LISTED)
    _, said = journal_sync(lake_copy, catalog)
    assert said[0].startswith(LISTED)  # and back: its cursor is the other lake's now
    _, said = journal_sync(lake_copy, catalog)
    assert said[0].startswith(LOOKED)

    # The journal deleted (a new one starts): its markers of the time since are gone, so lists whole.
    shutil.rmtree(lake_copy / CHANGES_ROOT)
    rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)
    _, said = journal_sync(lake_copy, catalog)
    assert said[0].startswith(LISTED)
    assert len(silver_assets_of(catalog, DAYS[1])) == 50

    # A cursor older than the markers kept: lists whole (and the old hours are deleted).
    stale_hour = (
        lake_copy / CHANGES_ROOT / str((time.time_ns() // 10**9 - changes.RETENTION_SECONDS) // 3600 - 2)
    )
    stale_hour.mkdir(parents=True)
    (stale_hour / f"{1:020d}.x.{DAYS[0]}.silver_assets").touch()
    old = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: old + (changes.RETENTION_SECONDS + 7200) * 10**9)
    _, said = journal_sync(lake_copy, catalog)
    assert said[0].startswith(LISTED)
    assert not stale_hour.exists()
    _, said = journal_sync(lake_copy, catalog)
    assert said[0].startswith(LOOKED)


def test_a_change_under_way_during_a_sync_is_seen_by_the_next(lake_copy, tmp_path):  # noqa: F811
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    assets = _fewer_and_reweighted(read_partition(storage, SILVER_ASSETS, DAYS[1]))

    # A rebuild of DAYS[1] that has unpublished the date and replaced one file when a sync runs:
    # the date leaves the catalog (half-written), and comes back once the rebuild ends.
    with changes.recording(storage, list(SILVER), DAYS[1]):
        storage.delete(manifest_key("silver", DAYS[1]))
        storage.write_bytes(f"{SILVER_ASSETS.location}date={DAYS[1]}/data.parquet", to_parquet_bytes(assets))
        journal_sync(lake_copy, catalog)
        assert silver_assets_of(catalog, DAYS[1]) == []
        storage.write_bytes(manifest_key("silver", DAYS[1]), manifest_bytes("silver", DAYS[1], SILVER))
    journal_sync(lake_copy, catalog)
    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in assets.to_pylist()]
    whole = duckdb_catalog(tmp_path / "whole")
    sync(lake_copy, whole)
    assert contents(catalog) == contents(whole)


def test_a_writer_that_died_mid_change_is_looked_at_until_its_marker_is_settled(lake_copy):  # noqa: F811
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    pending_dir = lake_copy / CHANGES_ROOT / changes.PENDING_DIR

    # A writer killed mid-change: its pending marker stays (the context is entered, never left;
    # held, so that collecting it does not end it).
    killed = changes.recording(storage, [SILVER_ASSETS.name], DAYS[0])
    killed.__enter__()
    (marker,) = pending_dir.iterdir()
    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], lambda t: t.slice(0, 5))
    _, said = journal_sync(lake_copy, catalog)
    assert said == looked_at(1)
    assert len(silver_assets_of(catalog, DAYS[0])) == 5
    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], lambda t: t.slice(0, 4))  # its last act
    journal_sync(lake_copy, catalog)
    assert len(silver_assets_of(catalog, DAYS[0])) == 4  # still looked at: the marker is pending

    # Once older than STALE_SECONDS the marker moves into the journal as done: every catalog whose
    # cursor is older looks at the date once more, and it is pending no more.
    late = duckdb_catalog(lake_copy.parent / "late")
    sync(lake_copy, late)
    old = int(marker.name.split(".", 1)[0]) - (changes.STALE_SECONDS + 1) * 10**9
    marker.rename(pending_dir / f"{old:020d}.{marker.name.split('.', 1)[1]}")
    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], lambda t: t.slice(0, 2))
    _, said = journal_sync(lake_copy, catalog)
    assert list(pending_dir.iterdir()) == []
    assert len(silver_assets_of(catalog, DAYS[0])) == 2
    _, said = journal_sync(lake_copy, late)
    assert said[0].startswith(LOOKED) and len(silver_assets_of(late, DAYS[0])) == 2
    assert killed is not None


def test_a_done_marker_that_cannot_be_written_leaves_the_pending_one_and_the_write_stands(
    lake_copy,  # noqa: F811
    monkeypatch,
):
    """A full disk when the change ends (no room for the hour's folder): the write is not failed
    for it, and its pending marker still announces the date to every sync."""
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    pending_dir = lake_copy / CHANGES_ROOT / changes.PENDING_DIR
    real_rename = changes.os.rename  # the os module's (the storage replaces files with os.replace)

    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(
            changes.os,
            "rename",
            lambda a, b: no_room() if b.endswith(".silver_assets+silver_header") else real_rename(a, b),
        )
        patched.setattr(changes.os, "makedirs", no_room)
        new = rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)
    assert [p.name.split(".")[2:] for p in pending_dir.iterdir()] == [
        [str(DAYS[1]), "silver_assets+silver_header"]
    ]
    _, said = journal_sync(lake_copy, catalog)
    assert said == looked_at(2)
    assert silver_assets_of(catalog, DAYS[1]) == [(*r.values(), DAYS[1]) for r in new.to_pylist()]


def test_every_catalog_over_one_lake_sees_every_change(lake_copy, tmp_path):  # noqa: F811
    first, second = duckdb_catalog(lake_copy), duckdb_catalog(tmp_path / "second")
    sync(lake_copy, first)
    sync(lake_copy, second)
    new = rebuild_silver(lake_copy, DAYS[1], _fewer_and_reweighted)
    journal_sync(lake_copy, first)
    journal_sync(lake_copy, first)  # the markers are not consumed by a catalog's syncs
    _, said = journal_sync(lake_copy, second)
    assert said[0].startswith(LOOKED)
    expected = [(*r.values(), DAYS[1]) for r in new.to_pylist()]
    assert silver_assets_of(first, DAYS[1]) == silver_assets_of(second, DAYS[1]) == expected


def test_the_journal_names_each_write_and_removal_of_a_tables_date(lake_copy):  # noqa: F811
    """What the writers announce: a unit's date names every table of the unit (its manifest
    publishes them all), even when a subset was written; a table of its own, its own name; and no
    pending marker is left once a write has ended."""
    storage = LocalStorage(lake_copy)
    start = time.time_ns()
    write_date(
        storage,
        {SILVER_ASSETS.name: SILVER_ASSETS},
        DAYS[0],
        {SILVER_ASSETS.name: read_partition(storage, SILVER_ASSETS, DAYS[0])},
    )
    delete_date(storage, {GOLD_CHANGES.name: GOLD_CHANGES}, DAYS[1])
    write_date(
        storage,
        {BRONZE_PORTFOLIO.name: BRONZE_PORTFOLIO},
        DAYS[1],
        {BRONZE_PORTFOLIO.name: read_partition(storage, BRONZE_PORTFOLIO, DAYS[1])},
    )
    found = changes.changes_since(storage, start, time.time_ns())
    assert found is not None
    assert found.dates == {
        **{name: {DAYS[0]} for name in SILVER},
        **{name: {DAYS[1]} for name in GOLD},
        BRONZE_PORTFOLIO.name: {DAYS[1]},
    }
    assert list((lake_copy / CHANGES_ROOT / changes.PENDING_DIR).iterdir()) == []
    assert changes.changes_since(storage, time.time_ns(), time.time_ns()) == changes.Changes({})


def test_a_one_date_run_reads_the_journal_and_the_catalog_alone_lists_the_lake(lake_copy):  # noqa: F811
    catalog = duckdb_catalog(lake_copy)
    assert run_catalog_asset(lake_copy).success  # the catalog alone: lists whole, starts the cursor
    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], lambda t: t.slice(0, 3))  # by hand

    instance = dg.DagsterInstance.ephemeral()
    selection = [*SILVER, *GOLD, "athena_tables"]
    result = dg.materialize(
        ALL_ASSETS,
        selection=selection,
        partition_key=DAYS[1].isoformat(),
        resources=platform_resources(lake_copy),
        instance=instance,
    )
    assert result.success
    said = [
        e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("catalog: ")
    ]
    assert said == looked_at(6)  # silver's two tables and gold's four, of DAYS[1]
    assert len(silver_assets_of(catalog, DAYS[0])) == 84  # the hand-made change: not seen yet

    assert run_catalog_asset(lake_copy).success
    assert len(silver_assets_of(catalog, DAYS[0])) == 3


def test_a_journal_sync_keeps_clustered_years_across_a_new_year(lake_copy, tmp_path):  # noqa: F811
    """silver_assets is stored a year at a time sorted by (index, ticker) (CLUSTERED_BY): a journal
    sync reads the state of the years it may reload only, yet appends a new date of the newest
    year (recorded unclustered), reloads that year whole and sorted once a later year arrives, and
    reloads a closed year whole when a date of it changes: as a catalog listing the lake whole."""
    storage, catalog = LocalStorage(lake_copy), duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    silver = {t.name: read_partition(storage, t, DAYS[1]) for t in SILVER.values()}
    unclustered = f"SELECT table_name, year FROM {duckdb_catalog_module.UNCLUSTERED_TABLE} ORDER BY ALL"
    columns = '"index", ticker, "date"'
    for i, (day, left_unclustered) in enumerate(
        [
            (dt.date(2025, 7, 3), [("silver_assets", 2025)]),  # the newest year: appended
            (dt.date(2026, 1, 5), []),  # 2025 closed: reloaded whole, sorted; 2026 whole (its one date)
            (dt.date(2024, 7, 1), []),  # a closed year's new date: that year reloaded whole
        ]
    ):
        write_date(storage, SILVER, day, silver)
        journal_sync(lake_copy, catalog)
        whole = duckdb_catalog(tmp_path / f"whole-{i}")
        whole.sync(storage, list(TABLES.values()))
        assert contents(catalog) == contents(whole)
        assert [r for r in catalog.query(unclustered).rows if r[0] == "silver_assets"] == left_unclustered
    stored = catalog.query(f'SELECT {columns} FROM silver_assets WHERE year("date") = 2025').rows
    assert stored == sorted(stored)  # in storage order: the closed year sorted by index, ticker, date
