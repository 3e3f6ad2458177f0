"""Reading the local catalog (a DuckDB file of tables kept in step with the lake), free of Dagster.

`python -m b3_platform query` on the local lake needs only this: the file holds everything a query
reads, so opening the file read-only and running the SQL answers in a fraction of a second, without
importing Dagster (which costs most of a second). `DuckDBCatalogResource.query` runs through here
too, so the command and the asset graph read the catalog the same way.
Only one process may hold a DuckDB file for writing: while a sync holds it, a reader waits (a
bounded time, saying so once) instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from b3_platform.catalog.results import LOCK_WAIT_SECONDS, CatalogError, QueryError, QueryResult

_LOCK_POLL_SECONDS = (0.05, 0.1, 0.2, 0.5)


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    return "Could not set lock" in str(exc)


@dataclass(frozen=True)
class DuckDBCatalogReader:
    """Runs SQL over the catalog file at `database` (`~` expanded).

    `config`: DuckDB settings for this reader's connections only (e.g. the dashboard's
    `memory_limit`), given when each is opened; None (the query command's, the asset graph's): DuckDB's
    defaults, so no caller's limit bounds another's. DuckDB refuses a second configuration for a file
    this process already has open (`duckdb.ConnectionException`, raised as a CatalogError)."""

    database: str
    config: Mapping[str, str] | None = None

    @property
    def location(self) -> str:
        return str(Path(self.database).expanduser().resolve())

    def query(
        self,
        sql: str,
        *,
        wait_seconds: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> QueryResult:
        """Run `sql`; a catalog another process is updating is waited for up to `wait_seconds`
        (LOCK_WAIT_SECONDS when None), and `on_wait` is told once, with a sentence, when that wait starts."""
        path = Path(self.location)
        if not path.is_file():
            raise CatalogError(
                f"no catalog at {path}: build it with `python -m b3_platform demo`, or materialize "
                "the athena_tables asset"
            )
        conn = open_read_only(
            path, LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds, on_wait, self.config
        )
        try:
            cursor = conn.execute(sql)
            if cursor.description is None:
                return QueryResult([], [], [])
            columns = [d[0] for d in cursor.description]
            types = [str(d[1]) for d in cursor.description]
            return QueryResult(columns, types, cursor.fetchall())
        except duckdb.Error as exc:
            message = str(exc)
            if "No files found" in message:
                message += (
                    "\n(the catalog's raw_captures view reads files that are not there: was the lake "
                    "moved or deleted? Rebuild the catalog by materializing athena_tables.)"
                )
            raise QueryError(message) from exc
        finally:
            conn.close()


def open_read_only(
    path: Path,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None,
    config: Mapping[str, str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """The catalog opened read-only (with `config`'s DuckDB settings, when given). While another
    process writes it (a sync holds DuckDB's file lock for a moment), wait up to `wait_seconds`,
    telling `on_wait` once, instead of failing."""
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        try:
            return duckdb.connect(str(path), read_only=True, config=dict(config or {}))
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc):
                raise CatalogError(f"cannot open the catalog {path}: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CatalogError(
                    f"the catalog {path} is still locked by another process after {wait_seconds:g} s "
                    f"(a materialization updating it?); try again when it finishes. DuckDB: {exc}"
                ) from exc
            if attempt == 0 and on_wait is not None:
                on_wait(
                    f"the catalog {path} is being updated by another process; waiting up to "
                    f"{wait_seconds:g} s for it"
                )
            time.sleep(min(_LOCK_POLL_SECONDS[min(attempt, len(_LOCK_POLL_SECONDS) - 1)], remaining))
            attempt += 1
