"""AWS stand-in for the tests: a moto server on 127.0.0.1 (S3, Glue, Athena, SQS, CloudFormation)
that real boto3 and pyarrow clients reach over real sockets.

Tests never reset the server's state: each one works in its own bucket, Glue database and queue
(`AwsTarget`), so module-scoped lakes built on it survive the tests that share them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import boto3

REGION = "us-east-1"
#: Fake credentials for moto; the code under test finds them through the standard chain (env vars).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class MotoServer:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def start(self) -> MotoServer:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str, endpoint: str | None = None):
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ).client(service, endpoint_url=endpoint or self.endpoint)


@dataclass
class AwsTarget:
    """One test's own bucket, prefix, Glue database and workgroup on the moto server."""

    server: MotoServer
    bucket: str
    prefix: str
    database: str
    workgroup: str
    endpoint: str

    @classmethod
    def create(
        cls, server: MotoServer, *, endpoint: str | None = None, make_bucket: bool = True
    ) -> AwsTarget:
        tag = uuid.uuid4().hex[:10]
        target = cls(
            server=server,
            bucket=f"b3-lake-{tag}",
            prefix="lake",
            database=f"b3_{tag}",
            workgroup=f"wg-{tag}",
            endpoint=endpoint or server.endpoint,
        )
        if make_bucket:
            server.client("s3").create_bucket(Bucket=target.bucket)
        return target

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def output_location(self) -> str:
        return f"s3://{self.bucket}/athena-results/"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user sets for the AWS mode against this target."""
        return {
            "B3_PLATFORM_ENV": "aws",
            "B3_PLATFORM_S3_BUCKET": self.bucket,
            "B3_PLATFORM_S3_PREFIX": self.prefix,
            "B3_PLATFORM_AWS_REGION": REGION,
            "B3_PLATFORM_GLUE_DATABASE": self.database,
            "B3_PLATFORM_ATHENA_WORKGROUP": self.workgroup,
            "B3_PLATFORM_ATHENA_OUTPUT": self.output_location,
            "B3_PLATFORM_AWS_ENDPOINT_URL": self.endpoint,
            **extra,
        }

    def client(self, service: str):
        return self.server.client(service)

    def lake(self, endpoint: str | None = None):
        """The lake resource on this target (`endpoint`: e.g. a fault proxy in front of moto)."""
        from b3_platform.resources import LakeResource

        return LakeResource(root=self.root, region=REGION, endpoint_url=endpoint or self.endpoint)

    def catalog(self, endpoint: str | None = None, **overrides):
        """The Glue + Athena catalog resource on this target's database and workgroup."""
        from b3_platform.catalog.glue_athena import GlueAthenaCatalogResource

        config = dict(
            region=REGION,
            endpoint_url=endpoint or self.endpoint,
            database=self.database,
            workgroup=self.workgroup,
            output_location=self.output_location,
        )
        return GlueAthenaCatalogResource(**{**config, **overrides})

    def keys(self, under: str = "") -> list[str]:
        """Every object key under the lake prefix (relative to it), sorted."""
        s3 = self.client("s3")
        start = f"{self.prefix}/{under}"
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            keys.extend(o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", ()))
        return sorted(keys)
