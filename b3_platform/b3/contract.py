"""The contract of B3's GetPortfolioDay response, and the one way bytes become a `Portfolio`.

Every capture and every import goes through `decode_portfolio_json` (or the CSV reader) before a
byte is stored, so raw only ever holds responses that satisfied this contract when they arrived.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, overload

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import TypedDict

from b3_platform.b3.parse import Locale, ParseError, detect_language, parse_date

#: The most bytes one response or saved file may have. B3's day portfolios are ~20-300 KB; this
#: is far above any of them and far below what would strain memory. The import, the landing and
#: the HTTP client all refuse a larger body without reading it whole.
MAX_BODY_BYTES = 20 * 1024 * 1024


class ContractError(ValueError):
    """A response that breaks the contract; says which index, which date and what was wrong."""

    def __init__(self, reason: str, *, index: str | None, requested_date: dt.date | None) -> None:
        self.reason, self.index, self.requested_date = reason, index, requested_date
        where = " ".join(p for p in (index or "", str(requested_date or "")) if p)
        super().__init__(f"B3 response{f' for {where}' if where else ''}: {reason}")


class WrongDateError(ContractError):
    """B3 answered with another day's portfolio (it serves only the current one)."""


class _Model(BaseModel):
    # B3 may add fields; they stay in the raw bytes and are ignored here.
    model_config = ConfigDict(extra="ignore", strict=True)


class Page(_Model):
    pageNumber: int
    pageSize: int
    totalRecords: int
    totalPages: int | None = None


class Header(_Model):
    date: str
    text: str
    part: str
    partAcum: str | None = None
    textReductor: str
    reductor: str
    theoricalQty: str


class Component(_Model):
    segment: str | None
    cod: str
    asset: str
    type: str
    part: str
    partAcum: str | None
    theoricalQty: str


class PortfolioResponse(_Model):
    page: Page
    header: Header
    results: list[Component]


#: A `Component`'s fields as a plain dict, made from the model's own fields: the same names, types
#: and strictness (extra keys ignored), so a row validates as one exactly when it validates as the other.
ComponentRow = TypedDict(  # type: ignore[misc]  # made from Component, the one place the fields are
    "ComponentRow", {name: field.annotation for name, field in Component.model_fields.items()}
)
ComponentRow.__pydantic_config__ = _Model.model_config  # type: ignore[attr-defined]


class _RowsResponse(_Model):
    """`PortfolioResponse` with its rows validated as dicts: what the direct path builds."""

    page: Page
    header: Header
    results: list[ComponentRow]


class Components(Sequence[Component]):
    """A portfolio's rows, held as the validated dicts the direct decode made; each row becomes
    its `Component` model only when read (the models are made once, on first use).

    Why: a backfill decodes ~3,000 rows a date and bronze reads them as dicts into Arrow
    (`rows`); making a pydantic model per row cost as much as parsing the JSON. A list of the
    same `Component`s in every way a reader sees: length, order, items, iteration, equality."""

    __slots__ = ("_rows", "_models")

    def __init__(self, rows: list[ComponentRow]) -> None:
        self._rows = rows
        self._models: list[Component] | None = None

    @property
    def rows(self) -> list[ComponentRow]:
        """The rows as dicts of the `Component` fields (what `vars(component)` holds); once the
        models are made, theirs (a reader may have assigned a field of one)."""
        if self._models is not None:
            return [vars(model) for model in self._models]  # type: ignore[misc]
        return self._rows

    def _all(self) -> list[Component]:
        if self._models is None:
            # Already validated as `ComponentRow`, the same schema: this cannot fail.
            self._models = [Component.model_validate(row) for row in self._rows]
        return self._models

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, position: int) -> Component: ...
    @overload
    def __getitem__(self, position: slice) -> list[Component]: ...
    def __getitem__(self, position):
        return self._all()[position]

    def __iter__(self) -> Iterator[Component]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Components):
            return self.rows == other.rows
        if isinstance(other, list):
            return self._all() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a list's

    def __repr__(self) -> str:
        return repr(self._all())


def component_rows(results: Sequence[Component]) -> list[ComponentRow]:
    """Every row's fields as a dict, in order, without making models the rows do not have yet."""
    if isinstance(results, Components):
        return results.rows
    return [vars(row) for row in results]  # type: ignore[misc]


SourceFormat = Literal["json", "csv"]


@dataclass(frozen=True)
class Portfolio:
    """One day's portfolio of one index, values still as B3 wrote them."""

    header: Header
    #: A list of `Component`s, or `Components` (the same, made on first read) from the direct decode.
    results: Sequence[Component]
    language: Locale
    reference_date: dt.date
    source_format: SourceFormat
    #: `page.totalRecords` for API responses; None for CSV downloads, which do not state it.
    total_records: int | None = None
    #: The index named by the payload itself (CSV title line); JSON responses do not name it.
    index: str | None = None
    #: `page.totalPages` (B3 may send null, meaning one page) and this body's `page.pageNumber`.
    total_pages: int = 1
    page_number: int = 1

    @property
    def has_sector(self) -> bool:
        """Segment-2 responses group by sector and carry it in `segment`."""
        return any(c.segment for c in self.results)


def _describe_validation(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        problems.append(f"{loc}: {err['msg'].lower()}")
    more = len(exc.errors()) - len(problems)
    return "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")


def _load_json(body: bytes, fail, *, quote_body: bool = True) -> object:
    """The parsed body, or `fail(reason)`. `quote_body`: whether the reason may quote the start of
    the body (useful for what B3's server sent; never for a saved file, which may be anything).

    Python's parser recurses once per nested array or object and raises RecursionError near the
    interpreter's limit (~1,000 levels): such a body is refused like any invalid one, rather than
    escaping as an error no caller expects. B3's responses nest 3 levels."""
    if not body.strip():
        fail("empty body")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"body is not UTF-8 ({exc.reason} at byte {exc.start})")
    stripped = text.lstrip()
    if stripped.startswith("<"):
        fail("got HTML instead of JSON" + (f"; body starts with {stripped[:120]!r}" if quote_body else ""))
    for attempt in ("body", "string"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if attempt == "string":
                fail(f"body is a JSON string that does not hold valid JSON ({exc.msg})")
            fail(
                f"invalid or truncated JSON ({exc.msg} at char {exc.pos} of {len(text)})"
                + (f"; body starts with {stripped[:80]!r}" if quote_body else "")
            )
        except RecursionError:
            fail(f"JSON nested too deeply to parse ({len(text)} chars); B3's responses nest 3 levels")
        # Some B3 responses are a JSON string that itself holds the JSON document: unwrap it once.
        if not isinstance(data, str):
            break
        text = data
    return data


def _validated_directly(body: bytes) -> _RowsResponse | None:
    """The response validated straight from the bytes by pydantic's own JSON parser, or None: then
    `_validated_stepwise` decides, and words any error.

    The fast path of every decode (a backfill decodes each capture again): one pass over the bytes
    builds the models, with no Python dicts and lists in between. It only ever says yes to a body the
    stepwise path accepts as the same response: the parser refuses everything Python's `json`
    refuses (invalid UTF-8, a BOM, a JSON string holding the document, bad syntax, nesting deeper
    than ~200 levels, lone surrogates) and takes the last of repeated keys, as `json` does; the
    models and strict mode are the same. The contract's checks before validation are either implied
    by it (an object with page, header and results; a header with a date; results not null) or
    checked here (results not empty). The rows are validated as `ComponentRow` dicts (the same
    schema as `Component`): the portfolio holds them as `Components`, models made when read."""
    try:
        response = _RowsResponse.model_validate_json(body)
    except ValidationError:
        return None
    return response if response.results else None


def _validated_stepwise(body: bytes, fail, *, quote_body: bool) -> PortfolioResponse:
    """The response parsed by Python's `json` and checked step by step, each step with its own
    error (`fail(reason)`): what the contract's messages name."""
    data = _load_json(body, fail, quote_body=quote_body)
    if not isinstance(data, dict):
        fail(f"expected a JSON object, got {type(data).__name__}")
    missing = [k for k in ("page", "header", "results") if k not in data]
    if missing:
        keys = f" (top-level keys: {', '.join(sorted(data)[:8]) or 'none'})" if quote_body else ""
        fail(f"not a GetPortfolioDay response: no {', '.join(missing)}{keys}")
    if data["results"] is None:
        fail('"results" is null: B3 has no portfolio for this index (unknown code or not published)')
    if data.get("results") == []:
        fail('"results" is empty: the response lists no components')
    if isinstance(data["header"], dict) and "date" not in data["header"]:
        fail(
            "header has no date: not a GetPortfolioDay response (GetTheoricalPortfolio and "
            "GetStockIndex responses are not a day's portfolio)"
        )
    try:
        return PortfolioResponse.model_validate(data)
    except ValidationError as exc:
        fail(f"does not match the GetPortfolioDay contract: {_describe_validation(exc)}")


def decode_portfolio_json(
    body: bytes,
    *,
    index: str | None,
    requested_date: dt.date | None = None,
    check_total_records: bool = True,
    quote_body: bool = True,
    also_accepted: Collection[dt.date] = (),
) -> Portfolio:
    """Validate a GetPortfolioDay body and return its portfolio.

    `requested_date` (the partition) must equal the response's own `header.date`, or be one of
    `also_accepted` (a live capture accepts the next trading day: B3 publishes it early). With
    `check_total_records`, a single-page body must hold exactly `page.totalRecords` rows (the
    client checks the total itself when it merges several pages). Without `quote_body`, errors
    quote nothing of the body (its start, its keys): for saved files, which may be anything."""

    def fail(reason: str, error: type[ContractError] = ContractError):
        raise error(reason, index=index, requested_date=requested_date)

    direct = _validated_directly(body)
    response = direct or _validated_stepwise(body, fail, quote_body=quote_body)
    try:
        language = detect_language(response.header.text, response.header.textReductor)
        reference_date = parse_date(response.header.date, language, field="header.date")
    except ParseError as exc:
        fail(str(exc))
    if (
        requested_date is not None
        and reference_date != requested_date
        and reference_date not in also_accepted
    ):
        fail(f"B3 is serving the portfolio of {reference_date}, not {requested_date}", WrongDateError)
    rows = len(response.results)
    if check_total_records and response.page.totalRecords != rows and (response.page.totalPages or 1) <= 1:
        fail(f"page.totalRecords is {response.page.totalRecords} but the body holds {rows} rows")
    return Portfolio(
        header=response.header,
        results=Components(direct.results) if direct is not None else response.results,
        language=language,
        reference_date=reference_date,
        source_format="json",
        total_records=response.page.totalRecords,
        index=None,
        total_pages=response.page.totalPages or 1,
        page_number=response.page.pageNumber,
    )


def _joined(parts: list[Sequence[Component]]) -> Sequence[Component]:
    """The pages' rows in order: still `Components` (no model made) when every page holds them."""
    if all(isinstance(part, Components) for part in parts):
        return Components([row for part in parts for row in component_rows(part)])
    return [row for part in parts for row in part]


def merge_pages(pages: list[Portfolio], *, index: str, requested_date: dt.date | None) -> Portfolio:
    """Join the pages of one paged response, checking they agree and add up to totalRecords."""
    first = pages[0]
    results = _joined([page.results for page in pages])
    for page in pages[1:]:
        if page.reference_date != first.reference_date or page.total_records != first.total_records:
            raise ContractError(
                "pages disagree on header date or totalRecords", index=index, requested_date=requested_date
            )
    if first.total_records is not None and len(results) != first.total_records:
        raise ContractError(
            f"page.totalRecords is {first.total_records} but {len(pages)} page(s) hold {len(results)} rows",
            index=index,
            requested_date=requested_date,
        )
    return Portfolio(
        header=first.header,
        results=results,
        language=first.language,
        reference_date=first.reference_date,
        source_format="json",
        total_records=first.total_records,
        index=index,
    )
