"""Index discovery, Dagster-free: B3's GetStockIndex listings in raw, and the indices to capture.

Which indices to capture on a day, in order of precedence:
1. `B3_PLATFORM_INDICES` when set (configured);
2. else every index named by the newest good GetStockIndex listing filed on or before that day
   (discovered): an index B3 adds is captured from the day its listing names it, one B3 drops is no
   longer expected; when the day's own listing is missing (B3 failed to answer it), the last good
   one stands in and the plan says so;
3. else, when the lake holds no listing at all (a fresh lake, no network), the built-in list of
   the 34 indices B3 listed on 2025-04-07 (b3/indices.py BUILTIN_INDICES).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from b3_platform.b3.client import StockIndexCapture
from b3_platform.b3.contract import ContractError
from b3_platform.b3.indices import BUILTIN_INDICES
from b3_platform.b3.stock_index import LISTING_SLOT, StockIndexListing, decode_stock_index_json
from b3_platform.lake.raw_store import RawCapture, RawStore

log = logging.getLogger(__name__)

CONFIGURED, DISCOVERED, BUILT_IN = "configured", "discovered", "built-in"


@dataclass(frozen=True)
class CapturePlan:
    """The indices to capture (and expect) on a day, and where that list came from."""

    codes: tuple[str, ...]
    source: str  # CONFIGURED, DISCOVERED or BUILT_IN
    #: The trading day whose listing gave the codes (discovered only).
    listing_date: dt.date | None = None
    #: True when the day's own listing was missing and an older one (or the built-in list) stood in.
    fallback: bool = False

    def describe(self, day: dt.date) -> str:
        """What a log line, the metadata and the completeness check say about the list."""
        n = len(self.codes)
        if self.source == CONFIGURED:
            return f"{n} indices configured by B3_PLATFORM_INDICES"
        if self.source == BUILT_IN:
            return (
                f"{n} indices of the built-in list (no GetStockIndex listing in the lake on or before {day})"
            )
        if self.fallback:
            return (
                f"{n} indices of the last good GetStockIndex listing, of {self.listing_date} "
                f"(none stored for {day})"
            )
        return f"{n} indices listed by GetStockIndex on {self.listing_date}"


def listing_store(store: RawStore) -> RawStore:
    """The raw store of GetStockIndex captures beside `store` (any method's store)."""
    from b3_platform.b3.stock_index import METHOD

    return RawStore(store.storage, METHOD)


def newest_listing(store: RawStore, on_or_before: dt.date) -> tuple[RawCapture, StockIndexListing] | None:
    """The newest listing filed on or before a day that satisfies today's contract (one that no
    longer does is skipped with a warning: a contract tightened later must not stop discovery).

    The day itself is looked at first: on a daily run its listing was just captured, and finding
    it so does not list every date of the store (a listing that grows with the history)."""
    found = _listing_of(store, on_or_before)
    if found is not None:
        return found
    for day in reversed(store.dates()):
        if day < on_or_before and (found := _listing_of(store, day)) is not None:
            return found
    return None


def _listing_of(store: RawStore, day: dt.date) -> tuple[RawCapture, StockIndexListing] | None:
    """The newest listing filed on `day` that satisfies today's contract."""
    for capture in store.by_index(day).get(LISTING_SLOT, []):  # newest first
        try:
            return capture, decode_stock_index_json(store.read_bodies(capture)[0])
        except ContractError as exc:
            log.warning("GetStockIndex capture %s of %s skipped: %s", capture.capture_id, day, exc)
    return None


def capture_plan(configured: tuple[str, ...] | None, store: RawStore | None, day: dt.date) -> CapturePlan:
    """The indices to capture and expect on `day` (see the module docstring)."""
    if configured:
        return CapturePlan(tuple(configured), CONFIGURED)
    found = newest_listing(store, day) if store is not None else None
    if found is None:
        return CapturePlan(BUILTIN_INDICES, BUILT_IN, fallback=True)
    capture, listing = found
    return CapturePlan(listing.index_codes, DISCOVERED, capture.day, fallback=capture.day != day)


def store_listing(store: RawStore, day: dt.date, capture: StockIndexCapture) -> tuple[RawCapture, bool]:
    """File a GetStockIndex capture under the trading day it was taken on; (capture, stored_now)."""
    page = capture.page
    return store.store(
        day,
        LISTING_SLOT,
        [page.body],
        fetched_at=page.fetched_at,
        source_format="json",
        meta={
            "source": "api",
            "url": page.url,
            "params": page.params,
            "http_status": page.status,
            "update": capture.listing.update.isoformat(),
            "indices": list(capture.listing.index_codes),
        },
        pages_meta=[{"url": page.url, "params": page.params, "http_status": page.status}],
    )


def import_listing(store: RawStore, day: dt.date, path: Path) -> tuple[RawCapture, bool]:
    """File a saved GetStockIndex response under `day`, validated first (the demo's sample)."""
    body = path.read_bytes()
    listing = decode_stock_index_json(body)
    return store.store(
        day,
        LISTING_SLOT,
        [body],
        fetched_at=dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc),
        source_format="json",
        meta={
            "source": "import",
            "file_name": path.name,
            "update": listing.update.isoformat(),
            "indices": list(listing.index_codes),
        },
    )
