"""What every part of the benchmark shares: where the checkout is, the warnings it silences,
progress lines, and small numeric helpers."""

from __future__ import annotations

import math
import statistics
import sys
import time
import warnings
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: The checkout measured: the one these scripts live in (run.py puts it first on sys.path).
REPO = BENCH_DIR.parent


def quiet_warnings() -> None:
    """The warnings cli.main and pytest silence: noise on every run, nothing to act on."""
    warnings.filterwarnings("ignore", message=".*backfill_policy.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="exchange_calendars.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import pandas.errors

        warnings.filterwarnings("ignore", category=pandas.errors.Pandas4Warning)
    except (ImportError, AttributeError):
        pass
    try:
        import dagster as dg

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    except (ImportError, AttributeError):
        pass


class Clock:
    """Progress lines stamped with the elapsed time, so a long run shows it is moving."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{int(elapsed // 60):3d}:{elapsed % 60:04.1f}] {message}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def maxrss_mb(ru_maxrss: int) -> float:
    """ru_maxrss is in KiB on Linux and in bytes on macOS."""
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


def fmt(value: float, digits: int = 1) -> str:
    return (
        "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"
    )


def pt_number(series):
    """pt-br '1.234,567' -> 1234.567 (what a peer script does with B3's strings)."""
    return series.str.replace(".", "", regex=False).str.replace(",", ".", regex=False).astype(float)
