"""GetStockIndex typed: one row per (index, ticker) of a listing (the date is the partition)."""

from __future__ import annotations

import pyarrow as pa

from b3_platform.b3.stock_index import StockIndexListing
from b3_platform.lake.schemas import INDEX_MEMBERS


def index_members_table(listing: StockIndexListing, capture_id: str) -> pa.Table:
    """Every membership of the listing, sorted by index then ticker."""
    rows = sorted(
        ((index, stock) for stock in listing.stocks for index in stock.indices),
        key=lambda pair: (pair[0], pair[1].ticker),
    )
    n = len(rows)
    return pa.table(
        {
            "index": [index for index, _ in rows],
            "ticker": [s.ticker for _, s in rows],
            "company": [s.company for _, s in rows],
            "spotlight": [s.spotlight for _, s in rows],
            "update_date": [listing.update] * n,
            "period_year": [listing.year] * n,
            "period_start_month": [listing.start_month] * n,
            "period_end_month": [listing.end_month] * n,
            "capture_id": [capture_id] * n,
        },
        schema=INDEX_MEMBERS.schema,
    )
