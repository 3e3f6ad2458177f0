"""What the Glue Data Catalog holds for a lake table: its TableInput and one PartitionInput per date.

Tables are registered through the Glue API rather than Athena DDL: an API call costs no query and
writes no result file, and comparing what Glue holds with what the lake declares (the signatures
below) makes `sync` idempotent (create when missing, update only when the definition changed,
otherwise touch nothing). Columns and types come from the declared pyarrow schemas (`sql_type`),
so Glue says exactly what the Parquet files hold; `date` is a partition key typed `date`, so SQL
written with `DATE '…'` literals runs unchanged on DuckDB and Athena.

Partitions are registered, not projected: `sync` adds the dates Glue lacks and removes those whose
file is gone, so Glue's partition list is exactly the dates the lake holds. Projection would save
those calls, but its partitions exist for Athena only (Spark, Glue jobs and Redshift Spectrum read
the same catalog and would see none), it needs a date range kept in the table's properties, and
only real Athena could check it (moto runs no SQL). At one partition per trading day per table,
registering costs a handful of Glue calls per sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from b3_platform.catalog.base import PARTITION_COLUMN
from b3_platform.catalog.types import sql_type
from b3_platform.lake.paths import date_dir
from b3_platform.lake.schemas import TableDef
from b3_platform.lake.storage import Storage

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
TABLE_PARAMETERS = {"classification": "parquet", "EXTERNAL": "TRUE"}
PARTITION_KEYS = [
    {"Name": PARTITION_COLUMN, "Type": "date", "Comment": "Trading date: the date=YYYY-MM-DD/ folder"}
]
#: Glue's limits: partitions per BatchCreatePartition / BatchUpdatePartition, per BatchDeletePartition.
CREATE_BATCH = 100
DELETE_BATCH = 25
COMMENT_MAX = 255  # Glue rejects longer column comments
#: Glue's error codes sync expects: an entity a concurrent sync created or removed first.
ALREADY_EXISTS = "AlreadyExistsException"
NOT_FOUND = "EntityNotFoundException"


def _comment(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"description", b"").decode()[:COMMENT_MAX]


def storage_descriptor(table_def: TableDef, location: str) -> dict[str, Any]:
    return {
        "Columns": [
            {"Name": f.name, "Type": sql_type(f.type), "Comment": _comment(f)} for f in table_def.schema
        ],
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
    }


def table_input(table_def: TableDef, storage: Storage) -> dict[str, Any]:
    return {
        "Name": table_def.name,
        "Description": table_def.description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": dict(TABLE_PARAMETERS),
        # An unpartitioned table (coverage) is its location's files, a year each; Athena reads them all.
        "PartitionKeys": PARTITION_KEYS if table_def.partitioned else [],
        "StorageDescriptor": storage_descriptor(table_def, storage.uri(table_def.location)),
    }


def partition_input(table_def: TableDef, storage: Storage, day: dt.date) -> dict[str, Any]:
    """A date's partition carries the table's columns, so Athena never sees two schemas disagree."""
    location = storage.uri(f"{table_def.location}{date_dir(day)}/")
    return {"Values": [day.isoformat()], "StorageDescriptor": storage_descriptor(table_def, location)}


def descriptor_signature(descriptor: dict[str, Any]) -> tuple:
    """What sync owns in a storage descriptor. Glue may add fields of its own; those don't count."""
    return (
        tuple((c["Name"], c["Type"], c.get("Comment", "")) for c in descriptor.get("Columns", [])),
        descriptor.get("Location"),
        descriptor.get("InputFormat"),
        descriptor.get("OutputFormat"),
        descriptor.get("SerdeInfo", {}).get("SerializationLibrary"),
    )


def table_signature(table: dict[str, Any]) -> tuple:
    """What sync owns in a table (a TableInput or GetTable's answer): equal signatures, no update."""
    parameters = table.get("Parameters") or {}
    return (
        table.get("Description", ""),
        table.get("TableType"),
        tuple((k["Name"], k["Type"], k.get("Comment", "")) for k in table.get("PartitionKeys", [])),
        tuple(parameters.get(k) for k in TABLE_PARAMETERS),
        descriptor_signature(table.get("StorageDescriptor", {})),
    )


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
