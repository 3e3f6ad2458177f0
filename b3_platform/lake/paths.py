"""The lake's one path scheme, shared by every layer and every storage root.

Hive-style `date=YYYY-MM-DD/` folders so DuckDB, Athena and Spark read the same layout; one Parquet
file per table per date. Keys are relative, `/`-separated, and the same under `./data` or
`s3://bucket/prefix`.
"""

from __future__ import annotations

import datetime as dt
import re

#: The B3 method whose responses raw holds by default (the day portfolio). Every method's captures
#: live under `raw/<Method>/`, e.g. `raw/GetStockIndex/`, `raw/GetTheoricalPortfolio/`.
PORTFOLIO_DAY = "GetPortfolioDay"
RAW_DATASET = f"raw/{PORTFOLIO_DAY}"
PARQUET_FILE = "data.parquet"
META_SUFFIX = ".meta.json"  # a raw capture's sidecar, written last: its presence commits the capture

#: How a date's folder is named: `date=YYYY-MM-DD`.
DATE_DIR_PREFIX = "date="
_DATE_DIR = re.compile(rf"(?:^|/){DATE_DIR_PREFIX}(\d{{4}}-\d{{2}}-\d{{2}})(?:/|$)")
#: How a raw capture's index folder (inside its date's) is named: `index=IBOV`.
INDEX_DIR_PREFIX = "index="
#: What an index folder's name holds after the prefix: capitals and digits.
_INDEX_CODE = "[A-Z0-9]+"
_INDEX_DIR = re.compile(rf"(?:^|/){INDEX_DIR_PREFIX}({_INDEX_CODE})(?:/|$)")
_INDEX_CODE_ONLY = re.compile(_INDEX_CODE)


def is_index_folder_code(code: str) -> bool:
    """Whether `code` is an index code as raw's folders name it (what `index_in_key` reads)."""
    return _INDEX_CODE_ONLY.fullmatch(code) is not None


def date_dir(day: dt.date) -> str:
    return f"{DATE_DIR_PREFIX}{day.isoformat()}"


def raw_prefix(day: dt.date | None = None, index: str | None = None, *, method: str = PORTFOLIO_DAY) -> str:
    """`raw/<method>/[date=D/[index=X/]]` (method: the B3 API method, GetPortfolioDay by default)."""
    prefix = f"raw/{method}/"
    if day is not None:
        prefix += f"{date_dir(day)}/"
        if index is not None:
            prefix += f"{INDEX_DIR_PREFIX}{index}/"
    return prefix


#: Where the raw inventory (lake.raw_inventory) of a method keeps its state and the markers of the
#: captures written since: outside `raw/`, so no reader of raw (Athena's raw_captures location, the
#: catalog's glob, RawStore's listings) ever meets them, and outside `catalog/coverage/`, whose
#: folder Athena reads whole as the coverage table's Parquet.
RAW_INVENTORY_ROOT = "catalog/_raw_inventory/"
RAW_PENDING_DIR = "pending/"

#: What the coverage table (b3_platform.coverage) was last written from, which tells the next
#: write which of its years may have changed: outside `catalog/coverage/`, which Athena reads whole,
#: and beside raw's inventory (outside any method's), whose state it follows: deleting that folder
#: has the next refresh walk raw whole and rebuild every coverage year.
COVERAGE_BASIS_KEY = f"{RAW_INVENTORY_ROOT}coverage_basis.json"


def year_file(year: int) -> str:
    """The file of one year of a table kept a file per year with no `date=` folders (the coverage
    table): `<YYYY>.parquet`."""
    return f"{year:04d}{YEAR_FILE_SUFFIX}"


def year_of_file(name: str) -> int | None:
    """The year of a `year_file` name, None for any other name."""
    stem = name[: -len(YEAR_FILE_SUFFIX)] if name.endswith(YEAR_FILE_SUFFIX) else ""
    return int(stem) if len(stem) == 4 and stem.isdigit() else None


YEAR_FILE_SUFFIX = ".parquet"


#: Where the lake's change journal (lake.changes) keeps its markers of which tables' dates were
#: written: beside the raw inventory, outside every table's folder and every reader's glob.
CHANGES_ROOT = "catalog/_changes/"


def raw_inventory_prefix(method: str = PORTFOLIO_DAY) -> str:
    return f"{RAW_INVENTORY_ROOT}{method}/"


def raw_pending_key(
    day: dt.date, index: str, stem: str, written_ms: int, *, method: str = PORTFOLIO_DAY
) -> str:
    """The marker RawStore writes before a capture's first body: `<inventory>/pending/<date>_<index>_
    <written ms>-<stem>` (the time it was written, so an abandoned capture's marker can be dropped).
    One flat folder: locally, a folder per date and index would outlive its markers, and listing
    the empty folders of years of dates would grow with history again."""
    return f"{raw_inventory_prefix(method)}{RAW_PENDING_DIR}{day.isoformat()}_{index}_{written_ms}-{stem}"


def raw_stem(fetched_at: dt.datetime, sha256: str) -> str:
    """`<fetched_at UTC>-<sha256>`: sorts by capture time, and the sha makes duplicates visible by name."""
    stamp = fetched_at.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{sha256}"


def table_location(layer: str, name: str) -> str:
    """Folder of a table, e.g. `silver/assets/` (what Glue calls the table's location)."""
    return f"{layer}/{name}/"


def table_partition_key(location: str, day: dt.date) -> str:
    return f"{location}{date_dir(day)}/{PARQUET_FILE}"


def date_in_key(key: str) -> dt.date | None:
    match = _DATE_DIR.search(key)
    return dt.date.fromisoformat(match.group(1)) if match else None


def index_in_key(key: str) -> str | None:
    match = _INDEX_DIR.search(key)
    return match.group(1) if match else None


#: The stamp exactly as `raw_stem` writes it (ASCII digits, every field at full width).
_STAMP = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{6})Z")
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def fetched_at_from_stem(stem: str) -> dt.datetime:
    """Inverse of raw_stem for the time part.

    A stamp as `raw_stem` writes it is read by its fixed widths (silver types one per index and
    date, twice: `strptime` was a third of its header typing); any other text, or a value no
    datetime holds, goes to `strptime`, which reads it or raises its own error, as it always did.
    On the fixed-width form both read the same fields (strptime's patterns take two digits first)."""
    stamp = stem.split("-", 1)[0]
    match = _STAMP.fullmatch(stamp)
    if match is not None:
        try:
            return dt.datetime(*map(int, match.groups()), tzinfo=dt.timezone.utc)  # type: ignore[misc]
        except ValueError:
            pass  # e.g. a 13th month: strptime words the error
    return dt.datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=dt.timezone.utc)
