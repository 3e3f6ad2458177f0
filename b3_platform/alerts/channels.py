"""Where alerts go, Dagster-free: an SNS topic, a Slack channel, an e-mail list.

Each channel is built from validated settings (settings.py) and sends one `Alert`. `deliver` tries
every configured channel even when one fails (Slack being down must not swallow the e-mail) and
then raises naming the channels that failed. Secrets (the Slack token, the SMTP password) are
held by the channel objects only: they never appear in an error message, a log line or a repr.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from b3_platform.alerts.messages import Alert

#: Seconds to connect to and wait for any channel: a sensor evaluation has 60 s in all.
TIMEOUT_SECONDS = 10.0


class AlertDeliveryError(RuntimeError):
    """At least one channel could not send; the message names each and why (never a secret)."""


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class SnsChannel:
    """Publishes to an SNS topic (on AWS: the stack's AlertTopic), whose subscribers (e-mail, SMS,
    a queue, a chat integration) are managed in AWS. The region is the topic ARN's own."""

    topic_arn: str
    endpoint_url: str | None = None
    name: str = "sns"

    @property
    def region(self) -> str:
        return self.topic_arn.split(":")[3]

    def send(self, alert: Alert) -> None:
        from b3_platform.aws import client

        client("sns", self.region, self.endpoint_url).publish(
            TopicArn=self.topic_arn, Subject=alert.subject, Message=alert.body
        )


@dataclass(frozen=True)
class SlackChannel:
    """Posts to a Slack channel through a `slack_sdk` WebClient (dagster-slack's SlackResource
    builds it; see automation/alerts.py)."""

    channel: str
    client_factory: Callable[[], Any] = field(repr=False)
    name: str = "slack"

    def send(self, alert: Alert) -> None:
        from slack_sdk.errors import SlackApiError

        try:
            self.client_factory().chat_postMessage(channel=self.channel, text=alert.text())
        except SlackApiError as exc:  # its str() carries the whole response; keep Slack's error code
            raise AlertDeliveryError(f"Slack refused the message: {exc.response.get('error')}") from None


@dataclass(frozen=True)
class EmailChannel:
    """Sends a plain-text e-mail over SMTP: STARTTLS on the submission port by default, implicit
    TLS (`ssl`, port 465) or none (a relay on localhost)."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str = "email"

    def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.body)
        context = ssl.create_default_context()
        if self.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=TIMEOUT_SECONDS, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def deliver(alert: Alert, channels: Sequence[Channel]) -> list[str]:
    """Send `alert` on every channel; returns the names of those that took it. Raises
    AlertDeliveryError after trying all of them if any failed."""
    sent, failed = [], []
    for channel in channels:
        try:
            channel.send(alert)
        except Exception as exc:
            failed.append(f"{channel.name}: {type(exc).__name__}: {exc}")
        else:
            sent.append(channel.name)
    if failed:
        raise AlertDeliveryError(
            f"alert {alert.subject!r} not delivered on {len(failed)} channel(s) "
            f"(sent on: {', '.join(sent) or 'none'}): " + "; ".join(failed)
        )
    return sent
