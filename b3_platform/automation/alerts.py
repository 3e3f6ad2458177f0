"""Alerts: a failed run or a failed blocking check (`run_failure_alert`) and a missed capture
(`missed_capture_alert`) notify the channels the settings name — an SNS topic, Slack, e-mail —
through the `alerts` resource. None is required: without channels the sensors still run and say
in their ticks what they would have reported.

A failing blocking check fails its step (Dagster raises after the step's events), so it ends a
run like any failure: one run failure sensor sends either a check message (asset, check, dates,
problems) or a plain failure message (steps and errors), never both for one run.

Settings are read at load from the environment (`AlertsResource.from_env`); the Slack token and
the SMTP password stay environment variables (`dg.EnvVar`), so the UI shows their names, never
their values, and nothing here logs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from email.utils import parseaddr

import dagster as dg
from dagster_slack import SlackResource
from pydantic import Field

from b3_platform.alerts import (
    Alert,
    Channel,
    EmailChannel,
    FailedCheck,
    FailedStep,
    SlackChannel,
    SnsChannel,
    check_failed,
    deadline_key,
    deliver,
    describe_dates,
    due_deadline,
    missed_capture,
    run_failed,
)
from b3_platform.alerts import missed as missed_clock
from b3_platform.aws import AWS_ENDPOINT_VAR
from b3_platform.resources import B3ApiResource, LakeResource
from b3_platform.runs import PARTITION_TAG, RANGE_END, RANGE_START
from b3_platform.settings_errors import ConfigError

UI_URL_VAR = "B3_PLATFORM_UI_URL"
SNS_TOPIC_VAR = "B3_PLATFORM_ALERT_SNS_TOPIC_ARN"
SLACK_TOKEN_VAR = "B3_PLATFORM_SLACK_TOKEN"
SLACK_CHANNEL_VAR = "B3_PLATFORM_SLACK_CHANNEL"
SLACK_API_URL_VAR = "B3_PLATFORM_SLACK_API_URL"
SMTP_HOST_VAR = "B3_PLATFORM_SMTP_HOST"
SMTP_PORT_VAR = "B3_PLATFORM_SMTP_PORT"
SMTP_SECURITY_VAR = "B3_PLATFORM_SMTP_SECURITY"
SMTP_USER_VAR = "B3_PLATFORM_SMTP_USER"
SMTP_PASSWORD_VAR = "B3_PLATFORM_SMTP_PASSWORD"
EMAIL_FROM_VAR = "B3_PLATFORM_ALERT_EMAIL_FROM"
EMAIL_TO_VAR = "B3_PLATFORM_ALERT_EMAIL_TO"

DEFAULT_UI_URL = "http://127.0.0.1:3000"
SLACK_API_URL = "https://slack.com/api/"
SMTP_SECURITY = ("starttls", "ssl", "none")


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go. Every channel is optional; the link base is the UI users open."""

    ui_url: str = Field(default=DEFAULT_UI_URL, description="Base URL of the Dagster UI, for links")
    sns_topic_arn: str | None = Field(default=None, description="SNS topic alerts are published to")
    aws_endpoint_url: str | None = Field(default=None, description="AWS endpoint (moto, LocalStack)")
    slack_channel: str | None = Field(default=None, description="Slack channel, e.g. #b3-alerts")
    slack_token: str | None = Field(default=None, description="Slack bot token (an env var)")
    slack_api_url: str = Field(default=SLACK_API_URL, description="Slack Web API base URL")
    smtp_host: str | None = Field(default=None)
    smtp_port: int = Field(default=587)
    smtp_security: str = Field(default="starttls", description="starttls | ssl | none")
    smtp_user: str | None = Field(default=None)
    smtp_password: str | None = Field(default=None, description="SMTP password (an env var)")
    email_from: str | None = Field(default=None)
    email_to: list[str] = Field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertsResource:
        """The settings, validated now: a channel half-configured fails naming the variable."""
        env = os.environ if env is None else env

        def get(var: str) -> str | None:
            return env.get(var, "").strip() or None

        def secret(var: str) -> str | None:
            return dg.EnvVar(var) if get(var) else None

        topic = get(SNS_TOPIC_VAR)
        if topic is not None and not (topic.startswith("arn:") and len(topic.split(":")) == 6):
            raise ConfigError(f"{SNS_TOPIC_VAR}={topic!r} is not an SNS topic ARN (arn:aws:sns:<region>:…)")
        if bool(get(SLACK_TOKEN_VAR)) != bool(get(SLACK_CHANNEL_VAR)):
            raise ConfigError(f"Slack alerts need both {SLACK_TOKEN_VAR} and {SLACK_CHANNEL_VAR}")
        recipients = [r.strip() for r in (get(EMAIL_TO_VAR) or "").split(",") if r.strip()]
        host = get(SMTP_HOST_VAR)
        if bool(host) != bool(recipients):
            raise ConfigError(f"e-mail alerts need both {SMTP_HOST_VAR} and {EMAIL_TO_VAR}")
        for address in [*recipients, *filter(None, [get(EMAIL_FROM_VAR)])]:
            if "@" not in parseaddr(address)[1]:
                raise ConfigError(
                    f"{address!r} ({EMAIL_TO_VAR} or {EMAIL_FROM_VAR}) is not an e-mail address"
                )
        security = (get(SMTP_SECURITY_VAR) or "starttls").lower()
        if security not in SMTP_SECURITY:
            raise ConfigError(f"{SMTP_SECURITY_VAR}={security!r}: expected one of {', '.join(SMTP_SECURITY)}")
        port = get(SMTP_PORT_VAR) or ("465" if security == "ssl" else "587")
        if not port.isdigit():
            raise ConfigError(f"{SMTP_PORT_VAR}={port!r} is not a port number")
        ui_url = get(UI_URL_VAR) or DEFAULT_UI_URL
        if not ui_url.startswith(("http://", "https://")):
            raise ConfigError(f"{UI_URL_VAR}={ui_url!r} must be an http(s):// URL")
        return cls(
            ui_url=ui_url,
            sns_topic_arn=topic,
            aws_endpoint_url=get(AWS_ENDPOINT_VAR),
            slack_channel=get(SLACK_CHANNEL_VAR),
            slack_token=secret(SLACK_TOKEN_VAR),
            slack_api_url=get(SLACK_API_URL_VAR) or SLACK_API_URL,
            smtp_host=host,
            smtp_port=int(port),
            smtp_security=security,
            smtp_user=get(SMTP_USER_VAR),
            smtp_password=secret(SMTP_PASSWORD_VAR),
            email_from=get(EMAIL_FROM_VAR) or (f"b3_platform@{host}" if host else None),
            email_to=recipients,
        )

    def _slack_client(self):
        """dagster-slack's client, aimed at `slack_api_url` (SlackResource has no field for it;
        slack_sdk's WebClient keeps it in `base_url`)."""
        client = SlackResource(token=self.slack_token or "").get_client()
        client.base_url = self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
        client.timeout = 10
        return client

    def channels(self) -> list[Channel]:
        channels: list[Channel] = []
        if self.sns_topic_arn:
            channels.append(SnsChannel(self.sns_topic_arn, self.aws_endpoint_url))
        if self.slack_channel and self.slack_token:
            channels.append(SlackChannel(self.slack_channel, self._slack_client))
        if self.smtp_host and self.email_to:
            channels.append(
                EmailChannel(
                    host=self.smtp_host,
                    port=self.smtp_port,
                    sender=self.email_from or f"b3_platform@{self.smtp_host}",
                    recipients=tuple(self.email_to),
                    security=self.smtp_security,
                    username=self.smtp_user,
                    password=self.smtp_password,
                )
            )
        return channels

    def send(self, alert: Alert, log) -> str:
        """Deliver on every channel; the outcome as one line for the tick. A channel that fails
        fails the tick (after the others were tried), so the UI shows the sensor in error."""
        channels = self.channels()
        if not channels:
            log.warning(f"no alert channel configured; would have sent: {alert.subject}")
            return f"no alert channel configured: {alert.subject}"
        sent = deliver(alert, channels)
        log.info(f"alert sent on {', '.join(sent)}: {alert.subject}")
        return f"alert sent on {', '.join(sent)}: {alert.subject}"


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[FailedCheck]:
    """The run's failed blocking checks, one per asset and check, with the dates each failed on."""
    found: dict[tuple[str, str], FailedCheck] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
        known = found.get(key)
        dates = (known.dates if known else ()) + ((evaluation.partition,) if evaluation.partition else ())
        problems = (known.problems if known else "") or (evaluation.description or "")
        failed_rules = evaluation.metadata.get("failed_rules")
        rules = (known.rules if known else ()) + (
            tuple(failed_rules.value.split(", ")) if failed_rules and failed_rules.value != "none" else ()
        )
        found[key] = FailedCheck(
            key[0], key[1], tuple(sorted(set(dates))), problems, tuple(dict.fromkeys(rules))
        )
    return list(found.values())


def run_failure_alert_for(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> Alert:
    """The alert for a failed run: its failed blocking checks if any, else its failed steps."""
    run = context.dagster_run
    tags = run.tags
    dates = describe_dates(tags.get(PARTITION_TAG), tags.get(RANGE_START), tags.get(RANGE_END))
    checks = _failed_checks(context.instance, run.run_id)
    if checks:
        checks = [
            c if c.dates else FailedCheck(c.asset, c.check, (dates,), c.problems, c.rules) for c in checks
        ]
        return check_failed(ui_url=alerts.ui_url, run_id=run.run_id, job=run.job_name, checks=checks)
    steps = [
        FailedStep(
            event.step_key or "?",
            event.step_failure_data.error.message if event.step_failure_data.error else event.message or "",
        )
        for event in context.get_step_failure_events()
    ]
    assets = sorted(k.to_user_string() for k in run.asset_selection or ())
    return run_failed(
        ui_url=alerts.ui_url,
        run_id=run.run_id,
        job=run.job_name,
        dates=dates,
        assets=assets,
        steps=steps,
        reason=context.failure_event.message or "the run failed",
    )


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Notifies the alert channels (SNS, Slack, e-mail) of every failed run of this code "
        "location: the date, the assets, what failed (failed blocking checks by name) and a link."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    alert = run_failure_alert_for(context, alerts)
    alerts.send(alert, context.log)


@dg.sensor(
    name="missed_capture_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description=(
        "On each B3 trading day at 10:00 and again at 21:00 São Paulo time: notifies the alert "
        "channels if an expected index has no capture for the day (B3 holidays are never judged)."
    ),
)
def missed_capture_alert(
    context: dg.SensorEvaluationContext, lake: LakeResource, b3: B3ApiResource, alerts: AlertsResource
):
    """The cursor is the last deadline judged, so each deadline is judged once, by the first tick
    after it (a daemon restarted at 10:40 still judges 10:00)."""
    due = due_deadline(missed_clock.now_sao_paulo(), context.cursor)
    if due is None:
        return dg.SkipReason("no capture deadline due")
    day, deadline = due
    expected = b3.capture_list()
    captured = lake.raw().indices_on(day)
    missing = sorted(set(expected) - captured)
    context.update_cursor(deadline_key(day, deadline))
    if not missing:
        return dg.SkipReason(f"{day} {deadline:%H:%M}: every expected index captured ({', '.join(expected)})")
    alert = missed_capture(
        ui_url=alerts.ui_url,
        day=day,
        deadline=f"{deadline:%H:%M}",
        missing=missing,
        captured=sorted(captured),
    )
    return dg.SkipReason(alerts.send(alert, context.log))
