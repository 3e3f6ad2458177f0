"""Build the dashboard from a catalog and write it under the lake, through the lake's storage:
`dashboard/index.html` under `./data` locally, the same key under `s3://bucket/prefix` on AWS."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from b3_platform.catalog.base import CatalogResource
from b3_platform.dashboard import data as dashboard_data
from b3_platform.dashboard import page, queries
from b3_platform.lake.storage import Storage

DASHBOARD_PREFIX = "dashboard/"
PAGE_KEY = f"{DASHBOARD_PREFIX}index.html"


@dataclass(frozen=True)
class BuiltSite:
    uri: str
    key: str
    size: int
    indices: list[str]
    #: The lake's dates (the page shows the older ones one point per month): how many, first, last.
    dates: int
    first_date: str | None
    last_date: str | None
    query_seconds: float
    render_seconds: float
    data: dashboard_data.DashboardData


def _write_page(storage: Storage, html: bytes) -> None:
    """On S3 the object says it is HTML, so the bucket (or a CDN before it) serves it as a page."""
    from b3_platform.lake.s3_storage import S3Storage

    if isinstance(storage, S3Storage):
        storage.write_bytes(PAGE_KEY, html, content_type="text/html; charset=utf-8")
    else:
        storage.write_bytes(PAGE_KEY, html)


def build_site(
    catalog: CatalogResource,
    storage: Storage,
    *,
    top_n: int = queries.DEFAULT_TOP_N,
    now: dt.datetime | None = None,
) -> BuiltSite:
    """Ask the catalog, render the page and write it (one atomic write: a viewer never sees half a
    page). A catalog without dates gives a page that says so."""
    started = time.perf_counter()
    data = dashboard_data.load(catalog, top_n=top_n)
    queried = time.perf_counter()
    dates, first, last = data.span()
    html = page.render(data, now or dt.datetime.now(dt.timezone.utc)).encode("utf-8")
    _write_page(storage, html)
    return BuiltSite(
        uri=storage.uri(PAGE_KEY),
        key=PAGE_KEY,
        size=len(html),
        indices=data.indices,
        dates=dates,
        first_date=first,
        last_date=last,
        query_seconds=queried - started,
        render_seconds=time.perf_counter() - queried,
        data=data,
    )
