"""What a catalog answers and how it fails, free of Dagster: the `query` command reads the local
catalog with these alone, so answering `select 1` does not pay for importing Dagster."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

PARTITION_COLUMN = "date"
#: How long a query waits for a catalog another process is updating (the local DuckDB file's lock).
LOCK_WAIT_SECONDS = 30.0


class CatalogError(RuntimeError):
    """The catalog is missing or cannot be reached (not a problem with the SQL)."""


class QueryError(ValueError):
    """The SQL was refused: the message is the engine's own."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]


@dataclass(frozen=True)
class RegisteredTable:
    name: str
    rows: int | None  # None: the catalog cannot count without a query (Glue)
    dates: int
    first_date: dt.date | None
    last_date: dt.date | None
