"""B3's announced portfolios: the quadrimester's theoretical portfolio (`GetTheoricalPortfolio`) and
the preview of the next one (`GetQuartelyPreview`), both sic. Their contract, the quadrimester they
belong to, and one capture of either through the client.

Neither response carries a date: the header holds only totals (`part`, `theoricalQty`, `reductor`)
and no label text, so the locale is told by `header.part` itself (the weight total, always 100:
`"100,000"` in pt-br, `"100.000"` in en-us) and must agree with the language asked for.

How strict each part is:
- **GetTheoricalPortfolio** is known from real responses: strict like the day portfolio. Each row
  is `{cod, asset, type, theoricalQty, part, cont}`; null or empty results, a header with a date (a
  day portfolio), a missing field or a wrong type are contract errors.
- **GetQuartelyPreview** has no public sample; public client code reads it with the same code as
  the theoretical portfolio. So the same fields are required (strict where the shape is certain:
  without ticker, weight and quantity there is nothing to type), while what is uncertain is kept and
  reported rather than refused: `"results": null` or `[]` is a capture of "no preview published"
  (stored verbatim, no rows), `cont` may be absent or not an integer, and fields nobody has seen are
  listed in `notes` (they stay in the raw bytes). Both methods report unknown fields the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from b3_platform.b3.client import B3Client, FetchedPage
from b3_platform.b3.contract import ContractError, Page, _describe_validation, _load_json
from b3_platform.b3.parse import LOCALES, Locale, ParseError, parse_decimal

THEORETICAL = "GetTheoricalPortfolio"
PREVIEW = "GetQuartelyPreview"
#: B3's method for the listed stocks, whose header states the current quadrimester.
STOCK_INDEX = "GetStockIndex"
#: B3 answers everything in one page with 9999 (the day portfolio's client does the same).
PAGE_SIZE = 9999


@dataclass(frozen=True)
class AnnouncedMethod:
    """One of the two announced portfolios: its B3 method and how its lake tables are named."""

    method: str
    kind: str  # "theoretical" or "preview": the suffix of its raw and silver asset names
    #: A response without rows means "nothing announced" (kept, reported) instead of an error.
    may_be_unpublished: bool


THEORETICAL_METHOD = AnnouncedMethod(THEORETICAL, "theoretical", may_be_unpublished=False)
PREVIEW_METHOD = AnnouncedMethod(PREVIEW, "preview", may_be_unpublished=True)
METHODS = (THEORETICAL_METHOD, PREVIEW_METHOD)


def announced_params(index: str, *, language: str = "pt-br", page_size: int = PAGE_SIZE) -> dict:
    """The parameters public clients send to both methods."""
    return {"pageNumber": 1, "pageSize": page_size, "language": language, "index": index}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class AnnouncedHeader(_Model):
    part: str
    theoricalQty: str
    reductor: str


class AnnouncedComponent(_Model):
    cod: str
    asset: str
    type: str
    theoricalQty: str
    part: str
    #: Certain in the theoretical portfolio (an int), uncertain in the preview: checked by hand.
    cont: Any = None


class _Response(_Model):
    page: Page
    header: AnnouncedHeader
    results: list[AnnouncedComponent]


_KNOWN_ROW_KEYS = frozenset(AnnouncedComponent.model_fields)
_KNOWN_HEADER_KEYS = frozenset(AnnouncedHeader.model_fields)


@dataclass(frozen=True)
class AnnouncedPortfolio:
    """One announced portfolio of one index, values as B3 wrote them."""

    method: str
    header: AnnouncedHeader | None  # None only for an unpublished preview
    results: list[AnnouncedComponent]
    language: Locale | None  # None only for an unpublished preview (nothing tells it)
    total_records: int
    #: False for a preview response without rows (kept in raw: "no preview published").
    published: bool = True
    #: What the contract tolerated (unknown fields, a non-integer cont): reported, never dropped.
    notes: tuple[str, ...] = ()

    def cont(self, row: AnnouncedComponent) -> int | None:
        return row.cont if isinstance(row.cont, int) and not isinstance(row.cont, bool) else None


def detect_announced_language(part_total: str) -> Locale:
    """The locale in which `header.part` (always 100) reads as 100: the header has no labels."""
    matches = []
    for locale in LOCALES:
        try:
            if parse_decimal(part_total, locale, field="header.part") == Decimal(100):
                matches.append(locale)
        except ParseError:
            continue
    if len(matches) != 1:
        raise ParseError(
            "header.part", part_total, "is not 100 in pt-br ('100,000') or en-us ('100.000') notation"
        )
    return matches[0]


def decode_announced_json(
    body: bytes,
    method: AnnouncedMethod,
    *,
    index: str | None,
    language: str | None = None,
    day: dt.date | None = None,
) -> AnnouncedPortfolio:
    """Validate a GetTheoricalPortfolio / GetQuartelyPreview body (see the module docstring).

    `language` is the one asked for (when known): the response's own notation must agree with it.
    `day` only names the capture date in errors (these responses carry no date of their own)."""

    def fail(reason: str):
        raise ContractError(f"{method.method}: {reason}", index=index, requested_date=day)

    data = _load_json(body, fail)
    if not isinstance(data, dict):
        fail(f"expected a JSON object, got {type(data).__name__}")
    missing = [k for k in ("page", "header", "results") if k not in data]
    if missing:
        fail(f"no {', '.join(missing)} (top-level keys: {', '.join(sorted(data)[:8]) or 'none'})")
    notes: list[str] = []
    unknown_top = sorted(set(data) - {"page", "header", "results"})
    if unknown_top:
        notes.append(f"unknown top-level field(s) kept in raw: {', '.join(unknown_top)}")
    if not data["results"]:
        what = "null" if data["results"] is None else "empty"
        if not method.may_be_unpublished:
            fail(f'"results" is {what}: B3 has no {method.kind} portfolio for this index')
        try:
            page = Page.model_validate(data["page"])
        except ValidationError as exc:
            fail(f"page does not match the contract: {_describe_validation(exc)}")
        notes.append(f'"results" is {what}: no {method.kind} published for this index')
        return AnnouncedPortfolio(method.method, None, [], None, page.totalRecords, False, tuple(notes))
    header = data["header"]
    if isinstance(header, dict):
        if "date" in header and not method.may_be_unpublished:
            fail("header has a date: a day portfolio (GetPortfolioDay), not the theoretical portfolio")
        extra = sorted(set(header) - _KNOWN_HEADER_KEYS)
        if extra:
            notes.append(f"unknown header field(s) kept in raw: {', '.join(extra)}")
    try:
        response = _Response.model_validate(data)
    except ValidationError as exc:
        fail(f"does not match the {method.method} contract: {_describe_validation(exc)}")
    rows = data["results"]
    extra_rows = sorted({k for r in rows if isinstance(r, dict) for k in r} - _KNOWN_ROW_KEYS)
    if extra_rows:
        notes.append(f"unknown result field(s) kept in raw: {', '.join(extra_rows)}")
    bad_cont = [r.cod for r in response.results if r.cont is not None and not _is_int(r.cont)]
    absent_cont = sum(1 for r in rows if isinstance(r, dict) and "cont" not in r)
    if (bad_cont or absent_cont) and not method.may_be_unpublished:
        fail(f"cont is not an integer for {', '.join(bad_cont[:5]) or f'{absent_cont} row(s)'}")
    if bad_cont:
        notes.append(f"cont is not an integer for {len(bad_cont)} row(s) (e.g. {bad_cont[0]}); stored null")
    if absent_cont:
        notes.append(f"cont absent in {absent_cont} row(s); stored null")
    try:
        detected = detect_announced_language(response.header.part)
    except ParseError as exc:
        fail(str(exc))
    if language is not None and language != detected:
        fail(f"asked for {language} but the numbers are written in {detected} notation")
    if (response.page.totalPages or 1) > 1:
        fail(f"page.totalPages is {response.page.totalPages}: a paged response (asked for one page)")
    if response.page.totalRecords != len(response.results):
        fail(f"page.totalRecords is {response.page.totalRecords} but the body holds {len(rows)} rows")
    return AnnouncedPortfolio(
        method.method,
        response.header,
        response.results,
        detected,
        response.page.totalRecords,
        True,
        tuple(notes),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class AnnouncedCapture:
    """One index's response to one announced method: the body as received, and its portfolio."""

    index: str
    method: AnnouncedMethod
    page: FetchedPage
    portfolio: AnnouncedPortfolio


def fetch_announced(
    client: B3Client, method: AnnouncedMethod, index: str, *, day: dt.date, language: str = "pt-br"
) -> AnnouncedCapture:
    """Today's announced portfolio of `index`, validated; raises ContractError or B3RequestError."""
    params = announced_params(index, language=language)
    page = client.fetch_page(method.method, params, f"{method.method} {index} for {day}")
    portfolio = decode_announced_json(page.body, method, index=index, language=language, day=day)
    return AnnouncedCapture(index, method, page, portfolio)


# --- the quadrimester --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Quadrimester:
    """B3's index period: January–April, May–August or September–December of a year."""

    year: int
    start_month: int

    def __post_init__(self) -> None:
        if self.start_month not in (1, 5, 9):
            raise ValueError(
                f"a quadrimester starts in January, May or September, not month {self.start_month}"
            )

    @property
    def end_month(self) -> int:
        return self.start_month + 3

    @classmethod
    def containing(cls, day: dt.date) -> Quadrimester:
        return cls(day.year, 1 + 4 * ((day.month - 1) // 4))

    def following(self) -> Quadrimester:
        if self.start_month == 9:
            return Quadrimester(self.year + 1, 1)
        return Quadrimester(self.year, self.start_month + 4)

    def __str__(self) -> str:
        return f"{self.year} months {self.start_month}-{self.end_month}"


@dataclass(frozen=True)
class StatedPeriod:
    """The current quadrimester and where it comes from (B3's own statement, or the date)."""

    quadrimester: Quadrimester
    source: str


def quadrimester_from_stock_index(body: bytes) -> Quadrimester | None:
    """The quadrimester a GetStockIndex response states in its header (`startMonth`, `endMonth`,
    `year`), or None when the body does not state a usable one."""
    try:
        header = _load_json(body, _raise_value)["header"]
        year, start, end = header["year"], header["startMonth"], header["endMonth"]
        if not all(_is_int(v) for v in (year, start, end)):
            return None
        quadrimester = Quadrimester(year, start)
    except (ValueError, KeyError, TypeError):
        return None
    return quadrimester if quadrimester.end_month == end else None


def _raise_value(reason: str):
    raise ValueError(reason)
