"""The one place the Dagster definitions are assembled (resources chosen per environment here)."""

from __future__ import annotations

import dagster as dg

from b3_platform.assets import ALL_ASSETS
from b3_platform.automation import (
    daily_capture_job,
    daily_capture_schedule,
    follow_upstream_sensor,
    landing_sensor,
    with_automation,
)
from b3_platform.resources import build_resources


def build_defs() -> dg.Definitions:
    """The definitions, with resources read from the environment now (the CLI's demo calls this)."""
    return dg.Definitions(
        assets=with_automation(ALL_ASSETS),
        jobs=[daily_capture_job],
        schedules=[daily_capture_schedule],
        sensors=[follow_upstream_sensor, landing_sensor],
        resources=build_resources(),
    )


defs = build_defs()
