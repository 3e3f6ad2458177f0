"""Dagster's sqlite event log, keeping its database connections open instead of one per event.

Dagster's own `SqliteEventLogStorage` creates a new SQLAlchemy engine and connection for every
event it stores (twice for an asset or check event: the run's database and the cross-run index),
commits, and closes it; closing the last connection to a WAL database also checkpoints it, and a
new engine starts with an empty compiled-statement cache. It also opens a third engine on every
asset event only to ask whether a table exists. At ~30 events per trading date that plumbing was
the largest single cost of a backfill (a 60-date single-run backfill: ~350 ms CPU per date, of
which kept connections alone save about 200; benchmarks/RESULTS.md, "The instance's event log
through kept connections").

`PooledSqliteEventLogStorage` keeps one engine per database file while the process uses it, with
one pooled connection, under Dagster's own lock; each event Dagster stores on its own is still its
own committed transaction, so readers in other processes (the webserver, the daemon) see it at once.
The batches Dagster hands over when DAGSTER_EVENT_BATCH_SIZE > 0 (a range step's per-date
materializations) are one transaction per file, all or nothing; the class sets the variable when
the environment leaves it unset (`EVENT_BATCH_SIZE`). Either way an event's rows are written with
statements built once, one transaction in the run's file and one in the index (`_store_events`). The files and their
schema are Dagster's: an instance Dagster's class wrote reads the same through this one, and one
this class wrote reads the same through Dagster's once its bodies are plain again (below).
What it stores differently, each explained where it is done:
- commits do not wait for the disk (`_without_fsync_per_commit`);
- a run plans each asset with one event naming its dates, the per-date rows Dagster reads
  in-progress and failed dates from still indexed (`_index_planned_dates`);
- a planned check's per-date row holds the planned event without the range's dates
  (`_store_asset_check_evaluation_planned`);
- the serialized Dagster objects (`event_logs.event`, `asset_check_executions.evaluation_event`,
  `asset_keys.last_materialization`) are stored zlib-compressed from a preset dictionary of what
  such bodies share (b3_platform/sqlite_body_dictionary.py), as BLOBs (`CompressedBody`).

The last one has a cost the others do not: Dagster's own class, in a process that has not imported
this module, reads a compressed row as bytes and fails. An instance this class wrote therefore no
longer reads through the stock class once `event_log_storage` is removed from dagster.yaml, until
`python -m b3_platform instance-plain` (`write_plain`) has rewritten its compressed rows as plain
text. Reads tell the two apart by the value's type (sqlite gives a BLOB as bytes, TEXT as str), so a
history mixing rows of both kinds, or of both classes, reads whole.

dagster.yaml names it under `event_log_storage` (see the repo's dagster.yaml). With no
`base_dir` it uses Dagster's default place for the event logs, `<instance folder>/history/runs`,
learnt when the instance registers itself: the same folder `dagster dev`'s throw-away instance or
`DAGSTER_HOME` would have used with the stock class.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster._check as check
import sqlalchemy as db
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster import AssetKey, DagsterInvariantViolationError, Field, StringSource
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    EVENT_TYPE_TO_PIPELINE_RUN_STATUS,
    AssetMaterializationPlannedData,
    DagsterEvent,
    DagsterEventType,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import _event_logs_directory
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import LongText, get_alembic_config
from dagster._serdes import ConfigurableClassData, serialize_value
from dagster._time import datetime_from_timestamp, utc_datetime_from_naive
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import QueuePool

from b3_platform.sqlite_body_dictionary import DICTIONARY, DICTIONARY_ID

# Database files one process keeps open at once: a run writes its own file and the index; the
# webserver reads many runs' files, and the least recently used beyond this many are closed.
MAX_OPEN_SHARDS = 16

# DAGSTER_EVENT_BATCH_SIZE, set by this storage when the environment does not set it. Dagster then
# hands a range step's per-date materializations (and a run's planned events) to `store_event_batch`
# in batches of up to this many instead of one `store_event` each. Dagster reads the variable per
# event from the process environment, which is the only place an event log can set it: the runs'
# and steps' processes make their instance, and so this storage, from dagster.yaml.
EVENT_BATCH_SIZE = 1000
_EVENT_BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"

# zlib's level for the stored bodies, chosen by measurement on a 60-date × 34-index backfill's
# bodies with the preset dictionary (benchmarks/RESULTS.md, "The instance's bodies compressed"):
# level 1 left 23.9 KB per date at ~23 µs a body, 6 left 19.2 KB at ~36 µs, 9 18.8 KB at ~55 µs.
COMPRESSION_LEVEL = 6

# Every preset dictionary bodies were ever compressed with, by the id a zlib stream names its
# dictionary by (its Adler-32). Only ever added to: a body reads with the dictionary it names.
_DICTIONARIES = {DICTIONARY_ID: DICTIONARY}
_ZLIB_FDICT = 0x20  # the header flag saying the stream was compressed with a preset dictionary

# A compressor that has already read the dictionary: each body starts from a copy of it, which
# costs no more than starting afresh without one (setting the dictionary for each body cost a
# third more).
_PRIMED = zlib.compressobj(COMPRESSION_LEVEL, zdict=DICTIONARY)

# How Dagster's serdes writes an `EventLogRecord` (its class, then its fields by name), filled with
# the record's already serialized event: `_get_asset_entry_values`. test_sqlite_storage checks it
# against `serialize_value` on real events, so a Dagster release that writes it otherwise fails there.
_RECORD_JSON = '{{"__class__": "EventLogRecord", "event_log_entry": {entry}, "storage_id": {storage_id}}}'

# Set on the dialect of each engine this class creates: only those compress what they write.
_COMPRESSING = "b3_platform_compresses_bodies"

#: The columns holding one serialized Dagster object each: (table, column).
BODY_COLUMNS = (
    (SqlEventLogStorageTable, SqlEventLogStorageTable.c.event),
    (AssetCheckExecutionsTable, AssetCheckExecutionsTable.c.evaluation_event),
    (AssetKeyTable, AssetKeyTable.c.last_materialization),
)


# The last body compressed, as (text, stream): Dagster executes an asset or check event's one
# insert statement twice, into the run's file and into the index, so its text is compressed once.
_last_compressed: tuple[str, bytes] | None = None


def compress_body(text: str) -> bytes:
    """A zlib stream of the text's UTF-8, compressed from the preset dictionary (its header names it)."""
    global _last_compressed
    last = _last_compressed
    if last is not None and last[0] is text:
        return last[1]
    compressor = _PRIMED.copy()
    stream = compressor.compress(text.encode()) + compressor.flush()
    _last_compressed = (text, stream)
    return stream


def plain_body(stored: bytes) -> str:
    """The text of a body `compress_body` stored (with whichever dictionary its header names, or
    none). Raises zlib.error for anything else: unknown dictionary, damaged or truncated stream."""
    if len(stored) < 6:
        raise zlib.error("too short for a zlib stream")
    if stored[1] & _ZLIB_FDICT:
        dictionary_id = int.from_bytes(stored[2:6], "big")
        if dictionary_id not in _DICTIONARIES:
            raise zlib.error(f"compressed with an unknown dictionary (id {dictionary_id})")
        decompressor = zlib.decompressobj(zdict=_DICTIONARIES[dictionary_id])
    else:
        decompressor = zlib.decompressobj()
    data = decompressor.decompress(stored) + decompressor.flush()
    if not decompressor.eof or decompressor.unused_data:
        raise zlib.error("truncated stream, or bytes after its end")
    return data.decode()


class CompressedBody(db.types.TypeDecorator):
    """The type of the body columns (`BODY_COLUMNS`), in place of Dagster's text type.

    Dagster's table objects are module globals shared by every storage in the process (its stock
    sqlite class, PostgreSQL's), so the type is everyone's: it compresses only what is written
    through an engine of `PooledSqliteEventLogStorage` (its dialect is marked), and everyone else
    writes exactly what Dagster would. Reading, a BLOB (bytes) is a compressed body and anything
    else is returned as stored: plain text from Dagster's class, from this class before it
    compressed, or from any other database. The DDL is the wrapped type's (TEXT, MySQL's
    LONGTEXT), so the files' schema stays Dagster's."""

    impl = db.Text
    cache_ok = True

    def process_bind_param(self, value: str | bytes | None, dialect: Dialect) -> str | bytes | None:
        # bytes are a body this module already compressed (`_store_events` compresses each body
        # once for the run's file, the index and the check's row).
        if isinstance(value, str) and getattr(dialect, _COMPRESSING, False):
            return compress_body(value)
        return value

    def process_result_value(self, value: str | bytes | None, dialect: Dialect) -> str | None:
        return plain_body(value) if isinstance(value, bytes) else value


class CompressedLongBody(CompressedBody):
    """`CompressedBody` over Dagster's `LongText` (LONGTEXT on MySQL)."""

    impl = LongText
    cache_ok = True


for _table, _column in BODY_COLUMNS:
    _column.type = (CompressedLongBody if isinstance(_column.type, LongText) else CompressedBody)()


# The event types whose rows Dagster's sqlite class copies into the index (`_store_events`).
_INDEXED = frozenset(ASSET_EVENTS | ASSET_CHECK_EVENTS | set(EVENT_TYPE_TO_PIPELINE_RUN_STATUS))
# A run's last events: once one is stored, the run writes nothing more to its file, which is closed
# (a later read opens it again). Otherwise a long backfill's runs stayed open until MAX_OPEN_SHARDS
# pushed them out, each holding its sqlite page cache (~0.7 MB per run, measured).
_RUN_ENDS = frozenset(
    {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}
)

# The statements `_store_events` executes, built once: SQLAlchemy compiles each once per engine and
# reuses it, where a statement built per event (Dagster's `insert().values(...)`) is built, coerced
# and hashed for its cache key every time. An UPDATE's SET columns are the execution's parameters
# named after columns; its WHERE takes the `w_` ones.
_INSERT_EVENT = SqlEventLogStorageTable.insert()
#: The stand-in partition key of `_index_planned_dates`' template row (text no event holds otherwise).
_PLANNED_KEY = "b3-platform-planned-date-7c1f0e9a"
_INSERT_CHECK = AssetCheckExecutionsTable.insert()
_INSERT_ASSET = AssetKeyTable.insert()
_UPDATE_ASSET = AssetKeyTable.update().where(AssetKeyTable.c.asset_key == db.bindparam("w_asset_key"))
_CHECKS = AssetCheckExecutionsTable.c
#: The planned row an evaluation replaces, by whether the evaluation names a partition.
_UPDATE_CHECK = {
    named: AssetCheckExecutionsTable.update().where(
        _CHECKS.asset_key == db.bindparam("w_asset_key"),
        _CHECKS.check_name == db.bindparam("w_check_name"),
        _CHECKS.run_id == db.bindparam("w_run_id"),
        _CHECKS.partition == db.bindparam("w_partition") if named else _CHECKS.partition.is_(None),
    )
    for named in (True, False)
}


def _is_subset_planned(event: EventLogEntry) -> bool:
    """A run's one planned event of an asset naming its dates (`_index_planned_dates`)."""
    return (
        event.is_dagster_event
        and event.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        and event.get_dagster_event().event_specific_data.partitions_subset is not None
    )


def _without_subset(event: EventLogEntry) -> EventLogEntry:
    """A planned-check event naming no dates (its row names its date)."""
    dagster_event = event.get_dagster_event()
    planned = dagster_event.event_specific_data
    if planned.partitions_subset is None:
        return event
    return event._replace(
        dagster_event=dagster_event._replace(
            event_specific_data=AssetCheckEvaluationPlanned(
                asset_key=planned.asset_key, check_name=planned.check_name
            )
        )
    )


def _without_fsync_per_commit(dbapi_connection, _record) -> None:
    """WAL with synchronous=NORMAL: a commit appends to the write-ahead log without waiting for the
    disk; the log is synced when sqlite checkpoints it into the database. A process that crashes
    or is killed loses nothing it committed; a power cut or kernel crash can roll back the last
    events (never corrupt the file). Dagster's own class syncs on every commit (FULL), which on a
    busy disk was most of a backfill's wall time (~1.4 ms per commit, ~60 commits per date)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _NotEmpty(Exception):
    """A database file with tables but no alembic stamp (see `_initdb`)."""


@functools.cache
def _migration_scripts() -> ScriptDirectory:
    """Dagster's alembic migration scripts, read once per process. Dagster's `_initdb` reads them
    twice for every database file it opens first in a process (its head revision, then the stamp
    of a new file), ~0.05 s each: every run opens the index and makes its own file."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose connections outlive an event (see the module docstring)."""

    #: `store_event_batch` takes events of any kind (b3_platform.assets.common.STORES_ANY_EVENT_BATCH:
    #: CheckBook then logs a range's per-date check evaluations as one batch).
    stores_any_event_batch = True
    #: `latest_materialization_targets` below (b3_platform.assets.common.READS_MATERIALIZATION_TARGETS).
    reads_materialization_targets = True

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_present: set[str] = set()  # tables and asset_keys columns known to exist
        self._last_serialized: tuple[EventLogEntry, str] | None = None  # see _event_to_row
        self._inst_data = inst_data
        self._base_dir_pending = base_dir is None
        # Batches pay with this class (`store_event_batch`); DAGSTER_EVENT_BATCH_SIZE=0 turns them off.
        os.environ.setdefault(_EVENT_BATCH_SIZE_VARIABLE, str(EVENT_BATCH_SIZE))
        if base_dir is not None:
            self._start(base_dir)

    def _start(self, base_dir: str) -> None:
        super().__init__(base_dir, self._inst_data)
        # Re-entrant, so that a connection asked for while one is open on this thread (Dagster
        # nests them when it checks the index's schema mid-event) waits on nothing.
        self._db_lock = threading.RLock()

    def register_instance(self, instance) -> None:
        """With no configured base_dir, the instance's folder says where the files are."""
        if self._base_dir_pending:
            self._base_dir_pending = False
            self._start(_event_logs_directory(instance.root_directory))
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    # --- connections ------------------------------------------------------------------------

    def _engine(self, shard: str) -> Engine:
        """The kept engine of a database file (created, and its schema made, on first use).
        Called under `_db_lock`."""
        if os.getpid() != self._engines_pid:
            # A forked child must not use its parent's sqlite connections: forget them without
            # closing what the parent still uses.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = db.create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                # One connection serves whichever thread holds the lock next.
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _without_fsync_per_commit)
            setattr(engine.dialect, _COMPRESSING, True)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # now the most recently used
        while len(self._engines) > MAX_OPEN_SHARDS:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """Dagster's set-up of a database file, reading its migration scripts once per process
        (`_migration_scripts`). A file stamped with a revision needs nothing (Dagster's does
        nothing either: a migration is `dagster instance migrate`'s). An empty file gets what
        Dagster's gives it, in its order: the tables, WAL, the head revision's stamp. Anything
        else (tables but no stamp, or an error, as when another process makes the file at the same
        time) is left to Dagster's own `_initdb`, which handles those cases and retries."""
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(connection)
                if context.get_current_revision():
                    return
                if db.inspect(connection).get_table_names():
                    raise _NotEmpty
            SqlEventLogStorageMetadata.create_all(engine)
            with engine.connect() as connection:
                connection.execute(db.text("PRAGMA journal_mode=WAL;"))
                MigrationContext.configure(connection).stamp(_migration_scripts(), "head")
                connection.commit()
        except (_NotEmpty, db.exc.DatabaseError, sqlite3.DatabaseError):
            SqliteEventLogStorage._initdb(self, engine, for_index_shard=for_index_shard)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        """Dagster asks this on every asset event, through an engine of its own each time. A table,
        once there, stays (migrations add tables; only a wipe of the whole index removes them, and
        `wipe` forgets these answers), so a yes is remembered."""
        if table_name in self._tables_present:
            return True
        with self._connect(INDEX_SHARD_NAME) as conn:
            present = bool(conn.dialect.has_table(conn, table_name))
        if present:
            self._tables_present.add(table_name)
        return present

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Asked (by reflecting the table's columns) on every asset event; remembered like
        `has_table`: a column, once there, stays."""
        if f"asset_keys.{column_name}" in self._tables_present:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)
        if present:
            self._tables_present.add(f"asset_keys.{column_name}")
        return present

    def _close_shard(self, shard: str) -> None:
        """Close one database file's engine, if open (the next use opens it again)."""
        with self._db_lock:
            engine = self._engines.pop(shard, None)
            if engine is not None:
                engine.dispose()

    def _close_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    # --- planned events: one per asset per run in the run's log --------------------------------

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        """A run plans each asset with one event naming its dates as a subset, instead of one event
        per asset and date through Dagster's whole event path (a 250-date backfill of 8
        partitioned assets: 8 events, not 2,000, which were ~20 % of its time). `store_event` still
        indexes one planned row per date (see `_index_planned_dates`)."""
        return True

    def _event_to_row(self, event: EventLogEntry) -> dict[str, Any]:
        """Dagster's row, the event's serialized text kept for `_get_asset_entry_values` (the
        way of an event `_store_events` hands to Dagster's `store_event`)."""
        row = super()._event_to_row(event)
        self._last_serialized = (event, row["event"])
        return row

    def _get_asset_entry_values(
        self, event: EventLogEntry, event_id: int, has_asset_key_index_cols: bool
    ) -> dict[str, Any]:
        """`_entry_values` from the text `_event_to_row` serialized a moment before, if it was
        this event's; Dagster's method otherwise."""
        last = self._last_serialized
        if last is None or last[0] is not event:
            return super()._get_asset_entry_values(event, event_id, has_asset_key_index_cols)
        return self._entry_values(event, last[1], event_id, has_asset_key_index_cols)

    def _entry_values(
        self, event: EventLogEntry, text: str, event_id: int, has_asset_key_index_cols: bool
    ) -> dict[str, Any]:
        """Dagster's values for the asset's row in `asset_keys`, without serializing a
        materialization a second time: Dagster serializes the whole event again inside the record
        it keeps as the asset's last materialization (a 34-index date's silver_assets event is
        ~28 KB of JSON, 8 such events per date); the record's text is made from `text`, the
        event's own, serialized for its insert. Anything else goes to Dagster's method."""
        dagster_event = event.dagster_event
        if dagster_event is None or not dagster_event.is_step_materialization:
            return SqliteEventLogStorage._get_asset_entry_values(
                self, event, event_id, has_asset_key_index_cols
            )
        values: dict[str, Any] = {
            "last_materialization": _RECORD_JSON.format(entry=text, storage_id=int(event_id)),
            "last_run_id": event.run_id,
        }
        if has_asset_key_index_cols:
            values["last_materialization_timestamp"] = datetime_from_timestamp(event.timestamp)
        return values

    # --- storing events -----------------------------------------------------------------------

    def store_event(self, event: EventLogEntry) -> None:
        self._store_events([event])

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A batch Dagster hands over when DAGSTER_EVENT_BATCH_SIZE > 0 (the per-date
        materializations of a range step's output, a run's planned events): stored as
        `_store_events` stores one, in one transaction per file for the whole batch. All or
        nothing: should it fail, Dagster stores the same events again one by one, and finds none
        of them written."""
        self._store_events(list(events))

    def _store_events(self, events: list[EventLogEntry]) -> None:
        """What Dagster's sqlite class writes for each event, in the same order and the same rows,
        with fewer transactions and statements:

        - the events' rows go to the run's file with one statement, in one transaction;
        - their copies in the index (asset, check and run-status events, as Dagster's class
          mirrors them), their tags, their checks' rows and their assets' rows go to the index in
          one transaction, opened inside the run file's: a failure anywhere rolls both back, so
          no event of the batch is left half-stored (only a failed commit of the run's file after
          the index committed could; sqlite's commit of a WAL append fails only on a full disk);
        - an asset's row in `asset_keys` is written once per asset, with what the events wrote
          one after the other (their values merged in order: the last event's win);
        - each event is serialized and compressed once: the run's file, the index and a check's
          row hold the same body (Dagster serializes an evaluation twice);
        - the statements are built once (module constants), so SQLAlchemy reuses their compiled
          form instead of building, coercing and hashing a new statement per event.

        A runless check evaluation or a batch spanning runs (neither occurs in a run's batch) goes
        through Dagster's `store_event`, one event at a time."""
        run_id = events[0].run_id
        if not run_id or any(event.run_id != run_id for event in events):
            for event in events:
                self._store_event_dagsters_way(event)
            return
        prepared = []
        for event in events:
            row = SqliteEventLogStorage._event_to_row(self, event)
            text = row["event"]
            row["event"] = compress_body(text)
            prepared.append((event, row, text))
        indexed = [p for p in prepared if p[0].is_dagster_event and p[0].dagster_event_type in _INDEXED]
        duplicated: list[str] = []
        with self._connect(run_id) as conn:
            conn.execute(_INSERT_EVENT, [row for _, row, _ in prepared])
            if indexed:
                with self._connect(INDEX_SHARD_NAME) as index:
                    duplicated = self._index_events(index, indexed)
        if any(event.is_dagster_event and event.dagster_event_type in _RUN_ENDS for event in events):
            self._close_shard(run_id)
        if duplicated:  # Dagster's class raises this too, after committing
            raise DagsterInvariantViolationError(
                f"Updated more than one row for asset check evaluation(s) {', '.join(duplicated)} as "
                "a result of duplicate AssetCheckPlanned events."
            )

    def _store_event_dagsters_way(self, event: EventLogEntry) -> None:
        super().store_event(event)
        if _is_subset_planned(event):
            with self.index_transaction() as conn:
                self._index_planned_dates(conn, event)

    def _index_events(self, conn: Connection, indexed: list[tuple[EventLogEntry, dict, str]]) -> list[str]:
        """The index's share of `_store_events`, on its open transaction; returns the check
        evaluations that matched more than one planned row."""
        asset_events: list[EventLogEntry] = []
        asset_event_ids: list[int] = []
        entry_values: dict[str, dict[str, Any]] = {}
        has_index_cols: bool | None = None
        duplicated: list[str] = []
        for event, row, text in indexed:
            event_id = conn.execute(_INSERT_EVENT, row).inserted_primary_key[0]
            if event_id is None:
                raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
            dagster_event = event.get_dagster_event()
            kind = dagster_event.event_type
            if kind in ASSET_EVENTS:
                if dagster_event.asset_key is None:
                    continue
                asset_events.append(event)
                asset_event_ids.append(event_id)
                if has_index_cols is None:
                    has_index_cols = self._has_asset_key_index_cols_on_connection(conn)
                values = self._entry_values(event, text, event_id, has_index_cols)
                if values:
                    entry_values.setdefault(dagster_event.asset_key.to_string(), {}).update(values)
                if _is_subset_planned(event):
                    self._index_planned_dates(conn, event)
            elif kind in ASSET_CHECK_EVENTS:
                check.invariant(
                    self.supports_asset_checks,
                    "Asset checks require a database schema migration. Run `dagster instance migrate`.",
                )
                if kind == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
                    conn.execute(_INSERT_CHECK, self._planned_check_rows(event, event_id))
                elif not self._store_check_evaluation(conn, event, row["event"], event_id):
                    duplicated.append(
                        dagster_event.asset_check_evaluation_data.asset_check_key.to_user_string()
                    )
        if asset_events:
            self._store_asset_event_tags(conn, asset_events, asset_event_ids)
        for asset_key, values in entry_values.items():
            if conn.execute(_UPDATE_ASSET, {"w_asset_key": asset_key, **values}).rowcount == 0:
                conn.execute(_INSERT_ASSET, {"asset_key": asset_key, **values})
        return duplicated

    def _store_check_evaluation(
        self, conn: Connection, event: EventLogEntry, body: bytes, event_id: int
    ) -> bool:
        """Dagster's `_update_asset_check_evaluation` on the open transaction, with the event's
        compressed body from its insert and prebuilt statements: the check's planned row for the
        run and date takes the evaluation, or a row is added when there was none. False when more
        than one planned row matched (Dagster raises; so does `_store_events`, after committing)."""
        evaluation = event.get_dagster_event().asset_check_evaluation_data
        target = evaluation.target_materialization_data
        values = {
            "execution_status": (
                AssetCheckExecutionRecordStatus.SUCCEEDED.value
                if evaluation.passed
                else AssetCheckExecutionRecordStatus.FAILED.value
            ),
            "evaluation_event": body,
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
            "materialization_event_storage_id": target.storage_id if target else None,
            "partition": evaluation.partition,
        }
        key = {
            "asset_key": evaluation.asset_key.to_string(),
            "check_name": evaluation.check_name,
            "run_id": event.run_id,
        }
        where = {f"w_{name}": value for name, value in key.items()}
        if evaluation.partition is not None:
            where["w_partition"] = evaluation.partition
        updated = conn.execute(_UPDATE_CHECK[evaluation.partition is not None], {**where, **values}).rowcount
        if updated == 0:
            conn.execute(_INSERT_CHECK, {**key, **values})
        return updated <= 1

    def _index_planned_dates(self, conn: Connection, event: EventLogEntry) -> None:
        """The per-date planned rows Dagster's class would have indexed for this subset, with one
        statement on the index's open transaction. Dagster reads a date's in-progress and failed
        status from them (the latest planned row of a date without a later materialization, and
        its run's status): without them (Dagster's DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS
        switch) a failed run's dates do not read FAILED, and automation does not see a running
        run's dates in progress and may request them again. They go to the cross-run index only,
        where those reads look; the run's own log keeps the one event it was planned with."""
        conn.execute(_INSERT_EVENT, self._planned_date_rows(event))

    def _planned_date_rows(self, event: EventLogEntry) -> list[dict[str, Any]]:
        """`_planned_date_row` of each of the subset's keys, the event serialized once."""
        keys = event.get_dagster_event().event_specific_data.partitions_subset.get_partition_keys()
        template = self._planned_date_row(event, _PLANNED_KEY)
        text = template["event"]
        return [
            {**template, "event": text.replace(_PLANNED_KEY, key), "partition": key}
            if json.dumps(key)[1:-1] == key  # written in JSON as it is (a date: always)
            else self._planned_date_row(event, key)
            for key in keys
        ]

    def _planned_date_row(self, event: EventLogEntry, key: str) -> dict[str, Any]:
        """The index row of one date's planned materialization, as Dagster's class writes it.

        `_index_planned_dates` serializes it once per subset, for a placeholder key, and puts
        each date's key in its text: the rows differ only by the key (the event's partition and
        the row's column), and building and serializing an event per date was ~1 % of a range run."""
        planned = event.get_dagster_event().event_specific_data
        return SqliteEventLogStorage._event_to_row(
            self,
            EventLogEntry(
                user_message="",
                level=event.level,
                job_name=event.job_name,
                run_id=event.run_id,
                error_info=None,
                timestamp=event.timestamp,
                step_key=event.step_key,
                dagster_event=DagsterEvent.build_asset_materialization_planned_event(
                    event.job_name,
                    event.step_key,
                    AssetMaterializationPlannedData(planned.asset_key, partition=key),
                ),
            ),
        )

    # --- planned checks -----------------------------------------------------------------------

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """Dagster's method, with `_planned_check_rows`' rows (used when an event is stored
        through Dagster's `store_event`)."""
        with self.index_connection() as conn:
            conn.execute(_INSERT_CHECK, self._planned_check_rows(event, event_id))

    def _planned_check_rows(self, event: EventLogEntry, event_id: int | None) -> list[dict[str, Any]]:
        """Dagster's rows for a planned check — one PLANNED row per date, replaced by the date's
        evaluation when the check runs — with two changes. Each row holds the planned event without
        the range's subset: Dagster stored the whole event in every row (~11 KB, nearly all of it
        the trading-day partitions definition with its holidays, about half of what a backfill
        added to the instance per date), while the row's date is its own `partition` column and the
        run's log keeps the event with its subset. And that event is serialized and compressed
        once, not once per date (which made planning a range quadratic: ~4 s of a 250-date
        backfill)."""
        planned = event.get_dagster_event().event_specific_data
        partition_keys = (
            planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        )
        shared = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": compress_body(serialize_value(_without_subset(event))),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        return [{**shared, "partition": key} for key in partition_keys]

    # --- reads ---------------------------------------------------------------------------------

    def latest_materialization_targets(
        self, asset_key: AssetKey, partitions: Sequence[str]
    ) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
        """Each of `partitions`' latest materialization of `asset_key`, as a check evaluation's
        target (storage id, run id, timestamp), read from the index's columns.

        What `fetch_materializations` gives a range run's check book (b3_platform.assets.common
        `CheckBook`) with no event body decompressed and deserialized: at 34 indices a date's
        materializations carry ~100 KB of metadata, and reading them back only for three columns
        was ~3 % of a backfill. The same rows (Dagster's latest-id-per-partition subquery, wipes
        honoured); the timestamp is the index's column, the event's own to the microsecond."""
        latest = self._latest_event_ids_by_partition_subquery(
            asset_key, [DagsterEventType.ASSET_MATERIALIZATION], asset_partitions=list(partitions)
        )
        table = SqlEventLogStorageTable
        query = db.select(table.c.partition, table.c.id, table.c.run_id, table.c.timestamp).select_from(
            table.join(latest, table.c.id == latest.c.id)
        )
        with self.index_connection() as conn:
            rows = conn.execute(query).fetchall()
        return {
            partition: AssetCheckEvaluationTargetMaterializationData(
                storage_id=storage_id,
                run_id=run_id,
                timestamp=utc_datetime_from_naive(timestamp).timestamp(),
            )
            for partition, storage_id, run_id, timestamp in rows
        }

    # --- lifecycle ----------------------------------------------------------------------------

    def wipe(self) -> None:
        """Dagster's wipe deletes the run files: close them first (an open connection would keep
        writing to the deleted file)."""
        self._close_engines()
        self._tables_present.clear()
        super().wipe()

    def dispose(self) -> None:
        if self._base_dir_pending:
            return  # never started: nothing open
        self._close_engines()
        super().dispose()


# --- the way back to Dagster's own class -------------------------------------------------------


class PlainRewriteError(Exception):
    """A database file whose compressed bodies could not all be rewritten; the file is unchanged."""


def write_plain(db_file: Path) -> int:
    """Rewrite one event-log database file's compressed bodies as the plain text Dagster's own class
    reads, in one transaction (the whole file or nothing); returns the rows rewritten. Idempotent: a
    file with no compressed body is left as it is. Plain sqlite3, so that nothing but this module's
    decompression is involved."""
    conn = sqlite3.connect(db_file, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # waits for a writer, then keeps others out until done
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rewritten = 0
        for table, column in BODY_COLUMNS:
            if table.name not in tables:
                continue
            where = f"FROM {table.name} WHERE typeof({column.name}) = 'blob'"
            for (rowid,) in conn.execute(f"SELECT rowid {where}").fetchall():
                (stored,) = conn.execute(
                    f"SELECT {column.name} FROM {table.name} WHERE rowid = ?", (rowid,)
                ).fetchone()
                try:
                    text = plain_body(stored)
                except (zlib.error, UnicodeDecodeError) as exc:
                    raise PlainRewriteError(
                        f"{db_file}: {table.name}.{column.name} of row {rowid} is not a body this "
                        f"storage compressed ({exc}); nothing in this file was changed"
                    ) from exc
                conn.execute(f"UPDATE {table.name} SET {column.name} = ? WHERE rowid = ?", (text, rowid))
                rewritten += 1
        conn.execute("COMMIT")
        return rewritten
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def event_log_files(folder: Path) -> list[Path]:
    """The event log's database files in its folder: the index and one per run."""
    return sorted(p for p in folder.glob("*.db") if p.is_file())
