"""The local catalog: one DuckDB file holding a table per Parquet lake table, kept in step with the lake.

Each Parquet table is a DuckDB table with its declared columns, then `date`, loaded from the lake's
files: whole-history queries read DuckDB's own storage instead of opening one Parquet file per date
(tens of ms rather than hundreds at 1,250 dates). `sync` keeps them in step in O(what changed): a
state table (`_sync.files`: table, date, the file's identity = size, mtime and inode) says what each
table holds; a sync lists the lake's files (names and `stat`, no reads), and in ONE transaction
deletes the rows of every date whose file changed or went away and inserts the changed and new
dates from their Parquet files. A rebuilt date therefore replaces its old rows exactly, and a date
is queryable once the sync after its build has committed (the `athena_tables` asset, which every
job runs after the layers). A sync asked to (`journal`: the refresh of a run for one date) stats
only the dates the lake's change journal (lake.changes) names since its previous sync, when the
journal can vouch for that time (`_look`, `_sync.journal`): the daily run's refresh then lists no
folder, at the price of not seeing a file changed by hand until a sync that lists the lake whole.
A table of a layer published together (silver, gold: lake.tables) loads only the dates whose
manifest exists: a date being rewritten, or left half-written by a killed run, is not loaded (and a
loaded date whose manifest disappeared is removed) rather than partly there. raw_captures stays a
view over raw's JSON sidecars, read at query time.
Tables looked up by ticker over the whole history (silver_assets, gold_changes: CLUSTERED_BY) are
stored year by year, each closed year's rows sorted by (index, ticker, date): a query for one
ticker then reads a row group or two per year instead of every row. Their cost: a changed date of
an older year reloads that year's files, and the newest year is reloaded once after it closes
(`_clustered_load`).
Only one process may hold a DuckDB file for writing: writers go through dagster-duckdb's
`DuckDBResource` (which retries on the lock) inside the `duckdb` pool (limit 1 in dagster.yaml);
readers open the file read-only (duckdb_reader, which the `query` command uses without Dagster),
and wait (a bounded time, saying so) while a writer holds it.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import closing
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from b3_platform.catalog.base import (
    LOCK_WAIT_SECONDS,
    PARTITION_COLUMN,
    CatalogError,
    CatalogResource,
    QueryError,
    QueryResult,
    RegisteredTable,
)
from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader, open_read_only
from b3_platform.catalog.types import duckdb_type
from b3_platform.lake import changes
from b3_platform.lake.paths import DATE_DIR_PREFIX, PARQUET_FILE, date_dir, year_of_file
from b3_platform.lake.raw_inventory import RawInventory, inventory
from b3_platform.lake.schemas import GOLD_CHANGES, SILVER_ASSETS, TableDef
from b3_platform.lake.storage import LocalStorage, Storage, folder_names
from b3_platform.lake.tables import MANIFEST_FILE, PUBLISHED_DIR, published_together

#: How DESCRIBE names the types the lake declares (decimals are DECIMAL(p,s) already).
_DUCKDB_NAMES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(table_def: TableDef, storage: Storage, has_files: bool) -> str:
    """The view of a table read at query time (raw_captures: raw's JSON sidecars); typed and empty
    when no file exists (a glob matching nothing is an error in DuckDB)."""
    name = _quote_ident(table_def.name)
    if not has_files:
        typed = [f"CAST(NULL AS {duckdb_type(f.type)}) AS {_quote_ident(f.name)}" for f in table_def.schema]
        typed.append(f"CAST(NULL AS DATE) AS {PARTITION_COLUMN}")
        return f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(typed)} WHERE false"
    return f"CREATE OR REPLACE VIEW {name} AS {_SIDECAR_SELECT.format(pattern=_quote_literal(_pattern(table_def, storage)))}"


def _pattern(table_def: TableDef, storage: Storage) -> str:
    """The glob of a view's files."""
    return f"{storage.uri(table_def.location).rstrip('/')}/{table_def.file_pattern}"


def _count_sql(table_def: TableDef) -> str:
    """What an unpartitioned table holds (the coverage table: its own `date` column counts trading
    days): rows, dates, first and last date, counted over its rows."""
    return (
        f"SELECT count(*), count(DISTINCT {PARTITION_COLUMN}), min({PARTITION_COLUMN}), "
        f"max({PARTITION_COLUMN}) FROM {_quote_ident(table_def.name)}"
    )


def _sidecar_counts(
    table_def: TableDef, storage: Storage, raw: RawInventory | None
) -> tuple[int, int, dt.date | None, dt.date | None]:
    """What the view of raw's sidecars holds (one row per `date=*/index=*/*.meta.json`, the view's
    glob): rows, dates, first and last date, from the raw inventory (lake.raw_inventory: its state
    plus the dates written since), which the catalog refresh has just brought up to date. Counting
    through the view would read and parse every sidecar of the history; even a scandir of every
    date and index folder grew with history (~0.5 s of CPU at 1,250 dates x 34 indices). `raw` is
    that inventory when the refresh passed it (else its summary is read again: the totals are
    the summary's, no year is read)."""
    # raw_captures is the one view, over raw/<GetPortfolioDay>/
    return (inventory(storage, whole=False) if raw is None else raw).totals()


#: raw_captures over the capture sidecars (lake.raw_store writes them): a key a sidecar lacks (url
#: for imports, file_name for API captures) reads as NULL; the `tables_match_schemas` check holds
#: this against RAW_CAPTURES' declared columns.
_SIDECAR_SELECT = """SELECT "index", source, format AS source_format,
    CAST(fetched_at AS TIMESTAMPTZ) AS fetched_at, sha256, http_status, url, file_name, header_date,
    language, CAST(json_array_length(pages) AS INTEGER) AS pages, CAST("date" AS DATE) AS "date"
FROM read_json({pattern}, format = 'auto', hive_partitioning = false, columns = {{
    'index': 'VARCHAR', 'source': 'VARCHAR', 'format': 'VARCHAR', 'fetched_at': 'VARCHAR',
    'sha256': 'VARCHAR', 'http_status': 'INTEGER', 'url': 'VARCHAR', 'file_name': 'VARCHAR',
    'header_date': 'VARCHAR', 'language': 'VARCHAR', 'date': 'VARCHAR', 'pages': 'JSON'}})"""


#: Where sync records what each table holds: (table, date, the file's identity when it was loaded,
#: the date's rows in the table).
STATE_SCHEMA = "_sync"
STATE_TABLE = f"{STATE_SCHEMA}.files"
#: What each partitioned table holds, from the state's per-date row counts: rows, dates holding
#: rows, first and last of them, one query for every table. Counting over the tables (`count(DISTINCT
#: date)`) read every row of the history on every sync (~60 ms of CPU at 120 dates x 34 indices,
#: growing with each date); the state has one row per table and date, and a date's count is taken
#: once, when it is loaded (`_count_loaded`).
_STATE_COUNT_SQL = (
    "SELECT table_name, coalesce(sum(rows), 0), count(*) FILTER (WHERE rows > 0), "
    "min(date) FILTER (WHERE rows > 0), max(date) FILTER (WHERE rows > 0) "
    f"FROM {STATE_TABLE} GROUP BY table_name"
)


def _identity(stat: os.stat_result) -> str:
    """A file's identity: a rebuilt date's file is a new file (written beside, then renamed over the
    old one), so its inode and mtime differ even when its size does not."""
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def _stat_files(folder: str, name: str) -> dict[dt.date, tuple[str, str]]:
    """{date: (path, identity)} of `folder/date=YYYY-MM-DD/name`: one scandir and one stat per date
    (plain os calls and names only: at thousands of dates, per-entry overhead was most of a sync's
    listing, ~10 us a date against the stat's ~5; a name that is not a date folder holding the file
    fails its stat or its date and is skipped)."""
    found = {}
    base = _folder(folder)
    skip, stat, date_of = len(DATE_DIR_PREFIX), os.stat, dt.date.fromisoformat
    for entry in folder_names(folder):
        if not entry.startswith(DATE_DIR_PREFIX):
            continue
        path = f"{base}{entry}/{name}"
        try:
            found[date_of(entry[skip:])] = (path, _identity(stat(path)))
        except (ValueError, OSError):  # not a date, not a folder, or a date without its file (yet)
            continue
    return found


def _year_files(folder: str) -> dict[dt.date, tuple[str, str]]:
    """{January 1st of the year: (path, identity)} of a table kept a file per year (`year_file`: the
    coverage table), whose rows of that year's dates are the file's."""
    found = {}
    for name in folder_names(folder):
        year, path = year_of_file(name), f"{_folder(folder)}{name}"
        try:
            if year is not None:
                found[dt.date(year, 1, 1)] = (path, _identity(os.stat(path)))
        except OSError:  # replaced or removed since the listing
            continue
    return found


def _folder(folder: str) -> str:
    return folder if folder.endswith("/") else f"{folder}/"


def _date_file(folder: str, day: dt.date, name: str) -> str:
    """The path of a date's file `name` in a table's (or a unit's manifests') folder."""
    return f"{_folder(folder)}{date_dir(day)}/{name}"


def _stat_dates(folder: str, name: str, dates: Collection[dt.date]) -> dict[dt.date, tuple[str, str]]:
    """`_stat_files` for the given dates only (those the change journal names): one stat each."""
    found = {}
    for day in dates:
        path = _date_file(folder, day, name)
        try:
            found[day] = (path, _identity(os.stat(path)))
        except OSError:  # removed, or not written (yet)
            continue
    return found


#: The state's date of an unpartitioned table's one file, as older versions kept the coverage table
#: (now a file per year, under the year's January 1st): found in a catalog, its rows are removed.
WHOLE = dt.date(1, 1, 1)
#: Dates loaded per INSERT: one INSERT of a whole history sorted by date (the first refresh after
#: an import of years at 34 indices, ~2 MB of rows per date) held every row in memory at once; in
#: date-ordered batches the peak stays that of one batch and the table keeps its date order (the
#: rows are no longer sorted but appended in the files' date order: LOAD_SETTINGS). All batches
#: commit in the sync's one transaction. (A table in CLUSTERED_BY loads a year per INSERT instead.)
LOAD_BATCH_DATES = 100

#: DuckDB's memory limit for a sync (its default is 80 % of the machine's RAM). A first load of years
#: of history is one transaction: without a limit DuckDB keeps every block it inserted in its buffer
#: pool until the commit, so the load's peak grew with the history (~170 KB per 34-index date).
#: Under the limit it writes those blocks to the database file as it goes and spills a year's sort
#: to its temporary directory (`<catalog>.tmp`, removed on close): the peak stays ~the limit
#: whatever the history (measured flat from 260 to 1,000 dates × 34 indices, for 25–40 % more CPU
#: on that first load; an ordinary refresh never reaches it). 64 MB was too little for a
#: 34-index year's sort (DuckDB's "Out of Memory Error": the sync then rolls back and says so). A
#: `memory_limit` in the DuckDB resource's `connection_config` is kept instead.
SYNC_MEMORY_LIMIT = "128MB"

#: How a sync's connection runs its loads. One thread: with several, an INSERT that keeps its
#: rows' order (preserve_insertion_order, DuckDB's default, said here as the load relies on it)
#: goes through DuckDB's batch insert, which merges each thread's partial row groups and left the
#: file ~25 % bigger, with a checkpoint on close that rewrote them; in one thread the rows are
#: appended as read, already in date order (`_apply`), so no ORDER BY date either. A first load of
#: 120 dates x 34 indices: 4.1 -> 3.2 s of CPU in its INSERTs, commit and close (benchmarks/
#: RESULTS.md, s35). The sync is one transaction in the `duckdb` pool (limit 1). A setting in the
#: DuckDB resource's `connection_config` is kept instead (more threads still load in date order,
#: only slower).
LOAD_SETTINGS = {"threads": 1, "preserve_insertion_order": "true"}

#: Tables stored clustered by these columns within each year (their "period"), for whole-history
#: lookups of one ticker (queries/weight_history.sql): DuckDB skips a row group whose min/max of
#: `index` and `ticker` exclude the value, so a year sorted by them (~6 row groups at 34 indices)
#: is read one or two row groups deep, where in date order every row group holds every ticker.
#: A date filter still skips all but the year(s) it names. The Athena tables are unaffected.
CLUSTERED_BY: dict[str, tuple[str, ...]] = {
    SILVER_ASSETS.name: ("index", "ticker"),
    GOLD_CHANGES.name: ("index", "ticker"),
}
#: Where sync records the years of a clustered table holding rows appended after the year was
#: loaded sorted (the daily run's dates, in date order): (table, year).
UNCLUSTERED_TABLE = f"{STATE_SCHEMA}.unclustered"
#: Which columns each table was last stored clustered by: a table missing there (a catalog built
#: before clustering) or clustered by other columns is reloaded whole, once.
CLUSTERED_BY_TABLE = f"{STATE_SCHEMA}.clustered_by"
#: Which lake, which change journal (its origin) and from when (the start of the last sync, ns)
#: this catalog is in step with: what a sync that reads the journal reads it from.
JOURNAL_TABLE = f"{STATE_SCHEMA}.journal"
#: The statement and comment each view (raw_captures) was last created with. Creating the view
#: binds its query, which expands its glob over every raw sidecar (~40 ms of CPU at 250 dates x 34
#: indices, growing with history); a view is read at query time, so new sidecars need no new view,
#: and only a changed statement (the lake moved, its first files) or comment creates it again.
VIEWS_TABLE = f"{STATE_SCHEMA}.views"


def lake_files(
    storage: LocalStorage,
    table_def: TableDef,
    published: dict[str, set[dt.date]] | None = None,
    only: Collection[dt.date] | None = None,
) -> dict[dt.date, tuple[str, str]]:
    """{date: (file path, identity)} of the table's published dates: one scandir of the table's
    folder and one stat per date, reading no file; a unit's manifests are listed once per sync
    (`published`, filled here). With `only` (the dates the change journal names), just those
    dates' files and manifests are looked at, no folder is listed. An unpartitioned table's files
    (one per year) are under their year's January 1st."""
    root = storage.uri()
    if not table_def.partitioned:
        return _year_files(f"{root}/{table_def.location}")
    folder = f"{root}/{table_def.location}"
    files = _stat_files(folder, PARQUET_FILE) if only is None else _stat_dates(folder, PARQUET_FILE, only)
    if published_together(table_def):
        published = {} if published is None else published
        unit = table_def.published_with
        manifests = f"{root}/{unit}/{PUBLISHED_DIR}"
        if only is not None:
            listed = set(_stat_dates(manifests, MANIFEST_FILE, only))
        elif unit not in published:
            listed = published[unit] = set(_stat_files(manifests, MANIFEST_FILE))
        else:
            listed = published[unit]
        files = {d: f for d, f in files.items() if d in listed}
    return files


def _look(
    conn: duckdb.DuckDBPyConnection,
    storage: LocalStorage,
    parquet: Sequence[TableDef],
    lake: str,
    journal_origin: str,
    started: int,
    journal: bool,
    say: Callable[[str], None] | None,
) -> tuple[dict[str, dict[dt.date, tuple[str, str]]], dict[str, tuple[str, set[dt.date]]]]:
    """What the lake's tables hold, and which dates of each that covers: every date (a listing of
    every table, `lake_files`) or, asked for `journal` and when the lake's change journal
    (lake.changes) vouches for everything since this catalog's last sync of this lake, only the
    dates it names (no folder listed: what the daily run's refresh costs no longer grows with the
    history). Returns ({table: files}, {table: (folder, dates looked at)} for a journal's look)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (lake VARCHAR, origin VARCHAR, cursor BIGINT)")
    recorded = conn.execute(f"SELECT lake, origin, cursor FROM {JOURNAL_TABLE}").fetchall()
    cursor = recorded[0][2] if len(recorded) == 1 and recorded[0][:2] == (lake, journal_origin) else None
    found = changes.changes_since(storage, cursor if journal else None, started)
    if found is None:
        if say is not None:
            why = (
                "a whole listing was asked for"
                if not journal
                else "no change journal covers the time since its last sync"
            )
            say(f"catalog: listed every table's files ({why})")
        published: dict[str, set[dt.date]] = {}  # each unit's manifests, listed once
        return {t.name: lake_files(storage, t, published) for t in parquet}, {}
    scopes = {t.name: (f"{lake}/{t.location}", found.of(t.name)) for t in parquet if t.partitioned}
    if say is not None:
        looked = sum(len(dates) for _, dates in scopes.values())
        say(
            f"catalog: looked at the {looked} table date(s) the lake's change journal names since its last sync"
        )
    return {
        t.name: lake_files(storage, t, only=scopes[t.name][1] if t.partitioned else None) for t in parquet
    }, scopes


def _columns_sql(table_def: TableDef) -> list[str]:
    return [_quote_ident(f.name) for f in table_def.schema] + (
        [PARTITION_COLUMN] if table_def.partitioned else []
    )


def _create_table_sql(table_def: TableDef) -> str:
    typed = [f"{_quote_ident(f.name)} {duckdb_type(f.type)}" for f in table_def.schema]
    if table_def.partitioned:
        typed.append(f"{PARTITION_COLUMN} DATE")
    return f"CREATE TABLE {_quote_ident(table_def.name)} ({', '.join(typed)})"


def _existing(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """{name: 'table' or 'view'} of what the main schema holds."""
    rows = conn.execute(
        "SELECT table_name, 'table' FROM duckdb_tables() WHERE schema_name = 'main' "
        "UNION ALL SELECT view_name, 'view' FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal"
    ).fetchall()
    return dict(rows)


def _columns_by_table(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, type), ...]} of every table in the main schema, in column order."""
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in conn.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
        "ORDER BY table_name, column_index"
    ).fetchall():
        found.setdefault(table, []).append((column, type_))
    return found


def _declared_columns(
    conn: duckdb.DuckDBPyConnection, table_defs: Sequence[TableDef]
) -> dict[str, list[tuple[str, str]]]:
    """{table: the columns it is created with, as duckdb_columns() names their types}, from ONE
    typed empty SELECT of every table's casts (a query per table was ~1 ms each, every sync)."""
    casts, names = [], []
    for table_def in table_defs:
        names.append(
            [f.name for f in table_def.schema] + ([PARTITION_COLUMN] if table_def.partitioned else [])
        )
        casts += [f"CAST(NULL AS {duckdb_type(f.type)})" for f in table_def.schema]
        casts += ["CAST(NULL AS DATE)"] if table_def.partitioned else []
    if not casts:
        return {}
    types = iter(str(d[1]) for d in conn.execute(f"SELECT {', '.join(casts)} LIMIT 0").description)
    return {t.name: [(name, next(types)) for name in columns] for t, columns in zip(table_defs, names)}


def _ensure_table(
    conn: duckdb.DuckDBPyConnection,
    table_def: TableDef,
    existing: dict[str, str],
    columns: dict[str, list[tuple[str, str]]],
    declared: dict[str, list[tuple[str, str]]],
) -> bool:
    """The table exists with exactly the declared columns: a view of an older catalog, or a table
    whose declared schema changed since it was loaded, is dropped and its dates reloaded. Returns
    whether the table was created now (it has no comment yet). `columns`: what every table holds
    (`_columns_by_table`); `declared`: what each should (`_declared_columns`)."""
    name = _quote_ident(table_def.name)
    kind = existing.get(table_def.name)
    if kind == "table":
        if columns.get(table_def.name) == declared[table_def.name]:
            return False
        conn.execute(f"DROP TABLE {name}")
    elif kind == "view":
        conn.execute(f"DROP VIEW {name}")
    conn.execute(f"DELETE FROM {STATE_TABLE} WHERE table_name = ?", [table_def.name])
    conn.execute(_create_table_sql(table_def))
    return True


def _ensure_view(
    conn: duckdb.DuckDBPyConnection, table_def: TableDef, statement: str, existing: dict[str, str]
) -> None:
    """The view exists as `statement` creates it, with the table's description as its comment:
    created again only when it is missing or was created otherwise (`VIEWS_TABLE`)."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {VIEWS_TABLE} (view_name VARCHAR, statement VARCHAR, comment VARCHAR)"
    )
    recorded = conn.execute(
        f"SELECT statement, comment FROM {VIEWS_TABLE} WHERE view_name = ?", [table_def.name]
    ).fetchall()
    if existing.get(table_def.name) == "view" and recorded == [(statement, table_def.description)]:
        return
    name = _quote_ident(table_def.name)
    if existing.get(table_def.name) == "table":
        conn.execute(f"DROP TABLE {name}")
    conn.execute(statement)
    conn.execute(f"COMMENT ON VIEW {name} IS {_quote_literal(table_def.description)}")
    conn.execute(f"DELETE FROM {VIEWS_TABLE} WHERE view_name = ?", [table_def.name])
    conn.execute(
        f"INSERT INTO {VIEWS_TABLE} VALUES (?, ?, ?)", [table_def.name, statement, table_def.description]
    )


def _apply(
    conn: duckdb.DuckDBPyConnection,
    table_def: TableDef,
    files: dict[dt.date, tuple[str, str]],
    scope: tuple[str, Collection[dt.date]] | None = None,
) -> int:
    """Bring one table in step with `files`; returns how many dates it (re)loaded or removed.

    `scope` (the table's folder, the dates the change journal names) says `files` holds only those
    dates: every other date the state records is taken as unchanged, so only those dates' state is
    read, except for a clustered table, whose other dates of the years it may reload
    (`_cluster_years`) are taken at their usual path (a year is reloaded whole from them)."""
    clustered = table_def.name in CLUSTERED_BY and table_def.partitioned
    layout = _cluster_state(conn, table_def.name) if clustered else (True, set())
    years = (
        _cluster_years(conn, table_def.name, scope[1], layout) if scope is not None and clustered else None
    )
    if scope is not None and not clustered:  # O(what changed): the state of the journal's dates only
        known = (
            dict(
                conn.execute(
                    f"SELECT date, identity FROM {STATE_TABLE} WHERE table_name = ? "
                    "AND date IN (SELECT unnest(?::DATE[]))",
                    [table_def.name, sorted(scope[1])],
                ).fetchall()
            )
            if scope[1]
            else {}
        )
    elif years is not None:  # O(a year): the state of the years a clustered table may reload
        known = (
            dict(
                conn.execute(
                    f"SELECT date, identity FROM {STATE_TABLE} WHERE table_name = ? "
                    "AND date BETWEEN ? AND ? AND year(date) IN (SELECT unnest(?::INTEGER[]))",
                    [table_def.name, dt.date(min(years), 1, 1), dt.date(max(years), 12, 31), sorted(years)],
                ).fetchall()
            )
            if years
            else {}
        )
    else:
        known = dict(
            conn.execute(
                f"SELECT date, identity FROM {STATE_TABLE} WHERE table_name = ?", [table_def.name]
            ).fetchall()
        )
    if scope is not None and clustered:
        folder, dates = scope[0], set(scope[1])
        files = {
            **{
                day: (_date_file(folder, day, PARQUET_FILE), identity)
                for day, identity in known.items()
                if day not in dates
            },
            **files,
        }
    changed = sorted(d for d, (_, identity) in files.items() if known.get(d) != identity)
    batches = _date_batches(changed)
    if clustered:
        changed, batches = _clustered_load(conn, table_def.name, files, changed, layout)
    stale = sorted(set(changed) | (set(known) - set(files)))
    if stale:
        if table_def.partitioned:
            conn.execute(
                f"DELETE FROM {_quote_ident(table_def.name)} "
                f"WHERE {PARTITION_COLUMN} IN (SELECT unnest(?::DATE[]))",
                [stale],
            )
        elif WHOLE in stale:  # an older version's one file: its rows were the whole table
            conn.execute(f"DELETE FROM {_quote_ident(table_def.name)}")
        else:  # a file per year: its rows are that year's dates
            conn.execute(
                f"DELETE FROM {_quote_ident(table_def.name)} WHERE {PARTITION_COLUMN} BETWEEN ? AND ? "
                f"AND year({PARTITION_COLUMN}) IN (SELECT unnest(?::INTEGER[]))",
                [stale[0], dt.date(stale[-1].year, 12, 31), [d.year for d in stale]],
            )
        conn.execute(
            f"DELETE FROM {STATE_TABLE} WHERE table_name = ? AND date IN (SELECT unnest(?::DATE[]))",
            [table_def.name, stale],
        )
    # Rows in date order: DuckDB's per-block min/max then skip most of a table for one date. The
    # paths are listed in date order and one file holds one date, so the scan's own order is date
    # order: the sync's one thread with preserve_insertion_order (LOAD_SETTINGS) inserts the rows
    # as read, no sort. A clustered table is sorted by its columns, then date, within each batch
    # (= one year).
    source = (
        f"read_parquet(?, hive_partitioning = true, hive_types = {{'{PARTITION_COLUMN}': DATE}})"
        if table_def.partitioned
        else "read_parquet(?, hive_partitioning = false)"
    )
    if table_def.partitioned and table_def.name in CLUSTERED_BY:
        order = [*map(_quote_ident, CLUSTERED_BY[table_def.name]), PARTITION_COLUMN]
        source += f" ORDER BY {', '.join(order)}"
    for batch in batches:
        paths = [files[d][0] for d in batch]
        try:
            conn.execute(
                f"INSERT INTO {_quote_ident(table_def.name)} SELECT {', '.join(_columns_sql(table_def))} "
                f"FROM {source}",
                [paths],
            )
        except duckdb.Error as exc:
            raise duckdb.Error(
                f"{table_def.name}: {_unfit(table_def, paths) or 'loading its files'}: {exc}"
            ) from exc
    if changed:  # one statement: executemany ran one INSERT per date (~0.2 ms each)
        conn.execute(
            f"INSERT INTO {STATE_TABLE} (table_name, date, identity) "
            "SELECT ?, unnest(?::DATE[]), unnest(?::VARCHAR[])",
            [table_def.name, changed, [files[d][1] for d in changed]],
        )
    return len(stale)


def _count_loaded(conn: duckdb.DuckDBPyConnection, tables: Sequence[TableDef]) -> None:
    """Record the rows of each date the state has no count for: the dates this sync (re)loaded, or
    every date of a catalog stored before the state kept counts (once). One query finds them for
    every table (a refresh with nothing new runs only that one); a table's count reads only those
    dates' rows (the BETWEEN lets DuckDB skip every row group outside their span: the daily run's
    one new date reads the table's tail), and a date whose file holds no row is recorded as 0."""
    pending: dict[str, list[dt.date]] = {}
    for name, day in conn.execute(
        f"SELECT table_name, date FROM {STATE_TABLE} WHERE rows IS NULL"
    ).fetchall():
        pending.setdefault(name, []).append(day)
    for table_def in tables:
        dates = pending.get(table_def.name)
        if not dates:
            continue
        table = _quote_ident(table_def.name)
        if table_def.partitioned:
            found = dict(
                conn.execute(
                    f"SELECT {PARTITION_COLUMN}, count(*) FROM {table} WHERE {PARTITION_COLUMN} BETWEEN ? AND ? "
                    f"AND {PARTITION_COLUMN} IN (SELECT unnest(?::DATE[])) GROUP BY {PARTITION_COLUMN}",
                    [min(dates), max(dates), dates],
                ).fetchall()
            )
        else:  # a file per year: its rows are that year's dates, under its January 1st
            found = dict(
                conn.execute(
                    f"SELECT make_date(year({PARTITION_COLUMN}), 1, 1), count(*) FROM {table} "
                    f"WHERE {PARTITION_COLUMN} BETWEEN ? AND ? GROUP BY 1",
                    [min(dates), dt.date(max(dates).year, 12, 31)],
                ).fetchall()
            )
        conn.execute(
            f"UPDATE {STATE_TABLE} SET rows = c.n FROM (SELECT unnest(?::DATE[]) AS d, unnest(?::BIGINT[]) AS n) c "
            "WHERE table_name = ? AND date = c.d",
            [dates, [found.get(d, 0) for d in dates], table_def.name],
        )


def _date_batches(dates: list[dt.date]) -> list[list[dt.date]]:
    """Sorted `dates` in consecutive batches of LOAD_BATCH_DATES."""
    return [dates[first : first + LOAD_BATCH_DATES] for first in range(0, len(dates), LOAD_BATCH_DATES)]


def _cluster_state(conn: duckdb.DuckDBPyConnection, name: str) -> tuple[bool, set[int]]:
    """Whether a clustered table is stored clustered by its CLUSTERED_BY columns now (else it is laid
    out again, every year), and the years recorded as unclustered: read once per sync and table."""
    recorded = conn.execute(
        f"SELECT columns FROM {CLUSTERED_BY_TABLE} WHERE table_name = ?", [name]
    ).fetchall()
    unclustered = conn.execute(
        f"SELECT year FROM {UNCLUSTERED_TABLE} WHERE table_name = ?", [name]
    ).fetchall()
    return recorded == [(", ".join(CLUSTERED_BY[name]),)], {year for (year,) in unclustered}


def _cluster_years(
    conn: duckdb.DuckDBPyConnection, name: str, dates: Collection[dt.date], layout: tuple[bool, set[int]]
) -> set[int] | None:
    """The years whose dates `_clustered_load` needs to see when only `dates` (the journal's) may have
    changed: theirs, the years recorded as unclustered (reloaded whole once closed) and the newest
    year the state holds (what tells whether a year is closed). None (every year) when the table is
    to be laid out again (`_cluster_state`). Reading only these keeps a journal sync from building a
    path for every date of the history (~13 ms at 1,250 dates, growing)."""
    laid_out, unclustered = layout
    if not laid_out:
        return None
    (newest,) = conn.execute(f"SELECT max(date) FROM {STATE_TABLE} WHERE table_name = ?", [name]).fetchone()
    return {d.year for d in dates} | unclustered | ({newest.year} if newest is not None else set())


def _clustered_load(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    files: dict[dt.date, tuple[str, str]],
    changed: list[dt.date],
    layout: tuple[bool, set[int]],
) -> tuple[list[dt.date], list[list[dt.date]]]:
    """What a clustered table (re)loads, and in which batches: one batch per year, sorted by
    CLUSTERED_BY (the caller's ORDER BY), so a year loaded whole is stored clustered.

    Loading a whole year is what keeps it clustered, so a year is reloaded whole from its published
    files whenever dates of it change, except the newest year: its dates arrive one daily run at a
    time, and reloading up to a year of files on every run would cost the daily run seconds. They
    are appended (in date order, as before) and the year is recorded as unclustered; once a later
    year holds a date it is no longer the newest and the next sync reloads it whole, once. A
    rebuilt or removed date of any year is therefore replaced exactly (its rows deleted, the year's
    published files loaded), and an unpublished date stays out (only `files` are loaded).
    `layout` is `_cluster_state`'s. Returns the dates to (re)load, and their batches."""
    laid_out, unclustered = layout
    by_year: dict[int, list[dt.date]] = {}
    for day in sorted(files):
        by_year.setdefault(day.year, []).append(day)
    changed_by_year: dict[int, list[dt.date]] = {}
    for day in changed:
        changed_by_year.setdefault(day.year, []).append(day)
    newest = max(by_year, default=None)
    relayout = set(by_year) if not laid_out else set()
    if not laid_out:
        conn.execute(f"DELETE FROM {CLUSTERED_BY_TABLE} WHERE table_name = ?", [name])
        conn.execute(f"INSERT INTO {CLUSTERED_BY_TABLE} VALUES (?, ?)", [name, ", ".join(CLUSTERED_BY[name])])
    load: dict[int, list[dt.date]] = {}
    still_unclustered = set()
    for year in sorted((unclustered | relayout | set(changed_by_year)) & set(by_year)):
        whole = len(changed_by_year.get(year, ())) == len(by_year[year])
        if year in relayout or year != newest or whole:
            load[year] = by_year[year]  # whole: stored sorted
        else:
            load[year] = changed_by_year.get(year, [])
            still_unclustered.add(year)
    conn.execute(f"DELETE FROM {UNCLUSTERED_TABLE} WHERE table_name = ?", [name])
    if still_unclustered:
        conn.executemany(
            f"INSERT INTO {UNCLUSTERED_TABLE} VALUES (?, ?)", [(name, y) for y in sorted(still_unclustered)]
        )
    batches = [dates for _, dates in sorted(load.items()) if dates]
    return sorted(d for dates in batches for d in dates), batches


def _unfit(table_def: TableDef, paths: list[str]) -> str:
    """Which of the files a load failed on lack a declared column (their footers, read only once a
    load has failed), so the error names the file to rebuild rather than only the column."""
    declared = {f.name for f in table_def.schema}
    unfit = []
    for path in paths:
        try:
            missing = sorted(declared - set(pq.read_schema(path).names))
        except (pa.ArrowException, OSError) as exc:
            unfit.append(f"{path} is not readable Parquet ({exc})")
            continue
        if missing:
            unfit.append(f"{path} lacks {', '.join(missing)}")
    return "; ".join(unfit[:5]) + (f" (+{len(unfit) - 5} more)" if len(unfit) > 5 else "")


class DuckDBCatalogResource(CatalogResource):
    """The lake's tables kept in a DuckDB file (default `data/warehouse.duckdb`)."""

    duckdb: DuckDBResource

    @property
    def kinds(self) -> set[str]:
        return {"duckdb"}

    @property
    def location(self) -> str:
        return str(Path(self.duckdb.database).expanduser().resolve())

    def sync(
        self,
        storage: Storage,
        tables: Sequence[TableDef],
        *,
        raw: RawInventory | None = None,
        journal: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> list[RegisteredTable]:
        """Bring every table in step with the lake's published files, in one transaction (module
        docstring); returns what each now holds (raw_captures' counts from `raw`, when given).
        With `journal`, only the dates the lake's change journal names since this catalog's last
        sync are looked at, when it can vouch for them (`_look`); `say` is told which look it was."""
        if not isinstance(storage, LocalStorage):
            raise CatalogError(
                f"the DuckDB catalog loads a local lake; {storage.uri()} is not one (use the aws mode's catalog)"
            )
        Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        parquet = [t for t in tables if t.file_format == "parquet"]
        started = time.time_ns()  # before anything is looked at: the next sync's cursor
        lake, journal_origin = storage.uri(), changes.origin(storage)
        present = {t.name: storage.has_keys(t.location) for t in tables if t.file_format != "parquet"}
        # closing(): dagster-duckdb closes the connection only when the block succeeds; a failed sync
        # must not keep the file locked for as long as the process (or its traceback) lives.
        with self.duckdb.get_connection() as conn, closing(conn):
            if "memory_limit" not in self.duckdb.connection_config:
                conn.execute(f"SET memory_limit = '{SYNC_MEMORY_LIMIT}'")
            for setting, value in LOAD_SETTINGS.items():
                if setting not in self.duckdb.connection_config:
                    conn.execute(f"SET {setting} = {value}")
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} "
                    "(table_name VARCHAR NOT NULL, date DATE NOT NULL, identity VARCHAR NOT NULL, rows BIGINT)"
                )
                # A catalog stored before the state kept row counts: its dates are counted once.
                conn.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN IF NOT EXISTS rows BIGINT")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {UNCLUSTERED_TABLE} "
                    "(table_name VARCHAR NOT NULL, year INTEGER NOT NULL)"
                )
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {CLUSTERED_BY_TABLE} "
                    "(table_name VARCHAR NOT NULL, columns VARCHAR NOT NULL)"
                )
                files, scopes = _look(conn, storage, parquet, lake, journal_origin, started, journal, say)
                existing = _existing(conn)
                # Each table's comment, set only where it differs (a new table has none).
                comments = dict(
                    conn.execute(
                        "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main'"
                    ).fetchall()
                )
                columns, declared = _columns_by_table(conn), _declared_columns(conn, parquet)
                for table_def in tables:
                    name = _quote_ident(table_def.name)
                    if table_def.file_format == "parquet":
                        created = _ensure_table(conn, table_def, existing, columns, declared)
                        _apply(conn, table_def, files[table_def.name], scopes.get(table_def.name))
                        if created or comments.get(table_def.name) != table_def.description:
                            conn.execute(
                                f"COMMENT ON TABLE {name} IS {_quote_literal(table_def.description)}"
                            )
                    else:
                        _ensure_view(
                            conn, table_def, view_sql(table_def, storage, present[table_def.name]), existing
                        )
                _count_loaded(conn, parquet)
                conn.execute(f"DELETE FROM {JOURNAL_TABLE}")
                conn.execute(f"INSERT INTO {JOURNAL_TABLE} VALUES (?, ?, ?)", [lake, journal_origin, started])
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                _rollback(conn)
                raise CatalogError(
                    f"cannot update the catalog {self.location}: {exc}; {self._limit_note(exc)}its tables "
                    "are as they were before this sync"
                ) from exc
            except BaseException:
                _rollback(conn)
                raise
            counted = {name: counts for name, *counts in conn.execute(_STATE_COUNT_SQL).fetchall()}
            registered = []
            for table_def in tables:
                if table_def.file_format == "parquet" and table_def.partitioned:
                    rows, dates, first, last = counted.get(table_def.name, (0, 0, None, None))
                elif table_def.file_format == "parquet":
                    rows, dates, first, last = conn.execute(_count_sql(table_def)).fetchone()
                else:
                    rows, dates, first, last = _sidecar_counts(table_def, storage, raw)
                registered.append(RegisteredTable(table_def.name, rows, dates, first, last))
        return registered

    def _limit_note(self, exc: duckdb.Error) -> str:
        """What to change when the sync ran out of its memory limit (SYNC_MEMORY_LIMIT)."""
        if not any(isinstance(e, duckdb.OutOfMemoryException) for e in (exc, exc.__cause__)):
            return ""
        limit = self.duckdb.connection_config.get("memory_limit", SYNC_MEMORY_LIMIT)
        return (
            f"the sync runs under DuckDB's memory_limit {limit} (set `memory_limit` in the DuckDB "
            "resource's connection_config to give it more); "
        )

    def describe(self, name: str) -> list[tuple[str, str]]:
        result = self.query(f"DESCRIBE {_quote_ident(name)}")
        return [(row[0], row[1]) for row in result.rows]

    def describe_all(self, names: Sequence[str]) -> dict[str, list[tuple[str, str]] | Exception]:
        """Every table described, as `describe` answers (DESCRIBE's names and types, in order), by
        one query of DuckDB's own column list over one read-only connection. Opening the file costs
        ~13 ms, once per table it was a quarter of a second of each catalog refresh; then one
        DESCRIBE per table was ~1 ms each, and the raw_captures view's bound its query again,
        expanding its glob over every raw sidecar (25 ms at 250 dates x 34 indices, 33 at 1,250).
        The catalog keeps a view's columns from its creation, and the sync creates it again when
        its statement changes, so they are the view's columns now."""
        conn = open_read_only(Path(self.location), LOCK_WAIT_SECONDS, None)
        found: dict[str, list[tuple[str, str]]] = {}
        try:
            for table, column, type_ in conn.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = current_database() AND schema_name = 'main' "
                "AND list_contains(?::VARCHAR[], table_name) ORDER BY table_name, column_index",
                [list(names)],
            ).fetchall():
                found.setdefault(table, []).append((column, type_))
        except duckdb.Error as exc:  # the finding of every table: the check reports it
            return {name: QueryError(str(exc)) for name in names}
        finally:
            conn.close()
        return {
            name: found[name]
            if name in found
            else QueryError(f"Catalog Error: Table with name {name} does not exist in {self.location}")
            for name in names
        }

    def expected_type(self, type_: pa.DataType) -> str:
        return _DUCKDB_NAMES.get(duckdb_type(type_), duckdb_type(type_).upper())

    def query(
        self,
        sql: str,
        *,
        wait_seconds: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> QueryResult:
        return DuckDBCatalogReader(self.duckdb.database).query(
            sql, wait_seconds=wait_seconds, on_wait=on_wait
        )


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Undo an open transaction, if there still is one: a COMMIT that failed (a full disk) has
    already ended it, and the ROLLBACK's own "no transaction is active" would hide the real cause."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.Error:
        pass
