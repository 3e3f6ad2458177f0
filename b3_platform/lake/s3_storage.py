"""The lake on S3: the same keys as a local lake, under `s3://bucket/prefix/`.

Each object is written with one PUT, which S3 applies atomically: a reader sees the previous
version or the new one, never part of a file, so re-materializing a date replaces it exactly and a
failure mid-run leaves the previous version readable.

The client is the process's S3 client for the region and endpoint (`aws.s3_client`: dagster-aws's
S3Resource with timeouts, credentials from the standard chain), unless one is passed in. Every
botocore error becomes a StorageError `<action> <s3 uri>: <what to check>` (aws_errors.explain);
a key that holds no object is a MissingKey (read) or False (exists).

Besides the Storage interface, the landing prefix needs what S3 knows of an object (its size
before reading it, its ETag to see a replaced upload) and a content type for the reason files it
writes: `read_object`, `etag` and `write_bytes(content_type=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from b3_platform import aws, aws_errors
from b3_platform.lake.storage import MissingKey, Storage, StorageError, checked_key

_FAILURES = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class S3Object:
    """An object as S3 returned it."""

    key: str  # relative to the storage's prefix
    size: int
    etag: str
    body: bytes | None  # None: larger than the `max_bytes` asked for, so left unread


class S3Storage(Storage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client=None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.region = region
        self.endpoint_url = endpoint_url
        self.client = client if client is not None else aws.s3_client(region, endpoint_url)

    def _key(self, key: str) -> str:
        checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str, key: str = "") -> StorageError:
        return StorageError(f"{action} {self.uri(key)}: {aws_errors.explain(exc, bucket=self.bucket)}")

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        options = {"ContentType": content_type} if content_type else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **options)
        except _FAILURES as exc:
            raise self._error(exc, "cannot write", key) from exc

    def read_bytes(self, key: str) -> bytes:
        return self.read_object(key).body

    def read_object(self, key: str, *, max_bytes: int | None = None) -> S3Object:
        """The object with its size and ETag; its body is read only when it is at most `max_bytes`
        long (any size without a limit). MissingKey when the key holds no object."""
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            size = obj["ContentLength"]
            with obj["Body"] as stream:
                body = None if max_bytes is not None and size > max_bytes else stream.read()
        except _FAILURES as exc:
            if aws_errors.is_missing_key(exc):
                raise MissingKey(f"{self.uri(key)} does not exist") from None
            raise self._error(exc, "cannot read", key) from exc
        return S3Object(key, size, obj["ETag"], body)

    def exists(self, key: str) -> bool:
        return self.etag(key) is not None

    def etag(self, key: str) -> str | None:
        """The object's ETag (one HEAD), or None when the key holds no object."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"]
        except _FAILURES as exc:
            if aws_errors.is_missing_key(exc):
                return None
            raise self._error(exc, "cannot look up", key) from exc

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(f"{self.prefix}/") if self.prefix else 0
        keys = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", ()))
        except _FAILURES as exc:
            raise self._error(exc, "cannot list", prefix) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except _FAILURES as exc:
            raise self._error(exc, "cannot delete", key) from exc

    def delete_keys(self, keys: list[str]) -> None:
        """DeleteObjects, 1,000 keys a request (S3's limit); a key S3 could not delete is an error."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
                )
            except _FAILURES as exc:
                raise self._error(exc, "cannot delete", chunk[0]) from exc
            if answer.get("Errors"):
                error = answer["Errors"][0]
                raise StorageError(
                    f"cannot delete {len(answer['Errors'])} of {len(chunk)} keys, e.g. "
                    f"s3://{self.bucket}/{error.get('Key')}: {error.get('Code')} {error.get('Message')}"
                )

    def uri(self, key: str = "") -> str:
        base = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{base}/{key}" if key else base

    def arrow_filesystem(self):
        """A pyarrow S3FileSystem on the same bucket. pyarrow ignores AWS_ENDPOINT_URL, so the
        endpoint is passed explicitly; credentials come from the AWS SDK's standard chain."""
        from urllib.parse import urlparse

        import pyarrow.fs as pafs

        options: dict = {"region": self.region} if self.region else {}
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
        return pafs.S3FileSystem(**options)

    #: A conditional create refused because the key exists (412) or is being created (409).
    CREATE_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})

    def create_bytes(self, key: str, data: bytes) -> bool:
        """One conditional PUT (`If-None-Match: *`): S3 refuses it with 412 PreconditionFailed when
        the key holds an object, and with 409 ConditionalRequestConflict while another conditional
        write of the key is in flight; both mean "someone else has (or is creating) it"."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except _FAILURES as exc:
            if aws_errors.error_code(exc) in self.CREATE_CONFLICT_CODES:
                return False
            raise self._error(exc, "cannot create", key) from exc
        return True
