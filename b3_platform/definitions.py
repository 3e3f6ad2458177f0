"""The one place the Dagster definitions are assembled (resources chosen per environment here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg

from b3_platform import gc_tuning
from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.athena_tables import athena_tables
from b3_platform.automation import (
    AlertsResource,
    daily_capture_job,
    daily_capture_schedule,
    follow_upstream_sensor,
    landing_sensor,
    missed_capture_alert,
    run_failure_alert,
    with_automation,
)
from b3_platform.lake.io_manager import check_lake_assets
from b3_platform.resources import build_resources


def with_catalog_kinds(assets: Sequence[dg.AssetsDefinition], kinds: set[str]) -> list:
    """athena_tables shows the engine that runs it (duckdb locally, glue + athena on AWS): one
    asset, whichever catalog stands behind the `catalog` key."""
    return [
        dg.map_asset_specs(lambda spec: spec.replace_attributes(kinds=kinds), [a])[0]
        if a is athena_tables
        else a
        for a in assets
    ]


def build_defs(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """The definitions, with resources read from `env` (default: the process environment) now.

    The CLI passes its own settings (e.g. --data-dir) as `env` rather than changing os.environ."""
    check_lake_assets(ALL_ASSETS)
    resources = build_resources(env)
    resources["alerts"] = AlertsResource.from_env(env)
    return dg.Definitions(
        assets=with_automation(with_catalog_kinds(ALL_ASSETS, resources["catalog"].kinds)),
        jobs=[daily_capture_job],
        schedules=[daily_capture_schedule],
        sensors=[follow_upstream_sensor, landing_sensor, run_failure_alert, missed_capture_alert],
        resources=resources,
        # One process per run: the graph is a chain (raw → bronze → silver → gold → catalog), so a
        # process per step (the multiprocess default) buys no parallelism on 2 cores and costs each
        # step a fresh import of the code location (~3 s).
        executor=dg.in_process_executor,
    )


gc_tuning.tune_for_runs()
defs = build_defs()
