"""HTTP client for B3's index proxy (`indexProxy/indexCall/<Method>/<base64 JSON>`).

B3's CDN answers 5xx (often 520) at times and its WAF may hang: every call has a timeout, and
connection errors, timeouts and 5xx are retried with exponential backoff. 4xx and invalid bodies
are not retried: asking again would not change them.

requests' timeouts bound each socket operation, not a call: a server sending a byte a second
never trips them. So each attempt also has a total deadline and a cap on the body (the import's
own, b3.contract.MAX_BODY_BYTES): the body is streamed and the attempt stops at either. A URL is
recorded (raw sidecars, run metadata, logs) without any `user:password@` it was configured with.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions

from b3_platform import __version__
from b3_platform.b3.contract import (
    MAX_BODY_BYTES,
    ContractError,
    Portfolio,
    decode_portfolio_json,
    merge_pages,
)
from b3_platform.b3.stock_index import METHOD as STOCK_INDEX
from b3_platform.b3.stock_index import StockIndexListing, decode_stock_index_json, stock_index_params

DEFAULT_BASE_URL = "https://sistemaswebb3-listados.b3.com.br/indexProxy/indexCall"
USER_AGENT = f"b3_platform/{__version__} (index portfolio archiver; python-requests)"
#: B3 accepts 9999 and answers with everything in one page (rb3 cassettes).
DEFAULT_PAGE_SIZE = 9999

log = logging.getLogger(__name__)


#: The default total time one attempt may take, headers and body (each read also has its timeout).
DEFAULT_DEADLINE_SECONDS = 60.0
#: Bytes read from the body per socket read: read1 returns what has arrived, up to this.
_CHUNK = 64 * 1024
_USERINFO = re.compile(r"(?<=//)[^/@\s]*@")


class B3RequestError(RuntimeError):
    """B3 could not be reached or refused the request; names the index and what happened."""


class _Overdue(Exception):
    """The attempt passed its total deadline (retried like a timeout)."""


def public_url(url: str) -> str:
    """The URL without the `user:password@` of its authority: what may be stored or logged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _without_credentials(text: str) -> str:
    """Any `//user:password@` inside a message (an exception's text may quote a URL)."""
    return _USERINFO.sub("", text)


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
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        max_response_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url
        self.timeout = (connect_timeout, timeout)
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.page_size = page_size
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})

    def _get(self, url: str, what: str) -> tuple[int, bytes]:
        """(status, body) of a GET, retried on connection errors, timeouts and 5xx."""
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                status, body = self._get_once(url, what)
            except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError) as exc:
                last_problem = _without_credentials(f"{type(exc).__name__}: {exc}")
            except _Overdue as exc:
                last_problem = str(exc)
            else:
                if status < 400:
                    return status, body
                if status < 500:
                    raise B3RequestError(
                        f"{what}: HTTP {status} from B3 (not retried: a client error "
                        f"does not go away by asking again); body starts with {body[:120]!r}"
                    )
                last_problem = f"HTTP {status}"
            if attempt < self.max_attempts:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log.warning(
                    "%s: %s; retry %d/%d in %.1fs", what, last_problem, attempt, self.max_attempts - 1, delay
                )
                self._sleep(delay)
        raise B3RequestError(f"{what}: gave up after {self.max_attempts} attempts; last: {last_problem}")

    def _get_once(self, url: str, what: str) -> tuple[int, bytes]:
        """One attempt, its body streamed: stops at the total deadline (_Overdue) or past
        `max_response_bytes` (B3RequestError, not retried: a portfolio is never that large).
        `read1` returns whatever has arrived, so a dripping server is seen between reads."""
        started = time.monotonic()
        deadline = started + self.deadline

        def overdue(received: int) -> _Overdue:
            return _Overdue(
                f"no complete answer within the {self.deadline:g} s deadline "
                f"({received} bytes received in {time.monotonic() - started:.1f} s)"
            )

        def too_large(size: str) -> B3RequestError:
            return B3RequestError(
                f"{what}: the response is {size} bytes, more than the {self.max_response_bytes} "
                "allowed: refused (not retried; no B3 portfolio is that large)"
            )

        with self._session.get(url, timeout=self.timeout, stream=True) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > self.max_response_bytes:
                raise too_large(length)
            chunks: list[bytes] = []
            received = 0
            while True:
                if time.monotonic() > deadline:
                    raise overdue(received)
                chunk = response.raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                received += len(chunk)
                if received > self.max_response_bytes:
                    raise too_large(f"over {self.max_response_bytes}")
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)

    def fetch_page(self, method: str, params: dict, what: str) -> FetchedPage:
        """One GET of `method` with `params`, with the client's timeouts and retries; the body is
        returned as received (validating it is the caller's contract). `what` names the call in
        errors and logs, e.g. "GetPortfolioDay IBOV for 2025-07-10"."""
        url = build_url(self.base_url, method, params)
        status, body = self._get(url, what)
        return FetchedPage(public_url(url), params, status, body, dt.datetime.now(dt.timezone.utc))

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
