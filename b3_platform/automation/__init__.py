"""Automation: the daily capture (a job and its schedule, schedule.py), downstream layers that
follow new data (their automation conditions and the sensor evaluating them, conditions.py), and
the landing sensor that imports files dropped into the landing folder / S3 prefix
(landing_intake.py), and the alerts on failed runs, failed blocking checks and missed captures
(alerts.py).

Every name other code uses is re-exported here: import from `b3_platform.automation`.
"""

from b3_platform.automation.alerts import AlertsResource, missed_capture_alert, run_failure_alert
from b3_platform.automation.conditions import (
    CATALOG_ASSETS,
    CATALOG_FOLLOWS_UPSTREAM,
    DASHBOARD_FOLLOWS_CATALOG,
    FOLLOWS_UPSTREAM,
    GOLD_FOLLOWS_UPSTREAM,
    follow_upstream_sensor,
    with_automation,
)
from b3_platform.automation.landing_intake import (
    LANDING_BUDGET_SECONDS,
    LANDING_MAX_FILES,
    LandingError,
    landing_sensor,
)
from b3_platform.automation.schedule import CAPTURE_HOURS, daily_capture_job, daily_capture_schedule

__all__ = [
    "CAPTURE_HOURS",
    "CATALOG_ASSETS",
    "CATALOG_FOLLOWS_UPSTREAM",
    "DASHBOARD_FOLLOWS_CATALOG",
    "FOLLOWS_UPSTREAM",
    "GOLD_FOLLOWS_UPSTREAM",
    "LANDING_BUDGET_SECONDS",
    "LANDING_MAX_FILES",
    "LandingError",
    "daily_capture_job",
    "daily_capture_schedule",
    "follow_upstream_sensor",
    "landing_sensor",
    "with_automation",
    "AlertsResource",
    "missed_capture_alert",
    "run_failure_alert",
]
