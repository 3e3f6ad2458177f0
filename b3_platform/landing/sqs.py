"""The landing on AWS: the S3 landing prefix, learnt from its ObjectCreated events through SQS.

Why S3 events through SQS, rather than a sensor that LISTs the landing prefix with a cursor:
- no LIST of a prefix every 30 s (requests and latency grow with what sits there, and a cursor on
  LastModified/keys misses objects whose timestamps arrive out of order);
- at-least-once delivery: a message is deleted only after its file is settled; if the tick fails
  first, SQS redelivers it after the visibility timeout, and a redrive policy moves a message that
  keeps failing to a dead-letter queue instead of blocking the rest;
- S3's own ObjectCreated notification is the trigger, configured on the bucket
  (infra/b3_platform.yaml), so nothing else (a Lambda) has to run.
Redelivery is harmless: raw dedupes by sha256, so a file seen twice is a `duplicate`, not stored twice.

The landed objects are read, copied to landing_rejected/ and deleted through `S3Storage` on the
bucket's root (keys are the events' full keys), with the lake's S3 client (aws.s3_client): a
failure is a StorageError saying what to check, a key gone meanwhile a MissingKey. The queue's own
calls fail as a QueueError with the same explanations (aws_errors.explain).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from b3_platform import aws, aws_errors
from b3_platform.importer import FileResult
from b3_platform.lake.s3_storage import S3Storage
from b3_platform.lake.storage import MissingKey, StorageError, checked_key
from b3_platform.landing.base import (
    MAX_BYTES,
    REASON_SUFFIX,
    REJECTED_SUFFIX,
    LandedFile,
    LandingResource,
    logger,
    too_large,
)


class QueueError(RuntimeError):
    """The landing's SQS queue cannot be read, or a message cannot be deleted."""


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

    def _sqs(self):
        return aws.client("sqs", self.region, self.endpoint_url)  # cached per process

    def _storage(self) -> S3Storage:
        """The bucket from its root: keys are the events' full keys (aws.s3_client's client)."""
        return S3Storage(self.bucket, region=self.region, endpoint_url=self.s3_endpoint_url)

    def _queue_error(self, exc: Exception, action: str) -> QueueError:
        return QueueError(f"cannot {action} {self.queue_url}: {aws_errors.explain(exc)}")

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
        log = log or logger
        sqs = self._sqs()
        storage = self._storage()
        landed: list[LandedFile] = []
        for _ in range(max(1, -(-max_files // 10))):  # bounded: one call per 10 files wanted
            wanted = max_files - len(landed)
            if wanted <= 0:
                break
            options = {"MaxNumberOfMessages": min(10, wanted), "WaitTimeSeconds": self.wait_seconds}
            if self.visibility_timeout_seconds is not None:
                options["VisibilityTimeout"] = self.visibility_timeout_seconds
            try:
                messages = sqs.receive_message(QueueUrl=self.queue_url, **options).get("Messages", [])
            except (ClientError, BotoCoreError) as exc:
                raise self._queue_error(exc, "receive messages from") from exc
            if not messages:
                break
            for raw in messages:
                message = _Message(raw["ReceiptHandle"], raw["MessageId"])
                try:
                    files = self._open(storage, raw["Body"], message, log)
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

    def _open(
        self, storage: S3Storage, body: str, message: _Message, log: logging.Logger
    ) -> list[LandedFile]:
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
            try:
                checked_key(key)
            except StorageError:
                log.warning(
                    f"ignored s3://{bucket}/{key}: a '..' folder in its key, which lake keys never have "
                    "(left in landing: upload it again under a plain name)"
                )
                continue
            landed = self._get(storage, key, message, log)
            if landed is not None:
                files.append(landed)
        message.pending = len(files)
        return files

    def _get(self, storage: S3Storage, key: str, message: _Message, log: logging.Logger) -> LandedFile | None:
        try:
            obj = storage.read_object(key, max_bytes=MAX_BYTES)
        except MissingKey:
            log.info(f"s3://{self.bucket}/{key} no longer exists (settled or deleted): acknowledged")
            return None
        return LandedFile(
            name=key[len(self.prefix) :],
            body=b"" if obj.body is None else obj.body,
            origin=storage.uri(key),
            handle=_S3Handle(key, obj.etag, message),
            problem=too_large(obj.size) if obj.body is None else None,
        )

    def settle(self, landed: LandedFile, result: FileResult, log: logging.Logger | None = None) -> None:
        log = log or logger
        storage = self._storage()
        handle: _S3Handle = landed.handle
        if result.status == "rejected":
            target = self.rejected_prefix + landed.name
            storage.write_bytes(target, landed.body)
            storage.write_bytes(
                target + REASON_SUFFIX,
                (result.reason + "\n").encode("utf-8"),
                content_type="text/plain; charset=utf-8",
            )
        self._delete_if_unchanged(storage, handle, log)
        handle.message.pending -= 1
        if handle.message.pending <= 0:
            self._ack(handle.message)

    def _delete_if_unchanged(self, storage: S3Storage, handle: _S3Handle, log: logging.Logger) -> None:
        """Delete the landed object unless it was overwritten since it was read (the new version
        has its own event and is imported on its own)."""
        etag = storage.etag(handle.key)
        if etag is None:  # already gone
            return
        if etag != handle.etag:
            log.info(
                f"s3://{self.bucket}/{handle.key} was replaced since it was read: left for its own event"
            )
            return
        storage.delete(handle.key)

    def _ack(self, message: _Message) -> None:
        try:
            self._sqs().delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle)
        except (ClientError, BotoCoreError) as exc:
            raise self._queue_error(exc, f"delete message {message.message_id} from") from exc
