"""The local landing: a folder (default `<data dir>/landing/`) listed on each tick."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from pydantic import Field

from b3_platform.importer import FileResult, outside_link
from b3_platform.landing.base import (
    MAX_BYTES,
    REASON_SUFFIX,
    REJECTED_SUFFIX,
    TEMP_SUFFIXES,
    LandedFile,
    LandingResource,
    logger,
    too_large,
)


class LocalLandingResource(LandingResource):
    """A folder (default `<data dir>/landing/`) watched by listing it on each tick.

    A file still being written must not be read half-way. The rule: a file is taken only once
    neither its mtime nor its ctime changed for `min_age_seconds`. Every write moves mtime, and a
    tool that restores an old mtime when it finishes (cp -p, tar, unzip, curl -R) moves ctime
    doing so; no state is kept between ticks (unlike a size-stable check, which needs two looks).
    Hidden files and folders (rsync writes `.name.XXXXXX`) and usual temp names are ignored.
    Listing a local folder is cheap, so no event source is needed here. Links to folders are not
    followed; a link to a file outside landing is rejected unread (the link itself is moved to
    landing_rejected/), so nothing outside landing is read or echoed."""

    folder: str = Field(description="The landing folder (relative to the working directory or absolute)")
    min_age_seconds: float = Field(
        default=10.0, description="A file is taken once unchanged (mtime and ctime) for this long"
    )

    @property
    def root(self) -> Path:
        return Path(self.folder).expanduser().resolve()

    @property
    def rejected_root(self) -> Path:
        return self.root.with_name(self.root.name + REJECTED_SUFFIX)

    def describe(self) -> str:
        return str(self.root)

    def receive(self, max_files: int, log: logging.Logger | None = None) -> list[LandedFile]:
        root = self.root
        if not root.is_dir():
            return []
        quiet_since = time.time() - self.min_age_seconds
        found: list[tuple[float, str, Path, os.stat_result]] = []
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                if file.startswith(".") or file.lower().endswith(TEMP_SUFFIXES):
                    continue
                path = Path(dirpath, file)
                try:
                    stat = path.lstat()  # a link's own times: its target is not looked at yet
                except FileNotFoundError:
                    continue  # removed meanwhile
                if max(stat.st_mtime, stat.st_ctime) > quiet_since:
                    continue  # maybe still being written: a later tick takes it
                found.append((stat.st_mtime, path.relative_to(root).as_posix(), path, stat))
        landed = []
        for _, name, path, stat in sorted(found)[:max_files]:
            problem = outside_link(path, root)
            try:
                size = path.stat().st_size if problem is None else 0
                if problem is None and size > MAX_BYTES:
                    problem = too_large(size)
                body = b"" if problem else path.read_bytes()
            except OSError as exc:  # unreadable (permissions), gone, a broken link: skipped
                (log or logger).warning(f"{path}: cannot read ({exc.strerror}); left in landing")
                continue
            landed.append(
                LandedFile(
                    name=name,
                    body=body,
                    origin=str(path),
                    handle=(path, stat.st_mtime_ns, stat.st_size),
                    problem=problem,
                )
            )
        return landed

    def settle(self, landed: LandedFile, result: FileResult, log: logging.Logger | None = None) -> None:
        log = log or logger
        path, mtime_ns, size = landed.handle
        try:
            stat = path.lstat()
        except FileNotFoundError:
            return
        if (stat.st_mtime_ns, stat.st_size) != (mtime_ns, size):
            log.warning(f"{path} changed since it was read: left in landing for the next tick")
            return
        if result.status == "rejected":
            target = self.rejected_root / landed.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            target.with_name(target.name + REASON_SUFFIX).write_text(result.reason + "\n", encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
        _prune_empty_folders(path.parent, self.root)


def _prune_empty_folders(folder: Path, root: Path) -> None:
    """Remove folders emptied by settling (IBOV/ after its last file), never landing itself."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty
        folder = folder.parent
