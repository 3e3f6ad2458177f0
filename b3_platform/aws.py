"""The AWS mode's settings and where its boto3 clients come from.

Every setting comes from one environment variable, validated when the definitions load, so a
missing bucket or a malformed location fails before a run starts with a message naming the
variable. Credentials are never settings: boto3 (and pyarrow) take them from the standard AWS
chain (environment, shared config/credentials files, SSO, instance or task role).

Two client sources, each cached per process:
- S3 (the lake and the landing prefix): `s3_client`, built by dagster-aws's S3Resource
  (`LakeS3Resource`, which adds connect and read timeouts);
- Glue, Athena and SQS: `client`. dagster-aws's AthenaClientResource cannot set the region, the
  endpoint or the query output location, so these stay plain boto3 clients with the same retries
  and timeouts.
What their errors mean is decided in one place, aws_errors.py.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from dagster_aws.s3 import S3Resource
from pydantic import Field

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
#: Every client's: seconds to open a connection, seconds to wait for a response, attempts per call
#: (botocore's standard retries: throttling, 5xx and connection errors).
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
MAX_ATTEMPTS = 5
#: Folder under the lake prefix where files dropped into S3 are picked up (see landing/sqs.py).
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
def client(
    service: str, region: str | None, endpoint_url: str | None = None, *, max_attempts: int = MAX_ATTEMPTS
):
    """A Glue, Athena or SQS client with credentials from the standard chain, standard retries and
    timeouts (S3's come from `s3_client`).

    The endpoint is explicit when given (moto, LocalStack); otherwise botocore resolves it,
    honouring AWS_ENDPOINT_URL[_<SERVICE>] like every AWS SDK. Clients are cached per process:
    creating one loads the service model (~0.5 s), more than a day's requests take, and boto3
    clients are thread-safe. Credentials stay refreshable inside a cached client."""
    if service == "s3":
        raise ValueError("S3 clients come from aws.s3_client (dagster-aws's S3Resource)")
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    return boto3.session.Session().client(service, endpoint_url=endpoint_url, config=config)


class LakeS3Resource(S3Resource):
    """dagster-aws's S3Resource with connect and read timeouts, and one client per process.

    `S3Resource.get_client()` builds its client in `dagster_aws.s3.utils.construct_s3_client`,
    whose botocore Config holds the retry settings only (dagster-aws's
    `construct_boto_client_retry_config(max_attempts)`) and which accepts no Config from the
    caller: S3Resource has no field and no argument for timeouts, and botocore reads none from the
    environment. Without them botocore waits 60 s for a connection, and a lake on an unreachable
    endpoint would hang each call for minutes across retries. So `get_client` here builds the
    client as construct_s3_client does (a boto3 Session of `profile_name`; `region_name`,
    `endpoint_url`, `use_ssl`, `verify`; dagster-aws's retry Config; unsigned requests when
    `use_unsigned_session`) with `connect_timeout_seconds` and `read_timeout_seconds` merged into
    that Config. It asks boto3 for the client itself rather than for `resource("s3").meta.client`,
    which is the same client after loading the resource model as well.

    The key fields inherited from S3Resource are never set by this package: credentials come from
    the standard chain.

    `get_client()` builds a new client on every call (0.15-0.3 s: the service model is loaded);
    `client()` returns the one client of this process for these settings, built on first use.
    Every `LakeResource.storage()` / `raw()` and landing call of a step therefore shares one
    client (one per step process under the multiprocess executor; one per process for in-process
    runs, sensors and the CLI). boto3 clients are thread-safe and refresh credentials themselves.
    """

    connect_timeout_seconds: float = Field(
        default=CONNECT_TIMEOUT_SECONDS, description="Seconds to open a connection to S3"
    )
    read_timeout_seconds: float = Field(
        default=READ_TIMEOUT_SECONDS, description="Seconds to wait for S3's response to a request"
    )

    def get_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.handlers import disable_signing
        from dagster_aws.utils import construct_boto_client_retry_config

        config = construct_boto_client_retry_config(self.max_attempts).merge(
            Config(connect_timeout=self.connect_timeout_seconds, read_timeout=self.read_timeout_seconds)
        )
        s3 = boto3.session.Session(profile_name=self.profile_name).client(
            "s3",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=config,
        )
        if self.use_unsigned_session:
            s3.meta.events.register("choose-signer.s3.*", disable_signing)
        return s3

    def client(self) -> Any:
        """This process's client for these settings (built by `get_client` on first use)."""
        key = tuple(sorted(self.model_dump().items()))
        with _S3_CLIENTS_LOCK:  # held while building: concurrent first calls build one client
            found = _S3_CLIENTS.get(key)
            if found is None:
                found = _S3_CLIENTS[key] = self.get_client()
        return found


_S3_CLIENTS: dict[tuple, Any] = {}
_S3_CLIENTS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=32)
def s3_client(region: str | None, endpoint_url: str | None = None) -> Any:
    """The process's S3 client for a region and endpoint: `LakeS3Resource(...).client()`, looked
    up without building the resource again (that costs a few ms per storage opened)."""
    return LakeS3Resource(region_name=region, endpoint_url=endpoint_url).client()


def clear_s3_clients() -> None:
    """Forget the cached S3 clients (for tests that count how often one is built)."""
    s3_client.cache_clear()
    with _S3_CLIENTS_LOCK:
        _S3_CLIENTS.clear()


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` → ("bucket", "some/prefix")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")
