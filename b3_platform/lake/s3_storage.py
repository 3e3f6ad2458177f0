"""The lake on S3: the same keys as a local lake, under `s3://bucket/prefix/`.

Each object is written with one PUT, which S3 applies atomically: a reader sees the previous
version or the new one, never part of a file, so re-materializing a date replaces it exactly and a
failure mid-run leaves the previous version readable. Every call goes through boto3 with
credentials from the standard chain; errors become a StorageError that says what to check.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from b3_platform import aws
from b3_platform.lake.storage import MissingKey, Storage, StorageError, checked_key

_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


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
        self.client = client or aws.client("s3", region, endpoint_url)

    def _key(self, key: str) -> str:
        checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str, key: str = "") -> StorageError:
        where = self.uri(key)
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return StorageError(
                    f"{action} {where}: bucket {self.bucket!r} does not exist "
                    f"(check {aws.BUCKET_VAR}, or deploy infra/b3_platform.yaml)"
                )
            if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                return StorageError(
                    f"{action} {where}: access denied; the credentials in use lack the permission "
                    "(the pipeline's IAM policy is in infra/b3_platform.yaml)"
                )
            message = exc.response.get("Error", {}).get("Message", "")
            return StorageError(f"{action} {where}: {code or status} {message}".rstrip())
        return StorageError(f"{action} {where}: {exc}")

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "cannot write", key) from exc

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_KEY:
                raise MissingKey(f"{self.uri(key)} does not exist") from None
            raise self._error(exc, "cannot read", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "cannot read", key) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_KEY:
                return False
            raise self._error(exc, "cannot look up", key) from exc
        except BotoCoreError as exc:
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
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "cannot list", prefix) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "cannot delete", key) from exc

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
