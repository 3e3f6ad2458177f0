"""The AWS mode's settings and its boto3 clients, Dagster-free.

Every setting comes from one environment variable, validated when the definitions load, so a
missing bucket or a malformed location fails before a run starts with a message naming the
variable. Credentials are never settings: boto3 (and pyarrow) take them from the standard AWS
chain (environment, shared config/credentials files, SSO, instance or task role).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from b3_platform.settings_errors import ConfigError

BUCKET_VAR = "B3_PLATFORM_S3_BUCKET"
PREFIX_VAR = "B3_PLATFORM_S3_PREFIX"
REGION_VAR = "B3_PLATFORM_AWS_REGION"
GLUE_DATABASE_VAR = "B3_PLATFORM_GLUE_DATABASE"
WORKGROUP_VAR = "B3_PLATFORM_ATHENA_WORKGROUP"
ATHENA_OUTPUT_VAR = "B3_PLATFORM_ATHENA_OUTPUT"
S3_ENDPOINT_VAR = "B3_PLATFORM_S3_ENDPOINT_URL"
AWS_ENDPOINT_VAR = "B3_PLATFORM_AWS_ENDPOINT_URL"
LANDING_QUEUE_VAR = "B3_PLATFORM_LANDING_QUEUE_URL"

DEFAULT_PREFIX = "b3_platform"
DEFAULT_GLUE_DATABASE = "b3_platform"
DEFAULT_WORKGROUP = "b3_platform"
#: Folder under the lake prefix where files dropped into S3 are picked up (see landing.py).
LANDING_FOLDER = "landing"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_GLUE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
_WORKGROUP = re.compile(r"^[a-zA-Z0-9._-]{1,128}$")


@dataclass(frozen=True)
class AwsSettings:
    bucket: str
    prefix: str
    region: str
    glue_database: str
    athena_workgroup: str
    athena_output: str
    s3_endpoint_url: str | None = None
    endpoint_url: str | None = None
    landing_queue_url: str | None = None

    @property
    def lake_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def landing_prefix(self) -> str:
        """The S3 key prefix files are uploaded to for the event-driven import."""
        return f"{self.prefix}/{LANDING_FOLDER}/" if self.prefix else f"{LANDING_FOLDER}/"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AwsSettings:
        def get(var: str, default: str | None = None) -> str | None:
            value = env.get(var, "").strip()
            return value or default

        bucket = get(BUCKET_VAR)
        if bucket is None:
            raise ConfigError(f"{BUCKET_VAR} is not set: the AWS mode needs the lake's S3 bucket")
        if bucket.startswith("s3://") or not _BUCKET.match(bucket) or ".." in bucket:
            raise ConfigError(
                f"{BUCKET_VAR}={bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, "
                "dots or hyphens; no s3:// and no prefix)"
            )
        prefix = (get(PREFIX_VAR, DEFAULT_PREFIX) or "").strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ConfigError(f"{PREFIX_VAR}={prefix!r} is not a key prefix (no empty, '.' or '..' parts)")
        region = get(REGION_VAR) or get("AWS_REGION") or get("AWS_DEFAULT_REGION")
        if region is None:
            raise ConfigError(f"{REGION_VAR} (or AWS_REGION) is not set: the AWS mode needs a region")
        if not _REGION.match(region):
            raise ConfigError(f"{REGION_VAR}={region!r} is not an AWS region name (e.g. sa-east-1)")
        database = get(GLUE_DATABASE_VAR, DEFAULT_GLUE_DATABASE)
        if not _GLUE_NAME.match(database):
            raise ConfigError(
                f"{GLUE_DATABASE_VAR}={database!r}: Glue database names that Athena can query are "
                "lower-case letters, digits and underscores"
            )
        workgroup = get(WORKGROUP_VAR, DEFAULT_WORKGROUP)
        if not _WORKGROUP.match(workgroup):
            raise ConfigError(f"{WORKGROUP_VAR}={workgroup!r} is not an Athena workgroup name")
        output = get(ATHENA_OUTPUT_VAR, f"s3://{bucket}/athena-results/")
        if not output.startswith("s3://") or len(output) <= len("s3://"):
            raise ConfigError(f"{ATHENA_OUTPUT_VAR}={output!r} must be an s3://bucket/prefix/ location")
        if not output.endswith("/"):
            output += "/"
        queue = get(LANDING_QUEUE_VAR)
        if queue is not None and not _is_url(queue):
            raise ConfigError(f"{LANDING_QUEUE_VAR}={queue!r} is not an SQS queue URL (https://sqs…)")
        endpoints = {}
        for var in (S3_ENDPOINT_VAR, AWS_ENDPOINT_VAR):
            url = get(var)
            if url is not None and not _is_url(url):
                raise ConfigError(f"{var}={url!r} is not an http(s)://host[:port] URL")
            endpoints[var] = url
        return cls(
            bucket=bucket,
            prefix=prefix,
            region=region,
            glue_database=database,
            athena_workgroup=workgroup,
            athena_output=output,
            s3_endpoint_url=endpoints[S3_ENDPOINT_VAR] or endpoints[AWS_ENDPOINT_VAR],
            endpoint_url=endpoints[AWS_ENDPOINT_VAR],
            landing_queue_url=queue,
        )


def _is_url(text: str) -> bool:
    parsed = urlparse(text)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


@functools.lru_cache(maxsize=32)
def client(service: str, region: str | None, endpoint_url: str | None = None, *, max_attempts: int = 5):
    """A boto3 client with credentials from the standard chain, standard retries and timeouts.

    The endpoint is explicit when given (S3-compatible stores, moto, LocalStack); otherwise botocore
    resolves it, honouring AWS_ENDPOINT_URL[_<SERVICE>] like every AWS SDK. Clients are cached per
    process: creating one loads the service model (~0.5 s), more than a day's S3 requests take, and
    boto3 clients are thread-safe. Credentials stay refreshable inside a cached client."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(service, endpoint_url=endpoint_url, config=config)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` → ("bucket", "some/prefix")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")
