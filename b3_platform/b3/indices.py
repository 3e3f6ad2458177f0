"""The index codes B3 serves, and which of them this platform captures.

Out of the box the platform captures every index B3 lists in `GetStockIndex` (discovered each
trading day, see b3_platform/capture_list.py); `B3_PLATFORM_INDICES` overrides that list. When no
listing was ever captured (a fresh lake without network), BUILTIN_INDICES stands in for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

#: The 34 indices B3's GetStockIndex listed on 2025-04-07 (demo_data/GetStockIndex/2025-04-07_vcr.json):
#: what is captured when the lake holds no listing yet and B3 cannot be asked.
BUILTIN_INDICES: tuple[str, ...] = tuple(
    """AGFS BDRX GPTW IBBR IBEE IBEP IBEW IBHB IBLV IBOV IBRA IBSD IBXL IBXX ICO2 ICON IDIV IDVR IEEX
    IFIL IFIX IFNC IGCT IGCX IGNM IMAT IMOB INDX ISEE ITAG IVBX MLCX SMLL UTIL""".split()
)

#: BUILTIN_INDICES plus IBBC/IBBE from public clients (demo_data/B3_API.md §8).
#: Used to recognise an index in a path segment of an imported file, never to refuse a code B3 serves.
KNOWN_INDEX_CODES: frozenset[str] = frozenset((*BUILTIN_INDICES, "IBBC", "IBBE"))

#: Overrides the captured list, e.g. `B3_PLATFORM_INDICES=IBOV,IBRA`.
INDICES_ENV = "B3_PLATFORM_INDICES"

_CODE = re.compile(r"^[A-Z][A-Z0-9]{3}$")


def validate_index_code(code: str) -> str:
    if not _CODE.match(code):
        raise ValueError(f"{code!r} is not a B3 index code (four upper-case letters/digits, e.g. IBOV)")
    return code


def configured_indices(env: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """`B3_PLATFORM_INDICES` when set; None when unset or blank (every index B3 lists is captured)."""
    raw = (os.environ if env is None else env).get(INDICES_ENV, "").strip()
    if not raw:
        return None
    codes = [c.strip().upper() for c in raw.split(",") if c.strip()]
    try:
        return tuple(dict.fromkeys(validate_index_code(c) for c in codes))
    except ValueError as exc:
        raise ValueError(f"{INDICES_ENV}: {exc}") from None
