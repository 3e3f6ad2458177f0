"""The landing area: files dropped next to the lake are imported into raw by a sensor.

A user uploads saved B3 files straight into the landing prefix (e.g.
`aws s3 cp --recursive ~/archive/ s3://bucket/prefix/landing/`) or copies them into
`<data dir>/landing/` locally. `automation.landing_sensor` takes what landed, validates and files
each file exactly like `python -m b3_platform import` (importer.import_body), reports the imported
dates as raw_portfolio materializations (the layers below follow by their automation conditions),
and settles each file: imported or duplicate → removed from landing; rejected → moved to
`landing_rejected/` beside landing with `<name>.reason.txt` next to it, so the user sees why and
can fix it and drop it again. This is the job the S3 event + Lambda did in the original design.

Why S3 events through SQS on AWS, rather than a sensor that LISTs the landing prefix with a cursor:
- no LIST of a prefix every 30 s (requests and latency grow with what sits there, and a cursor on
  LastModified/keys misses objects whose timestamps arrive out of order);
- at-least-once delivery: a message is deleted only after its file is settled; if the tick fails
  first, SQS redelivers it after the visibility timeout, and a redrive policy moves a message that
  keeps failing to a dead-letter queue instead of blocking the rest;
- it is the original design's trigger (S3 ObjectCreated notification), configured on the bucket.
Redelivery is harmless: raw dedupes by sha256, so a file seen twice is a `duplicate`, not stored twice.

Both environments stand behind the one resource key `landing` (resources.build_resources), so the
sensor has the same behaviour locally (a folder) and on AWS (an SQS queue of S3 events).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import dagster as dg
from pydantic import Field

from b3_platform import aws
from b3_platform.importer import FileResult

#: Written next to a rejected file in landing_rejected/: why it was refused.
REASON_SUFFIX = ".reason.txt"
#: Folder (or key prefix) beside landing that keeps rejected files: `landing` → `landing_rejected`.
REJECTED_SUFFIX = "_rejected"
#: B3's files are ~100 KB; anything far larger is no portfolio and is not read into memory.
MAX_BYTES = 20 * 1024 * 1024
#: Names of files still being written by common tools (rsync, browsers, editors, our own storage).
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", "~")

_logger = logging.getLogger(__name__)


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


class LocalLandingResource(LandingResource):
    """A folder (default `<data dir>/landing/`) watched by listing it on each tick.

    A file still being written must not be read half-way. The rule: a file is taken only once
    neither its mtime nor its ctime changed for `min_age_seconds`. Every write moves mtime, and a
    tool that restores an old mtime when it finishes (cp -p, tar, unzip, curl -R) moves ctime
    doing so; no state is kept between ticks (unlike a size-stable check, which needs two looks).
    Hidden files and folders (rsync writes `.name.XXXXXX`) and usual temp names are ignored.
    Listing a local folder is cheap, so no event source is needed here."""

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
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # removed meanwhile
                if max(stat.st_mtime, stat.st_ctime) > quiet_since:
                    continue  # maybe still being written: a later tick takes it
                found.append((stat.st_mtime, path.relative_to(root).as_posix(), path, stat))
        landed = []
        for _, name, path, stat in sorted(found)[:max_files]:
            too_large = stat.st_size > MAX_BYTES
            try:
                body = b"" if too_large else path.read_bytes()
            except OSError as exc:  # unreadable (permissions) or gone: skipped, the others go on
                (log or _logger).warning(f"{path}: cannot read ({exc.strerror}); left in landing")
                continue
            landed.append(
                LandedFile(
                    name=name,
                    body=body,
                    origin=str(path),
                    handle=(path, stat.st_mtime_ns, stat.st_size),
                    problem=_too_large(stat.st_size) if too_large else None,
                )
            )
        return landed

    def settle(self, landed: LandedFile, result: FileResult, log: logging.Logger | None = None) -> None:
        log = log or _logger
        path, mtime_ns, size = landed.handle
        try:
            stat = path.stat()
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


def _too_large(size: int) -> str:
    return f"{size} bytes: larger than {MAX_BYTES} bytes, not a B3 portfolio file"


@dataclass
class _Message:
    """An SQS message; deleted once every file it announced is settled."""

    receipt_handle: str
    message_id: str
    pending: int = 0


@dataclass(frozen=True)
class _S3Handle:
    key: str
    etag: str
    message: _Message


class SqsLandingResource(LandingResource):
    """The landing prefix on S3, learnt from S3 ObjectCreated notifications delivered to SQS.

    Set up on the bucket: a notification `s3:ObjectCreated:*` filtered on the landing prefix to
    the queue (whose policy lets s3.amazonaws.com send), a redrive policy to a dead-letter queue.
    Without `queue_url` (B3_PLATFORM_LANDING_QUEUE_URL unset) the sensor skips and says so: the
    rest of the AWS mode works without a queue, and an unset optional setting must not fail the
    code location at load."""

    queue_url: str | None = Field(default=None, description="SQS queue receiving the S3 events")
    bucket: str = Field(description="The lake's bucket (events of other buckets are ignored)")
    landing_prefix: str = Field(description="Key prefix files are uploaded to, e.g. b3_platform/landing/")
    region: str | None = Field(default=None)
    endpoint_url: str | None = Field(default=None, description="AWS endpoint (SQS) for moto/LocalStack")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint")
    visibility_timeout_seconds: int | None = Field(
        default=None,
        description="How long a received message stays hidden before SQS redelivers it "
        "(default: the queue's own setting, 300 s in infra/b3_platform.yaml)",
    )
    wait_seconds: int = Field(default=1, description="Long-poll wait of each ReceiveMessage call")

    def _client(self, service: str) -> Any:
        endpoint = self.s3_endpoint_url if service == "s3" else self.endpoint_url
        return aws.client(service, self.region, endpoint)  # cached per process

    @property
    def prefix(self) -> str:
        return self.landing_prefix.strip("/") + "/"

    @property
    def rejected_prefix(self) -> str:
        return self.landing_prefix.strip("/") + REJECTED_SUFFIX + "/"

    def disabled_reason(self) -> str | None:
        if self.queue_url:
            return None
        return (
            f"{aws.LANDING_QUEUE_VAR} is not set: files uploaded to s3://{self.bucket}/{self.prefix} "
            "are not picked up (set it to the SQS queue receiving the bucket's ObjectCreated events; "
            "or import with `python -m b3_platform import`)"
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} (events from {self.queue_url})"

    def receive(self, max_files: int, log: logging.Logger | None = None) -> list[LandedFile]:
        log = log or _logger
        sqs = self._client("sqs")
        landed: list[LandedFile] = []
        for _ in range(max(1, -(-max_files // 10))):  # bounded: one call per 10 files wanted
            wanted = max_files - len(landed)
            if wanted <= 0:
                break
            options = {"MaxNumberOfMessages": min(10, wanted), "WaitTimeSeconds": self.wait_seconds}
            if self.visibility_timeout_seconds is not None:
                options["VisibilityTimeout"] = self.visibility_timeout_seconds
            messages = sqs.receive_message(QueueUrl=self.queue_url, **options).get("Messages", [])
            if not messages:
                break
            for raw in messages:
                message = _Message(raw["ReceiptHandle"], raw["MessageId"])
                try:
                    files = self._open(raw["Body"], message, log)
                except Exception as exc:  # left in the queue: redelivered, then dead-lettered
                    log.warning(
                        f"SQS message {message.message_id}: {type(exc).__name__}: {exc}; left in the "
                        "queue (redelivered after the visibility timeout, then to the dead-letter queue)"
                    )
                    continue
                if not files:
                    self._ack(message)
                landed.extend(files)
        return landed

    def _open(self, body: str, message: _Message, log: logging.Logger) -> list[LandedFile]:
        """The files an S3 event message announces (none for a TestEvent or foreign keys)."""
        event = json.loads(body)
        if event.get("Type") == "Notification" and "Message" in event:  # delivered through SNS
            event = json.loads(event["Message"])
        if event.get("Event") == "s3:TestEvent":
            log.info(f"SQS message {message.message_id}: s3:TestEvent (sent when notifications are set up)")
            return []
        files = []
        for record in event["Records"]:
            name = record.get("eventName", "")
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
            if not name.startswith("ObjectCreated"):
                log.info(f"ignored {name} of s3://{bucket}/{key}")
                continue
            if bucket != self.bucket or not key.startswith(self.prefix) or key.endswith("/"):
                log.info(f"ignored s3://{bucket}/{key}: not under s3://{self.bucket}/{self.prefix}")
                continue
            landed = self._get(key, message, log)
            if landed is not None:
                files.append(landed)
        message.pending = len(files)
        return files

    def _get(self, key: str, message: _Message, log: logging.Logger) -> LandedFile | None:
        from botocore.exceptions import ClientError

        try:
            obj = self._client("s3").get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                log.info(f"s3://{self.bucket}/{key} no longer exists (settled or deleted): acknowledged")
                return None
            raise
        size = obj["ContentLength"]
        too_large = size > MAX_BYTES
        body = b"" if too_large else obj["Body"].read()
        obj["Body"].close()
        return LandedFile(
            name=key[len(self.prefix) :],
            body=body,
            origin=f"s3://{self.bucket}/{key}",
            handle=_S3Handle(key, obj["ETag"], message),
            problem=_too_large(size) if too_large else None,
        )

    def settle(self, landed: LandedFile, result: FileResult, log: logging.Logger | None = None) -> None:
        log = log or _logger
        s3 = self._client("s3")
        handle: _S3Handle = landed.handle
        if result.status == "rejected":
            target = self.rejected_prefix + landed.name
            s3.put_object(Bucket=self.bucket, Key=target, Body=landed.body)
            s3.put_object(
                Bucket=self.bucket,
                Key=target + REASON_SUFFIX,
                Body=(result.reason + "\n").encode("utf-8"),
                ContentType="text/plain; charset=utf-8",
            )
        self._delete_if_unchanged(handle, log)
        handle.message.pending -= 1
        if handle.message.pending <= 0:
            self._ack(handle.message)

    def _delete_if_unchanged(self, handle: _S3Handle, log: logging.Logger) -> None:
        """Delete the landed object unless it was overwritten since it was read (the new version
        has its own event and is imported on its own)."""
        from botocore.exceptions import ClientError

        s3 = self._client("s3")
        try:
            etag = s3.head_object(Bucket=self.bucket, Key=handle.key)["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return
            raise
        if etag != handle.etag:
            log.info(
                f"s3://{self.bucket}/{handle.key} was replaced since it was read: left for its own event"
            )
            return
        s3.delete_object(Bucket=self.bucket, Key=handle.key)

    def _ack(self, message: _Message) -> None:
        self._client("sqs").delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle)
