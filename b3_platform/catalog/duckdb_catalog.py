"""The local catalog: one DuckDB file holding a view per lake table over its Parquet files.

Views read the files at query time (`read_parquet` over the table's `date=*/` folders, the `date`
partition typed DATE), so a materialized date is queryable at once; `sync` only has to run when
tables or schemas change, and the `athena_tables` asset runs it after every materialization anyway.
A table of a layer published together (silver, gold: lake.tables) shows only the dates whose
manifest exists, also read at query time: a date being rewritten, or left half-written by a killed
run, is absent from the view rather than partly there.
Only one process may hold a DuckDB file for writing: writers go through dagster-duckdb's
`DuckDBResource` (which retries on the lock) inside the `duckdb` pool (limit 1 in dagster.yaml);
readers open the file read-only (duckdb_reader, which the `query` command uses without Dagster),
and wait (a bounded time, saying so) while a writer holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from b3_platform.catalog.base import (
    PARTITION_COLUMN,
    CatalogError,
    CatalogResource,
    QueryResult,
    RegisteredTable,
)
from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader
from b3_platform.catalog.types import duckdb_type
from b3_platform.lake.schemas import TableDef
from b3_platform.lake.storage import Storage
from b3_platform.lake.tables import manifest_pattern, partition_dates, published_together

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
    """The view of a table: its declared columns, then `date`; typed and empty when no file exists."""
    columns = [_quote_ident(f.name) for f in table_def.schema]
    name = _quote_ident(table_def.name)
    if not has_files:
        typed = [f"CAST(NULL AS {duckdb_type(f.type)}) AS {_quote_ident(f.name)}" for f in table_def.schema]
        typed.append(f"CAST(NULL AS DATE) AS {PARTITION_COLUMN}")
        return f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(typed)} WHERE false"
    pattern = f"{storage.uri(table_def.location).rstrip('/')}/{table_def.file_pattern}"
    if table_def.file_format == "json":
        return f"CREATE OR REPLACE VIEW {name} AS {_SIDECAR_SELECT.format(pattern=_quote_literal(pattern))}"
    sql = (
        f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(columns)}, {PARTITION_COLUMN} "
        f"FROM read_parquet({_quote_literal(pattern)}, hive_partitioning = true, "
        f"hive_types = {{'{PARTITION_COLUMN}': DATE}})"
    )
    if published_together(table_def):
        manifests = storage.uri(manifest_pattern(table_def.published_with))
        sql += (
            f" WHERE {PARTITION_COLUMN} IN (SELECT CAST(regexp_extract(file, "
            f"'date=([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})/', 1) AS DATE) FROM glob({_quote_literal(manifests)}))"
        )
    return sql


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


def _has_files(storage: Storage, table_def: TableDef) -> bool:
    """Whether the view has files to read (its glob must match one): any file, and for a table
    published together also a published date."""
    if not storage.list_keys(table_def.location):
        return False
    return not published_together(table_def) or bool(partition_dates(storage, table_def))


class DuckDBCatalogResource(CatalogResource):
    """Views over the lake in a DuckDB file (default `data/warehouse.duckdb`)."""

    duckdb: DuckDBResource

    @property
    def kinds(self) -> set[str]:
        return {"duckdb"}

    @property
    def location(self) -> str:
        return str(Path(self.duckdb.database).expanduser().resolve())

    def sync(self, storage: Storage, tables: Sequence[TableDef]) -> list[RegisteredTable]:
        """Create or replace one view per table, in one transaction; returns what each now holds."""
        Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        present = {t.name: _has_files(storage, t) for t in tables}
        # closing(): dagster-duckdb closes the connection only when the block succeeds; a failed sync
        # must not keep the file locked for as long as the process (or its traceback) lives.
        with self.duckdb.get_connection() as conn, closing(conn):
            conn.execute("BEGIN TRANSACTION")
            try:
                for table_def in tables:
                    conn.execute(view_sql(table_def, storage, present[table_def.name]))
                    conn.execute(
                        f"COMMENT ON VIEW {_quote_ident(table_def.name)} IS "
                        f"{_quote_literal(table_def.description)}"
                    )
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                _rollback(conn)
                raise CatalogError(
                    f"cannot update the catalog {self.location}: {exc}; its views are as they were "
                    "before this sync"
                ) from exc
            except BaseException:
                _rollback(conn)
                raise
            registered = []
            for table_def in tables:
                rows, dates, first, last = conn.execute(
                    f"SELECT count(*), count(DISTINCT {PARTITION_COLUMN}), min({PARTITION_COLUMN}), "
                    f"max({PARTITION_COLUMN}) FROM {_quote_ident(table_def.name)}"
                ).fetchone()
                registered.append(RegisteredTable(table_def.name, rows, dates, first, last))
        return registered

    def describe(self, name: str) -> list[tuple[str, str]]:
        result = self.query(f"DESCRIBE {_quote_ident(name)}")
        return [(row[0], row[1]) for row in result.rows]

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
