"""The DuckDB catalog: one table per lake table kept in step with the lake (sync), SQL over it (query), the athena_tables asset and
its schema check, the file lock shared with other processes, the output formats, and
`python -m b3_platform query` run as a real subprocess.

The lake is two real IBOV samples (2025-07-01 and 2025-07-02, the Natura swap) built once per module
by an in-process run of the whole graph; tests that change it work on a copy."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster_duckdb import DuckDBResource

from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.athena_tables import athena_tables
from b3_platform.catalog.base import CatalogError, QueryError, QueryResult, RegisteredTable
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.catalog.output import as_csv, as_json, as_table, render
from b3_platform.cli import main
from b3_platform.importer import import_paths
from b3_platform.lake import raw_inventory
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import (
    CATALOG_TABLES,
    GOLD_CHANGES,
    RAW_CAPTURES,
    SILVER_ASSETS,
    SILVER_HEADER,
    TABLES,
    TableDef,
)
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import B3ApiResource, LakeResource, lake_resources
from b3_platform.runs import RunOutcome, materialize_days
from b3_platform_tests.conftest import ENV_VARS, REPO, duckdb_catalog

JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
DAYS = (dt.date(2025, 7, 1), dt.date(2025, 7, 2))
NEW_DAY = dt.date(2025, 7, 3)
CATALOG_FILE = "warehouse.duckdb"
#: How DuckDB's DESCRIBE names each Arrow type the lake declares (written out here, not derived).
DESCRIBED = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
    pa.decimal128(7, 3): "DECIMAL(7,3)",
    pa.decimal128(8, 3): "DECIMAL(8,3)",
    pa.decimal128(12, 6): "DECIMAL(12,6)",
    pa.decimal128(20, 8): "DECIMAL(20,8)",
}


# ------------------------------------------------------------------------------------------ helpers


def platform_resources(root: Path) -> dict:
    """The lake, its catalog, and a B3 resource that is never called (every date is in the past)."""
    return {
        **lake_resources(LakeResource(root=str(root))),
        "catalog": duckdb_catalog(root),
        "b3": B3ApiResource(
            base_url="http://127.0.0.1:9",
            indices=["IBOV"],
            max_attempts=1,
            timeout_seconds=0.5,
            connect_timeout_seconds=0.5,
        ),
    }


def import_days(root: Path, *days: dt.date) -> None:
    results = import_paths(RawStore(LocalStorage(root)), [JSON_DIR / f"{d}.json" for d in days])
    assert [r.status for r in results] == ["imported"] * len(days), [r.reason for r in results]


def partitions(root: Path, table_def: TableDef) -> dict[dt.date, pa.Table]:
    """A table's Parquet files, read with pyarrow (no DuckDB)."""
    return {
        dt.date.fromisoformat(p.parent.name.removeprefix("date=")): pq.read_table(p)
        for p in sorted((root / table_def.location).glob("date=*/data.parquet"))
    }


def rows_with_date(root: Path, table_def: TableDef) -> list[tuple]:
    rows = []
    for day, table in partitions(root, table_def).items():
        rows += [(*r.values(), day) for r in table.to_pylist()]
    return rows


def declared(catalog: DuckDBCatalogResource, table_def: TableDef) -> list[tuple[str, str]]:
    return [(f.name, catalog.expected_type(f.type)) for f in table_def.schema] + [("date", "DATE")]


def views(catalog: DuckDBCatalogResource) -> dict[str, str]:
    """{view: its SQL} in the catalog file."""
    result = catalog.query("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY view_name")
    return dict(result.rows)


def tables(catalog: DuckDBCatalogResource) -> dict[str, str]:
    """{table: its comment} of the catalog's main schema."""
    result = catalog.query(
        "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name"
    )
    return dict(result.rows)


def state(catalog: DuckDBCatalogResource) -> list[tuple]:
    """What sync recorded as loaded: (table, date, file identity) rows."""
    return catalog.query("SELECT table_name, date, identity FROM _sync.files ORDER BY ALL").rows


def contents(catalog: DuckDBCatalogResource) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: what a query can see."""
    return {name: catalog.query(f'SELECT * FROM "{name}" ORDER BY ALL').rows for name in tables(catalog)}


def sync(root: Path, catalog: DuckDBCatalogResource | None = None) -> list[RegisteredTable]:
    return (catalog or duckdb_catalog(root)).sync(LocalStorage(root), list(TABLES.values()))


def run_catalog_asset(root: Path) -> dg.ExecuteInProcessResult:
    resources = platform_resources(root)
    return dg.materialize(
        [athena_tables],
        resources={
            **lake_resources(resources["lake"]),
            "catalog": resources["catalog"],
            "b3": resources["b3"],
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def check_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "tables_match_schemas"
    ]
    return evaluation


def rewrite_partition(root: Path, table_def: TableDef, day: dt.date, change) -> None:
    """Replace a partition's file by `change(table)`: a file some other writer left in the lake."""
    path = root / table_def.location / f"date={day}" / "data.parquet"
    pq.write_table(change(pq.read_table(path)), path)


# ------------------------------------------------------------------------------------------ the lake


@dataclass
class Built:
    root: Path
    runs: list[RunOutcome]
    instance: dg.DagsterInstance


@dataclass
class RecordedRun:
    """The catalog asset's check evaluation and materialization(s) of one run, read back from the
    instance that ran it (materialize_days keeps each run's id and outcome, not its events)."""

    evaluation: dg.AssetCheckEvaluation
    materializations: list[dg.AssetMaterialization]


def recorded_run(instance: dg.DagsterInstance, run_id: str) -> RecordedRun:
    events = [e.dagster_event for e in instance.all_logs(run_id) if e.dagster_event is not None]
    (evaluation,) = [
        e.event_specific_data
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.check_name == "tables_match_schemas"
    ]
    materializations = [
        e.event_specific_data.materialization
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        and e.event_specific_data.materialization.asset_key == dg.AssetKey("athena_tables")
    ]
    return RecordedRun(evaluation, materializations)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """Two real samples through raw → bronze → silver → gold, then athena_tables (as the demo does)."""
    root = tmp_path_factory.mktemp("catalog") / "lake"
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV_VARS:
            mp.delenv(var, raising=False)
        import_days(root, *DAYS)
        defs = dg.Definitions(assets=ALL_ASSETS, resources=platform_resources(root))
        instance = dg.DagsterInstance.ephemeral()
        runs = materialize_days(defs, DAYS, instance=instance, quiet=True)
    assert [r.success for r in runs] == [True, True]
    return Built(root, runs, instance)


@pytest.fixture(scope="module")
def small_lake(built) -> Path:
    """The built lake; not to be changed (the CLI tests read it)."""
    return built.root


@pytest.fixture
def lake_copy(small_lake, tmp_path) -> Path:
    """A copy of the lake's files, without the catalog (whose views point at the original)."""
    copy = tmp_path / "lake-copy"
    shutil.copytree(small_lake, copy, ignore=shutil.ignore_patterns(f"{CATALOG_FILE}*"))
    return copy


# --------------------------------------------------------------------------------------------- sync


def test_expected_type_names_what_duckdb_describes():
    catalog = duckdb_catalog("/nonexistent")
    assert {t: catalog.expected_type(t) for t in DESCRIBED} == DESCRIBED
    used = {f.type for t in TABLES.values() for f in t.schema}
    assert used <= DESCRIBED.keys(), f"types without a known DuckDB name: {used - DESCRIBED.keys()}"


def test_sync_loads_one_table_per_lake_table_with_declared_columns_and_date(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    registered = sync(lake_copy, catalog)

    assert [t.name for t in registered] == list(TABLES)
    assert list(tables(catalog)) == sorted(TABLES)
    assert views(catalog) == {}  # Parquet tables are loaded, not read at query time
    comments = tables(catalog)
    for table_def, table in zip(TABLES.values(), registered):
        described = catalog.describe(table_def.name)
        assert described == declared(catalog, table_def), table_def.name
        assert described == [(f.name, DESCRIBED[f.type]) for f in table_def.schema] + [("date", "DATE")]
        assert comments[table_def.name] == table_def.description

        files = partitions(lake_copy, table_def)
        with_rows = sorted(d for d, t in files.items() if t.num_rows)
        assert table == RegisteredTable(
            table_def.name,
            sum(t.num_rows for t in files.values()),
            len(with_rows),
            with_rows[0] if with_rows else None,
            with_rows[-1] if with_rows else None,
        )
    by_name = {t.name: t for t in registered}
    assert by_name["silver_assets"] == RegisteredTable("silver_assets", 168, 2, *DAYS)
    assert by_name["gold_changes"] == RegisteredTable("gold_changes", 85, 1, DAYS[1], DAYS[1])

    # What the table holds is what the files hold, `date` from the folder and typed DATE.
    columns = ", ".join(f'"{f.name}"' for f in SILVER_ASSETS.schema)
    result = catalog.query(f'SELECT {columns}, "date" FROM silver_assets ORDER BY "date", row_number')
    assert result.types[-1] == "DATE"
    assert result.rows == rows_with_date(lake_copy, SILVER_ASSETS)
    fetched = catalog.query("SELECT fetched_at FROM silver_header").rows
    assert all(isinstance(v, dt.datetime) and v.utcoffset() is not None for (v,) in fetched)


def test_the_sidecar_views_counts_from_file_names_equal_what_the_view_reads(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    by_name = {t.name: t for t in catalog.sync(LocalStorage(lake_copy), [RAW_CAPTURES])}

    [(rows, dates, first, last)] = catalog.query(
        'SELECT count(*), count(DISTINCT "date"), min("date"), max("date") FROM raw_captures'
    ).rows
    assert rows > 0
    assert by_name["raw_captures"] == RegisteredTable("raw_captures", rows, dates, first, last)


def test_a_refresh_reads_raws_inventory_once_for_coverage_and_raw_captures(lake_copy, monkeypatch):
    """The catalog asset brings raw's inventory up to date once and hands it to both readers: the
    coverage table and raw_captures' counts (each used to read the state's JSON on its own)."""
    assert run_catalog_asset(lake_copy).success  # the inventory's state is written
    reads, walks = [], []
    real_read, real_walk = raw_inventory._read_state, raw_inventory._walk_all
    monkeypatch.setattr(raw_inventory, "_read_state", lambda *a: reads.append(a[1]) or real_read(*a))
    monkeypatch.setattr(raw_inventory, "_walk_all", lambda *a: walks.append(a) or real_walk(*a))
    RawStore(LocalStorage(lake_copy)).store(  # a capture since: the refresh writes the next state
        NEW_DAY,
        "SMLL",
        [b"{}"],
        fetched_at=dt.datetime.now(dt.timezone.utc),
        source_format="json",
        meta={"source": "test"},
    )

    result = run_catalog_asset(lake_copy)
    assert result.success
    assert len(reads) == 1 and walks == []
    catalog = duckdb_catalog(lake_copy)
    [(captures, smll_days)] = catalog.query(
        "SELECT count(*), count(*) FILTER (\"index\" = 'SMLL') FROM raw_captures"
    ).rows
    assert smll_days == 1
    metadata = result.asset_materializations_for_node("athena_tables")[0].metadata
    assert metadata["rows_raw_captures"].value == captures
    assert catalog.query(
        f"SELECT status FROM coverage WHERE \"index\" = 'SMLL' AND \"date\" = DATE '{NEW_DAY}'"
    ).rows == [("captured",)]


def test_describe_all_answers_every_table_over_one_connection_and_names_a_missing_one(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    catalog.sync(LocalStorage(lake_copy), list(CATALOG_TABLES.values()))

    described = catalog.describe_all([*CATALOG_TABLES, "no_such_table"])

    # The same answer as one `describe` (DESCRIBE) per table, the raw_captures view and coverage
    # included (what the catalog check compares).
    every = {n: d for n, d in described.items() if n in CATALOG_TABLES}
    assert every == {n: catalog.describe(n) for n in CATALOG_TABLES}
    assert all(every.values())
    missing = described["no_such_table"]
    assert isinstance(missing, QueryError) and "no_such_table" in str(missing)


def test_a_table_without_files_is_a_typed_empty_view(lake_copy, tmp_path):
    saved = tmp_path / "saved-changes"
    shutil.move(lake_copy / GOLD_CHANGES.location, saved)
    catalog = duckdb_catalog(lake_copy)
    by_name = {t.name: t for t in sync(lake_copy, catalog)}

    assert by_name["gold_changes"] == RegisteredTable("gold_changes", 0, 0, None, None)
    assert catalog.describe("gold_changes") == declared(catalog, GOLD_CHANGES)
    assert catalog.query("SELECT * FROM gold_changes").rows == []
    assert by_name["silver_assets"].rows == 168  # the others are untouched

    # An empty view reads no files: a table's first files need a sync (athena_tables runs after
    # every materialization), unlike new dates of a table that had files (see below).
    shutil.move(saved, lake_copy / GOLD_CHANGES.location)
    assert catalog.query("SELECT count(*) FROM gold_changes").rows == [(0,)]
    assert {t.name: t.rows for t in sync(lake_copy, catalog)}["gold_changes"] == 85
    assert catalog.query("SELECT count(*) FROM gold_changes").rows == [(85,)]


def test_an_empty_lake_gets_every_table_typed_and_empty(tmp_path):
    empty = tmp_path / "empty-lake"  # not even created yet
    registered = sync(empty)
    assert registered == [RegisteredTable(name, 0, 0, None, None) for name in TABLES]
    catalog = duckdb_catalog(empty)
    assert list(tables(catalog)) == sorted(TABLES)
    for table_def in TABLES.values():
        assert catalog.describe(table_def.name) == declared(catalog, table_def)


def test_sync_again_changes_nothing(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    first = sync(lake_copy, catalog)
    loaded, answer = state(catalog), contents(catalog)
    assert len(loaded) >= sum(r.dates for r in first) > 0  # dates with rows, and empty files

    second = sync(lake_copy, catalog)
    assert second == first
    assert state(catalog) == loaded  # same dates, same file identities: nothing reloaded
    assert contents(catalog) == answer


def test_a_new_date_is_queryable_once_the_catalog_syncs(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)

    import_days(lake_copy, NEW_DAY)
    result = dg.materialize(
        [a for a in ALL_ASSETS if a is not athena_tables],
        resources=platform_resources(lake_copy),
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=NEW_DAY.isoformat(),
        raise_on_error=False,
    )
    assert result.success
    # The layers alone do not change the catalog: the catalog asset (after the layers) does.
    assert catalog.query('SELECT DISTINCT "date" FROM silver_assets ORDER BY 1').rows == [(d,) for d in DAYS]
    check_evaluation(run_catalog_asset(lake_copy))

    dates = catalog.query('SELECT DISTINCT "date" FROM silver_assets ORDER BY 1').rows
    assert dates == [(d,) for d in (*DAYS, NEW_DAY)]
    counts = catalog.query(
        f"SELECT count(*), count(*) FILTER (membership = 'held') FROM gold_changes WHERE \"date\" = DATE '{NEW_DAY}'"
    ).rows
    assert counts == [(pq.read_table(lake_copy / f"gold/changes/date={NEW_DAY}/data.parquet").num_rows, 84)]


def test_a_relative_lake_root_syncs_and_any_working_directory_can_query(lake_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(lake_copy.parent)
    relative = LocalStorage(lake_copy.name)  # a relative lake root, as `--data-dir data` gives
    DuckDBCatalogResource(duckdb=DuckDBResource(database=f"{lake_copy.name}/{CATALOG_FILE}")).sync(
        relative, list(TABLES.values())
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    catalog = duckdb_catalog(lake_copy)
    assert catalog.query("SELECT count(*) FROM silver_assets").rows == [(168,)]
    # raw_captures stays a view over the sidecars, read at query time: its glob is absolute.
    catalog.sync(LocalStorage(lake_copy), [RAW_CAPTURES])
    expected_glob = f"'{(lake_copy / 'raw').resolve()}/GetPortfolioDay/date=*/index=*/*.meta.json'"
    assert expected_glob in views(catalog)["raw_captures"]


# ------------------------------------------------------------------------ athena_tables and its check


def test_the_catalog_asset_registers_every_table_and_its_check_passes(built):
    recorded = recorded_run(built.instance, built.runs[-1].run_id)
    evaluation = recorded.evaluation
    assert evaluation.passed
    assert evaluation.metadata["problems"].value == "none"
    (mat,) = recorded.materializations  # the dashboard follows in the run
    metadata = {k: v.value for k, v in mat.metadata.items()}
    assert metadata["catalog"] == str((built.root / CATALOG_FILE).resolve())
    assert metadata["tables"] == len(CATALOG_TABLES)
    assert (metadata["rows_silver_assets"], metadata["dates"], metadata["last_date"]) == (
        168,
        2,
        "2025-07-02",
    )


def test_raw_captures_lists_every_capture_from_its_sidecar(built):
    """The raw layer in the catalog: one row per capture, typed, from the .meta.json files."""
    catalog = duckdb_catalog(built.root)
    described = catalog.describe("raw_captures")
    assert described == declared(catalog, RAW_CAPTURES)
    store = RawStore(LocalStorage(built.root))
    expected = sorted(
        (c.meta["index"], c.day, c.meta["sha256"], c.meta["format"], len(c.meta["pages"]))
        for day in store.dates()
        for c in store.captures(day)
    )
    rows = catalog.query(
        'SELECT "index", "date", sha256, source_format, pages FROM raw_captures ORDER BY ALL'
    ).rows
    assert rows == expected and len(rows) == len(DAYS)
    # Imports have a file name and no URL or HTTP status; API captures the other way round.
    (source, url, status, named) = catalog.query(
        "SELECT DISTINCT source, url, http_status, file_name IS NOT NULL FROM raw_captures"
    ).rows[0]
    assert (source, url, status, named) == ("import", None, None, True)
    fetched = catalog.query("SELECT min(fetched_at) FROM raw_captures").rows[0][0]
    assert fetched.tzinfo is not None


def _weight_as_double_with_an_extra_column(table: pa.Table) -> pa.Table:
    position = table.schema.get_field_index("weight")
    table = table.set_column(position, "weight", table.column("weight").cast(pa.float64()))
    return table.append_column("comment", pa.array(["planted"] * table.num_rows))


def test_the_check_fails_when_a_file_has_another_type_and_an_extra_column(lake_copy):
    assert check_evaluation(run_catalog_asset(lake_copy)).passed

    # The catalog's tables keep their declared types (the double is cast on load, the extra column
    # left out), so the file check is what names the file and both problems.
    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], _weight_as_double_with_an_extra_column)
    evaluation = check_evaluation(run_catalog_asset(lake_copy))
    assert not evaluation.passed
    problems = [
        "silver/assets/date=2025-07-01/data.parquet: extra comment; types weight double (declared decimal128(7, 3))",
    ]
    assert evaluation.description == "; ".join(problems)
    assert evaluation.metadata["problems"].value == "\n".join(f"- {p}" for p in problems)


def test_sync_fails_and_keeps_the_previous_tables_when_the_oldest_file_lacks_a_column(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    before = state(catalog), contents(catalog)

    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[0], lambda t: t.drop_columns(["sector"]))
    result = run_catalog_asset(lake_copy)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert (
        'Binder Error: Referenced column "sector" not found'
        in failure.event_specific_data.error.cause.message
    )
    assert (state(catalog), contents(catalog)) == before  # one transaction: rolled back, nothing half-loaded


def test_sync_fails_when_a_newer_file_lacks_a_column_and_names_the_file(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    before = state(catalog), contents(catalog)

    rewrite_partition(lake_copy, SILVER_ASSETS, DAYS[-1], lambda t: t.drop_columns(["sector"]))
    with pytest.raises(CatalogError) as caught:
        sync(lake_copy, catalog)
    message = str(caught.value)
    assert message.startswith(f"cannot update the catalog {catalog.location}: ")
    assert (
        f"silver_assets: {lake_copy.resolve()}/silver/assets/date=2025-07-02/data.parquet lacks sector"
        in message
    )
    assert message.endswith("its tables are as they were before this sync")
    assert (state(catalog), contents(catalog)) == before


# ----------------------------------------------------------------------------- the file lock, errors

HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])  # read-write: holds the file's lock
    print("locked", flush=True)
    if sys.argv[2] == "until-stdin-closes":
        sys.stdin.read()
    else:
        time.sleep(float(sys.argv[2]))
    print(f"releasing at {time.time()}", flush=True)
    conn.close()
    """
)


@contextlib.contextmanager
def lock_held(path: Path, hold: str = "until-stdin-closes"):
    """Another process with the catalog open for writing (a run of athena_tables, say)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), hold],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        yield proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, proc.stderr.read()


def test_sync_waits_for_another_writer_then_succeeds(lake_copy):
    catalog = duckdb_catalog(lake_copy)
    with lock_held(Path(catalog.location), hold="1.5") as holder:
        started = time.monotonic()
        registered = sync(lake_copy, catalog)  # dagster-duckdb retries the connection on the lock
        finished_at, waited = time.time(), time.monotonic() - started
    released_at = float(holder.stdout.read().removeprefix("releasing at "))
    assert finished_at > released_at, "sync got the file while the other process still held it"
    assert waited > 0.3
    assert [t.name for t in registered] == list(TABLES)
    assert catalog.query("SELECT count(*) FROM silver_assets").rows == [(168,)]


def test_query_while_another_process_writes_waits_then_is_a_catalog_error(lake_copy, capsys):
    catalog = duckdb_catalog(lake_copy)
    sync(lake_copy, catalog)
    notices: list[str] = []
    with lock_held(Path(catalog.location)):
        with pytest.raises(CatalogError) as caught:
            catalog.query("SELECT 1", wait_seconds=0.5, on_wait=notices.append)
        # The command says so and exits 2, without a traceback.
        assert main(["--data-dir", str(lake_copy), "query", "--wait", "0.5", "SELECT 1"]) == 2
    message = str(caught.value)
    assert message.startswith(
        f"the catalog {catalog.location} is still locked by another process after 0.5 s"
    )
    assert "Could not set lock" in message
    assert notices == [
        f"the catalog {catalog.location} is being updated by another process; waiting up to 0.5 s for it"
    ]
    err = capsys.readouterr().err
    assert err.startswith(notices[0] + "\nerror: the catalog ") and "Traceback" not in err
    assert catalog.query("SELECT 1 AS x").rows == [(1,)]  # and it works again once the writer is gone


def test_refused_sql_is_a_query_error_with_duckdbs_message(small_lake):
    catalog = duckdb_catalog(small_lake)
    with pytest.raises(QueryError) as caught:
        catalog.query("SELECT no_such_column FROM silver_assets")
    assert str(caught.value).startswith('Binder Error: Referenced column "no_such_column" not found')
    with pytest.raises(QueryError, match="Parser Error"):
        catalog.query("SELEC 1")
    with pytest.raises(QueryError, match="read-only"):  # the catalog is opened read-only for queries
        catalog.query("DROP TABLE silver_assets")
    assert "silver_assets" in tables(catalog)


def test_a_moved_lake_keeps_its_tables_and_raw_captures_says_to_rebuild_the_catalog(lake_copy, tmp_path):
    catalog = duckdb_catalog(lake_copy)
    catalog.sync(LocalStorage(lake_copy), list(CATALOG_TABLES.values()))
    answer = catalog.query("SELECT count(*) FROM silver_assets").rows
    moved = tmp_path / "moved"
    lake_copy.rename(moved)
    catalog = duckdb_catalog(moved)
    # The tables hold their rows; the raw_captures view still reads the old folder.
    assert catalog.query("SELECT count(*) FROM silver_assets").rows == answer
    with pytest.raises(QueryError, match="was the lake moved or deleted") as caught:
        catalog.query("SELECT count(*) FROM raw_captures")
    assert "materializing athena_tables" in str(caught.value)
    loaded = state(catalog)
    catalog.sync(LocalStorage(moved), list(CATALOG_TABLES.values()))
    assert state(catalog) == loaded  # a rename keeps every file's identity: nothing reloaded
    assert catalog.query("SELECT count(*) FROM raw_captures").rows[0][0] > 0


class _Recorded:
    """A DuckDB connection whose statements are appended to `log`."""

    def __init__(self, connection, log: list[str]) -> None:
        self._connection, self._log = connection, log

    def execute(self, statement: str, *args):
        self._log.append(statement)
        return self._connection.execute(statement, *args)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)


class RecordingDuckDB(DuckDBResource):
    """dagster-duckdb's resource, recording what the sync executes (`STATEMENTS`)."""

    @contextlib.contextmanager
    def get_connection(self):
        with super().get_connection() as connection:
            yield _Recorded(connection, STATEMENTS)


STATEMENTS: list[str] = []


def recording_catalog(lake: Path) -> DuckDBCatalogResource:
    return DuckDBCatalogResource(duckdb=RecordingDuckDB(database=str(lake / CATALOG_FILE)))


def sync_statements(catalog: DuckDBCatalogResource, lake: Path, table_defs: list[TableDef]) -> list[str]:
    """The statements one sync of `table_defs` executes."""
    STATEMENTS.clear()
    catalog.sync(LocalStorage(lake), table_defs)
    return list(STATEMENTS)


def test_the_raw_captures_view_is_created_again_only_when_its_statement_or_comment_changes(lake_copy):
    catalog = recording_catalog(lake_copy)
    every = list(CATALOG_TABLES.values())

    def created() -> list[str]:
        """The statements of a sync that create the view or set its comment."""
        executed = sync_statements(catalog, lake_copy, every)
        return [s for s in executed if "raw_captures" in s and s.startswith(("CREATE", "COMMENT"))]

    assert len(created()) == 2  # a catalog without the view: created, commented
    captures = catalog.query("SELECT count(*) FROM raw_captures").rows[0][0]
    assert created() == []  # nothing changed: the view stays as it is

    # A new capture needs no new view: the view's glob is expanded when it is read.
    import_days(lake_copy, NEW_DAY)
    assert catalog.query("SELECT count(*) FROM raw_captures").rows == [(captures + 1,)]
    assert created() == []
    registered = {t.name: t.rows for t in catalog.sync(LocalStorage(lake_copy), every)}
    assert registered["raw_captures"] == captures + 1

    # A new description is a new comment; a dropped view is created again.
    every = [replace(t, description="captures, described anew") if t is RAW_CAPTURES else t for t in every]
    assert len(created()) == 2
    comment = catalog.query("SELECT comment FROM duckdb_views() WHERE view_name = 'raw_captures'").rows
    assert comment == [("captures, described anew",)]
    with duckdb.connect(str(lake_copy / CATALOG_FILE)) as connection:
        connection.execute("DROP VIEW raw_captures")
    assert len(created()) == 2
    assert catalog.query("SELECT count(*) FROM raw_captures").rows == [(captures + 1,)]


def test_table_comments_are_set_where_missing_or_changed_also_on_a_table_created_again(lake_copy):
    catalog = recording_catalog(lake_copy)
    every = list(TABLES.values())

    def commented() -> list[str]:
        """The tables whose comment a sync set."""
        executed = sync_statements(catalog, lake_copy, every)
        return sorted(s.split('"')[1] for s in executed if s.startswith("COMMENT ON TABLE"))

    assert commented() == sorted(TABLES)
    assert commented() == []  # nothing changed
    # A table whose columns no longer match is created again (its dates reloaded), comment and all.
    with duckdb.connect(str(lake_copy / CATALOG_FILE)) as connection:
        connection.execute("ALTER TABLE silver_header ADD COLUMN planted INTEGER")
    assert commented() == ["silver_header"]
    every = [replace(t, description="assets, described anew") if t is SILVER_ASSETS else t for t in every]
    assert commented() == ["silver_assets"]
    assert tables(catalog) == {t.name: t.description for t in every}


def test_a_missing_catalog_names_its_path_and_how_to_build_it(tmp_path):
    catalog = duckdb_catalog(tmp_path / "nothing-here")
    with pytest.raises(CatalogError) as caught:
        catalog.query("SELECT 1")
    message = str(caught.value)
    assert message.startswith(f"no catalog at {tmp_path / 'nothing-here' / CATALOG_FILE}: ")
    assert "python -m b3_platform demo" in message and "athena_tables" in message
    assert not (tmp_path / "nothing-here").exists()  # querying creates nothing


# ----------------------------------------------------------------------------------- output formats

DAY = dt.date(2025, 7, 2)
SAMPLE = QueryResult(
    columns=["ticker", "weight", "note", "date"],
    types=["VARCHAR", "DECIMAL(7,3)", "VARCHAR", "DATE"],
    rows=[
        ("PETR4", Decimal("6.509"), None, DAY),
        ("NATU3", Decimal("0.424"), "entered", DAY),
        ("X", None, 'a "quoted", multi\nline', None),
    ],
)


def test_table_aligns_text_left_and_numbers_right_with_nulls_and_a_row_count():
    result = QueryResult(
        columns=["ticker", "weight", "note", "date"],
        types=["VARCHAR", "DECIMAL(7,3)", "VARCHAR", "DATE"],
        rows=[
            ("PETR4", Decimal("6.509"), None, DAY),
            ("NATU3", Decimal("0.424"), "entered", DAY),
            ("X", None, "a, b", None),
        ],
    )
    assert as_table(result).split("\n") == [
        "ticker  weight  note     date",
        "------  ------  -------  ----------",
        "PETR4    6.509  NULL     2025-07-02",
        "NATU3    0.424  entered  2025-07-02",
        "X         NULL  a, b     NULL",
        "(3 rows)",
    ]
    assert render(result, "table") == as_table(result)

    one = QueryResult(["n", "name"], ["INTEGER", "VARCHAR"], [(12345, "a")])
    assert as_table(one) == "    n  name\n-----  ----\n12345  a\n(1 row)"
    assert as_table(QueryResult(["x"], ["INTEGER"], [])) == "x\n-\n(0 rows)"
    many = QueryResult(["n"], ["INTEGER"], [(i,) for i in range(5)])
    assert as_table(many, max_rows=2).split("\n")[2:] == ["0", "1", "(5 rows, 3 more not shown)"]
    flags = QueryResult(["ok"], ["BOOLEAN"], [(True,), (False,)])
    assert as_table(flags).split("\n")[2:4] == ["True", "False"]  # booleans are not numbers


def test_csv_quotes_what_needs_quoting_and_writes_nulls_as_empty():
    text = as_csv(SAMPLE)
    assert text.splitlines()[0] == "ticker,weight,note,date"
    assert list(csv.reader(io.StringIO(text))) == [
        ["ticker", "weight", "note", "date"],
        ["PETR4", "6.509", "", "2025-07-02"],
        ["NATU3", "0.424", "entered", "2025-07-02"],
        ["X", "", 'a "quoted", multi\nline', ""],
    ]
    assert '"a ""quoted"", multi\nline"' in text
    assert render(SAMPLE, "csv") == text.rstrip("\n")


def test_json_keeps_decimal_digits_exactly_and_dates_as_iso_strings():
    stamp = dt.datetime(2025, 7, 2, 12, 0, 1, tzinfo=dt.timezone.utc)
    result = QueryResult(
        ["reductor", "change", "tiny", "day", "at", "big", "name", "missing"],
        [
            "DECIMAL(20,8)",
            "DECIMAL(8,3)",
            "DECIMAL(20,8)",
            "DATE",
            "TIMESTAMPTZ",
            "HUGEINT",
            "VARCHAR",
            "INTEGER",
        ],
        [
            (
                Decimal("18296803.37677573"),
                Decimal("-0.053"),
                Decimal("0E-8"),
                DAY,
                stamp,
                2**70 + 1,
                'Petróleo "BR"',
                None,
            )
        ],
    )
    text = as_json(result)
    assert "decimal:" not in text and "\\u0000" not in text
    assert '"reductor": 18296803.37677573' in text  # a bare number, not a string
    (record,) = json.loads(text, parse_float=Decimal)
    assert record == {
        "reductor": Decimal("18296803.37677573"),
        "change": Decimal("-0.053"),
        "tiny": Decimal("0E-8"),
        "day": "2025-07-02",
        "at": "2025-07-02T12:00:01+00:00",
        "big": 2**70 + 1,
        "name": 'Petróleo "BR"',
        "missing": None,
    }
    assert str(record["reductor"]) == "18296803.37677573"
    assert json.loads(as_json(QueryResult(["x"], ["INTEGER"], []))) == []
    assert render(result, "json") == text


# -------------------------------------------------------------------- `python -m b3_platform query`


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


CLI_CASES = {
    "table": [
        "SELECT ticker, weight FROM silver_assets WHERE \"date\" = DATE '2025-07-02' ORDER BY weight DESC LIMIT 3"
    ],
    "csv": ["--file", "queries/entries_exits.sql", "--format", "csv"],
    "json": ['SELECT "date", reductor FROM silver_header ORDER BY "date"', "--format", "json"],
    "bad_sql": ["SELECT no_such_column FROM silver_assets"],
    "missing_catalog": ["SELECT 1"],
    "missing_file": ["--file", "queries/no_such_query.sql"],
    "sql_and_file": ["SELECT 1", "--file", "queries/entries_exits.sql"],
}


@pytest.fixture(scope="module")
def cli(small_lake, tmp_path_factory) -> dict[str, Ran]:
    """Every CLI case, each its own `python -m b3_platform query` process, all started at once."""
    no_lake = tmp_path_factory.mktemp("no-lake")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONIOENCODING"] = "utf-8"
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "b3_platform", "query", *args],
            cwd=REPO,
            env={**env, "B3_PLATFORM_DATA_DIR": str(no_lake if name == "missing_catalog" else small_lake)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        for name, args in CLI_CASES.items()
    }
    ran = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        ran[name] = Ran(proc.returncode, out, err)
    return ran


def test_cli_inline_sql_prints_a_table(cli, small_lake):
    ran = cli["table"]
    assert (ran.code, ran.err) == (0, ""), ran.err
    assets = partitions(small_lake, SILVER_ASSETS)[DAYS[1]].to_pylist()
    top = sorted(assets, key=lambda r: r["weight"], reverse=True)[:3]
    width = max(len(r["ticker"]) for r in top)
    assert ran.out.splitlines() == [
        "ticker".ljust(width) + "  weight",
        "-" * max(width, 6) + "  ------",
        *(f"{r['ticker'].ljust(max(width, 6))}  {str(r['weight']).rjust(6)}" for r in top),
        "(3 rows)",
    ]


def test_cli_runs_a_query_file_as_csv(cli):
    ran = cli["csv"]
    assert (ran.code, ran.err) == (0, ""), ran.err
    assert list(csv.reader(io.StringIO(ran.out))) == [
        ["date", "index", "membership", "ticker", "company", "weight"],
        ["2025-07-02", "IBOV", "entered", "NATU3", "NATURA", "0.424"],
        ["2025-07-02", "IBOV", "exited", "NTCO3", "GRUPO NATURA", "0.436"],
    ]


def test_cli_prints_json_with_exact_decimals(cli, small_lake):
    ran = cli["json"]
    assert (ran.code, ran.err) == (0, ""), ran.err
    headers = partitions(small_lake, SILVER_HEADER)
    assert json.loads(ran.out, parse_float=Decimal) == [
        {"date": day.isoformat(), "reductor": table.column("reductor")[0].as_py()}
        for day, table in headers.items()
    ]
    assert all(len(str(r["reductor"]).split(".")[1]) == 8 for r in json.loads(ran.out, parse_float=Decimal))


def test_cli_refused_sql_exits_1_with_duckdbs_message(cli):
    ran = cli["bad_sql"]
    assert (ran.code, ran.out) == (1, "")
    assert ran.err.startswith('query failed: Binder Error: Referenced column "no_such_column" not found')
    assert "Traceback" not in ran.err


def test_cli_without_a_catalog_exits_2_and_says_how_to_build_it(cli):
    ran = cli["missing_catalog"]
    assert (ran.code, ran.out) == (2, "")
    assert ran.err.startswith("error: no catalog at ") and f"{CATALOG_FILE}: build it with" in ran.err
    assert "python -m b3_platform demo" in ran.err and "Traceback" not in ran.err


def test_cli_unreadable_query_file_exits_2(cli):
    ran = cli["missing_file"]
    assert (ran.code, ran.out) == (2, "")
    assert ran.err == "cannot read queries/no_such_query.sql: No such file or directory\n"


def test_cli_sql_and_file_together_is_a_usage_error(cli):
    ran = cli["sql_and_file"]
    assert (ran.code, ran.out) == (2, "")
    assert "usage: python -m b3_platform query" in ran.err
    assert "argument --file/-f: not allowed with argument sql" in ran.err


def test_cli_query_file_that_is_not_utf8_exits_2(small_lake, tmp_path, capsys):
    """A file saved as Latin-1 (an editor's default on Windows) is unreadable, not a crash."""
    latin1 = tmp_path / "composicao.sql"
    latin1.write_bytes("-- composição do índice\nSELECT 1 AS x\n".encode("latin-1"))
    assert main(["--data-dir", str(small_lake), "query", "--file", str(latin1)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"cannot read {latin1}: not UTF-8")
