"""The AWS catalog: Glue Data Catalog tables over the S3 lake, read with Athena.

Tables are registered through the Glue API rather than Athena DDL: an API call costs no query and
writes no result file, and comparing what Glue holds with what the lake declares makes `sync`
idempotent (create when missing, update only when the definition changed, otherwise touch nothing).
Columns and types come from the declared pyarrow schemas (`sql_type`), so Glue says exactly what
the Parquet files hold; `date` is a partition key typed `date`, so SQL written with `DATE '…'`
literals runs unchanged on DuckDB and Athena.

Partitions are registered, not projected. `sync` lists the table's `date=` folders in S3, adds
the dates Glue lacks and removes those whose file is gone, so Glue's partition list is exactly the
dates the lake holds. Projection would save those calls, but its partitions exist for Athena only
(Spark, Glue jobs and Redshift Spectrum read the same catalog and would see none), it needs a date
range kept in the table's properties, and only real Athena could check it (moto runs no SQL). At
one partition per trading day per table, registering costs a handful of Glue calls per sync.

`raw_captures` is left out of Glue (`covers` is False for it). Athena reads every object under a
table's location. Raw's folders hold B3's response bodies (`*.json`) next to the `.meta.json`
sidecars the table is about, and both are pretty-printed over many lines, while Athena's JSON SerDe
wants one object per line. Such a table would fail or return garbage. The raw files stay in S3 as
received; locally DuckDB reads the sidecars by glob.

Glue keeps no row counts. Counting would need an Athena query per table (billed, seconds each) or a
read of every file's footer on every sync. So `sync` reports `rows=None` (not counted), with the
dates it registered.

Credentials come from the standard AWS chain (b3_platform.aws.client); the endpoint is explicit only
for S3-compatible stand-ins such as moto.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from b3_platform import aws
from b3_platform.catalog.base import (
    PARTITION_COLUMN,
    CatalogError,
    CatalogResource,
    QueryError,
    QueryResult,
    RegisteredTable,
)
from b3_platform.catalog.types import sql_type
from b3_platform.lake.paths import date_dir
from b3_platform.lake.schemas import TableDef
from b3_platform.lake.storage import Storage
from b3_platform.lake.tables import partition_dates

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
MAX_POLL_INTERVAL = 5.0
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
ALREADY_EXISTS = "AlreadyExistsException"
NOT_FOUND = "EntityNotFoundException"
#: Athena's words for a request its setup refuses; any other InvalidRequestException is about the SQL.
_SETUP_WORDS = ("workgroup", "output location", "outputlocation")
IAM_HINT = "the pipeline's IAM policy is in infra/b3_platform.yaml"


# ------------------------------------------------------------------------------- Glue definitions


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
        "PartitionKeys": PARTITION_KEYS,
        "StorageDescriptor": storage_descriptor(table_def, storage.uri(table_def.location)),
    }


def partition_input(table_def: TableDef, storage: Storage, day: dt.date) -> dict[str, Any]:
    """A date's partition carries the table's columns, so Athena never sees two schemas disagree."""
    location = storage.uri(f"{table_def.location}{date_dir(day)}/")
    return {"Values": [day.isoformat()], "StorageDescriptor": storage_descriptor(table_def, location)}


def _descriptor_signature(descriptor: dict[str, Any]) -> tuple:
    """What sync owns in a storage descriptor. Glue may add fields of its own; those don't count."""
    return (
        tuple((c["Name"], c["Type"], c.get("Comment", "")) for c in descriptor.get("Columns", [])),
        descriptor.get("Location"),
        descriptor.get("InputFormat"),
        descriptor.get("OutputFormat"),
        descriptor.get("SerdeInfo", {}).get("SerializationLibrary"),
    )


def _table_signature(table: dict[str, Any]) -> tuple:
    parameters = table.get("Parameters") or {}
    return (
        table.get("Description", ""),
        table.get("TableType"),
        tuple((k["Name"], k["Type"], k.get("Comment", "")) for k in table.get("PartitionKeys", [])),
        tuple(parameters.get(k) for k in TABLE_PARAMETERS),
        _descriptor_signature(table.get("StorageDescriptor", {})),
    )


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------- Athena result values


def _timestamp_with_zone(text: str) -> dt.datetime:
    """Athena writes `2025-07-10 12:00:00.000 UTC` (a zone name) or an offset."""
    stamp, _, zone = text.rpartition(" ")
    if zone in ("UTC", "Z"):
        return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.timezone.utc)
    if zone[:1] in "+-":
        return dt.datetime.fromisoformat(stamp + zone)
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=ZoneInfo(zone))


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    **dict.fromkeys(("varchar", "char", "string"), str),
    **dict.fromkeys(("tinyint", "smallint", "integer", "int", "bigint"), int),
    **dict.fromkeys(("double", "real", "float"), float),
    "decimal": Decimal,
    "boolean": lambda text: text.lower() == "true",
    "date": dt.date.fromisoformat,
    "timestamp": dt.datetime.fromisoformat,
    "timestamp with time zone": _timestamp_with_zone,
}


def _converter(athena_type: str) -> Callable[[str | None], Any]:
    """How a column's text becomes a Python value; types without one (arrays, maps…) stay text."""
    convert = _CONVERTERS.get(athena_type.lower(), str)
    return lambda text: None if text is None else convert(text)


def _type_name(info: dict[str, Any]) -> str:
    if info["Type"] == "decimal" and "Precision" in info:
        return f"decimal({info['Precision']},{info.get('Scale', 0)})"
    return info["Type"]


# ---------------------------------------------------------------------------------------- resource


class GlueAthenaCatalogResource(CatalogResource):
    """Glue tables over the S3 lake (`sync`), SQL through Athena (`query`)."""

    region: str = Field(description="AWS region of the Glue catalog and the Athena workgroup")
    endpoint_url: str | None = Field(
        default=None, description="Glue/Athena endpoint (a stand-in such as moto); default: AWS's own"
    )
    database: str = Field(description="Glue database holding the lake's tables (created if missing)")
    workgroup: str = Field(description="Athena workgroup queries run in")
    output_location: str = Field(description="s3://bucket/prefix/ where Athena writes query results")
    poll_interval_seconds: float = Field(
        default=0.5, description="First wait between query status polls; grows to 5 s for long queries"
    )
    timeout_seconds: float = Field(
        default=300.0, description="A query still running after this long is stopped and reported"
    )
    max_attempts: int = Field(
        default=5, description="Attempts per AWS call (botocore standard retries: throttling, 5xx)"
    )

    @property
    def location(self) -> str:
        endpoint = f", endpoint {self.endpoint_url}" if self.endpoint_url else ""
        return f"glue://{self.database} (Athena workgroup {self.workgroup}, region {self.region}{endpoint})"

    def covers(self, table_def: TableDef) -> bool:
        return table_def.file_format == "parquet"

    def expected_type(self, type_: pa.DataType) -> str:
        return sql_type(type_)

    def _client(self, service: str):
        # aws.client caches clients per process: `describe` per table costs no new service model.
        return aws.client(service, self.region, self.endpoint_url, max_attempts=self.max_attempts)

    # ---------------------------------------------------------------------------------------- Glue

    def _glue_error(self, exc: Exception, table: str | None = None) -> CatalogError:
        """A CatalogError naming the database (and table), and what to check."""
        what = f"table {self.database}.{table}" if table else f"database {self.database}"
        if not isinstance(exc, ClientError):
            endpoint = f", endpoint {self.endpoint_url}" if self.endpoint_url else ""
            return CatalogError(f"cannot reach Glue for {what} (region {self.region}{endpoint}): {exc}")
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        if code in ("AccessDeniedException", "AccessDenied"):
            return CatalogError(
                f"Glue {exc.operation_name} on {what}: access denied; the credentials in use lack "
                f"the permission ({IAM_HINT})"
            )
        if code == NOT_FOUND:
            return CatalogError(
                f"Glue {exc.operation_name} on {what}: not found ({message}); materialize "
                "athena_tables to register the lake's tables"
            )
        return CatalogError(f"Glue {exc.operation_name} on {what}: {code}: {message}")

    def _glue(self, glue, operation: str, table: str | None = None, *, missing_ok: bool = False, **kwargs):
        """One Glue call; with `missing_ok`, None when the entity does not exist."""
        try:
            return getattr(glue, operation)(**kwargs)
        except ClientError as exc:
            if missing_ok and exc.response.get("Error", {}).get("Code") == NOT_FOUND:
                return None
            raise self._glue_error(exc, table) from exc
        except BotoCoreError as exc:
            raise self._glue_error(exc, table) from exc

    def _batch(self, glue, operation: str, table: str, tolerated: str | None, **kwargs) -> None:
        """A batch call; Glue reports per-partition failures in the answer instead of raising.

        `tolerated` is the error a concurrent sync leaves behind (a partition already added or
        already removed): the catalog then holds what was wanted anyway."""
        answer = self._glue(glue, operation, table, DatabaseName=self.database, TableName=table, **kwargs)
        errors = answer.get("Errors") or []
        failed = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") != tolerated]
        if failed:
            details = "; ".join(
                f"{e.get('PartitionValues') or e.get('PartitionValueList')}: "
                f"{e['ErrorDetail'].get('ErrorCode')} {e['ErrorDetail'].get('ErrorMessage', '')}".rstrip()
                for e in failed[:5]
            )
            raise CatalogError(
                f"Glue {operation} on table {self.database}.{table}: {len(failed)} partition(s) "
                f"failed: {details}"
            )

    def _ensure_database(self, glue) -> None:
        if self._glue(glue, "get_database", missing_ok=True, Name=self.database) is not None:
            return
        description = "B3 index portfolios: the b3_platform lake's tables (registered by athena_tables)"
        try:
            glue.create_database(DatabaseInput={"Name": self.database, "Description": description})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != ALREADY_EXISTS:  # a concurrent sync's
                raise self._glue_error(exc) from exc
        except BotoCoreError as exc:
            raise self._glue_error(exc) from exc

    def sync(self, storage: Storage, tables: Sequence[TableDef]) -> list[RegisteredTable]:
        """Create or update each covered table and register exactly its dates present in the lake.

        Tables it does not cover (see `covers`) are skipped. `rows` is None: Glue has no counts."""
        glue = self._client("glue")
        self._ensure_database(glue)
        return [self._sync_table(glue, storage, t) for t in tables if self.covers(t)]

    def _sync_table(self, glue, storage: Storage, table_def: TableDef) -> RegisteredTable:
        name = table_def.name
        wanted = table_input(table_def, storage)
        current = self._glue(glue, "get_table", name, missing_ok=True, DatabaseName=self.database, Name=name)
        if current is None:
            self._glue(glue, "create_table", name, DatabaseName=self.database, TableInput=wanted)
        elif _table_signature(current["Table"]) != _table_signature(wanted):
            # Keep parameters other tools set (statistics, Lake Formation); ours win.
            wanted["Parameters"] = {**(current["Table"].get("Parameters") or {}), **TABLE_PARAMETERS}
            self._glue(glue, "update_table", name, DatabaseName=self.database, TableInput=wanted)
        dates = partition_dates(storage, table_def)
        self._sync_partitions(glue, storage, table_def, dates)
        first, last = (dates[0], dates[-1]) if dates else (None, None)
        return RegisteredTable(name, None, len(dates), first, last)

    def _sync_partitions(self, glue, storage: Storage, table_def: TableDef, dates: list[dt.date]) -> None:
        name = table_def.name
        registered: dict[str, dict[str, Any]] = {}
        try:
            pages = glue.get_paginator("get_partitions").paginate(DatabaseName=self.database, TableName=name)
            for page in pages:
                registered.update({p["Values"][0]: p for p in page.get("Partitions", [])})
        except (ClientError, BotoCoreError) as exc:
            raise self._glue_error(exc, name) from exc
        wanted = {day.isoformat(): partition_input(table_def, storage, day) for day in dates}
        missing = [p for value, p in wanted.items() if value not in registered]
        stale = [
            {"PartitionValueList": [value], "PartitionInput": p}
            for value, p in wanted.items()
            if value in registered
            and _descriptor_signature(registered[value].get("StorageDescriptor", {}))
            != _descriptor_signature(p["StorageDescriptor"])
        ]
        gone = [{"Values": [value]} for value in registered if value not in wanted]
        for chunk in _chunks(missing, CREATE_BATCH):
            self._batch(glue, "batch_create_partition", name, ALREADY_EXISTS, PartitionInputList=chunk)
        for chunk in _chunks(stale, CREATE_BATCH):
            self._batch(glue, "batch_update_partition", name, None, Entries=chunk)
        for chunk in _chunks(gone, DELETE_BATCH):
            self._batch(glue, "batch_delete_partition", name, NOT_FOUND, PartitionsToDelete=chunk)

    def describe(self, name: str) -> list[tuple[str, str]]:
        glue = self._client("glue")
        table = self._glue(glue, "get_table", name, DatabaseName=self.database, Name=name)["Table"]
        columns = table.get("StorageDescriptor", {}).get("Columns", []) + table.get("PartitionKeys", [])
        return [(c["Name"], c["Type"]) for c in columns]

    # -------------------------------------------------------------------------------------- Athena

    def _athena_error(self, exc: Exception, action: str, query_id: str | None = None) -> CatalogError:
        where = f"Athena workgroup {self.workgroup!r} (region {self.region}"
        where += f", endpoint {self.endpoint_url})" if self.endpoint_url else ")"
        query = f" (query {query_id})" if query_id else ""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code in ("AccessDeniedException", "AccessDenied"):
                return CatalogError(
                    f"cannot {action} in {where}{query}: access denied; the credentials in use lack the "
                    f"permission ({IAM_HINT})"
                )
            return CatalogError(f"cannot {action} in {where}{query}: {code}: {message}")
        return CatalogError(f"cannot reach {where} to {action}{query}: {exc}")

    def _athena(self, athena, operation: str, action: str, query_id: str | None = None, **kwargs):
        try:
            return getattr(athena, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._athena_error(exc, action, query_id) from exc

    def query(self, sql: str) -> QueryResult:
        """Run `sql` on Athena over the Glue database, wait for it, and return its rows typed."""
        athena = self._client("athena")
        query_id = self._start(athena, sql)
        execution = self._wait(athena, query_id)
        status = execution["Status"]
        reason = status.get("StateChangeReason")
        if status["State"] == "FAILED":
            raise QueryError(f"{reason or 'Athena gave no reason'} (Athena query {query_id})")
        if status["State"] == "CANCELLED":
            raise QueryError(f"Athena query {query_id} was cancelled" + (f": {reason}" if reason else ""))
        # A SELECT's results start with a row of column labels; DDL and utility statements' do not.
        return self._results(athena, query_id, has_header=execution.get("StatementType", "DML") == "DML")

    def _start(self, athena, sql: str) -> str:
        try:
            started = athena.start_query_execution(
                QueryString=sql,
                QueryExecutionContext={"Database": self.database},
                WorkGroup=self.workgroup,
                ResultConfiguration={"OutputLocation": self.output_location},
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = error.get("Message", "")
            # Athena parses the SQL before queuing it: a syntax error comes back here, not as FAILED.
            if error.get("Code") == "InvalidRequestException" and not any(
                w in message.lower() for w in _SETUP_WORDS
            ):
                raise QueryError(message) from exc
            raise self._athena_error(exc, "start a query") from exc
        except BotoCoreError as exc:
            raise self._athena_error(exc, "start a query") from exc
        return started["QueryExecutionId"]

    def _wait(self, athena, query_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        interval = self.poll_interval_seconds
        while True:
            execution = self._athena(
                athena, "get_query_execution", "follow the query", query_id, QueryExecutionId=query_id
            )["QueryExecution"]
            state = execution["Status"]["State"]
            if state in TERMINAL_STATES:
                return execution
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Left running, it would keep scanning (and billing) with nobody to read its result.
                self._athena(
                    athena, "stop_query_execution", "stop the query", query_id, QueryExecutionId=query_id
                )
                raise CatalogError(
                    f"Athena query {query_id} timed out after {self.timeout_seconds:g} s (still {state}) "
                    "and was stopped"
                )
            time.sleep(min(interval, remaining))
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)

    def _results(self, athena, query_id: str, has_header: bool) -> QueryResult:
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple] = []
        converters: list[Callable[[str | None], Any]] = []
        try:
            pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
            for number, page in enumerate(pages):
                result_set = page["ResultSet"]
                if number == 0:
                    info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                    columns = [c["Name"] for c in info]
                    types = [_type_name(c) for c in info]
                    converters = [_converter(c["Type"]) for c in info]
                page_rows = result_set.get("Rows", [])
                if number == 0 and has_header:
                    page_rows = page_rows[1:]
                for row in page_rows:
                    data = row.get("Data", [])
                    rows.append(tuple(conv(d.get("VarCharValue")) for conv, d in zip(converters, data)))
        except (ClientError, BotoCoreError) as exc:
            raise self._athena_error(exc, "read the results", query_id) from exc
        return QueryResult(columns, types, rows)
