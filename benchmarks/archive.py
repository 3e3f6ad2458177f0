"""The synthetic archive: the real IBOV samples in demo_data/ re-dated onto N consecutive B3 trading
days, filed under K real index codes (see the module docstring of run.py and README.md)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from common import REPO

SOURCE_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: The 8 consecutive 2025 samples (the 2022 segment-2 file in the same folder is not part of the cycle).
SOURCE_GLOB = "2025-*.json"
#: Real index codes the importer recognises in a folder name (b3/indices.py KNOWN_INDEX_CODES).
INDEX_CODES = ("IBOV", "IBXX", "IBXL", "SMLL", "IDIV")
END_DATE = dt.date(2025, 7, 11)

_HEADER_DATE = re.compile(r'("date"\s*:\s*")(\d{2}/\d{2}/\d{2})(")')


def source_samples() -> list[Path]:
    """The real IBOV JSON samples, in date order (the cycle's order)."""
    files = sorted(SOURCE_DIR.glob(SOURCE_GLOB))
    if len(files) < 2:
        raise SystemExit(f"expected the 2025 IBOV JSON samples in {SOURCE_DIR}, found {len(files)}")
    return files


def target_days(n: int) -> list[dt.date]:
    """The last `n` B3 trading days up to END_DATE (B3 calendar, so no weekend or holiday)."""
    from b3_platform.trading_calendar import START_DATE, trading_days_between

    days = trading_days_between(START_DATE, END_DATE)[-n:]
    if len(days) != n:
        raise SystemExit(f"the calendar holds only {len(days)} trading days up to {END_DATE}")
    return days


def redate(text: str, day: dt.date) -> str:
    """The same JSON text with only header.date rewritten (pt-br DD/MM/YY)."""
    new, count = _HEADER_DATE.subn(lambda m: m.group(1) + day.strftime("%d/%m/%y") + m.group(3), text, 1)
    if count != 1 or json.loads(new)["header"]["date"] != day.strftime("%d/%m/%y"):
        raise ValueError(f"could not re-date a sample to {day}")
    return new


def synthetic_note(n: int, indices: tuple[str, ...], days: list[dt.date], sources: list[Path]) -> str:
    return (
        "SYNTHETIC ARCHIVE, built by benchmarks/run.py. Not real B3 data for these dates.\n\n"
        f"{n} consecutive B3 trading days {days[0]} .. {days[-1]}, {len(indices)} index folder(s): "
        f"{', '.join(indices)}.\n"
        "Each file is one of the real IBOV GetPortfolioDay samples below, byte for byte except "
        "header.date, which is rewritten to the target date. Day i uses sample i mod "
        f"{len(sources)}, so consecutive days differ (the real NTCO3/NATU3 swap and weight changes "
        "recur every cycle).\n"
        + (
            f"Folders other than IBOV ({', '.join(i for i in indices if i != 'IBOV')}) hold the same "
            "IBOV contents under another real index code: synthetic too.\n"
            if len(indices) > 1
            else ""
        )
        + "\nSources:\n"
        + "".join(f"  {p.relative_to(REPO)}\n" for p in sources)
    )


def build_archive(root: Path, n: int, k: int) -> tuple[Path, list[dt.date], tuple[str, ...]]:
    """`<root>/<INDEX>/<YYYY-MM-DD>.json` for n days and the first k index codes, plus SYNTHETIC.txt."""
    if not 1 <= k <= len(INDEX_CODES):
        raise SystemExit(f"--indices values must be 1..{len(INDEX_CODES)}")
    sources = source_samples()
    texts = [p.read_text(encoding="utf-8") for p in sources]
    days = target_days(n)
    indices = INDEX_CODES[:k]
    for index in indices:
        (root / index).mkdir(parents=True, exist_ok=True)
    for i, day in enumerate(days):
        body = redate(texts[i % len(texts)], day).encode("utf-8")
        for index in indices:
            (root / index / f"{day.isoformat()}.json").write_bytes(body)
    (root / "SYNTHETIC.txt").write_text(synthetic_note(n, indices, days, sources), encoding="utf-8")
    return root, days, indices


@dataclass(frozen=True)
class Archive:
    """One synthetic archive and what it holds."""

    path: Path
    days: list[dt.date]
    indices: tuple[str, ...]
