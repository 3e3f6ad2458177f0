"""How many committed captures raw holds per date and index, kept up to date without walking raw.

Coverage ("which trading days does each index have?") and the catalog's raw_captures counts both
need, per date and index, the number of capture sidecars. Walking raw for it grows with history
(~85,000 keys at 1,250 dates x 34 indices: ~1 s of CPU locally, one S3 LIST per 1,000 keys), and
runs on every catalog refresh. This module keeps the answer as a small state in the lake and brings
it up to date from what changed since, which the writer itself announces:

- `RawStore` writes a *pending marker* (`paths.raw_pending_key`, an empty object naming the date,
  index and capture stem) BEFORE the capture's first body, so before its sidecar (the commit).
  Markers share one flat folder, so `Storage.write_marker` creates each without a look at the
  folder: an import of years of files piles up tens of thousands before the next refresh.
- `inventory()` reads the newest state, lists the pending markers (the captures since the last
  refresh: a handful a day, every file of an import until the refresh after it), walks only the
  dates they name (one listing of a date folder each), and, when asked to `update`, writes the
  next state and deletes the markers whose sidecar the walk saw.
- The state is a small *summary* (`state-N.json`: per year, its captures, dates, first and last
  date, each index's first day, and the digest naming the year's file) plus one *year file* per
  year (`years/<YYYY>-<digest>.json`: that year's {date: {index: count}}). A refresh reads and
  writes the summary and only the years its markers name, so the daily run's refresh costs the same
  at 250 dates as at 5,000 (one JSON of every date was read and written whole: ~40 ms at 1,250
  dates x 34 indices, growing with each date). Totals and each index's first day come from the
  summary; a reader that needs every date (the `coverage` command) loads every year
  (`inventory(whole=True)`, the default).

Why the state plus the markers is exact, and not an approximation:

- raw is append-only: a committed capture (a sidecar) is never removed or rewritten, and only
  RawStore writes raw; so the count of a (date, index) only changes by a RawStore write, which
  starts with a marker. A capture for an old date, a new index on an old date, a new date: all the
  same, the marker names the date and that date is walked again, whole.
- A marker is deleted only when a committed state counted its sidecar: its write came before the
  sidecar's, and the walk that saw the sidecar came before the state. A marker whose sidecar the walk
  did not see (a capture still being written, bodies but no sidecar yet) stays, and its date is walked
  again next time. One whose capture was abandoned (a crash mid-write: no sidecar ever) is dropped
  after MARKER_STALE_SECONDS, far beyond any write (RawStore breaks a lease after 300 s).
- A state that is missing or unreadable (lost, truncated, a version this code does not know) is
  rebuilt from a full walk of raw, which is what the state must always equal. The markers listed
  before that walk are settled by it as above.
- Year files are named by their content's digest and never rewritten in place: a summary only
  names files written before it. One that a newer summary no longer names is deleted by the
  refresh after the one that replaced it (a reader of the previous summary still finds its files).
  A year file found missing or unreadable is treated as a lost state: raw is walked whole.
- States are numbered and created exclusively (`Storage.create_bytes`: link(2) locally, a conditional
  PUT on S3): of two concurrent refreshes from the same state exactly one writes the next, and the
  other deletes no marker, so a marker is never lost to a state that did not count it. (A refresh that
  stalls while two later ones complete could still write an orphan, lower-numbered state and delete
  markers the newest lacks; the catalog refresh that updates the state runs in Dagster's `duckdb` pool,
  one at a time.)

What it does not see: files put into raw by anything but RawStore (a copy restored by hand, an older
version of this code still running) write no marker. Deleting the state (`catalog/_raw_inventory/`)
makes the next refresh walk raw whole again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from b3_platform.lake.paths import (
    DATE_DIR_PREFIX,
    INDEX_DIR_PREFIX,
    META_SUFFIX,
    PORTFOLIO_DAY,
    RAW_PENDING_DIR,
    raw_inventory_prefix,
    raw_prefix,
)
from b3_platform.lake.storage import LocalStorage, MissingKey, Storage

#: Which methods' captures RawStore announces with a marker: the ones an inventory is kept for
#: (markers nobody settles would pile up, one per capture, forever).
INVENTORIED_METHODS = frozenset({PORTFOLIO_DAY})
#: A marker older than this whose capture still has no sidecar was abandoned mid-write.
MARKER_STALE_SECONDS = 3600.0
#: 2: a summary plus a file per year (1: one JSON of every date, read as no state: raw is walked
#: once and the state written anew).
STATE_FORMAT = 2
_STATE_PREFIX = "state-"
_STATE_SUFFIX = ".json"
_YEARS_DIR = "years/"
#: Walk raw whole rather than date by date once more dates than this changed since the state
#: (the larger of a floor and a share of the dates the state holds: 1/15th, since on S3 a date of 34
#: indices is ~68 keys, so a full listing costs ~1 request per 15 dates and a date's own one).
FULL_WALK_MIN_DATES = 20
FULL_WALK_SHARE = 15
#: Attempts at reading the newest state while another refresh replaces it (then raw is walked).
_READ_ATTEMPTS = 5

Counts = dict[dt.date, dict[str, int]]


class _Unreadable(Exception):
    """A state or year file that cannot be trusted (missing, truncated, another format)."""


@dataclass(frozen=True)
class YearSummary:
    """What the summary keeps of one year: enough for totals, coverage's first day and indices,
    and for telling whether the year changed (its digest), without reading the year's file."""

    digest: str
    captures: int
    dates: int
    first: dt.date
    last: dt.date
    #: Each index's first day with a committed capture in the year.
    indices: dict[str, dt.date]


def _year_file(year: int, counts: Counts) -> tuple[bytes, YearSummary]:
    """A year's file (`{"format":2,"year":Y,"dates":{...}}`, dates and indices sorted by the JSON
    encoder, in C) and its summary; `counts` holds that year's dates only, at least one."""
    dates = json.dumps({d.isoformat(): i for d, i in counts.items()}, sort_keys=True, separators=(",", ":"))
    data = f'{{"format":{STATE_FORMAT},"year":{year},"dates":{dates}}}'.encode("utf-8")
    firsts: dict[str, dt.date] = {}
    for day in sorted(counts):
        for index in counts[day]:
            firsts.setdefault(index, day)
    summary = YearSummary(
        digest=_digest(data),
        captures=sum(sum(i.values()) for i in counts.values()),
        dates=len(counts),
        first=min(counts),
        last=max(counts),
        indices=firsts,
    )
    return data, summary


def _digest(data: bytes) -> str:
    """What names a year's file and proves its bytes are the ones the summary counted."""
    return hashlib.sha256(data).hexdigest()[:16]


def _by_year(counts: Counts) -> dict[int, Counts]:
    years: dict[int, Counts] = {}
    for day, indices in counts.items():
        years.setdefault(day.year, {})[day] = indices
    return years


class RawInventory:
    """Committed captures (sidecars) per date and index folder, year by year: a date or index
    without a committed capture is absent. Every year's summary is at hand; a year's counts are
    read from its file when first asked for (`year`), or were loaded with the inventory."""

    def __init__(self, counts: Counts):
        """An inventory of `counts` ({date: {index: count}}), held in memory."""
        by_year = _by_year(counts)
        self._years = {y: _year_file(y, c)[1] for y, c in by_year.items()}
        self._loaded = by_year
        self._read: Callable[[int, YearSummary], Counts] | None = None

    @classmethod
    def _stored(
        cls,
        years: dict[int, YearSummary],
        loaded: dict[int, Counts],
        read: Callable[[int, YearSummary], Counts],
    ) -> RawInventory:
        inventory = cls.__new__(cls)
        inventory._years, inventory._loaded, inventory._read = years, dict(loaded), read
        return inventory

    @property
    def years(self) -> dict[int, YearSummary]:
        """{year: its summary}, for the years holding a committed capture."""
        return dict(self._years)

    def year(self, year: int) -> Counts:
        """{date: {index: count}} of one year (empty for a year without captures)."""
        if year not in self._years:
            return {}
        if year not in self._loaded:
            assert self._read is not None  # an inventory built in memory holds every year
            self._loaded[year] = self._read(year, self._years[year])
        return self._loaded[year]

    @property
    def counts(self) -> Counts:
        """{date: {index: count}} of every year (each year's file read once)."""
        return {day: indices for year in sorted(self._years) for day, indices in self.year(year).items()}

    def captured_days(self) -> dict[str, set[dt.date]]:
        """Per index, the dates with at least one committed capture."""
        found: dict[str, set[dt.date]] = {}
        for day, indices in self.counts.items():
            for index in indices:
                found.setdefault(index, set()).add(day)
        return found

    def first_days(self) -> dict[str, dt.date]:
        """Each index's first day with a committed capture, from the summaries alone."""
        found: dict[str, dt.date] = {}
        for year in sorted(self._years):
            for index, day in self._years[year].indices.items():
                found.setdefault(index, day)
        return found

    def totals(self) -> tuple[int, int, dt.date | None, dt.date | None]:
        """Captures, dates, first and last date: what the raw_captures view holds (the summaries)."""
        years = self._years.values()
        return (
            sum(s.captures for s in years),
            sum(s.dates for s in years),
            min((s.first for s in years), default=None),
            max((s.last for s in years), default=None),
        )


def inventory(
    storage: Storage, method: str = PORTFOLIO_DAY, *, update: bool = False, whole: bool = True
) -> RawInventory:
    """Raw's captures as of now: the newest state brought up to date by the pending markers (the
    dates they name walked again), or a full walk when there is no readable state. With `update`,
    the result is written as the next state and the settled markers are deleted (the catalog
    refresh does this; a reader that only looks leaves the lake as it was). With `whole` (the
    default) every year's counts are read now; without, only the summary and the years the markers
    name are, and another year is read when asked for (what keeps a refresh O(what changed))."""
    prefix = raw_inventory_prefix(method)
    years: dict[int, YearSummary] | None = None
    loaded: dict[int, Counts] = {}
    for _ in range(_READ_ATTEMPTS):
        keys = storage.list_keys(prefix)
        states = sorted((g, k) for k in keys if (g := _generation(k, method)) is not None)
        pending = [k for k in keys if k.startswith(f"{prefix}{RAW_PENDING_DIR}")]
        marked = [m for k in pending if (m := _marker(k, method)) is not None]
        dirty = {m[1] for m in marked}
        try:
            years = _read_state(storage, states[-1][1]) if states else None
            if years is not None:
                wanted = set(years) if whole else {d.year for d in dirty} & set(years)
                loaded = {y: _read_year(storage, method, y, years[y]) for y in sorted(wanted)}
        except MissingKey:  # replaced by a concurrent refresh between the listing and the read
            years, loaded = None, {}
            continue
        except _Unreadable:  # a state that cannot be trusted: raw is walked whole, below
            years, loaded = None, {}
        break
    # Still no state read after every attempt (replaced each time): walk raw whole, which is what a
    # state must equal anyway; a reader never fails because a state was replaced under it.
    rebuilt = years is None
    known_dates = sum(s.dates for s in years.values()) if years else 0
    if years is None or len(dirty) > max(FULL_WALK_MIN_DATES, known_dates // FULL_WALK_SHARE):
        # No state, or so many dates to walk again (an import of a year) that one walk of all raw
        # costs less: on S3 a date's listing is one request, a full one lists 1,000 keys a request.
        counts, seen = _walk_all(storage, method, dirty)
        loaded = _by_year(counts)
        changed = set(loaded) | set(years or {})
    else:
        seen = {day: _walk_date(storage, method, day) for day in dirty}
        changed = {day.year for day in dirty}
        for day, stems in seen.items():
            per_year = loaded.setdefault(day.year, {})
            found = {i: len(s) for i, s in stems.items()}
            if found:
                per_year[day] = found
            else:
                per_year.pop(day, None)
    before = dict(years or {})
    after = {y: s for y, s in before.items() if y not in changed}
    files: dict[int, bytes] = {}
    for year in sorted(changed):
        if loaded.get(year):
            files[year], after[year] = _year_file(year, loaded[year])
        else:
            loaded.pop(year, None)
    after = dict(sorted(after.items()))
    settled = [k for k in pending if _marker(k, method) is None]  # not a marker this code wrote
    now_ms = time.time() * 1000
    for key, day, index, stem, written_ms in marked:
        if stem in seen.get(day, {}).get(index, ()) or now_ms - written_ms > MARKER_STALE_SECONDS * 1000:
            settled.append(key)
    if update and (rebuilt or pending):
        for year, data in files.items():
            if rebuilt or before.get(year) != after[year]:
                storage.write_bytes(_year_key(method, year, after[year].digest), data)
        generation = states[-1][0] + 1 if states else 1
        if storage.create_bytes(_state_key(method, generation), _encode_state(after)):
            # The year files neither this summary nor the one it replaced names: the previous
            # summary's own files are kept for a reader still on it (module docstring).
            named = {_year_key(method, y, s.digest) for y, s in [*after.items(), *before.items()]}
            unnamed = [k for k in keys if k.startswith(f"{prefix}{_YEARS_DIR}") and k not in named]
            storage.delete_keys(settled + [k for g, k in states if g < generation] + unnamed)
    return RawInventory._stored(after, loaded, _reader(storage, method))


def _reader(storage: Storage, method: str) -> Callable[[int, YearSummary], Counts]:
    """How an inventory reads a year it did not load: its file, or (gone or unreadable: a refresh
    replaced it twice since) that year from a walk of all raw, which the file must equal."""

    def read(year: int, summary: YearSummary) -> Counts:
        try:
            return _read_year(storage, method, year, summary)
        except (MissingKey, _Unreadable):
            return _by_year(_walk_all(storage, method, set())[0]).get(year, {})

    return read


def _state_key(method: str, generation: int) -> str:
    return f"{raw_inventory_prefix(method)}{_STATE_PREFIX}{generation:012d}{_STATE_SUFFIX}"


def _year_key(method: str, year: int, digest: str) -> str:
    return f"{raw_inventory_prefix(method)}{_YEARS_DIR}{year:04d}-{digest}.json"


def _generation(key: str, method: str) -> int | None:
    name = key[len(raw_inventory_prefix(method)) :]
    if name.startswith(_STATE_PREFIX) and name.endswith(_STATE_SUFFIX):
        number = name[len(_STATE_PREFIX) : -len(_STATE_SUFFIX)]
        return int(number) if number.isdigit() else None
    return None


def _marker(key: str, method: str) -> tuple[str, dt.date, str, str, int] | None:
    """(key, date, index, capture stem, written ms) of `pending/<date>_<index>_<ms>-<stem>`."""
    name = key[len(f"{raw_inventory_prefix(method)}{RAW_PENDING_DIR}") :]
    parts = name.split("_", 2)
    if len(parts) != 3 or "/" in name:
        return None
    day = _day(f"{DATE_DIR_PREFIX}{parts[0]}")
    written, _, stem = parts[2].partition("-")
    if day is None or not parts[1] or not written.isdigit() or not stem:
        return None
    return key, day, parts[1], stem, int(written)


def _day(folder: str) -> dt.date | None:
    """The date of a `date=YYYY-MM-DD` folder name, None for any other name."""
    if not folder.startswith(DATE_DIR_PREFIX):
        return None
    try:
        return dt.date.fromisoformat(folder[len(DATE_DIR_PREFIX) :])
    except ValueError:
        return None


def _encode_state(years: dict[int, YearSummary]) -> bytes:
    """The summary: `{"format":2,"years":{"YYYY":{"digest":..,"captures":..,"dates":..,"first":..,
    "last":..,"indices":{"<index>":"<first day>",...}},...}}`."""
    return json.dumps(
        {
            "format": STATE_FORMAT,
            "years": {
                str(y): {
                    "digest": s.digest,
                    "captures": s.captures,
                    "dates": s.dates,
                    "first": s.first.isoformat(),
                    "last": s.last.isoformat(),
                    "indices": {i: d.isoformat() for i, d in sorted(s.indices.items())},
                }
                for y, s in years.items()
            },
        },
        separators=(",", ":"),
    ).encode("utf-8")


def _read_state(storage: Storage, key: str) -> dict[int, YearSummary]:
    """The summary's years (raises _Unreadable when it cannot be trusted: raw is then walked)."""
    data = storage.read_bytes(key)
    try:
        state = json.loads(data)
        if state["format"] != STATE_FORMAT:
            raise _Unreadable(key)
        date_of = dt.date.fromisoformat
        return {
            int(y): YearSummary(
                digest=str(s["digest"]),
                captures=int(s["captures"]),
                dates=int(s["dates"]),
                first=date_of(s["first"]),
                last=date_of(s["last"]),
                indices={str(i): date_of(d) for i, d in s["indices"].items()},
            )
            for y, s in state["years"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _Unreadable(key) from exc


def _read_year(storage: Storage, method: str, year: int, summary: YearSummary) -> Counts:
    """A year's {date: {index: count}} from its file (raises _Unreadable when it cannot be trusted:
    not the year or the digest the summary names)."""
    key = _year_key(method, year, summary.digest)
    data = storage.read_bytes(key)
    if _digest(data) != summary.digest:
        raise _Unreadable(key)
    try:
        state = json.loads(data)
        if state["format"] != STATE_FORMAT or state["year"] != year:
            raise _Unreadable(key)
        counts = {dt.date.fromisoformat(d): indices for d, indices in state["dates"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _Unreadable(key) from exc
    # Each date's {index: count} is taken as json.loads made it (a whole file written at once by
    # _year_file and checked against its digest, so its shape is checked per date, not per entry).
    if not all(type(i) is dict and d.year == year for d, i in counts.items()):
        raise _Unreadable(key)
    return counts


def _walk_date(storage: Storage, method: str, day: dt.date) -> dict[str, set[str]]:
    """{index: the stems of its committed captures} of one date: one listing of its folder."""
    prefix = raw_prefix(day, method=method)
    found: dict[str, set[str]] = {}
    for key in storage.list_keys(prefix):
        parts = key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[0].startswith(INDEX_DIR_PREFIX) and parts[1].endswith(META_SUFFIX):
            found.setdefault(parts[0][len(INDEX_DIR_PREFIX) :], set()).add(parts[1][: -len(META_SUFFIX)])
    return found


def _walk_all(
    storage: Storage, method: str, keep: set[dt.date]
) -> tuple[Counts, dict[dt.date, dict[str, set[str]]]]:
    """The counts of all raw, walked (a capture's sidecar is `date=D/index=X/<stem>.meta.json`),
    and for the dates in `keep` the stems themselves (what settles their markers)."""
    prefix = raw_prefix(method=method)
    if isinstance(storage, LocalStorage):
        return _walk_folders(os.path.join(str(storage.root), prefix), keep)
    counts: Counts = {}
    stems: dict[dt.date, dict[str, set[str]]] = {}
    for key in storage.list_keys(prefix):
        if not key.endswith(META_SUFFIX):
            continue
        parts = key[len(prefix) :].split("/")
        if len(parts) == 3 and parts[1].startswith(INDEX_DIR_PREFIX) and (day := _day(parts[0])):
            index = parts[1][len(INDEX_DIR_PREFIX) :]
            per_day = counts.setdefault(day, {})
            per_day[index] = per_day.get(index, 0) + 1
            if day in keep:
                stems.setdefault(day, {}).setdefault(index, set()).add(parts[2][: -len(META_SUFFIX)])
    return counts, stems


def _walk_folders(base: str, keep: set[dt.date]) -> tuple[Counts, dict[dt.date, dict[str, set[str]]]]:
    """_walk_all on a local folder: one scandir per date and index folder, names only (a listing of
    every key, sorted, then parsed, costs twice as much)."""
    counts: Counts = {}
    stems: dict[dt.date, dict[str, set[str]]] = {}
    try:
        day_entries = list(os.scandir(base))
    except FileNotFoundError:
        return counts, stems
    for day_entry in day_entries:
        day = _day(day_entry.name)
        if day is None or not day_entry.is_dir(follow_symlinks=False):
            continue
        found = {}
        with os.scandir(day_entry.path) as index_entries:
            for index_entry in index_entries:
                if index_entry.name.startswith(INDEX_DIR_PREFIX) and index_entry.is_dir(
                    follow_symlinks=False
                ):
                    with os.scandir(index_entry.path) as files:
                        names = [f.name for f in files if f.name.endswith(META_SUFFIX) and f.is_file()]
                    if names:
                        index = index_entry.name[len(INDEX_DIR_PREFIX) :]
                        found[index] = len(names)
                        if day in keep:
                            stems.setdefault(day, {})[index] = {n[: -len(META_SUFFIX)] for n in names}
        if found:
            counts[day] = found
    return counts, stems
