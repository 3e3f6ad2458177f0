"""HTTP client for B3's index proxy (`indexProxy/indexCall/<Method>/<base64 JSON>`).

B3's CDN answers 5xx (often 520) at times and its WAF may hang: every call has a timeout, and
connection errors, timeouts and 5xx are retried with exponential backoff. 4xx and invalid bodies
are not retried: asking again would not change them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import requests

from b3_platform import __version__
from b3_platform.b3.contract import ContractError, Portfolio, decode_portfolio_json, merge_pages
from b3_platform.b3.stock_index import METHOD as STOCK_INDEX
from b3_platform.b3.stock_index import StockIndexListing, decode_stock_index_json, stock_index_params

DEFAULT_BASE_URL = "https://sistemaswebb3-listados.b3.com.br/indexProxy/indexCall"
USER_AGENT = f"b3_platform/{__version__} (index portfolio archiver; python-requests)"
#: B3 accepts 9999 and answers with everything in one page (rb3 cassettes).
DEFAULT_PAGE_SIZE = 9999

log = logging.getLogger(__name__)


class B3RequestError(RuntimeError):
    """B3 could not be reached or refused the request; names the index and what happened."""


def encode_params(params: dict) -> str:
    """B3's URL form: standard base64 (with padding) of the UTF-8 JSON text."""
    return base64.b64encode(json.dumps(params).encode("utf-8")).decode("ascii")


def build_url(base_url: str, method: str, params: dict) -> str:
    return f"{base_url.rstrip('/')}/{method}/{encode_params(params)}"


def portfolio_day_params(
    index: str,
    *,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    segment: str = "2",
    language: str = "pt-br",
) -> dict:
    """Segment "2" groups by sector and so carries each component's sector; "1" is the flat list."""
    if segment not in ("1", "2"):
        raise ValueError(f"segment must be '1' or '2', got {segment!r}")
    return {
        "language": language,
        "pageNumber": page,
        "pageSize": page_size,
        "index": index,
        "segment": segment,
    }


@dataclass(frozen=True)
class FetchedPage:
    url: str
    params: dict
    status: int
    body: bytes
    fetched_at: dt.datetime


@dataclass(frozen=True)
class Capture:
    """One index's response as received: the page bodies verbatim plus the validated portfolio."""

    index: str
    pages: list[FetchedPage]
    portfolio: Portfolio = field(repr=False)

    @property
    def fetched_at(self) -> dt.datetime:
        return self.pages[0].fetched_at


class B3Client:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url
        self.timeout = (connect_timeout, timeout)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.page_size = page_size
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})

    def _get(self, url: str, what: str) -> requests.Response:
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._session.get(url, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code < 500:
                    raise B3RequestError(
                        f"{what}: HTTP {response.status_code} from B3 (not retried: a client error "
                        f"does not go away by asking again); body starts with {response.content[:120]!r}"
                    )
                last_problem = f"HTTP {response.status_code}"
            if attempt < self.max_attempts:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log.warning(
                    "%s: %s; retry %d/%d in %.1fs", what, last_problem, attempt, self.max_attempts - 1, delay
                )
                self._sleep(delay)
        raise B3RequestError(f"{what}: gave up after {self.max_attempts} attempts; last: {last_problem}")

    def fetch_page(self, method: str, params: dict, what: str) -> FetchedPage:
        """One GET of `method` with `params`, with the client's timeouts and retries; the body is
        returned as received (validating it is the caller's contract). `what` names the call in
        errors and logs, e.g. "GetPortfolioDay IBOV for 2025-07-10"."""
        url = build_url(self.base_url, method, params)
        response = self._get(url, what)
        return FetchedPage(
            url, params, response.status_code, response.content, dt.datetime.now(dt.timezone.utc)
        )

    def fetch_portfolio_day(
        self,
        index: str,
        *,
        requested_date: dt.date | None = None,
        segment: str = "2",
        language: str = "pt-br",
        also_accepted: Collection[dt.date] = (),
    ) -> Capture:
        """Today's portfolio of `index`, every page, validated against the contract.

        Its header date must be `requested_date` or one of `also_accepted` (see the contract).
        Raises ContractError (invalid body, wrong date) or B3RequestError (unreachable, 4xx)."""
        what = f"GetPortfolioDay {index}" + (f" for {requested_date}" if requested_date else "")
        pages: list[FetchedPage] = []
        portfolios: list[Portfolio] = []
        page_number, total_pages = 1, 1
        while page_number <= total_pages:
            params = portfolio_day_params(
                index, page=page_number, page_size=self.page_size, segment=segment, language=language
            )
            page = self.fetch_page("GetPortfolioDay", params, what)
            portfolio = decode_portfolio_json(
                page.body,
                index=index,
                requested_date=requested_date,
                check_total_records=False,
                also_accepted=also_accepted,
            )
            if portfolio.page_number != page_number:
                # A server ignoring pageNumber would repeat page 1; the row total alone may not show it.
                raise ContractError(
                    f"asked for page {page_number}, got page.pageNumber {portfolio.page_number}",
                    index=index,
                    requested_date=requested_date,
                )
            pages.append(page)
            portfolios.append(portfolio)
            if page_number == 1:
                total_pages = portfolio.total_pages
                if total_pages > 100:
                    raise ContractError(
                        f"page.totalPages is {total_pages}: refusing to page that far",
                        index=index,
                        requested_date=requested_date,
                    )
            page_number += 1
        merged = merge_pages(portfolios, index=index, requested_date=requested_date)
        return Capture(index=index, pages=pages, portfolio=merged)

    def fetch_stock_index(self) -> StockIndexCapture:
        """B3's GetStockIndex listing (every listed stock and its indices), validated against its
        contract, with the client's timeouts and retries. Raises ContractError or B3RequestError."""
        page = self.fetch_page(STOCK_INDEX, stock_index_params(), STOCK_INDEX)
        return StockIndexCapture(page=page, listing=decode_stock_index_json(page.body))


@dataclass(frozen=True)
class StockIndexCapture:
    """A GetStockIndex response as received (one page) and its validated listing."""

    page: FetchedPage
    listing: StockIndexListing = field(repr=False)
