"""Alerts, Dagster-free: what a message says (messages.py), where it goes (channels.py: SNS,
Slack, e-mail) and when a day counts as a missed capture (missed.py). The sensors that raise them
live in automation/alerts.py."""

from b3_platform.alerts.channels import (
    AlertDeliveryError,
    Channel,
    EmailChannel,
    SlackChannel,
    SnsChannel,
    deliver,
)
from b3_platform.alerts.messages import (
    Alert,
    FailedCheck,
    FailedStep,
    check_failed,
    describe_dates,
    missed_capture,
    run_failed,
)
from b3_platform.alerts.missed import DEADLINES, deadline_key, due_deadline

__all__ = [
    "DEADLINES",
    "Alert",
    "AlertDeliveryError",
    "Channel",
    "EmailChannel",
    "FailedCheck",
    "FailedStep",
    "SlackChannel",
    "SnsChannel",
    "check_failed",
    "deadline_key",
    "deliver",
    "describe_dates",
    "due_deadline",
    "missed_capture",
    "run_failed",
]
