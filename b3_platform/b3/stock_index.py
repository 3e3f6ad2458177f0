"""The contract of B3's GetStockIndex response: every listed stock and the indices it belongs to.

GetStockIndex is how the platform learns which indices B3 publishes (and so which to capture each
day), and which indices hold a stock. Like the day portfolio, a body is validated completely before
a byte of it is stored, so raw only ever holds listings that satisfied this contract.

The listing names no index and no trading day: it is filed under the trading day it was captured
on, in the fixed index slot `index=ALL` (three letters, so it can never be a B3 index code).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from b3_platform.b3.contract import ContractError, _describe_validation, _load_json
from b3_platform.b3.indices import validate_index_code

METHOD = "GetStockIndex"
#: The raw store's index slot of a listing: `raw/GetStockIndex/date=D/index=ALL/`.
LISTING_SLOT = "ALL"
#: B3 answers with every stock in one page at this size (rb3 cassette: 537 rows, one page).
STOCK_INDEX_PAGE_SIZE = 9999

_TICKER = re.compile(r"^[A-Z0-9]{4}[0-9]{1,2}[A-Z]?$")


def stock_index_params(page: int = 1, page_size: int = STOCK_INDEX_PAGE_SIZE) -> dict:
    return {"pageNumber": page, "pageSize": page_size}


class _Model(BaseModel):
    # B3 may add fields; they stay in the raw bytes and are ignored here.
    model_config = ConfigDict(extra="ignore", strict=True)


class _Page(_Model):
    pageNumber: int
    pageSize: int
    totalRecords: int
    totalPages: int | None = None


class _Header(_Model):
    update: str
    startMonth: int = Field(ge=1, le=12)
    endMonth: int = Field(ge=1, le=12)
    year: int = Field(ge=2000, le=2100)


class _Stock(_Model):
    company: str
    spotlight: str
    code: str
    indexes: str


class _Response(_Model):
    page: _Page
    header: _Header
    results: list[_Stock]


@dataclass(frozen=True)
class ListedStock:
    ticker: str
    company: str
    #: B3's `spotlight` as written: share class and listing segment ("ON   NM", "DRN").
    spotlight: str
    indices: tuple[str, ...]


@dataclass(frozen=True)
class StockIndexListing:
    """One GetStockIndex response: B3's stated period and every listed stock with its indices."""

    update: dt.date
    start_month: int
    end_month: int
    year: int
    stocks: tuple[ListedStock, ...]

    @property
    def index_codes(self) -> tuple[str, ...]:
        """Every index the listing names, sorted: the indices B3 currently publishes."""
        return tuple(sorted({code for stock in self.stocks for code in stock.indices}))


def decode_stock_index_json(body: bytes) -> StockIndexListing:
    """Validate a GetStockIndex body and return its listing; ContractError names what is wrong."""

    def fail(reason: str):
        raise ContractError(f"{METHOD}: {reason}", index=None, requested_date=None)

    data = _load_json(body, fail)
    if not isinstance(data, dict):
        fail(f"expected a JSON object, got {type(data).__name__}")
    if "results" in data and data["results"] is None:
        fail('"results" is null: B3 listed no stock')
    try:
        response = _Response.model_validate(data)
    except ValidationError as exc:
        fail(f"does not match the {METHOD} contract: {_describe_validation(exc)}")
    if not response.results:
        fail('"results" is empty: the listing names no stock')
    try:
        update = dt.date.fromisoformat(response.header.update)
    except ValueError:
        fail(f"header.update = {response.header.update!r}: not a YYYY-MM-DD date")
    stocks = []
    seen: set[str] = set()
    for row, item in enumerate(response.results, start=1):
        if not _TICKER.match(item.code):
            fail(f"results[{row}].code = {item.code!r}: not a B3 ticker")
        if item.code in seen:
            fail(f"results[{row}].code = {item.code!r}: listed twice")
        seen.add(item.code)
        codes = [c.strip() for c in item.indexes.split(",") if c.strip()]
        try:
            indices = tuple(dict.fromkeys(validate_index_code(c) for c in codes))
        except ValueError as exc:
            fail(f"results[{row}].indexes ({item.code}): {exc}")
        stocks.append(ListedStock(item.code, item.company.strip(), item.spotlight, indices))
    if (response.page.totalPages or 1) > 1:
        # B3 answers pageSize 9999 with everything in one page; a paged listing is not expected.
        fail(f"page.totalPages is {response.page.totalPages}: the listing should come in one page")
    if response.page.totalRecords != len(stocks):
        fail(f"page.totalRecords is {response.page.totalRecords} but the body holds {len(stocks)} rows")
    listing = StockIndexListing(
        update=update,
        start_month=response.header.startMonth,
        end_month=response.header.endMonth,
        year=response.header.year,
        stocks=tuple(stocks),
    )
    if not listing.index_codes:
        fail("no stock belongs to any index")
    return listing
