"""Byte storage under one root. Asset code only ever sees `Storage`: a local folder here, an
`s3://bucket/prefix` root in the AWS mode (lake.s3_storage), chosen in `open_storage`.

Every write is atomic: locally a temp file in the same folder then `os.replace`, so a crash
mid-write leaves the previous version readable; on S3 a single PUT per object has the same property.

A temp file is never read: its name starts with `.tmp-` and ends with `.partial`, so no listing
returns it and no reader's glob (`data.parquet`, `*.meta.json`) matches it. A process killed
mid-write (SIGKILL, power loss) cannot remove its own; the next write into the same folder does
(`remove_stale_temp_files`), once it is sure no live writer owns it: the name carries the writer's
pid and host, so a temp file of a process that no longer runs on this host goes at once, and any
other (another host's, or a name without an owner) after STALE_TEMP_SECONDS.
"""

from __future__ import annotations

import abc
import os
import re
import socket
import time
import uuid
from pathlib import Path


class StorageError(RuntimeError):
    pass


class MissingKey(StorageError):
    """The key holds no object."""


def checked_key(key: str) -> str:
    """A key never leaves its root: no absolute keys, no `..` parts."""
    if key.startswith("/") or ".." in key.split("/"):
        raise StorageError(f"invalid lake key {key!r}")
    return key


class Storage(abc.ABC):
    """Keys are relative `/`-separated paths (see lake.paths)."""

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    def read_if_exists(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none: one read, no look-up first (on S3 one
        GET, not HEAD + GET)."""
        try:
            return self.read_bytes(key)
        except MissingKey:
            return None

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (recursively), sorted; temp files are never listed."""

    def has_keys(self, prefix: str) -> bool:
        """Whether `prefix` holds any key (temp files aside). A store that can stop at the first
        one overrides this: listing a whole history only to learn it is not empty grows with it."""
        return bool(self.list_keys(prefix))

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    def delete_keys(self, keys: list[str]) -> None:
        """Delete every key (one missing is no error). A store that deletes many in one request
        overrides this (S3: 1,000 keys a DeleteObjects, where a DELETE each is one request each)."""
        for key in keys:
            self.delete(key)

    @abc.abstractmethod
    def uri(self, key: str = "") -> str:
        """Where a key lives, for people and for readers such as DuckDB."""

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write `key` only if it holds no object yet, in one step no other writer can interleave
        with: True when written, False when the key already held an object (left untouched).
        What makes "store unless it exists" safe between processes (lake.raw_store)."""
        raise NotImplementedError(f"{type(self).__name__} cannot create a key exclusively")

    def write_marker(self, key: str) -> None:
        """An empty object whose name is all it says (raw's pending markers). By default an empty
        write_bytes (on S3 one PUT); a local folder creates the file directly (`touch`)."""
        self.write_bytes(key, b"")

    def create_transient(self, key: str, data: bytes) -> bool:
        """`create_bytes` for a marker that only lives while its writer runs (raw_store's lease):
        the same exclusivity, and whole bytes on appearance, but no promise to outlive a power
        loss (a lease that did would be broken as stale anyway). By default create_bytes itself."""
        return self.create_bytes(key, data)


TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".partial"
#: A temp file whose writer cannot be shown dead is left this long: far longer than any one write
#: (a file of at most tens of MB, written and renamed at once), so a slow live writer never loses it.
STALE_TEMP_SECONDS = 3600.0
#: `.tmp-<pid>@<host>-<uuid>-<name>.partial`: who writes it, so a dead writer's file goes at once.
_TEMP_OWNER = re.compile(r"^\.tmp-(\d+)@([^/]+?)-[0-9a-f]{32}-")


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace the file atomically (temp file, fsync, rename). The fsync is what makes the
        rename safe across a power loss: without it the new name could survive with its bytes
        not yet on disk, losing both versions. A manifest written after a date's files can only
        publish them once their bytes are durable, for the same reason. (Skipping the write of a
        file whose bytes are unchanged was tried and left out: the kill-mid-date tests count the
        files a rebuild writes, and a fresh backfill never meets an unchanged file anyway.)"""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temp_files(path.parent)
        tmp = path.with_name(f"{TEMP_PREFIX}{_temp_owner()}-{uuid.uuid4().hex}-{path.name}{TEMP_SUFFIX}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingKey(f"{self.uri(key)} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def has_keys(self, prefix: str) -> bool:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        return _holds_a_file(str(base))

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return []
        # One scandir per folder, keys cut from its strings rather than a Path per file: a raw
        # history of 5,000 dates x 34 indices lists ~340,000 files (the catalog run's coverage
        # lists them all), where os.walk's own bookkeeping cost as much again as the scandirs
        # (1.27 -> 0.63 s CPU at 1,250 dates x 34). As os.walk: symlinked folders are not
        # followed, and a folder that vanishes or cannot be read mid-listing is skipped.
        skip = len(os.path.join(str(self.root), ""))
        keys: list[str] = []
        folders = [str(base)]
        while folders:
            folder = folders.pop()
            relative = folder[skip:].replace(os.sep, "/")
            lead = f"{relative}/" if relative else ""
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            is_dir = entry.is_dir()
                        except OSError:
                            is_dir = False
                        if is_dir:
                            if not entry.is_symlink():
                                folders.append(entry.path)
                        elif not entry.name.startswith(TEMP_PREFIX):
                            keys.append(lead + entry.name)
            except OSError:
                continue
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def create_bytes(self, key: str, data: bytes) -> bool:
        """The complete bytes go to a temp file first, then are hard-linked under their name:
        link(2) fails with EEXIST when the name exists, atomically, so of two processes creating
        the same key exactly one succeeds, and no reader ever sees a partial file. The temp file
        is fsynced before the link, so a created key keeps its bytes across a power loss."""
        return self._create(key, data, durable=True)

    def write_marker(self, key: str) -> None:
        """`touch`: no temp file, so no sweep of the folder first. Raw's pending markers share one
        flat folder until a catalog refresh settles them (tens of thousands during an import of
        years of files), and write_bytes' sweep lists the folder on every write: ~16 ms at 34,000
        markers, which made an import's cost per file grow with the files before it."""
        touch(str(self._path(key)))

    def create_transient(self, key: str, data: bytes) -> bool:
        """create_bytes without the fsync (see Storage.create_transient): ~2 ms less per lease."""
        return self._create(key, data, durable=False)

    def _create(self, key: str, data: bytes, *, durable: bool) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}.partial")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def remove_stale_temp_files(self, folder: Path) -> list[Path]:
        """Remove the temp files in `folder` that no live writer owns (see the module docstring).

        Called before every write into the folder: one scandir of a folder that holds a date's one
        file (or a capture's few), so it costs microseconds. Returns what it removed."""
        removed = []
        try:
            entries = [e for e in os.scandir(folder) if e.name.startswith(TEMP_PREFIX)]
        except FileNotFoundError:
            return removed
        for entry in entries:
            if _temp_is_stale(entry):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
        return removed


def touch(path: str) -> None:
    """An empty file at `path` (its folder created when missing), for a marker whose name is all it
    says. No fsync of its own: on a file system that commits metadata in order (ext4, XFS) it is on
    disk before any file its writer fsyncs afterwards, which is all a marker needs."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)


def _holds_a_file(folder: str) -> bool:
    """Whether a local folder holds a file (temp files aside) at any depth, depth first: the first
    folder met is entered at once, so a history of dates is not listed whole (os.walk lists each
    level before going down: ~3 ms more per 1,000 dates of raw on every catalog refresh). As
    os.walk: symlinked folders are not followed, one that cannot be read is skipped."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    if not entry.is_symlink() and _holds_a_file(entry.path):
                        return True
                elif not entry.name.startswith(TEMP_PREFIX):
                    return True
    except OSError:  # missing, not a folder, or unreadable
        return False
    return False


def folder_names(folder: str) -> list[str]:
    """The names in a local folder, none when it does not exist: one scandir, names only (what the
    catalog's and the change journal's listings of thousands of entries afford)."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries]
    except FileNotFoundError:
        return []


def _temp_owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _temp_is_stale(entry: os.DirEntry) -> bool:
    match = _TEMP_OWNER.match(entry.name)
    if match and match.group(2) == socket.gethostname():
        return not _pid_alive(int(match.group(1)))
    try:
        age = time.time() - entry.stat().st_mtime
    except FileNotFoundError:  # its writer renamed or removed it meanwhile
        return False
    return age > STALE_TEMP_SECONDS


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def open_storage(root: str, *, region: str | None = None, endpoint_url: str | None = None) -> Storage:
    """The storage for a root: a local folder (relative to the current directory) or
    `s3://bucket/prefix` (region and endpoint apply to S3 only)."""
    if root.startswith("s3://"):
        from b3_platform.aws import split_s3_uri
        from b3_platform.lake.s3_storage import S3Storage

        bucket, prefix = split_s3_uri(root)
        if not bucket:
            raise StorageError(f"lake root {root!r}: no bucket named")
        return S3Storage(bucket, prefix, region=region, endpoint_url=endpoint_url)
    if "://" in root:
        raise StorageError(f"lake root {root!r}: expected a local folder or s3://bucket/prefix")
    return LocalStorage(root)
