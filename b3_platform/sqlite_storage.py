"""Dagster's sqlite event log, with one kept engine per database file instead of one per event.

Dagster's own `SqliteEventLogStorage` opens a new SQLAlchemy engine and connection for every
event it stores (twice for an asset or check event: the run's database and the index), commits,
and closes; closing the last connection to a WAL database checkpoints it. At ~30 events per
trading date that plumbing was the largest single cost of a backfill. This subclass keeps the
engines (and their one pooled connection) for the few database files a process uses, so an event
is an insert and a commit on an open connection, with SQLAlchemy's compiled-statement cache warm.
Everything else — the files, their schema, what is stored — is Dagster's, unchanged: an instance
written by either class reads the same in the other.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

# Database files a process keeps open at once: a run writes its own and the index; the webserver
# reads many runs' files, the least recently used beyond this are closed.
MAX_OPEN_SHARDS = 16


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose connections outlive one event (see the module docstring)."""

    def __init__(self, base_dir: str | None = None, inst_data=None) -> None:
        if base_dir is None:
            base_dir = os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._batch: dict[str, Connection] | None = None
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data)
        # Re-entrant: a batch holds it while the events it stores connect again (see _connect).
        self._db_lock = threading.RLock()

    @classmethod
    def config_type(cls):  # noqa: D102 - Dagster's hook
        return {
            "base_dir": Field(StringSource, is_required=False),
            "event_batch_size": Field(int, is_required=False),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: D102 - Dagster's hook
        config = dict(config_value)
        batch = config.pop("event_batch_size", None)
        if batch is not None:
            os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(batch))
        return cls(inst_data=inst_data, **config)

    def _engine(self, shard: str) -> Engine:
        if os.getpid() != self._engines_pid:
            # A forked child must not share its parent's sqlite connections.
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
                max_overflow=2,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN_SHARDS:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            if self._batch is not None:
                # Inside store_event_batch: every event of the batch goes through one open
                # transaction per database file, committed once at the batch's end.
                conn = self._batch.get(shard)
                if conn is None:
                    conn = self._engine(shard).connect()
                    conn.begin()
                    self._batch[shard] = conn
                yield conn
                return
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event_batch(self, events) -> None:
        """Store a batch (Dagster batches planned events and materializations when
        DAGSTER_EVENT_BATCH_SIZE is set) in one transaction per database file instead of one
        per event; all of it or, on an error, none of it."""
        with self._db_lock:
            self._batch = {}
            try:
                super().store_event_batch(events)
                for conn in self._batch.values():
                    conn.commit()
            except BaseException:
                for conn in self._batch.values():
                    conn.rollback()
                raise
            finally:
                for conn in self._batch.values():
                    conn.close()
                self._batch = None

    def has_table(self, table_name: str) -> bool:
        """Dagster asks this on every asset event; a table, once there, stays (migrations only
        add), so a yes is remembered."""
        if table_name in self._tables_present:
            return True
        present = super().has_table(table_name)
        if present:
            self._tables_present.add(table_name)
        return present

    def _close_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()
