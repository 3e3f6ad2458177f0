"""Parquet tables in the lake: one file per table per date, written whole in one atomic put, and
the dates of tables written together published together.

**A date of a publication unit is visible whole or not at all.** Silver's two tables and gold's
four (each unit one multi-asset, `TableDef.published_with`: "silver", "gold") are written one file
after another, and no storage replaces several files in one step (S3 has no multi-object
transaction; locally a rename moves one file). So such a unit publishes each date with one more
atomic write, its manifest `<unit>/_published/date=D/manifest.json`, written after every table of
the date (it names the unit, the date and the tables) and deleted
before the first of them is replaced or removed. Readers see only published dates: the IO
manager's loads and the DateReaders gold walks silver with (one listing of the manifests per
reader), the local catalog's sync (which loads only published dates into its DuckDB tables and
drops a date whose manifest is gone) and the Glue partitions (`partition_dates`). A run killed or failed mid-date leaves that date unpublished, not half
visible; its next build publishes it again. A table written on its own (bronze, index_members,
the announced portfolios' tables) needs no manifest: its file's one atomic write is its publication.

**A subset of a unit** (one asset of the multi-asset selected, e.g. only silver_assets) is written
the same way and published by a manifest listing the tables just written plus those the date's
previous manifest listed (carried over: their files are untouched, each still one whole version).
A table the date never published stays absent: its file, if a failed write left one, is deleted
before the new manifest appears. So readers keep one rule, "a date is published when its manifest
exists and a table's date when its file exists too": **every unit file of a published date is one
its manifest lists**, whether the unit was written whole or in part.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager

import pyarrow as pa
import pyarrow.parquet as pq

from b3_platform.lake.changes import recording
from b3_platform.lake.paths import date_dir, date_in_key, table_partition_key
from b3_platform.lake.schemas import TABLES, TableDef
from b3_platform.lake.storage import Storage

PUBLISHED_DIR = "_published"
MANIFEST_FILE = "manifest.json"

#: Dates a PublishedReader looks up one manifest at a time before it lists every manifest of the
#: layer once: a daily run reads two or three dates, and a listing grows with the history (on S3,
#: one LIST per 1,000 dates), while a range or a walk back reads many and one listing serves all.
PROBES_BEFORE_LISTING = 8


class SchemaMismatch(ValueError):
    pass


class UnreadableFile(RuntimeError):
    """A stored file that cannot be read as what it should be (truncated, overwritten by hand).
    The message names the file and how to rebuild it."""


def unit_tables(unit: str | None) -> tuple[TableDef, ...]:
    """The tables of a publication unit (`TableDef.published_with`), in declaration order (gold:
    its four tables); none for None."""
    if unit is None:
        return ()
    return tuple(t for t in TABLES.values() if t.published_with == unit and t.file_format == "parquet")


def published_together(table_def: TableDef) -> bool:
    """Whether the table's dates are published by its unit's manifests (tables written together)."""
    return table_def.published_with is not None


def manifest_key(layer: str, day: dt.date) -> str:
    return f"{layer}/{PUBLISHED_DIR}/{date_dir(day)}/{MANIFEST_FILE}"


def published_dates(storage: Storage, layer: str) -> list[dt.date]:
    """The dates of a layer whose manifest exists (one listing)."""
    prefix = f"{layer}/{PUBLISHED_DIR}/"
    return sorted(
        {d for k in storage.list_keys(prefix) if k.endswith(f"/{MANIFEST_FILE}") and (d := date_in_key(k))}
    )


def published_among(storage: Storage, layer: str, days: Collection[dt.date]) -> list[dt.date]:
    """Which of `days` the layer has published: each manifest looked up alone for a few dates (a
    daily run's cost then does not grow with the history), one listing for more."""
    if len(days) <= PROBES_BEFORE_LISTING:
        return sorted(d for d in set(days) if storage.exists(manifest_key(layer, d)))
    wanted = set(days)
    return [d for d in published_dates(storage, layer) if d in wanted]


def rebuild_hint(table_def: TableDef, day: dt.date) -> str:
    """How to rebuild a table's date: materialize its asset (a multi-asset's table is selectable on its
    own; the date's other tables stay as they are)."""
    names = table_def.name
    return (
        f"rebuild it: dagster asset materialize -m b3_platform.definitions --select '{names}' "
        f"--partition {day}"
    )


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


def _encode(table_def: TableDef, day: dt.date, table: pa.Table) -> bytes:
    problem = schema_problem(table_def, day, table)
    if problem:
        raise SchemaMismatch(problem)
    table = table.replace_schema_metadata(None)
    # A table built with the declared schema (field descriptions included) is written as it is:
    # the cast would make the same table, one column at a time (~0.3 ms a table).
    if not table.schema.equals(table_def.schema, check_metadata=True):
        table = table.cast(table_def.schema)
    return to_parquet_bytes(table)


def write_partition(storage: Storage, table_def: TableDef, day: dt.date, table: pa.Table) -> str:
    """Replace the table's file for `day` with `table` (exactly; atomically). Returns the key.

    Only for a one-table layer's date: a layer of several tables is written with `write_date`."""
    key = table_partition_key(table_def.location, day)
    storage.write_bytes(key, _encode(table_def, day, table))
    return key


def write_date(
    storage: Storage,
    defs: Mapping[str, TableDef],
    day: dt.date,
    tables: Mapping[str, pa.Table],
    *,
    was_published: bool = True,
) -> dict[str, str]:
    """Tables of one date of a layer, published together (module docstring). Returns the keys.

    `defs` is the whole unit or a subset of it (a subset's manifest carries the date's other
    published tables over). Every table is encoded (its schema checked) before anything is touched;
    the manifest is deleted first when the date was published (`was_published`: False saves that
    request when the caller's listing showed none), then a never-published sibling's leftover file,
    then each file is replaced, then the manifest is written. When a write fails, `_settle`
    publishes the date again if its files are still one whole version."""
    layer = publish_unit(defs.values())
    encoded = {name: _encode(defs[name], day, tables[name]) for name in defs}
    keys = {name: table_partition_key(defs[name].location, day) for name in defs}
    with _announced(storage, layer, defs, day):
        if layer is None:
            for name, data in encoded.items():
                storage.write_bytes(keys[name], data)
            return keys
        return _write_unit_date(storage, layer, defs, day, encoded, keys, was_published)


def _announced(
    storage: Storage, layer: str | None, defs: Mapping[str, TableDef], day: dt.date
) -> AbstractContextManager[None]:
    """The change of a date recorded in the lake's change journal (lake.changes): a unit's whole
    date (its manifest, every table's publication, changes too), else the tables written."""
    return recording(storage, [t.name for t in unit_tables(layer)] or list(defs), day)


def _write_unit_date(
    storage: Storage,
    layer: str,
    defs: Mapping[str, TableDef],
    day: dt.date,
    encoded: Mapping[str, bytes],
    keys: Mapping[str, str],
    was_published: bool,
) -> dict[str, str]:
    """write_date of a unit's tables (all or a subset), its checks done and files encoded."""
    manifest = manifest_key(layer, day)
    unit = {t.name: t for t in unit_tables(layer)}
    if set(defs) == set(unit):
        before = set(unit) if was_published else set()
    else:
        # A subset reads what the date published (one GET), whatever the caller's listing said:
        # a sibling's file is kept only when the manifest vouches for it.
        before = listed_tables(storage, layer, day)
        was_published = was_published or bool(before)
    after = before | set(defs)
    if was_published:
        storage.delete(manifest)
    for name in unit.keys() - after:  # never published for this date: stays absent
        storage.delete(table_partition_key(unit[name].location, day))
    try:
        for name, data in encoded.items():
            storage.write_bytes(keys[name], data)
    except Exception:
        _settle(storage, layer, day, keys, encoded, before, after)
        raise
    storage.write_bytes(manifest, manifest_bytes(layer, day, after))
    return dict(keys)


def listed_tables(storage: Storage, layer: str, day: dt.date) -> set[str]:
    """The tables the date's manifest publishes (none when the date is not published). A manifest
    that cannot be read is refused rather than taken as empty: that would delete published files."""
    key = manifest_key(layer, day)
    data = storage.read_if_exists(key)
    if data is None:
        return set()
    try:
        return set(json.loads(data)["tables"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableFile(
            f"{layer} {day}: {storage.uri(key)} is not a readable manifest ({exc}); rebuild the date "
            f"with every table of {layer} selected"
        ) from exc


def manifest_bytes(layer: str, day: dt.date, names: Collection[str]) -> bytes:
    """A date's manifest: what it publishes. Deterministic, so rebuilding a date rewrites the same
    bytes and a date whose write failed early can be published again without reading anything."""
    body = {"layer": layer, "date": day.isoformat(), "tables": sorted(names)}
    return json.dumps(body, indent=1).encode()


def _settle(
    storage: Storage,
    layer: str,
    day: dt.date,
    keys: Mapping[str, str],
    encoded: Mapping[str, bytes],
    before: Collection[str],
    after: Collection[str],
) -> None:
    """After a failed write of a date: publish it again if its files are one whole version, either
    every new file (a write reported failed that S3 had applied; published as `after`) or, for a
    date that was published, none of them (the first write failed: the previous version, `before`,
    is intact). A mix stays unpublished until the date is rebuilt. Best effort: a failure here must
    not hide the write's own error."""
    try:
        stored = {name: storage.read_if_exists(key) for name, key in keys.items()}
        new = [name for name, data in stored.items() if data == encoded[name]]
        if len(new) == len(keys):
            storage.write_bytes(manifest_key(layer, day), manifest_bytes(layer, day, after))
        elif before and not new and all((stored[n] is not None) == (n in before) for n in keys):
            storage.write_bytes(manifest_key(layer, day), manifest_bytes(layer, day, before))
    except Exception:  # noqa: BLE001 - the date stays unpublished; the caller raises the real cause
        pass


def delete_date(
    storage: Storage, defs: Mapping[str, TableDef], day: dt.date, *, was_published: bool = True
) -> list[str]:
    """Remove one date of a layer: unpublished first, then its files. Returns the tables that had one.

    For a subset of a unit the whole date is unpublished (its input is gone, so the other tables'
    files are stale too); their files stay, unlisted, until the date is written again."""
    layer = publish_unit(defs.values())
    with _announced(storage, layer, defs, day):
        if layer is not None and was_published:
            storage.delete(manifest_key(layer, day))
        return [name for name, t in defs.items() if delete_partition(storage, t, day)]


def publish_unit(defs) -> str | None:
    """The unit whose manifests publish these tables (all of it or a subset: module docstring), or
    None for tables that are each their own publication (bronze, index_members, the announced
    portfolios' tables). Tables of several units are refused: no manifest can publish them."""
    defs = list(defs)
    units = {t.published_with for t in defs}
    if len(units) != 1:
        raise ValueError(
            f"tables of several publication units written as one date: {sorted(t.name for t in defs)}"
        )
    return units.pop()


def read_partition(
    storage: Storage, table_def: TableDef, day: dt.date, columns: list[str] | None = None
) -> pa.Table | None:
    """The table's file for `day` (only `columns`, when given), or None when there is none.

    Reads the file whether or not its date is published: readers that must see published dates
    only go through `PublishedReader` (the IO manager does). A file that is not readable Parquet
    is an UnreadableFile naming it and how to rebuild it."""
    key = table_partition_key(table_def.location, day)
    data = storage.read_if_exists(key)
    if data is None:
        return None
    try:
        return _read_parquet(data, columns)
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(
            f"{table_def.name} {day}: {storage.uri(key)} is not a readable Parquet file "
            f"({len(data)} bytes; {exc}); {rebuild_hint(table_def, day)}"
        ) from exc


def _read_parquet(data: bytes, columns: list[str] | None) -> pa.Table:
    """The table in `data`, as `pq.read_table` reads it, for less CPU.

    Every date of a range run reads its inputs back (silver reads bronze, gold silver's two
    tables): `read_table` goes through the datasets layer and a thread pool, ~0.4-0.6 ms per small
    file more than reading the one file directly on this thread, which yields the same table.
    Anything that read refuses or would answer differently goes to `read_table`, so errors stay
    word for word: a damaged file, and `columns` naming a column twice or one the file lacks
    (which `ParquetFile.read` would drop rather than refuse)."""
    if columns is None or len(set(columns)) == len(columns):
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            if columns is None or set(columns) <= set(parquet.schema_arrow.names):
                return parquet.read(columns=columns, use_threads=False)
        except (pa.ArrowException, OSError):
            pass  # read_table refuses it, in its own words
    return pq.read_table(pa.BufferReader(data), columns=columns)


class PublishedReader:
    """Reads one table's dates as readers must see them: a date of a layer published together is
    read only when its manifest exists (looked up alone for the first few dates read, then one
    listing of the manifests serves every later read), any other table's date when its file exists."""

    def __init__(self, storage: Storage, table_def: TableDef) -> None:
        self.storage = storage
        self.table_def = table_def
        self._published: set[dt.date] | None = None
        self._probed: dict[dt.date, bool] = {}

    def dates(self) -> list[dt.date]:
        """Every published date of the table that has its file (`partition_dates`)."""
        if published_together(self.table_def) and self._published is None:
            self._published = set(published_dates(self.storage, self.table_def.published_with))
        return partition_dates(self.storage, self.table_def, self._published)

    def is_published(self, day: dt.date) -> bool:
        if not published_together(self.table_def):
            return True
        if self._published is None and len(self._probed) < PROBES_BEFORE_LISTING:
            if day not in self._probed:
                self._probed[day] = self.storage.exists(manifest_key(self.table_def.published_with, day))
            return self._probed[day]
        if self._published is None:
            self._published = set(published_dates(self.storage, self.table_def.published_with))
        return day in self._published

    def read(self, day: dt.date, columns: list[str] | None = None) -> pa.Table | None:
        """The date's table, or None when the date is not published."""
        if not self.is_published(day):
            return None
        return read_partition(self.storage, self.table_def, day, columns=columns)


def delete_partition(storage: Storage, table_def: TableDef, day: dt.date) -> bool:
    key = table_partition_key(table_def.location, day)
    if storage.exists(key):
        storage.delete(key)
        return True
    return False


def partition_dates(
    storage: Storage, table_def: TableDef, published: Collection[dt.date] | None = None
) -> list[dt.date]:
    """The table's dates that have a file and are published: what the catalogs register and gold's
    walk back reads. One listing of the table, and one of its layer's manifests when it is
    published together, unless the caller listed them already (`published`)."""
    files = {d for k in storage.list_keys(table_def.location) if (d := date_in_key(k))}
    if published_together(table_def):
        files &= set(published_dates(storage, table_def.published_with) if published is None else published)
    return sorted(files)


def file_schema_problems(storage: Storage, table_def: TableDef, day: dt.date) -> list[str]:
    """How the file of `day` differs from the declared schema (names and types; none = matches)."""
    key = table_partition_key(table_def.location, day)
    data = storage.read_bytes(key)
    try:
        schema = pq.read_schema(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        return [
            f"{key}: not a readable Parquet file ({len(data)} bytes; {exc}); {rebuild_hint(table_def, day)}"
        ]
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
