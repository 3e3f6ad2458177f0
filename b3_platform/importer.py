"""Import saved B3 files into raw: JSON responses of GetPortfolioDay and "Carteira do Dia" CSVs.

This is how history is backfilled: B3 serves only the current portfolio. Each file is validated
completely (contract and every parse rule) before a byte is stored, filed under its own header
date, and reported as imported, duplicate or rejected with the reason.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from b3_platform import trading_calendar
from b3_platform.audit import audit_portfolio
from b3_platform.b3.contract import ContractError, Portfolio, decode_portfolio_json
from b3_platform.b3.csv_reader import looks_like_portfolio_csv, read_portfolio_csv
from b3_platform.b3.indices import KNOWN_INDEX_CODES, validate_index_code
from b3_platform.b3.parse import ParseError
from b3_platform.lake.raw_store import RawStore

SUFFIXES = (".json", ".csv")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_B3_NAME = re.compile(r"^([A-Z][A-Z0-9]{3})Dia_(\d{2})-(\d{2})-(\d{2})\.csv$", re.I)


@dataclass(frozen=True)
class FileResult:
    path: PurePath  # the file imported, or the landed object's name (relative to landing)
    status: str  # imported | duplicate | rejected
    reason: str = ""
    day: dt.date | None = None
    index: str | None = None
    capture_id: str | None = None
    rows: int = 0


class ImportRejected(ValueError):
    pass


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, and every .json/.csv below named folders (sorted, hidden ones skipped)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                rel = found.relative_to(path).parts
                if (
                    found.is_file()
                    and found.suffix.lower() in SUFFIXES
                    and not any(p.startswith(".") for p in rel)
                ):
                    yield found
        else:
            yield path


def index_from_path(path: PurePath) -> str | None:
    """The nearest folder (or file-name prefix) that is a known index code, e.g. IBOV/2025-07-08.json."""
    for part in reversed(path.parts[:-1]):
        if part.upper() in KNOWN_INDEX_CODES:
            return part.upper()
    match = re.match(r"^([A-Z][A-Z0-9]{3})[_-]", path.name)
    if match and match.group(1) in KNOWN_INDEX_CODES:
        return match.group(1)
    return None


def date_from_name(name: str) -> dt.date | None:
    """A date the file name states: ISO (2025-07-10) or B3's download name (IBOVDia_10-07-25.csv)."""
    b3 = _B3_NAME.match(name)
    if b3:
        day, month, year = (int(g) for g in b3.groups()[1:])
        return _date_or_none(2000 + year, month, day)
    iso = _ISO_DATE.search(name)
    if iso:
        return _date_or_none(*(int(g) for g in iso.groups()))
    return None


def _date_or_none(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def read_file(path: PurePath, body: bytes, index_option: str | None) -> tuple[str, Portfolio]:
    """Validate one file's bytes; returns (index, portfolio) or raises ImportRejected."""
    if path.suffix.lower() == ".csv" or looks_like_portfolio_csv(body):
        portfolio = read_portfolio_csv(body)
        index = portfolio.index
        if index is None:
            raise ImportRejected("the CSV title names no index")
        if index_option and index_option != index:
            raise ImportRejected(f"the CSV title names {index}, not --index {index_option}")
        named = _B3_NAME.match(path.name)
        if named and named.group(1).upper() != index:
            raise ImportRejected(f"file name says {named.group(1).upper()} but the CSV title names {index}")
        return index, portfolio
    index = index_option or index_from_path(path)
    if index is None:
        # A body that is no day's portfolio at all (e.g. GetStockIndex) says so, not "pass --index".
        decode_portfolio_json(body, index=None)
        raise ImportRejected(
            "a JSON response does not name its index: pass --index CODE or keep the file under a "
            "folder named for it (e.g. IBOV/2025-07-08.json)"
        )
    return index, decode_portfolio_json(body, index=index)


def validate_portfolio(path: PurePath, index: str, portfolio: Portfolio) -> None:
    day = portfolio.reference_date
    named = date_from_name(path.name)
    if named is not None and named != day:
        raise ImportRejected(f"file name says {named} but the portfolio's header date is {day}")
    start, end = trading_calendar.horizon()
    if not start <= day <= end:
        raise ImportRejected(f"header date {day} is outside the lake's span {start}..{end}")
    if not trading_calendar.is_trading_day(day):
        raise ImportRejected(f"header date {day} is not a B3 trading day")
    if day > trading_calendar.today_sao_paulo():
        raise ImportRejected(f"header date {day} is in the future")
    # The publish audit bronze runs: a file bronze would refuse is not stored.
    problems = audit_portfolio(index, "19700101T000000000000Z-check", portfolio, day)
    if problems:
        raise ImportRejected(f"would not be published: {'; '.join(problems)}")


def import_file(store: RawStore, path: Path, *, index: str | None = None) -> FileResult:
    """Import one saved file (a path on this machine); `import_body` does the work."""
    try:
        if index is not None:
            validate_index_code(index)
        if not path.is_file():
            raise ImportRejected("no such file")
        _check_suffix(path)
    except (ImportRejected, ValueError) as exc:
        return FileResult(path, "rejected", str(exc))
    return import_body(store, path, path.read_bytes(), index=index, file_name=str(path))


def import_body(
    store: RawStore,
    name: PurePath | str,
    body: bytes,
    *,
    index: str | None = None,
    file_name: str | None = None,
) -> FileResult:
    """Validate one file's bytes completely, then file them in raw under the header date.

    Needs no local path, so files that arrive elsewhere (the landing folder or S3 prefix, see
    landing/) go through exactly the checks of an import. `name` is where the file sits (a
    path, or a key relative to landing such as `IBOV/2025-07-08.json`): its suffix, a date it
    states and the nearest folder named for an index count as for a path. `file_name` is what the
    capture's metadata records as its origin (default: `name`)."""
    path = name if isinstance(name, PurePath) else PurePosixPath(name)
    try:
        if index is not None:
            validate_index_code(index)
        _check_suffix(path)
        file_index, portfolio = read_file(path, body, index)
        validate_portfolio(path, file_index, portfolio)
    except (ImportRejected, ContractError, ParseError, ValueError, UnicodeDecodeError) as exc:
        return FileResult(path, "rejected", str(exc))
    day = portfolio.reference_date
    capture, new = store.store(
        day,
        file_index,
        [body],
        fetched_at=dt.datetime.now(dt.timezone.utc),
        source_format=portfolio.source_format,
        meta={
            "source": "import",
            "file_name": file_name if file_name is not None else str(path),
            "language": portfolio.language,
            "header_date": portfolio.header.date,
            "http_status": None,
        },
    )
    return FileResult(
        path,
        "imported" if new else "duplicate",
        "" if new else f"identical to capture {capture.capture_id}",
        day,
        file_index,
        capture.capture_id,
        len(portfolio.results),
    )


def _check_suffix(path: PurePath) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise ImportRejected(f"not a .json or .csv file ({path.suffix or 'no extension'})")


def import_paths(
    store: RawStore, paths: Iterable[str | Path], *, index: str | None = None, progress=None
) -> list[FileResult]:
    results = []
    for path in iter_files(paths):
        result = import_file(store, path, index=index)
        results.append(result)
        if progress:
            progress(result)
    return results
