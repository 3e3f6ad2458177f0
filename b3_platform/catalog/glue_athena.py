"""The AWS catalog: Glue Data Catalog tables over the S3 lake (`sync`), read with Athena (`query`).

What Glue holds for a table and why (API rather than DDL, registered partitions rather than
projection) is in catalog/glue.py; how Athena's text results become values, in catalog/athena.py.
This module makes the calls: each Glue or Athena failure becomes a CatalogError naming the
database, table or workgroup and what to check (aws_errors.explain: access denied points at the
IAM policy), except SQL that Athena refuses or fails, which is a QueryError with Athena's reason.

`raw_captures` is left out of Glue (`covers` is False for it). Athena reads every object under a
table's location. Raw's folders hold B3's response bodies (`*.json`) next to the `.meta.json`
sidecars the table is about, and both are pretty-printed over many lines, while Athena's JSON SerDe
wants one object per line. Such a table would fail or return garbage. The raw files stay in S3 as
received; locally DuckDB reads the sidecars by glob.

Glue keeps no row counts. Counting would need an Athena query per table (billed, seconds each) or a
read of every file's footer on every sync. So `sync` reports `rows=None` (not counted), with the
dates it registered.

Clients come from aws.client (credentials from the standard AWS chain, cached per process); the
endpoint is explicit only for stand-ins such as moto.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from b3_platform import aws, aws_errors
from b3_platform.catalog.athena import query_result
from b3_platform.catalog.base import (
    CatalogError,
    CatalogResource,
    QueryError,
    QueryResult,
    RegisteredTable,
)
from b3_platform.catalog.glue import (
    ALREADY_EXISTS,
    CREATE_BATCH,
    DELETE_BATCH,
    NOT_FOUND,
    TABLE_PARAMETERS,
    chunks,
    descriptor_signature,
    partition_input,
    table_input,
    table_signature,
)
from b3_platform.catalog.types import sql_type
from b3_platform.lake.raw_inventory import RawInventory
from b3_platform.lake.schemas import TableDef
from b3_platform.lake.storage import Storage
from b3_platform.lake.tables import partition_dates, published_dates, published_together

MAX_POLL_INTERVAL = 5.0
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Athena's words for a request its setup refuses; any other InvalidRequestException is about the SQL.
_SETUP_WORDS = ("workgroup", "output location", "outputlocation")


class GlueAthenaCatalogResource(CatalogResource):
    """Glue tables over the S3 lake (`sync`), SQL through Athena (`query`)."""

    region: str = Field(description="AWS region of the Glue catalog and the Athena workgroup")
    endpoint_url: str | None = Field(
        default=None, description="Glue/Athena endpoint (a stand-in such as moto); default: AWS's own"
    )
    database: str = Field(description="Glue database holding the lake's tables (created if missing)")
    workgroup: str = Field(description="Athena workgroup queries run in")
    output_location: str = Field(description="s3://bucket/prefix/ where Athena writes query results")

    @property
    def kinds(self) -> set[str]:
        return {"glue", "athena"}

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
        """Parquet tables only: raw_captures' JSON sidecars are not one object per line."""
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
            return CatalogError(
                f"cannot reach Glue for {what} (region {self.region}{endpoint}): {aws_errors.explain(exc)}"
            )
        if aws_errors.error_code(exc) == NOT_FOUND:
            message = exc.response.get("Error", {}).get("Message", "")
            return CatalogError(
                f"Glue {exc.operation_name} on {what}: not found ({message}); materialize "
                "athena_tables to register the lake's tables"
            )
        return CatalogError(f"Glue {exc.operation_name} on {what}: {aws_errors.explain(exc)}")

    def _glue(self, glue, operation: str, table: str | None = None, *, missing_ok: bool = False, **kwargs):
        """One Glue call; with `missing_ok`, None when the entity does not exist."""
        try:
            return getattr(glue, operation)(**kwargs)
        except ClientError as exc:
            if missing_ok and aws_errors.error_code(exc) == NOT_FOUND:
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
            if aws_errors.error_code(exc) != ALREADY_EXISTS:  # a concurrent sync's
                raise self._glue_error(exc) from exc
        except BotoCoreError as exc:
            raise self._glue_error(exc) from exc

    def sync(
        self,
        storage: Storage,
        tables: Sequence[TableDef],
        *,
        raw: RawInventory | None = None,
        journal: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> list[RegisteredTable]:
        """Create or update each covered table and register exactly its dates present in the lake.

        Tables it does not cover (see `covers`) are skipped: raw_captures among them, so `raw` is
        not read. `rows` is None: Glue has no counts. `journal` is not used: an S3 lake keeps no
        change journal (lake.changes), so every sync lists the tables' partitions."""
        glue = self._client("glue")
        self._ensure_database(glue)
        published: dict[str, list[dt.date]] = {}  # each layer's manifests, listed once per sync
        return [self._sync_table(glue, storage, t, published) for t in tables if self.covers(t)]

    def _sync_table(
        self, glue, storage: Storage, table_def: TableDef, published: dict[str, list[dt.date]]
    ) -> RegisteredTable:
        name = table_def.name
        wanted = table_input(table_def, storage)
        current = self._glue(glue, "get_table", name, missing_ok=True, DatabaseName=self.database, Name=name)
        if current is None:
            self._glue(glue, "create_table", name, DatabaseName=self.database, TableInput=wanted)
        elif table_signature(current["Table"]) != table_signature(wanted):
            # Keep parameters other tools set (statistics, Lake Formation); ours win.
            wanted["Parameters"] = {**(current["Table"].get("Parameters") or {}), **TABLE_PARAMETERS}
            self._glue(glue, "update_table", name, DatabaseName=self.database, TableInput=wanted)
        if not table_def.partitioned:
            return RegisteredTable(name, None, 0, None, None)
        layer_dates = None
        if published_together(table_def):
            unit = table_def.published_with
            if unit not in published:
                published[unit] = published_dates(storage, unit)
            layer_dates = published[unit]
        # Only published dates are registered: a date left half-written is not (lake.tables).
        dates = partition_dates(storage, table_def, layer_dates)
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
            and descriptor_signature(registered[value].get("StorageDescriptor", {}))
            != descriptor_signature(p["StorageDescriptor"])
        ]
        gone = [{"Values": [value]} for value in registered if value not in wanted]
        for chunk in chunks(missing, CREATE_BATCH):
            self._batch(glue, "batch_create_partition", name, ALREADY_EXISTS, PartitionInputList=chunk)
        for chunk in chunks(stale, CREATE_BATCH):
            self._batch(glue, "batch_update_partition", name, None, Entries=chunk)
        for chunk in chunks(gone, DELETE_BATCH):
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
            return CatalogError(f"cannot {action} in {where}{query}: {aws_errors.explain(exc)}")
        return CatalogError(f"cannot reach {where} to {action}{query}: {aws_errors.explain(exc)}")

    def _athena(self, athena, operation: str, action: str, query_id: str | None = None, **kwargs):
        try:
            return getattr(athena, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._athena_error(exc, action, query_id) from exc

    def query(
        self,
        sql: str,
        *,
        wait_seconds: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> QueryResult:
        """Run `sql` on Athena over the Glue database, wait for it, and return its rows typed.

        Glue has no lock a reader waits for (`wait_seconds`, `on_wait` are unused): a sync changes
        tables and partitions one API call at a time while queries run."""
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
        try:
            pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
            return query_result(pages, has_header)
        except (ClientError, BotoCoreError) as exc:
            raise self._athena_error(exc, "read the results", query_id) from exc
