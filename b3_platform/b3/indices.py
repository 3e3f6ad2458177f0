"""The index codes B3 serves, and the list this platform captures by default."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

#: Codes seen in GetStockIndex (2025-04-07) plus IBBC/IBBE from public clients (demo_data/B3_API.md §8).
#: Used to recognise an index in a path segment of an imported file, never to refuse a code B3 serves.
KNOWN_INDEX_CODES: frozenset[str] = frozenset(
    """AGFS BDRX GPTW IBBR IBEE IBEP IBEW IBHB IBLV IBOV IBRA IBSD IBXL IBXX ICO2 ICON IDIV IDVR IEEX
    IFIL IFIX IFNC IGCT IGCX IGNM IMAT IMOB INDX ISEE ITAG IVBX MLCX SMLL UTIL IBBC IBBE""".split()
)

#: Ibovespa plus the siblings analysts ask for most: IBrX 100, IBrX 50, Small Cap, Dividendos.
DEFAULT_INDICES: tuple[str, ...] = ("IBOV", "IBXX", "IBXL", "SMLL", "IDIV")

#: Overrides the captured list, e.g. `B3_PLATFORM_INDICES=IBOV,IBRA`.
INDICES_ENV = "B3_PLATFORM_INDICES"

_CODE = re.compile(r"^[A-Z][A-Z0-9]{3}$")


def validate_index_code(code: str) -> str:
    if not _CODE.match(code):
        raise ValueError(f"{code!r} is not a B3 index code (four upper-case letters/digits, e.g. IBOV)")
    return code


def configured_indices(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The indices to capture: `B3_PLATFORM_INDICES` when set, else DEFAULT_INDICES."""
    raw = (os.environ if env is None else env).get(INDICES_ENV, "").strip()
    if not raw:
        return DEFAULT_INDICES
    codes = [c.strip().upper() for c in raw.split(",") if c.strip()]
    try:
        return tuple(dict.fromkeys(validate_index_code(c) for c in codes))
    except ValueError as exc:
        raise ValueError(f"{INDICES_ENV}: {exc}") from None
