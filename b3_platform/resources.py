"""Resources, chosen per environment in one place (`build_resources`).

Asset code asks for `lake`, `catalog` and `b3` by key, and the Parquet layers are stored by the IO
manager under `lake_io_manager` (which stands on `lake`); nothing branches on the environment:
`B3_PLATFORM_ENV=aws` swaps what stands behind the same keys (an S3 lake, the Glue Data Catalog
with Athena) and nothing else. The landing sensor asks for `landing`: a local folder, or the S3
landing prefix's event queue (the landing package).
"""

import datetime as dt
import os
from collections.abc import Mapping

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from b3_platform import trading_calendar
from b3_platform.aws import AwsSettings
from b3_platform.b3.client import DEFAULT_BASE_URL, DEFAULT_PAGE_SIZE, B3Client
from b3_platform.b3.indices import configured_indices, validate_index_code
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.discovery import CapturePlan, capture_plan, listing_store
from b3_platform.environment import (  # noqa: F401  (the variables' names, as resources.* too)
    DATA_DIR_VAR,
    DUCKDB_VAR,
    ENV_VAR,
    environment_mode,
    local_catalog_file,
    local_data_dir,
)
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, LakeIOManager
from b3_platform.lake.resource import LakeResource
from b3_platform.landing import LocalLandingResource, SqsLandingResource
from b3_platform.settings_errors import ConfigError

B3_URL_VAR = "B3_PLATFORM_B3_URL"


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
    indices: list[str] | None = Field(
        default_factory=lambda: _as_list(configured_indices()),
        description=(
            "Indices captured each trading day; unset: every index B3 lists in GetStockIndex "
            "(B3_PLATFORM_INDICES sets it)"
        ),
    )
    pause_seconds: float = Field(
        default=1.0, description="Pause between two calls to B3 while capturing a day (politeness)"
    )
    capture_budget_seconds: float = Field(
        default=900.0,
        description="A day's capture attempts no new index after this long; the next attempt takes the rest",
    )
    lake: LakeResource | None = Field(
        default=None, description="Where discovered GetStockIndex listings are read from"
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

    def capture_plan(self, day: dt.date | None = None) -> CapturePlan:
        """The indices to capture (and expect) on `day` (default: today) and where the list comes
        from: configured, else discovered from the lake's newest GetStockIndex listing, else the
        built-in list (b3_platform.discovery)."""
        configured = tuple(validate_index_code(c) for c in self.indices) if self.indices else None
        store = listing_store(self.lake.raw()) if self.lake is not None else None
        return capture_plan(configured, store, day or trading_calendar.today_sao_paulo())

    def capture_list(self) -> list[str]:
        """The indices to capture today."""
        return list(self.capture_plan().codes)


def _as_list(codes: tuple[str, ...] | None) -> list[str] | None:
    return list(codes) if codes is not None else None


def lake_resources(lake: LakeResource) -> dict[str, dg.ConfigurableResource]:
    """`lake` and the IO manager that stores the Parquet layers on it: the two always travel
    together, so a test or a script that points the lake somewhere gets both from here."""
    return {"lake": lake, LAKE_IO_MANAGER: LakeIOManager(lake=lake)}


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources for the environment named by B3_PLATFORM_ENV: `local` (default) or `aws`.

    Settings are read and validated here, at load: a missing or malformed one raises ConfigError
    naming its variable before any run starts."""
    env = os.environ if env is None else env
    mode = environment_mode(env)
    try:
        indices = _as_list(configured_indices(env))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    base_url = env.get(B3_URL_VAR, DEFAULT_BASE_URL)
    if mode == "local":
        data_dir = local_data_dir(env)
        lake = LakeResource(root=data_dir)
        b3 = B3ApiResource(base_url=base_url, indices=indices, lake=lake)
        return {
            **lake_resources(lake),
            "catalog": DuckDBCatalogResource(duckdb=DuckDBResource(database=local_catalog_file(env))),
            "b3": b3,
            "landing": LocalLandingResource(folder=f"{data_dir.rstrip('/')}/landing"),
        }
    if mode == "aws":
        resources = aws_resources(AwsSettings.from_env(env))
        return {**resources, "b3": B3ApiResource(base_url=base_url, indices=indices, lake=resources["lake"])}
    raise ConfigError(f"{ENV_VAR}={mode!r}: expected 'local' (the default) or 'aws'")


def aws_resources(settings: AwsSettings) -> dict[str, dg.ConfigurableResource]:
    """The lake on S3, the catalog in Glue + Athena, and the landing prefix's event queue, from
    validated settings. Without B3_PLATFORM_LANDING_QUEUE_URL the landing sensor skips, naming it.

    The lake and the landing name the same region and S3 endpoint, so they use the same S3 client
    (aws.s3_client); Glue, Athena and SQS clients come from aws.client on `endpoint_url`."""
    from b3_platform.catalog.glue_athena import GlueAthenaCatalogResource

    return {
        **lake_resources(
            LakeResource(
                root=settings.lake_root, region=settings.region, endpoint_url=settings.s3_endpoint_url
            )
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
