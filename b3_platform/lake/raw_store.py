"""Raw captures: append-only, byte for byte, one folder per (date, index).

A capture is its page bodies (`<stem>.json`, or `<stem>.csv` for a download, plus `<stem>.p2.json`…
when B3 paged) and a metadata sidecar `<stem>.meta.json` written last: the sidecar is the commit
marker, so a capture whose write was interrupted is never seen. The stem is the capture's id and
holds the sha256 of the bodies, so a capture identical to a stored one is recognised by name and not
stored again.

"Store unless an identical capture exists" must hold between processes too (two `import`s over
the same folder, an import beside the landing sensor): the look-up and the write are separate
steps, so they run under a lease on the content, `<sha256>.lease` in the capture's folder, created
with create-exclusive semantics (`Storage.create_bytes`: link(2) locally, a conditional PUT
`If-None-Match: *` on S3). The holder looks again, then writes and deletes the lease; a second
writer of the same bytes waits for the lease, then finds the capture and stores nothing. The lease
is transient, so the layout stays bodies + sidecar and raw written before it stays valid. A lease
left by a crashed process is broken once older than `LEASE_STALE_SECONDS`.

Before its first body, a capture of an inventoried method announces itself with a pending marker
outside raw (`paths.raw_pending_key`): what lets lake.raw_inventory keep the counts of captures per
date and index exact without walking raw on every catalog refresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from b3_platform.lake.paths import (
    META_SUFFIX,
    PORTFOLIO_DAY,
    date_in_key,
    index_in_key,
    raw_pending_key,
    raw_prefix,
    raw_stem,
)
from b3_platform.lake.raw_inventory import INVENTORIED_METHODS
from b3_platform.lake.storage import Storage, StorageError

LEASE_SUFFIX = ".lease"
#: A store holds its lease for the time of a few writes (milliseconds locally, under a second on
#: S3); one older than this was left by a process that died holding it, and is broken.
LEASE_STALE_SECONDS = 300.0
#: How long a writer waits for another writer's lease before giving up (a bit past stale).
LEASE_WAIT_SECONDS = LEASE_STALE_SECONDS + 30.0
LEASE_POLL_SECONDS = 0.05

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawCapture:
    day: dt.date
    index: str
    #: The capture's file stem, `<fetched_at>-<sha256>` (paths.raw_stem): what bronze and silver
    #: rows record as their origin.
    capture_id: str
    meta: dict

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def source_format(self) -> str:
        return self.meta["format"]

    @property
    def body_keys(self) -> list[str]:
        return [p["key"] for p in self.meta["pages"]]


def capture_sha256(bodies: list[bytes]) -> str:
    digest = hashlib.sha256()
    for body in bodies:
        digest.update(body)
    return digest.hexdigest()


class RawStore:
    """The captures of one B3 method (`raw/<method>/`); GetPortfolioDay unless told otherwise."""

    def __init__(self, storage: Storage, method: str = PORTFOLIO_DAY) -> None:
        self.storage = storage
        self.method = method

    def captures(self, day: dt.date, index: str | None = None) -> list[RawCapture]:
        """Committed captures of a date (optionally one index), oldest first."""
        found = []
        for key in self.storage.list_keys(raw_prefix(day, index, method=self.method)):
            if key.endswith(META_SUFFIX):
                meta = read_sidecar(self.storage, key)
                stem = key.rsplit("/", 1)[1][: -len(META_SUFFIX)]
                found.append(RawCapture(day, index_in_key(key) or meta["index"], stem, meta))
        return sorted(found, key=lambda c: (c.index, c.capture_id))

    def by_index(self, day: dt.date) -> dict[str, list[RawCapture]]:
        """A date's captures per index, newest first (the order bronze tries them in)."""
        grouped: dict[str, list[RawCapture]] = {}
        for capture in reversed(self.captures(day)):  # sorted by capture_id, which starts with fetched_at
            grouped.setdefault(capture.index, []).append(capture)
        return dict(sorted(grouped.items()))

    def latest_by_index(self, day: dt.date) -> dict[str, RawCapture]:
        """The newest capture of each index."""
        return {index: captures[0] for index, captures in self.by_index(day).items()}

    def indices_on(self, day: dt.date) -> set[str]:
        return {c.index for c in self.captures(day)}

    def dates(self) -> list[dt.date]:
        return sorted(
            {
                d
                for k in self.storage.list_keys(raw_prefix(method=self.method))
                if k.endswith(META_SUFFIX) and (d := date_in_key(k))
            }
        )

    def find_sha(self, day: dt.date, index: str, sha256: str) -> RawCapture | None:
        for capture in self.captures(day, index):
            if capture.sha256 == sha256:
                return capture
        return None

    def read_bodies(self, capture: RawCapture) -> list[bytes]:
        return [self.storage.read_bytes(k) for k in capture.body_keys]

    def store(
        self,
        day: dt.date,
        index: str,
        bodies: list[bytes],
        *,
        fetched_at: dt.datetime,
        source_format: str,
        meta: dict,
        pages_meta: list[dict] | None = None,
    ) -> tuple[RawCapture, bool]:
        """Store a capture unless an identical one exists. Returns (capture, stored_now).

        Safe between processes: the second look-up and the write run under the content's lease."""
        sha = capture_sha256(bodies)
        existing = self.find_sha(day, index, sha)
        if existing is not None:
            return existing, False
        prefix = raw_prefix(day, index, method=self.method)
        with self._lease(f"{prefix}{sha}{LEASE_SUFFIX}"):
            existing = self.find_sha(day, index, sha)  # stored by the lease's previous holder?
            if existing is not None:
                return existing, False
            return self._write(
                day, index, bodies, sha, prefix, fetched_at, source_format, meta, pages_meta
            ), True

    @contextmanager
    def _lease(self, key: str) -> Iterator[None]:
        """Hold `key` (created exclusively) for the block; wait while another writer holds it."""
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        give_up = time.monotonic() + LEASE_WAIT_SECONDS
        while not self.storage.create_transient(key, json.dumps(holder).encode("utf-8")):
            held = self.storage.read_if_exists(key)
            if held is None:
                continue  # released between the two calls: try again at once
            try:
                since = float(json.loads(held)["since"])
            except (ValueError, KeyError, TypeError):
                since = 0.0  # not a lease this code wrote: as good as stale
            if time.time() - since > LEASE_STALE_SECONDS:
                log.warning(
                    "%s: breaking a lease left %.0f s ago (%r)",
                    self.storage.uri(key),
                    time.time() - since,
                    held[:200],
                )
                self.storage.delete(key)
                continue
            if time.monotonic() > give_up:
                raise StorageError(
                    f"{self.storage.uri(key)}: another process has been storing the same bytes for "
                    f"{time.time() - since:.0f} s ({held[:200].decode('utf-8', 'replace')}); try again later"
                )
            time.sleep(LEASE_POLL_SECONDS)
        try:
            yield
        finally:
            self.storage.delete(key)

    def _write(
        self,
        day: dt.date,
        index: str,
        bodies: list[bytes],
        sha: str,
        prefix: str,
        fetched_at: dt.datetime,
        source_format: str,
        meta: dict,
        pages_meta: list[dict] | None,
    ) -> RawCapture:
        """The inventory's marker, the bodies, the sidecar last (the commit); on any failure the
        bodies written go, and the marker too once the sidecar is known absent (a failed S3 PUT may
        still have landed; a marker left behind is dropped by lake.raw_inventory once stale)."""
        stem = raw_stem(fetched_at, sha)
        sidecar = f"{prefix}{stem}{META_SUFFIX}"
        marker = None
        if self.method in INVENTORIED_METHODS:
            marker = raw_pending_key(day, index, stem, time.time_ns() // 1_000_000, method=self.method)
            self.storage.write_marker(marker)
        pages = []
        try:
            for number, body in enumerate(bodies, start=1):
                suffix = f".{source_format}" if number == 1 else f".p{number}.{source_format}"
                key = f"{prefix}{stem}{suffix}"
                self.storage.write_bytes(key, body)
                page = {"key": key, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
                page.update((pages_meta or [{}] * len(bodies))[number - 1])
                pages.append(page)
            full_meta = {
                **meta,
                "index": index,
                "date": day.isoformat(),
                "fetched_at": fetched_at.astimezone(dt.timezone.utc).isoformat(),
                "sha256": sha,
                "format": source_format,
                "pages": pages,
            }
            self.storage.write_bytes(
                sidecar, json.dumps(full_meta, indent=2, ensure_ascii=False).encode("utf-8")
            )
        except BaseException:
            # Never committed (no sidecar), so never a capture: remove the bodies written so far.
            for page in pages:
                self.storage.delete(page["key"])
            if marker is not None and not self.storage.exists(sidecar):
                self.storage.delete(marker)
            raise
        return RawCapture(day, index, stem, full_meta)


class DamagedSidecar(ValueError):
    """A capture's sidecar that is not the JSON object raw_store wrote (truncated, edited)."""


def read_sidecar(storage: Storage, key: str) -> dict:
    """A capture's sidecar, or DamagedSidecar naming the file and what to do: raw is append-only
    and never rewritten, so the fix is the file's backup (or its previous S3 version)."""
    data = storage.read_bytes(key)
    try:
        meta = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = f"not valid JSON ({exc})"
    else:
        if isinstance(meta, dict) and {"sha256", "format", "pages"} <= meta.keys():
            return meta
        problem = "not a capture sidecar (no sha256, format and pages)"
    raise DamagedSidecar(
        f"raw capture sidecar {storage.uri(key)} is damaged: {problem}, {len(data)} bytes. Restore it "
        "from a backup (on S3: its previous object version), or move the capture's files out of raw "
        "and import the response again"
    )
