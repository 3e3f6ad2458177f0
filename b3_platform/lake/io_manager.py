"""The IO manager of the Parquet layers (bronze, silver, gold): the seam that puts the same asset
graph on a local folder or on S3.

It stands on the `lake` resource, so whatever root `lake` names (a folder, `s3://bucket/prefix`)
is where the tables go; `B3_PLATFORM_ENV=aws` swaps the lake and nothing in asset code changes.

Storing (`handle_output`):
- one date: a `pyarrow.Table` with the table's declared schema, or a `DateStream`;
- a range (a single-run backfill): a `DateStream`, which builds the tables of one date at a time
  while the IO manager consumes it, so memory does not grow with the range. Dagster runs
  `handle_output` to completion before the asset's generator resumes, so what the asset records
  while the stream is consumed (check results, per-date metadata) is there when it resumes.
  Dagster's stock UPath/S3 IO managers refuse multi-partition outputs; this one does not.

Every table of a date is checked against its declared schema before any of them is written, a date
without input has its stale files deleted, and each written date is reported back to the stream,
which puts `dagster/row_count`, `dagster/uri` and the asset's own metadata on that partition.
A layer of several tables (silver, gold) is published date by date through its manifests
(lake.tables): a date is visible to every reader whole or not at all, and loads see only
published dates.

**Multi-assets** (silver's header + assets, gold's four tables) come from one pass over their
input, so one pass writes every table of a date. The convention: the multi-asset yields an `Output`
for each of its tables, *all carrying the same DateStream*, whose `tables` are exactly the
multi-asset's assets. The first output consumes the stream and writes every table of each date;
the others only confirm that their table was written by it. `check_lake_assets` refuses at
definition time an assets definition whose lake-stored assets are not declared tables, and
`handle_output` refuses a stream whose tables differ from the outputs it is handed for.

Loading (`load_input`, and `Definitions.load_asset_value`) follows the input's annotation:
`pd.DataFrame` or `pa.Table` give the table (a range: every stored date concatenated, with a
`date` column first); anything else gives a lazy `DateReader` over the partitions asked for.
"""

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pyarrow as pa

from b3_platform.lake.resource import LakeResource
from b3_platform.lake.schemas import TABLES, TableDef
from b3_platform.lake.storage import Storage, StorageError
from b3_platform.lake.tables import (
    PublishedReader,
    SchemaMismatch,
    UnreadableFile,
    delete_date,
    publish_unit,
    published_among,
    published_together,
    schema_problem,
    unit_tables,
    write_date,
)
from b3_platform.partition_metadata import add_partition_metadata

#: The resource key the Parquet layers are stored under (in every environment).
LAKE_IO_MANAGER = "lake_io_manager"
#: A log line every this many dates of a long range, so a backfill shows it is moving.
PROGRESS_EVERY = 50


@dataclass(frozen=True)
class NoInput:
    """What a date's build returns when there is nothing to build it from (e.g. no raw capture):
    its stale files are deleted and the partition says `status: <reason>` with 0 rows."""

    reason: str


@dataclass
class DateTables:
    """One date's tables (by table name) and the metadata each asset's partition gets besides
    `dagster/row_count` and `dagster/uri` (by table name too; `shared` goes on every table)."""

    tables: dict[str, pa.Table]
    metadata: dict[str, dict] = field(default_factory=dict)
    shared: dict = field(default_factory=dict)


class DateStream:
    """A layer's output over the run's dates, built lazily one date at a time.

    `build(day)` returns the date's `DateTables` or a `NoInput`. An exception it raises stops the
    stream: `handle_output` turns it into a `dagster.Failure` naming the asset and the date, so the
    message a user reads in the UI and the CLI is the real cause (Dagster shows a Failure as it is,
    not wrapped as "Error occurred while handling output"). Dates before it keep their new version.
    """

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        tables: Sequence[TableDef],
        days: Sequence[dt.date],
        build: Callable[[dt.date], DateTables | NoInput],
        *,
        name: str,
        nothing_built_hint: str,
    ) -> None:
        self.context = context
        self.tables = tuple(tables)
        self.days = list(days)
        self.name = name
        self._build = build
        self._hint = nothing_built_hint
        self.consumed = False
        self.built: list[dt.date] = []
        self.missing: dict[dt.date, str] = {}

    @property
    def table_names(self) -> set[str]:
        return {t.name for t in self.tables}

    def __iter__(self) -> Iterator[tuple[dt.date, DateTables | NoInput]]:
        """(date, its tables or NoInput), one date at a time; logs progress on long ranges."""
        if self.consumed:
            raise RuntimeError(f"{self.name}: the date stream was already consumed")
        self.consumed = True
        total = len(self.days)
        for done, day in enumerate(self.days, start=1):
            if total > PROGRESS_EVERY and (done % PROGRESS_EVERY == 0 or done == total):
                self.context.log.info(f"{self.name}: {done}/{total} dates")
            try:
                yield day, self._build(day)
            except dg.Failure:
                raise
            except Exception as exc:
                raise dg.Failure(
                    description=f"{self.name} {day}: {exc}",
                    metadata={"date": day.isoformat(), "error": f"{type(exc).__name__}: {exc}"},
                ) from exc

    def written(self, day: dt.date, result: DateTables, uris: Mapping[str, str]) -> None:
        """Called by the IO manager once every table of `day` is stored."""
        self.built.append(day)
        for table_def in self.tables:
            add_partition_metadata(
                self.context,
                {
                    "dagster/row_count": result.tables[table_def.name].num_rows,
                    "dagster/uri": uris[table_def.name],
                    **result.shared,
                    **result.metadata.get(table_def.name, {}),
                },
                asset_key=table_def.name,
                partition_key=day.isoformat(),
            )

    def skipped(self, day: dt.date, reason: str, removed: Sequence[str]) -> None:
        """Called by the IO manager for a date without input, after its stale files are gone."""
        self.missing[day] = reason
        removed_note = f"; removed the stale {', '.join(removed)} file(s)" if removed else ""
        self.context.log.warning(f"{day}: {reason}{removed_note}")
        for table_def in self.tables:
            add_partition_metadata(
                self.context,
                {"dagster/row_count": 0, "status": reason},
                asset_key=table_def.name,
                partition_key=day.isoformat(),
            )

    def outputs(self) -> Iterator[dg.Output]:
        """What a layer's asset function yields: one Output per table, all carrying this stream.

        The IO manager writes every table of a date on the first output and only checks the others
        (see `LakeIOManager.handle_output`); after the last one, `finish` fails the step if no date
        was built. A stream of no table (a run of a multi-asset's checks alone) builds every date
        for its checks and stores nothing.
        """
        if not self.tables:
            for _ in self:
                pass
            return
        for table_def in self.tables:
            yield dg.Output(self, output_name=table_def.name)
        self.finish()

    def finish(self) -> None:
        """After the outputs are stored: fail the step when no date of the run was built."""
        if not self.consumed:
            raise RuntimeError(f"{self.name}: the date stream was never stored")
        if not self.built:
            reasons = sorted(set(self.missing.values()))
            raise dg.Failure(
                description=(
                    f"{self.name}: {'; '.join(reasons) or 'nothing to build'} for "
                    f"{', '.join(map(str, self.days[:10]))}{' …' if len(self.days) > 10 else ''}; "
                    f"{self._hint}"
                )
            )


class DateReader:
    """A lazy reader of one lake table: the dates an input asked for (`days`), and any other date
    of the table (`read`), each read only when asked. Dates missing or not published read as None;
    a file that is not readable Parquet raises lake.tables.UnreadableFile naming it."""

    def __init__(self, storage: Storage, table_def: TableDef, days: Sequence[dt.date]) -> None:
        self.storage = storage
        self.table_def = table_def
        self.days = list(days)
        self._reader = PublishedReader(storage, table_def)

    def read(self, day: dt.date, columns: list[str] | None = None) -> pa.Table | None:
        return self._reader.read(day, columns=columns)

    def stored_dates(self) -> list[dt.date]:
        """Every date the table has published in the lake (one listing)."""
        return self._reader.dates()

    def __iter__(self) -> Iterator[tuple[dt.date, pa.Table | None]]:
        for day in self.days:
            yield day, self.read(day)


def lake_table(asset_key: dg.AssetKey) -> TableDef:
    name = asset_key.to_user_string()
    if name not in TABLES or TABLES[name].file_format != "parquet":
        raise dg.DagsterInvariantViolationError(
            f"{name} is stored by {LAKE_IO_MANAGER}, but it is not a Parquet table declared in "
            "b3_platform/lake/schemas.py"
        )
    return TABLES[name]


def check_lake_assets(assets: Iterable[dg.AssetsDefinition]) -> None:
    """At definition time: every asset stored by the lake IO manager is a declared Parquet table
    (that is how the IO manager finds its schema and location)."""
    for assets_def in assets:
        for key in _lake_keys(assets_def):
            lake_table(key)


def _days(keys: Sequence[str]) -> list[dt.date]:
    return [dt.date.fromisoformat(k) for k in keys]


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores and loads the lake's Parquet tables, one file per table per date, on `lake`."""

    lake: LakeResource

    # --- storing -------------------------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        table_def = lake_table(context.asset_key)
        storage = self.lake.storage()
        if isinstance(obj, DateStream):
            self._store_stream(context, storage, table_def, obj)
        elif isinstance(obj, pa.Table):
            keys = context.asset_partition_keys if context.has_asset_partitions else []
            if len(keys) != 1:
                raise dg.Failure(
                    f"{table_def.name}: a table is stored for exactly one date; "
                    f"this output covers {len(keys)} partition(s) (yield a DateStream for a range)"
                )
            day = dt.date.fromisoformat(keys[0])
            if published_together(table_def):
                names = ", ".join(t.name for t in unit_tables(table_def.published_with))
                raise dg.Failure(
                    f"{table_def.name}: a date of {table_def.published_with} is published whole ({names}), so "
                    "its tables are stored together: yield one DateStream holding all of them"
                )
            uris = self._write_date(storage, {table_def.name: table_def}, day, {table_def.name: obj})
            context.add_output_metadata(
                {"dagster/row_count": obj.num_rows, "dagster/uri": uris[table_def.name]}
            )
        else:
            raise dg.Failure(
                f"{table_def.name}: {LAKE_IO_MANAGER} stores a pyarrow.Table (one date) or a "
                f"DateStream, not {type(obj).__name__}"
            )

    def _store_stream(
        self, context: dg.OutputContext, storage: Storage, table_def: TableDef, stream: DateStream
    ) -> None:
        if table_def.name not in stream.table_names:
            raise dg.Failure(
                f"{table_def.name}: the date stream handed to this output holds "
                f"{sorted(stream.table_names)}, not {table_def.name}"
            )
        if stream.consumed:
            # A sibling output of the same multi-asset already wrote every table of each date.
            return
        outputs = {k.to_user_string() for k in _lake_keys_of_step(context)}
        if outputs and outputs != stream.table_names:
            raise dg.Failure(
                f"{stream.name}: a multi-asset's date stream must hold exactly its lake tables "
                f"{sorted(outputs)}; it holds {sorted(stream.table_names)}"
            )
        defs = {t.name: t for t in stream.tables}
        try:
            layer = publish_unit(defs.values())
        except ValueError as exc:
            raise dg.Failure(f"{stream.name}: {exc}") from exc
        # Which dates must be unpublished before they are replaced: looked up date by date for a
        # short run (a daily run: one manifest, whatever the history), one listing for a range.
        published = set(published_among(storage, layer, stream.days)) if layer else set()
        for day, result in stream:
            if isinstance(result, NoInput):
                removed = delete_date(storage, defs, day, was_published=day in published)
                stream.skipped(day, result.reason, removed)
                continue
            # A subset of a multi-asset (only some of its tables selected) stores only those.
            tables = {name: table for name, table in result.tables.items() if name in defs}
            uris = self._write_date(
                storage, defs, day, tables, where=stream.name, was_published=day in published
            )
            stream.written(day, result, uris)

    @staticmethod
    def _write_date(
        storage: Storage,
        defs: Mapping[str, TableDef],
        day: dt.date,
        tables: Mapping[str, pa.Table],
        where: str | None = None,
        was_published: bool = True,
    ) -> dict[str, str]:
        """Every table of one date: all schemas checked first, then each written atomically and the
        date published (lake.tables.write_date)."""
        if set(tables) != set(defs):
            raise dg.Failure(
                f"{where or ', '.join(defs)} {day}: built tables {sorted(tables)}, expected {sorted(defs)}"
            )
        problems = [p for name, t in tables.items() if (p := schema_problem(defs[name], day, t))]
        if problems:
            raise dg.Failure(description="\n".join(problems))
        try:
            keys = write_date(storage, defs, day, tables, was_published=was_published)
            return {name: storage.uri(key) for name, key in keys.items()}
        except SchemaMismatch as exc:  # checked above; kept so a race cannot write a wrong file
            raise dg.Failure(description=str(exc)) from exc
        except (StorageError, OSError) as exc:
            # The cause first (a full disk, S3 refusing a write), not "Error occurred while handling
            # output"; dates before this one keep their new version.
            raise dg.Failure(
                description=f"{where or ', '.join(defs)} {day}: {exc}",
                metadata={"date": day.isoformat(), "error": f"{type(exc).__name__}: {exc}"},
            ) from exc

    # --- loading -------------------------------------------------------------------------------

    def load_input(self, context: dg.InputContext):
        table_def = lake_table(context.asset_key)
        storage = self.lake.storage()
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        if not keys:
            raise dg.Failure(f"{table_def.name} is partitioned by trading date: ask for a partition")
        days = _days(keys)
        wanted = context.dagster_type.typing_type if context.dagster_type else None
        if wanted is pa.Table or _is_dataframe(wanted):
            table = self._load_table(storage, table_def, days)
            return table.to_pandas() if _is_dataframe(wanted) else table
        return DateReader(storage, table_def, days)

    @staticmethod
    def _load_table(storage: Storage, table_def: TableDef, days: list[dt.date]) -> pa.Table:
        reader = DateReader(storage, table_def, days)
        try:
            return LakeIOManager._concat(storage, table_def, reader, days)
        except UnreadableFile as exc:
            raise dg.Failure(str(exc)) from exc

    @staticmethod
    def _concat(storage: Storage, table_def: TableDef, reader: DateReader, days: list[dt.date]) -> pa.Table:
        if len(days) == 1:
            table = reader.read(days[0])
            if table is None:
                raise dg.Failure(
                    f"{table_def.name} has no partition {days[0]} in {storage.uri()}: materialize it first"
                )
            return table
        parts = []
        for day in days:
            table = reader.read(day)
            if table is not None:
                dates = pa.array([day] * table.num_rows, type=pa.date32())
                parts.append(table.add_column(0, pa.field("date", pa.date32(), nullable=False), dates))
        if not parts:
            raise dg.Failure(
                f"{table_def.name} has none of the {len(days)} partitions {days[0]} … {days[-1]} "
                f"in {storage.uri()}: materialize them first"
            )
        return pa.concat_tables(parts)


def _is_dataframe(wanted) -> bool:
    # pandas is imported only when an input may want it: loading the definitions stays lighter.
    if wanted is None or wanted is pa.Table:
        return False
    import pandas as pd

    return wanted is pd.DataFrame


def _lake_keys_of_step(context: dg.OutputContext) -> list[dg.AssetKey]:
    """The lake-stored asset keys of the step's assets definition (a multi-asset's siblings)."""
    assets_def = context.step_context.assets_def if context.has_asset_key else None
    return _lake_keys(assets_def) if assets_def is not None else []


def _lake_keys(assets_def: dg.AssetsDefinition) -> list[dg.AssetKey]:
    return [k for k in assets_def.keys if assets_def.get_io_manager_key_for_asset_key(k) == LAKE_IO_MANAGER]
