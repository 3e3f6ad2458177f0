"""What the landing sensor sees of any landing: files received, then settled one by one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from b3_platform.b3.contract import MAX_BODY_BYTES
from b3_platform.importer import FileResult, too_large

#: Written next to a rejected file in landing_rejected/: why it was refused.
REASON_SUFFIX = ".reason.txt"
#: Folder (or key prefix) beside landing that keeps rejected files: `landing` → `landing_rejected`.
REJECTED_SUFFIX = "_rejected"
#: B3's files are ~100 KB; anything far larger is no portfolio and is not read into memory. The
#: cap is the import's own (b3.contract.MAX_BODY_BYTES), named here for the landing backends.
MAX_BYTES = MAX_BODY_BYTES
#: Names of files still being written by common tools (rsync, browsers, editors, our own storage).
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", "~")

logger = logging.getLogger("b3_platform.landing")


@dataclass(frozen=True)
class LandedFile:
    """One file taken from landing, not yet settled."""

    name: str  # relative to landing, '/'-separated: "IBOV/2025-07-08.json"
    body: bytes
    origin: str  # where it landed, for people and the capture's metadata (a path or s3:// URI)
    handle: Any = field(repr=False, compare=False)  # the backend's own (path + stat / S3 object + message)
    problem: str | None = None  # a reason to reject it unread (too large)


class LandingResource(dg.ConfigurableResource):
    """Where files to import land. The sensor calls `receive`, imports each file, then `settle`s it."""

    def disabled_reason(self) -> str | None:
        """Why this landing cannot be watched (the sensor skips saying so), or None."""
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def receive(self, max_files: int, log: logging.Logger | None = None) -> list[LandedFile]:
        """Up to about `max_files` landed files, oldest first where the backend knows the order."""
        raise NotImplementedError

    def settle(self, landed: LandedFile, result: FileResult, log: logging.Logger | None = None) -> None:
        """Imported or duplicate: remove it from landing. Rejected: move it to landing_rejected/ with
        its reason. Then acknowledge it (nothing more to do locally; the SQS message is deleted)."""
        raise NotImplementedError


__all__ = [
    "MAX_BYTES",
    "REASON_SUFFIX",
    "REJECTED_SUFFIX",
    "TEMP_SUFFIXES",
    "LandedFile",
    "LandingResource",
    "too_large",
]
