"""Import saved B3 files into raw: JSON responses of GetPortfolioDay and "Carteira do Dia" CSVs.

This is how history is backfilled: B3 serves only the current portfolio. Each file is validated
completely (contract and every parse rule) before a byte is stored, filed under its own header
date, and reported as imported, duplicate or rejected with the reason.

A file is judged on its own: a bad one is rejected and the next one goes on. The lake failing
(disk full, read-only, S3 refusing) is not the file's fault and would fail every later file too,
so the import stops there (`ImportStopped`, carrying what was done so far).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from b3_platform import trading_calendar
from b3_platform.audit import audit_portfolio
from b3_platform.b3.contract import MAX_BODY_BYTES, ContractError, Portfolio, decode_portfolio_json
from b3_platform.b3.csv_reader import looks_like_portfolio_csv, read_portfolio_csv
from b3_platform.b3.indices import KNOWN_INDEX_CODES, validate_index_code
from b3_platform.b3.parse import ParseError
from b3_platform.lake.raw_store import DamagedSidecar, RawStore, capture_sha256
from b3_platform.lake.storage import StorageError

SUFFIXES = (".json", ".csv")
#: An index code opening a file name: `IBOV_2025-07-08.json`, `IBOV-…`, B3's `IBOVDia_10-07-25.csv`.
_NAME_INDEX = re.compile(r"^([A-Z][A-Z0-9]{3})(?:Dia)?[_\-.]", re.I)
_Y4, _MD = r"(?P<y>(?:19|20)\d{2})", r"(?P<{}>\d{{2}})"
#: The dates a file name may state (its stem, suffix excluded), each form with its separator `-`,
#: `_` or `.` used twice, or none for the compact 8-digit forms. Separated forms must not touch
#: other digits; compact forms must not touch letters or digits either (so the digits of a sha256
#: or of a `20250710T120000Z` time stamp are not read as a date).
_DATE_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (form, re.compile(pattern))
    for form, pattern in (
        # B3's own download name (`IBOVDia_10-07-25.csv`) is day-first by definition.
        ("XXXXDia_DD-MM-YY", r"(?<=Dia_)(?P<d>\d{2})-(?P<m>\d{2})-(?P<yy>\d{2})(?!\d)"),
        ("YYYY-MM-DD", rf"(?<!\d){_Y4}(?P<s>[-_.]){_MD.format('m')}(?P=s){_MD.format('d')}(?!\d)"),
        ("DD-MM-YYYY", rf"(?<!\d){_MD.format('a')}(?P<s>[-_.]){_MD.format('b')}(?P=s){_Y4}(?!\d)"),
        ("DD-MM-YY", rf"(?<!\d){_MD.format('a')}(?P<s>[-_.]){_MD.format('b')}(?P=s)(?P<yy>\d{{2}})(?!\d)"),
        ("YYYYMMDD", rf"(?<![0-9A-Za-z]){_Y4}{_MD.format('m')}{_MD.format('d')}(?![0-9A-Za-z])"),
        ("DDMMYYYY", rf"(?<![0-9A-Za-z]){_MD.format('a')}{_MD.format('b')}{_Y4}(?![0-9A-Za-z])"),
    )
)


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


class ImportStopped(StorageError):
    """The lake failed while a file was being stored: the import stopped there. Carries the files
    settled before (`results`), the file it stopped at and how many were not attempted."""

    def __init__(self, path: PurePath, cause: BaseException, results: list[FileResult], not_attempted: int):
        self.path, self.cause, self.results, self.not_attempted = path, cause, results, not_attempted
        super().__init__(f"{path}: {describe_storage_failure(cause)}")


def describe_storage_failure(exc: BaseException) -> str:
    """What failed and where: an OSError names its errno text and file, a StorageError (S3) says
    `cannot write s3://…: <what to check>` already."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"cannot write to the lake: {exc.strerror}{where}"
    return str(exc)


def too_large(size: int) -> str:
    """The reason a file of `size` bytes is rejected unread (imports and landing alike)."""
    return f"{size} bytes: larger than {MAX_BODY_BYTES} bytes, not a B3 portfolio file (not read)"


@dataclass(frozen=True)
class FoundFile:
    """A file to import, and what its hints are read from."""

    path: Path
    #: The path the folder and file-name hints are read from: relative to the parent of the folder
    #: named on the command line (`IBOV/2025-07-08.json` for `import ~/archive/IBOV`), or the
    #: file's own folder and name when the file was named itself. Folders above what the user
    #: named (a home directory that happens to be called `smll`) are no hint.
    name: PurePath
    #: The folder named on the command line that the file was found in; None for a file named itself.
    root: Path | None = None


#: Told about each file or folder a folder's walk leaves out (the path, and why), so a user sees it.
OnSkip = Callable[[Path, str], None]


def iter_files(paths: Iterable[str | Path], on_skip: OnSkip | None = None) -> Iterator[FoundFile]:
    """Files named directly, and every .json/.csv below named folders (sorted, hidden ones skipped).

    Links to folders are not followed; links to files are yielded and judged by `import_file`.
    What a folder's walk leaves out — another kind of file, a hidden file or folder — is told to
    `on_skip` with the reason (a file named on the command line is always judged, never skipped)."""
    skip = on_skip or (lambda _path, _why: None)
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for dirpath, dirs, files in os.walk(path, followlinks=False):
                for hidden in sorted(d for d in dirs if d.startswith(".")):
                    skip(Path(dirpath, hidden), "hidden folder, not searched")
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(files):
                    found = Path(dirpath, file)
                    if file.startswith("."):
                        skip(found, "hidden file")
                    elif found.suffix.lower() not in SUFFIXES:
                        skip(found, f"not a .json or .csv file ({found.suffix or 'no extension'})")
                    else:
                        yield FoundFile(found, found.relative_to(path.parent), path)
        else:
            yield FoundFile(path, PurePath(path.parent.name, path.name))


def outside_link(path: Path, root: Path) -> str | None:
    """Why `path` is not read: it is a symbolic link (or lies under one) leading out of `root`. A
    link inside the folder is followed like the file it points at."""
    target = path.resolve()
    if target.is_relative_to(root.resolve()):
        return None
    return f"a symbolic link to {target}, outside {root}: not followed"


def index_hints(name: PurePath, index_option: str | None) -> dict[str, str]:
    """Every index the file's path and the command name: `--index`, the nearest folder named for a
    known index (`IBOV/2025-07-08.json`), and a known code opening the file name
    (`IBOV_2025-07-08.json`, `IBOVDia_08-07-25.csv`)."""
    hints = {}
    if index_option:
        hints["--index"] = index_option
    folder = next((p.upper() for p in reversed(name.parts[:-1]) if p.upper() in KNOWN_INDEX_CODES), None)
    if folder:
        hints["folder"] = folder
    named = _NAME_INDEX.match(name.name)
    if named and named.group(1).upper() in KNOWN_INDEX_CODES:
        hints["file name"] = named.group(1).upper()
    return hints


def agreed_index(hints: dict[str, str], title: str | None) -> str | None:
    """The one index every hint names; ImportRejected, naming each, when they disagree. A CSV's
    title is the payload's own word: every other hint must match it."""
    if title is not None:
        problems = []
        for source, code in hints.items():
            if code == title:
                continue
            if source == "--index":
                problems.append(f"the CSV title names {title}, not --index {code}")
            else:
                problems.append(f"{source} says {code} but the CSV title names {title}")
        if problems:
            raise ImportRejected("; ".join(problems))
        return title
    codes = set(hints.values())
    if len(codes) > 1:
        said = ", ".join(f"{source} says {code}" for source, code in hints.items())
        raise ImportRejected(f"the index hints disagree ({said}): which index is it? Fix the name or folder")
    return codes.pop() if codes else None


def dates_in_name(name: str) -> list[tuple[str, set[dt.date]]]:
    """Every date the file name states, as (the text, its possible readings). Day-first forms are
    read either way round (`11-08-2025`: 11 Aug or 8 Nov), since a name does not say its locale."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    found: list[tuple[str, set[dt.date]]] = []
    taken: list[range] = []
    for _form, pattern in _DATE_FORMS:
        for match in pattern.finditer(stem):
            span = range(*match.span())
            if any(span.start < t.stop and t.start < span.stop for t in taken):
                continue  # part of a longer date already read
            groups = match.groupdict()
            year = int(groups["y"]) if groups.get("y") else 2000 + int(groups["yy"])
            if groups.get("m"):
                readings = {_date_or_none(year, int(groups["m"]), int(groups["d"]))}
            else:
                a, b = int(groups["a"]), int(groups["b"])
                readings = {_date_or_none(year, b, a), _date_or_none(year, a, b)}
            readings.discard(None)
            if readings:
                taken.append(span)
                found.append((match.group(0), readings))  # type: ignore[arg-type]
    return found


def _date_or_none(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def read_file(path: PurePath, body: bytes, index_option: str | None) -> tuple[str, Portfolio]:
    """Validate one file's bytes; returns (index, portfolio) or raises ImportRejected.

    Contract messages quote no bytes of the file: a file that is not a B3 response (a link to
    /etc/passwd, say) must not have its content printed or written to a `.reason.txt`."""
    hints = index_hints(path, index_option)
    if path.suffix.lower() == ".csv" or looks_like_portfolio_csv(body):
        portfolio = read_portfolio_csv(body)
        if portfolio.index is None:
            raise ImportRejected("the CSV title names no index")
        return agreed_index(hints, portfolio.index), portfolio
    index = agreed_index(hints, None)
    if index is None:
        # A body that is no day's portfolio at all (e.g. GetStockIndex) says so, not "pass --index".
        decode_portfolio_json(body, index=None, quote_body=False)
        raise ImportRejected(
            "a JSON response does not name its index: pass --index CODE or keep the file under a "
            "folder named for it (e.g. IBOV/2025-07-08.json)"
        )
    return index, decode_portfolio_json(body, index=index, quote_body=False)


def validate_portfolio(path: PurePath, index: str, portfolio: Portfolio) -> None:
    day = portfolio.reference_date
    for text, readings in dates_in_name(path.name):
        if day not in readings:
            read_as = " or ".join(str(d) for d in sorted(readings))
            said = read_as if len(readings) == 1 else f"{text} ({read_as})"
            raise ImportRejected(f"file name says {said} but the portfolio's header date is {day}")
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


def import_file(
    store: RawStore,
    path: Path,
    *,
    index: str | None = None,
    name: PurePath | None = None,
    root: Path | None = None,
) -> FileResult:
    """Import one saved file (a path on this machine); `import_body` does the work.

    `name` is what hints are read from (default: the file's folder and name), `root` the folder
    it was found in: a link leading out of it is not followed. A file larger than the cap is
    refused unread, and at most cap + 1 bytes are ever read (a file growing meanwhile)."""
    judged = _judge_file(path, index=index, name=name, root=root)
    return judged if isinstance(judged, FileResult) else _store(store, judged)


@dataclass(frozen=True)
class _Accepted:
    """A file that passed every check, to be stored: what `_store` needs, and the path its result
    names."""

    path: PurePath
    index: str
    body: bytes
    portfolio: Portfolio
    file_name: str

    @property
    def content(self) -> tuple[dt.date, str, str]:
        """What makes two files the same capture: (date, index, sha256 of the bytes)."""
        return self.portfolio.reference_date, self.index, capture_sha256([self.body])


def _judge_file(
    path: Path, *, index: str | None, name: PurePath | None, root: Path | None
) -> FileResult | _Accepted:
    """Read and judge one saved file: rejected (a FileResult) or accepted (to be stored)."""
    try:
        if index is not None:
            validate_index_code(index)
        _check_suffix(path)
        if root is not None and (reason := outside_link(path, root)):
            raise ImportRejected(reason)
        body = _read_capped(path)
    except (ImportRejected, ValueError) as exc:
        return FileResult(path, "rejected", str(exc))
    hint_name = name if name is not None else PurePath(path.parent.name, path.name)
    judged = _judge_body(hint_name, body, index=index, file_name=str(path))
    return dataclasses.replace(judged, path=path)


def _read_capped(path: Path) -> bytes:
    """The file's bytes, never more than the cap + 1 of them (stat first: a FIFO would block)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ImportRejected("not a regular file")
        if info.st_size > MAX_BODY_BYTES:
            raise ImportRejected(too_large(info.st_size))
        with open(path, "rb") as fh:
            body = fh.read(MAX_BODY_BYTES + 1)
    except FileNotFoundError:
        raise ImportRejected("no such file") from None
    except OSError as exc:
        raise ImportRejected(f"cannot read it: {exc.strerror}") from None
    if len(body) > MAX_BODY_BYTES:
        raise ImportRejected(too_large(len(body)))
    return body


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
    judged = _judge_body(name, body, index=index, file_name=file_name)
    return judged if isinstance(judged, FileResult) else _store(store, judged)


def _judge_body(
    name: PurePath | str, body: bytes, *, index: str | None, file_name: str | None
) -> FileResult | _Accepted:
    """Every check of `import_body`, nothing stored: rejected (a FileResult) or accepted."""
    path = name if isinstance(name, PurePath) else PurePosixPath(name)
    try:
        if index is not None:
            validate_index_code(index)
        _check_suffix(path)
        file_index, portfolio = read_file(path, body, index)
        validate_portfolio(path, file_index, portfolio)
    except (ImportRejected, ContractError, ParseError, ValueError, UnicodeDecodeError) as exc:
        return FileResult(path, "rejected", str(exc))
    return _Accepted(path, file_index, body, portfolio, file_name if file_name is not None else str(path))


def _store(store: RawStore, accepted: _Accepted) -> FileResult:
    """File an accepted file in raw under its header date: imported, or a duplicate of a capture.

    Storing may raise OSError (local disk) or StorageError (S3): the lake's failure, not the
    file's; import_paths stops on it, the landing sensor leaves the file for a later tick."""
    portfolio, day = accepted.portfolio, accepted.portfolio.reference_date
    capture, new = store.store(
        day,
        accepted.index,
        [accepted.body],
        fetched_at=dt.datetime.now(dt.timezone.utc),
        source_format=portfolio.source_format,
        meta={
            "source": "import",
            "file_name": accepted.file_name,
            "language": portfolio.language,
            "header_date": portfolio.header.date,
            "http_status": None,
        },
    )
    return FileResult(
        accepted.path,
        "imported" if new else "duplicate",
        "" if new else f"identical to capture {capture.capture_id}",
        day,
        accepted.index,
        capture.capture_id,
        len(portfolio.results),
    )


def _check_suffix(path: PurePath) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise ImportRejected(f"not a .json or .csv file ({path.suffix or 'no extension'})")


#: Files stored at once while the next ones are judged. Storing a capture is mostly waiting for
#: the disk (two fsyncs locally, a few requests on S3), and concurrent fsyncs share the file
#: system's journal commits: four at a time roughly doubles an import's files per second.
STORE_WORKERS = 4


def import_paths(
    store: RawStore,
    paths: Iterable[str | Path],
    *,
    index: str | None = None,
    progress=None,
    on_skip: OnSkip | None = None,
) -> list[FileResult]:
    """Import every file; ImportStopped (with the results so far) when the lake fails. What the
    folders' walk leaves out is told to `on_skip` first (iter_files).

    Files are judged one after another, in order, and the accepted ones stored by STORE_WORKERS
    threads; results (and `progress`) still come in file order, and two files with the same bytes
    for the same date and index are stored one after the other, so the first is the one imported
    and the second its duplicate, as when stored one by one. When the lake fails, the files being
    stored meanwhile settle first: those stored are in the results (they are in raw), and every
    file not stored counts as not attempted."""
    found = list(iter_files(paths, on_skip))
    settled: list[FileResult | Future] = []
    by_content: dict[tuple[dt.date, str, str], Future] = {}
    file_of: dict[Future, FoundFile] = {}
    results: list[FileResult] = []
    failure: tuple[FoundFile, BaseException] | None = None

    def collect(block: bool) -> None:
        """Move finished results, in file order, from `settled` into `results`."""
        nonlocal failure
        while settled:
            head = settled[0]
            if isinstance(head, Future):
                if not block and not head.done():
                    return
                try:
                    result = head.result()
                except (OSError, StorageError, DamagedSidecar) as exc:
                    # A damaged sidecar already in raw is the lake's fault too (it names the file
                    # and what to do), and looking for duplicates meets it on every later file of
                    # that date.
                    if failure is None:
                        failure = (file_of[head], exc)
                    settled.pop(0)
                    continue
            else:
                result = head
            settled.pop(0)
            results.append(result)
            if progress:
                progress(result)

    with ThreadPoolExecutor(max_workers=STORE_WORKERS, thread_name_prefix="import-store") as pool:
        for file in found:
            if failure is not None:
                break
            judged = _judge_file(file.path, index=index, name=file.name, root=file.root)
            if isinstance(judged, FileResult):
                settled.append(judged)
            else:
                content = judged.content
                earlier = by_content.get(content)
                if earlier is not None:
                    earlier.exception()  # the same bytes: wait until the first is stored
                future = pool.submit(_store, store, judged)
                file_of[future] = file
                by_content[content] = future
                settled.append(future)
            while sum(isinstance(s, Future) and not s.done() for s in settled) >= STORE_WORKERS:
                next(s for s in settled if isinstance(s, Future) and not s.done()).exception()
            collect(block=False)
        collect(block=True)
    if failure is not None:
        file, exc = failure
        raise ImportStopped(file.path, exc, results, len(found) - len(results) - 1) from exc
    return results
