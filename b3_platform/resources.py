"""Resources, chosen per environment in one place (`build_resources`).

Asset code asks for `lake`, `catalog` and `b3` by key and never branches on the environment:
`B3_PLATFORM_ENV=aws` swaps what stands behind the same keys (an S3 lake, the Glue Data Catalog
with Athena) and nothing else. The landing sensor asks for `landing`: a local folder, or the S3
landing prefix's event queue (the landing package).
"""

import os
from collections.abc import Mapping

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from b3_platform.aws import AwsSettings
from b3_platform.b3.client import DEFAULT_BASE_URL, DEFAULT_PAGE_SIZE, B3Client
from b3_platform.b3.indices import configured_indices, validate_index_code
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import Storage, open_storage
from b3_platform.landing import LocalLandingResource, SqsLandingResource
from b3_platform.settings_errors import ConfigError

ENV_VAR = "B3_PLATFORM_ENV"
DATA_DIR_VAR = "B3_PLATFORM_DATA_DIR"
B3_URL_VAR = "B3_PLATFORM_B3_URL"
DUCKDB_VAR = "B3_PLATFORM_DUCKDB"
DEFAULT_DATA_DIR = "data"
CATALOG_FILE = "warehouse.duckdb"


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives: a local folder (default `./data`) or `s3://bucket/prefix`.

    On S3 the client comes from dagster-aws's S3Resource (aws.LakeS3Resource: S3Resource plus
    connect and read timeouts), built from `region` and `endpoint_url` by `aws.s3_client` when
    `storage()` opens the S3Storage, rather than nested here as a resource field: the lake's
    configuration stays these three fields (S3Resource's credential and key fields would show up in
    every run's config, and credentials come from the standard AWS chain only), and the client is
    the process's one for that region and endpoint, so the several `storage()` / `raw()` calls of a
    step and the S3 landing share one client instead of building one (0.15-0.3 s) each."""

    root: str = Field(
        default=DEFAULT_DATA_DIR,
        description="Lake root folder (relative to the working directory) or s3://bucket/prefix",
    )
    region: str | None = Field(default=None, description="AWS region of an s3:// root")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint of an s3:// root (default: AWS's own)"
    )

    def storage(self) -> Storage:
        """The lake's storage: LocalStorage, or S3Storage on the process's S3 client."""
        return open_storage(self.root, region=self.region, endpoint_url=self.endpoint_url)

    def raw(self) -> RawStore:
        return RawStore(self.storage())


class B3ApiResource(dg.ConfigurableResource):
    """B3's index proxy, and which indices to capture."""

    base_url: str = Field(default=DEFAULT_BASE_URL, description="indexProxy/indexCall base URL")
    timeout_seconds: float = Field(default=30.0, description="Read timeout of every call")
    connect_timeout_seconds: float = Field(default=10.0)
    max_attempts: int = Field(default=4, description="Attempts on connection errors, timeouts and 5xx")
    backoff_seconds: float = Field(default=2.0, description="First retry delay; doubles each attempt")
    page_size: int = Field(default=DEFAULT_PAGE_SIZE)
    segment: str = Field(
        default="2", description='"2" carries each component\'s sector; "1" is the flat list'
    )
    language: str = Field(default="pt-br")
    indices: list[str] = Field(
        default_factory=lambda: list(configured_indices()), description="Indices captured each trading day"
    )

    def client(self) -> B3Client:
        return B3Client(
            self.base_url,
            timeout=self.timeout_seconds,
            connect_timeout=self.connect_timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            page_size=self.page_size,
        )

    def capture_list(self) -> list[str]:
        return [validate_index_code(c) for c in self.indices]


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources for the environment named by B3_PLATFORM_ENV: `local` (default) or `aws`.

    Settings are read and validated here, at load: a missing or malformed one raises ConfigError
    naming its variable before any run starts."""
    env = os.environ if env is None else env
    mode = env.get(ENV_VAR, "local").strip().lower() or "local"
    try:
        indices = list(configured_indices(env))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    b3 = B3ApiResource(base_url=env.get(B3_URL_VAR, DEFAULT_BASE_URL), indices=indices)
    if mode == "local":
        data_dir = env.get(DATA_DIR_VAR, DEFAULT_DATA_DIR)
        return {
            "lake": LakeResource(root=data_dir),
            "catalog": DuckDBCatalogResource(
                duckdb=DuckDBResource(
                    database=env.get(DUCKDB_VAR) or f"{data_dir.rstrip('/')}/{CATALOG_FILE}"
                )
            ),
            "b3": b3,
            "landing": LocalLandingResource(folder=f"{data_dir.rstrip('/')}/landing"),
        }
    if mode == "aws":
        return {**aws_resources(AwsSettings.from_env(env)), "b3": b3}
    raise ConfigError(f"{ENV_VAR}={mode!r}: expected 'local' (the default) or 'aws'")


def aws_resources(settings: AwsSettings) -> dict[str, dg.ConfigurableResource]:
    """The lake on S3, the catalog in Glue + Athena, and the landing prefix's event queue, from
    validated settings. Without B3_PLATFORM_LANDING_QUEUE_URL the landing sensor skips, naming it.

    The lake and the landing name the same region and S3 endpoint, so they use the same S3 client
    (aws.s3_client); Glue, Athena and SQS clients come from aws.client on `endpoint_url`."""
    from b3_platform.catalog.glue_athena import GlueAthenaCatalogResource

    return {
        "lake": LakeResource(
            root=settings.lake_root, region=settings.region, endpoint_url=settings.s3_endpoint_url
        ),
        "catalog": GlueAthenaCatalogResource(
            region=settings.region,
            endpoint_url=settings.endpoint_url,
            database=settings.glue_database,
            workgroup=settings.athena_workgroup,
            output_location=settings.athena_output,
        ),
        "landing": SqsLandingResource(
            queue_url=settings.landing_queue_url,
            bucket=settings.bucket,
            landing_prefix=settings.landing_prefix,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
            s3_endpoint_url=settings.s3_endpoint_url,
        ),
    }
