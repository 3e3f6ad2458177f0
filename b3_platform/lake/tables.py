"""Parquet tables in the lake: one file per table per date, written whole in one atomic put."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from b3_platform.lake.paths import date_in_key, table_partition_key
from b3_platform.lake.schemas import TableDef
from b3_platform.lake.storage import Storage


class SchemaMismatch(ValueError):
    pass


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    # Statistics stay on (DuckDB/Athena prune with them); dictionary encoding suits repeated strings.
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def schema_problem(table_def: TableDef, day: dt.date, table: pa.Table) -> str | None:
    """How `table` differs from the declared schema (None when it matches), said so a reader
    sees both: a wrong column is refused before anything of the date is written."""
    if table.schema.equals(table_def.schema, check_metadata=False):
        return None
    return (
        f"{table_def.name} {day}: schema differs from the declared one:\n"
        f"got      {table.schema.to_string(show_field_metadata=False)}\n"
        f"expected {table_def.schema.to_string(show_field_metadata=False)}"
    )


def write_partition(storage: Storage, table_def: TableDef, day: dt.date, table: pa.Table) -> str:
    """Replace the table's file for `day` with `table` (exactly; atomically). Returns the key."""
    problem = schema_problem(table_def, day, table)
    if problem:
        raise SchemaMismatch(problem)
    key = table_partition_key(table_def.location, day)
    storage.write_bytes(key, to_parquet_bytes(table.replace_schema_metadata(None).cast(table_def.schema)))
    return key


def read_partition(
    storage: Storage, table_def: TableDef, day: dt.date, columns: list[str] | None = None
) -> pa.Table | None:
    """The table's file for `day` (only `columns`, when given), or None when there is none."""
    data = storage.read_if_exists(table_partition_key(table_def.location, day))
    if data is None:
        return None
    return pq.read_table(pa.BufferReader(data), columns=columns)


def delete_partition(storage: Storage, table_def: TableDef, day: dt.date) -> bool:
    key = table_partition_key(table_def.location, day)
    if storage.exists(key):
        storage.delete(key)
        return True
    return False


def partition_dates(storage: Storage, table_def: TableDef) -> list[dt.date]:
    return sorted({d for k in storage.list_keys(table_def.location) if (d := date_in_key(k))})


def file_schema_problems(storage: Storage, table_def: TableDef, day: dt.date) -> list[str]:
    """How the file of `day` differs from the declared schema (names and types; none = matches)."""
    key = table_partition_key(table_def.location, day)
    schema = pq.read_schema(pa.BufferReader(storage.read_bytes(key)))
    got = [(f.name, f.type) for f in schema]
    want = [(f.name, f.type) for f in table_def.schema]
    if got == want:
        return []
    missing = [n for n, _ in want if n not in dict(got)]
    extra = [n for n, _ in got if n not in dict(want)]
    changed = [f"{n} {dict(got)[n]} (declared {t})" for n, t in want if n in dict(got) and dict(got)[n] != t]
    parts = [
        f"missing {', '.join(missing)}" if missing else "",
        f"extra {', '.join(extra)}" if extra else "",
        f"types {'; '.join(changed)}" if changed else "",
    ]
    return [f"{key}: " + ("; ".join(p for p in parts if p) or "columns in another order")]
