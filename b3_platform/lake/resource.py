"""The lake as a Dagster resource: where it lives, and its storage and raw store.

Kept apart from `resources.py` so that the IO manager (lake.io_manager), which stands on this
resource, and the resource assembly can both import it."""

import dagster as dg
from pydantic import Field

from b3_platform.environment import DEFAULT_DATA_DIR
from b3_platform.lake.paths import PORTFOLIO_DAY
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import Storage, open_storage


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

    def raw(self, method: str = PORTFOLIO_DAY) -> RawStore:
        """The raw captures of one B3 method (the day portfolio by default)."""
        return RawStore(self.storage(), method)
