"""The lake's change journal: which tables' dates were written or removed, and when, so the local
catalog's refresh in a daily run looks at those dates only instead of listing every table.

A catalog sync that lists every table stats one file per table per date (~70 ms of CPU at 1,250
dates x 34 indices, growing with the history), on every run. Every write of a table's date goes
through `lake.tables.write_date` / `delete_date`, which announce it here:

- before anything of the date is touched, an empty *pending* marker
  (`catalog/_changes/pending/<time ns>.<id>.<date>.<table+table…>`);
- once the change is over (done, or failed part-way: what it did is a change too), that marker
  renamed into the folder of the hour it ended as a *done* marker named with that time
  (`catalog/_changes/<hour>/<time ns>.<id>.<date>.<table+table…>`).

A catalog records the time its last sync started (its *cursor*). The next sync (`changes_since`)
reads every pending marker and the done markers from the cursor on, and stats only the dates they
name. Why that misses no change made through the lake's writers:

- a change that ended before the last sync started was seen by that sync's own look (it stats
  after it starts); one that ended later has a done marker timed after the cursor (a margin of
  CLOCK_MARGIN_SECONDS absorbs a clock stepped back), and one still running has its pending marker.
- markers are never consumed, so any number of catalogs over one lake each see every change; done
  markers are deleted after RETENTION_SECONDS, and a catalog whose cursor is older than that, or
  that never synced, or that recorded another journal (`origin`: the lake was replaced, its journal
  deleted), lists the lake whole instead (`changes_since` answers None).
- a pending marker older than STALE_SECONDS belongs to a writer that died mid-change (far beyond
  any write of one date): the next sync moves it into the journal as done now, so every catalog
  looks at its date once more.

What it does not see: a file changed by anything but those writers (copied in or edited by hand,
an older release of this code). A refresh that lists the lake whole sees it: the catalog asset
lists whole in every run that is not for one date (materialized on its own, a range backfill).
Markers are empty files, written without an fsync of their own: on a file system that commits
metadata in order (ext4, XFS) a marker is on disk before the change's own fsynced file is.
Only a local lake keeps a journal: the DuckDB catalog is its one reader (Glue lists S3 itself).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from b3_platform.lake.paths import CHANGES_ROOT
from b3_platform.lake.storage import LocalStorage, Storage, folder_names, touch

PENDING_DIR = "pending"
#: The file naming this journal: a catalog that recorded another one lists the lake whole.
ORIGIN_FILE = "origin"
#: Done markers are kept this long; a catalog not refreshed for longer lists the lake whole.
RETENTION_SECONDS = 7 * 86_400
#: A pending marker this old belongs to a writer that died mid-change (a date's files take
#: seconds at most to write).
STALE_SECONDS = 3_600
#: Done markers are read from this long before a catalog's cursor: a clock stepped back by up to
#: this much still misses nothing (the dates are only looked at once more).
CLOCK_MARGIN_SECONDS = 60
_HOUR_NS = 3_600 * 10**9
_SECOND_NS = 10**9


@dataclass(frozen=True)
class Changes:
    """The dates the journal names per table, since a cursor."""

    dates: dict[str, set[dt.date]]

    def of(self, table: str) -> set[dt.date]:
        return self.dates.get(table, set())


def _root(storage: LocalStorage) -> str:
    return storage.uri(CHANGES_ROOT).rstrip("/")


@contextmanager
def recording(storage: Storage, tables: Collection[str], day: dt.date) -> Iterator[None]:
    """Around a change of `tables`' files of `day`: a pending marker before it, a done marker after
    it (also when it failed part-way). Nothing on a lake that is not local."""
    if not isinstance(storage, LocalStorage):
        yield
        return
    root = _root(storage)
    label = f"{uuid.uuid4().hex[:16]}.{day.isoformat()}.{'+'.join(sorted(tables))}"
    pending = f"{root}/{PENDING_DIR}/{time.time_ns():020d}.{label}"
    touch(pending)
    try:
        yield
    finally:
        _mark_done(root, pending, label, time.time_ns())


def _mark_done(root: str, pending: str, label: str, now_ns: int) -> None:
    """The pending marker renamed into the journal as done at `now_ns` (one step: a sync sees it
    pending or done, never neither). A sync may have moved a pending marker older than
    STALE_SECONDS into the journal already: then a done marker of its own is written. When that
    fails (a full disk), the pending marker stays and still announces the change (every sync reads
    it, until it is settled as stale): the change itself, done or failed, is what the caller hears
    about."""
    done = f"{root}/{now_ns // _HOUR_NS}/{now_ns:020d}.{label}"
    try:
        try:
            os.rename(pending, done)
        except FileNotFoundError:  # the hour's folder is new, or the marker was settled as stale
            os.makedirs(os.path.dirname(done), exist_ok=True)
            try:
                os.rename(pending, done)
            except FileNotFoundError:
                touch(done)
    except OSError:
        pass


def origin(storage: LocalStorage) -> str:
    """The journal's identity, created (exclusively) the first time it is asked for."""
    key = f"{CHANGES_ROOT}{ORIGIN_FILE}"
    data = storage.read_if_exists(key)
    if data is None:
        storage.create_bytes(key, uuid.uuid4().hex.encode())  # of two first callers, one writes it
        data = storage.read_bytes(key)
    return data.decode()


def _parse(name: str) -> tuple[int, dt.date, list[str]] | None:
    """(time ns, date, tables) of a marker's name; None for a name that is not one."""
    parts = name.split(".", 3)
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    try:
        return int(parts[0]), dt.date.fromisoformat(parts[2]), parts[3].split("+")
    except ValueError:
        return None


def _oldest_kept_hour(now_ns: int) -> int:
    """The oldest hour of done markers kept at `now_ns` (older ones are deleted)."""
    return (now_ns - RETENTION_SECONDS * _SECOND_NS) // _HOUR_NS


def tidy(storage: LocalStorage, now_ns: int) -> list[str]:
    """Move pending markers older than STALE_SECONDS into the journal as done now (their writer
    died mid-change), and delete the hours of done markers older than RETENTION_SECONDS. Returns
    the names of the markers still pending."""
    root = _root(storage)
    pending = []
    for name in folder_names(f"{root}/{PENDING_DIR}"):
        parsed = _parse(name)
        if parsed is not None and parsed[0] < now_ns - STALE_SECONDS * _SECOND_NS:
            _mark_done(root, f"{root}/{PENDING_DIR}/{name}", name.split(".", 1)[1], now_ns)
        else:
            pending.append(name)
    for name in folder_names(root):
        if name.isdigit() and int(name) < _oldest_kept_hour(now_ns):
            shutil.rmtree(f"{root}/{name}", ignore_errors=True)
    return pending


def changes_since(storage: LocalStorage, cursor_ns: int | None, now_ns: int) -> Changes | None:
    """Every (table, date) changed since `cursor_ns` (the start of the caller's previous look at
    the lake), or None when the journal cannot vouch for that span: no cursor, or one older than
    the done markers kept. Tidies the journal first (`tidy`)."""
    pending = tidy(storage, now_ns)
    if cursor_ns is None:
        return None
    since = cursor_ns - CLOCK_MARGIN_SECONDS * _SECOND_NS
    first_hour = since // _HOUR_NS
    if first_hour < _oldest_kept_hour(now_ns):
        return None
    root = _root(storage)
    dates: dict[str, set[dt.date]] = {}

    def add(names: list[str], newer_than: int | None) -> None:
        for name in names:
            parsed = _parse(name)
            if parsed is None or (newer_than is not None and parsed[0] < newer_than):
                continue
            _, day, tables = parsed
            for table in tables:
                dates.setdefault(table, set()).add(day)

    add(pending, None)  # every change still under way
    for hour in folder_names(root):
        if hour.isdigit() and int(hour) >= first_hour:
            add(folder_names(f"{root}/{hour}"), since)
    return Changes(dates)
