"""Alerts end to end: a failed run, a failed blocking check and a missed capture reach the channels
a user configures — SNS (the stack's topic on moto, read back through an SQS subscription), Slack
(dagster-slack's client against a local HTTP server standing in for the Web API) and e-mail (a
local SMTP server, aiosmtpd) — with the date, the indices or asset, what failed and a UI link.

The runs are real in-process runs on a temporary Dagster instance; the sensors are the ones
definitions.py registers, evaluated the way Dagster's testing API documents
(`build_run_status_sensor_context`, `build_sensor_context` + `evaluate_tick`).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from b3_platform.alerts import (
    AlertDeliveryError,
    FailedCheck,
    FailedStep,
    check_failed,
    deadline_key,
    describe_dates,
    due_deadline,
    missed_capture,
    run_failed,
)
from b3_platform.alerts import missed as missed_clock
from b3_platform.assets import ALL_ASSETS
from b3_platform.automation import AlertsResource, missed_capture_alert, run_failure_alert
from b3_platform.automation import alerts as alerts_module
from b3_platform.definitions import build_defs
from b3_platform.importer import import_paths
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import LakeResource, lake_resources
from b3_platform.settings_errors import ConfigError
from b3_platform.trading_calendar import SAO_PAULO
from b3_platform_tests.conftest import REPO, duckdb_catalog, replay_b3_resource, unused_port
from b3_platform_tests.replay import sample_bytes, with_changes
from b3_platform_tests.stack import client, deploy_stack

pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* not supported by moto's CloudFormation:UserWarning"
)

DAY = dt.date(2025, 7, 10)  # a Thursday with samples
HOLIDAY = dt.date(2025, 4, 21)  # Tiradentes, a Monday: B3 closed
JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
UI = "https://dagster.example.com/"
SLACK_TOKEN = "xoxb-not-a-real-token-1234"
SMTP_PASSWORD = "s3cret-smtp-pass"


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), SAO_PAULO)


# The messages and the clock, as pure functions -------------------------------------------------


def test_messages_name_the_date_the_subject_what_failed_and_a_link():
    failed = run_failed(
        ui_url=UI,
        run_id="abc123",
        job="daily_capture",
        dates="2025-07-10",
        assets=["raw_portfolio", "bronze_portfolio"],
        steps=[FailedStep("raw_portfolio", "gave up after 4 attempts; last: HTTP 520")],
        reason="ignored when steps failed",
    )
    assert failed.subject == "[b3_platform] run failed: daily_capture 2025-07-10"
    assert failed.link == "https://dagster.example.com/runs/abc123"
    assert "Failed step raw_portfolio: gave up after 4 attempts; last: HTTP 520" in failed.body
    assert "Assets: raw_portfolio, bronze_portfolio" in failed.body
    assert failed.body.endswith("Open: https://dagster.example.com/runs/abc123")

    check = check_failed(
        ui_url=UI,
        run_id="r1",
        job="__ASSET_JOB",
        checks=[
            FailedCheck("silver_assets", "weights_sum_to_100", ("2025-07-10",), "IBOV: weights sum to 105")
        ],
    )
    assert check.subject == "[b3_platform] blocking check failed: silver_assets.weights_sum_to_100 2025-07-10"
    assert check.link == "https://dagster.example.com/assets/silver_assets?view=checks"
    grouped = check_failed(
        ui_url=UI,
        run_id="r1",
        job="__ASSET_JOB",
        checks=[
            FailedCheck(
                "silver_assets",
                "silver_assets_rules",
                ("2025-07-10",),
                "weights_sum_to_100: IBOV: weights sum to 105; unique_tickers: IBOV: ALOS3 twice",
                ("weights_sum_to_100", "unique_tickers"),
            )
        ],
    )
    # The failed rules are named where the check was: the subject (in its place) and the check's line.
    assert grouped.subject == (
        "[b3_platform] blocking check failed: silver_assets.weights_sum_to_100, unique_tickers 2025-07-10"
    )
    assert (
        "Asset silver_assets, check silver_assets_rules, rules failed weights_sum_to_100, unique_tickers, "
        "date 2025-07-10: weights_sum_to_100: IBOV: weights sum to 105" in grouped.body
    )
    assert (
        "Asset silver_assets, check weights_sum_to_100, date 2025-07-10: IBOV: weights sum to 105"
        in check.body
    )

    missed = missed_capture(ui_url=UI, day=DAY, deadline="10:00", missing=["IBXX", "SMLL"], captured=["IBOV"])
    assert missed.subject == "[b3_platform] missed capture 2025-07-10: IBXX, SMLL (by 10:00)"
    assert "Trading day 2025-07-10: no capture of IBXX, SMLL by 10:00 São Paulo time." in missed.body
    assert "Captured so far: IBOV." in missed.body
    # SNS takes at most 100 characters of subject.
    many = missed_capture(
        ui_url=UI, day=DAY, deadline="21:00", missing=[f"I{i:03d}" for i in range(40)], captured=[]
    )
    assert len(many.subject) == 100 and many.subject.endswith("…")


def test_a_run_names_its_date_or_range():
    assert describe_dates("2025-07-10", None, None) == "2025-07-10"
    assert describe_dates(None, "2025-07-01", "2025-07-08") == "2025-07-01...2025-07-08"
    assert describe_dates(None, "2025-07-08", "2025-07-08") == "2025-07-08"
    assert describe_dates(None, None, None) == "no date (unpartitioned)"


def test_deadlines_are_10_and_21_on_trading_days_only_each_judged_once():
    assert due_deadline(at(DAY, 9, 59), None) is None
    assert due_deadline(at(DAY, 10, 0), None) == (DAY, dt.time(10))
    assert due_deadline(at(DAY, 15, 0), deadline_key(DAY, dt.time(10))) is None
    assert due_deadline(at(DAY, 21, 1), deadline_key(DAY, dt.time(10))) == (DAY, dt.time(21))
    assert due_deadline(at(DAY, 23, 59), deadline_key(DAY, dt.time(21))) is None
    # A daemon down all morning judges only the latest deadline passed.
    assert due_deadline(at(DAY, 22, 0), None) == (DAY, dt.time(21))
    # The next trading day starts over; a cursor from yesterday does not hold it back.
    assert due_deadline(at(dt.date(2025, 7, 11), 10, 5), deadline_key(DAY, dt.time(21))) == (
        dt.date(2025, 7, 11),
        dt.time(10),
    )
    assert due_deadline(at(HOLIDAY, 10, 30), None) is None  # B3 holiday
    assert due_deadline(at(dt.date(2025, 7, 12), 10, 30), None) is None  # Saturday
    # The clock is São Paulo's, whatever the zone of `now`.
    assert due_deadline(at(DAY, 10, 0).astimezone(dt.timezone.utc), None) == (DAY, dt.time(10))


def test_settings_are_optional_and_half_configured_channels_are_refused():
    assert AlertsResource.from_env({}).channels() == []
    for env, variable in (
        ({"B3_PLATFORM_SLACK_TOKEN": "x"}, "B3_PLATFORM_SLACK_CHANNEL"),
        ({"B3_PLATFORM_SMTP_HOST": "mail"}, "B3_PLATFORM_ALERT_EMAIL_TO"),
        ({"B3_PLATFORM_ALERT_SNS_TOPIC_ARN": "my-topic"}, "B3_PLATFORM_ALERT_SNS_TOPIC_ARN"),
        (
            {"B3_PLATFORM_SMTP_HOST": "m", "B3_PLATFORM_ALERT_EMAIL_TO": "nobody"},
            "B3_PLATFORM_ALERT_EMAIL_TO",
        ),
        ({"B3_PLATFORM_SMTP_SECURITY": "tls13"}, "B3_PLATFORM_SMTP_SECURITY"),
        ({"B3_PLATFORM_UI_URL": "dagster.local"}, "B3_PLATFORM_UI_URL"),
    ):
        with pytest.raises(ConfigError, match=variable):
            AlertsResource.from_env(env)


def test_secrets_stay_environment_variables_in_the_definitions(monkeypatch):
    """The definitions hold the names of the Slack token and SMTP password, never their values,
    so the UI's resource page and the run config cannot show them."""
    env = {
        "B3_PLATFORM_SLACK_TOKEN": SLACK_TOKEN,
        "B3_PLATFORM_SLACK_CHANNEL": "#b3",
        "B3_PLATFORM_SMTP_HOST": "127.0.0.1",
        "B3_PLATFORM_SMTP_PASSWORD": SMTP_PASSWORD,
        "B3_PLATFORM_ALERT_EMAIL_TO": "ops@example.com",
    }
    defs = build_defs(env)
    alerts = defs.resources["alerts"]
    dumped = json.dumps(alerts.model_dump(), default=str) + repr(alerts)
    assert SLACK_TOKEN not in dumped and SMTP_PASSWORD not in dumped
    assert alerts.slack_token == "B3_PLATFORM_SLACK_TOKEN"  # dg.EnvVar: a name, resolved at run time
    assert isinstance(alerts.slack_token, dg.EnvVar) and isinstance(alerts.smtp_password, dg.EnvVar)
    assert {s.name for s in defs.sensors} >= {"run_failure_alert", "missed_capture_alert"}


# Stand-ins for the channels --------------------------------------------------------------------


class SlackStandIn:
    """A local HTTP server answering Slack's Web API `chat.postMessage` like Slack does."""

    def __init__(self, error: str | None = None) -> None:
        self.requests: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stand_in.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body)}
                )
                answer = {"ok": False, "error": error} if error else {"ok": True, "ts": "1.0"}
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack():
    server = SlackStandIn()
    yield server
    server.close()


@pytest.fixture
def smtp():
    """A local SMTP server (aiosmtpd) that requires a login and keeps what it receives."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[dict] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            text = f"Subject: {message['Subject']}\n{message.get_content()}"
            received.append({"to": envelope.rcpt_tos, "from": envelope.mail_from, "data": text})
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=unused_port(),
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    controller.received = received
    yield controller
    controller.stop()


def email_env(server, **extra) -> dict[str, str]:
    return {
        "B3_PLATFORM_SMTP_HOST": "127.0.0.1",
        "B3_PLATFORM_SMTP_PORT": str(server.port),
        "B3_PLATFORM_SMTP_SECURITY": "none",
        "B3_PLATFORM_SMTP_USER": "b3",
        "B3_PLATFORM_SMTP_PASSWORD": SMTP_PASSWORD,
        "B3_PLATFORM_ALERT_EMAIL_FROM": "b3-platform@example.com",
        "B3_PLATFORM_ALERT_EMAIL_TO": "ops@example.com, data@example.com",
        "B3_PLATFORM_UI_URL": UI,
        **extra,
    }


def alerts_from(env: dict[str, str], monkeypatch) -> AlertsResource:
    """The resource as definitions.py builds it; secrets in the process environment, where the
    EnvVar fields read them."""
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return AlertsResource.from_env(env)


# A failed run and a failed blocking check -------------------------------------------------------


def seed(lake, *days: dt.date) -> None:
    results = import_paths(RawStore(LocalStorage(lake)), [JSON_DIR / f"{d}.json" for d in days])
    assert {r.status for r in results} == {"imported"}


def failing_run(lake, instance, replay_server, *, day: dt.date) -> dg.ExecuteInProcessResult:
    resources = {
        **lake_resources(LakeResource(root=str(lake))),
        "catalog": duckdb_catalog(lake),
        "b3": replay_b3_resource(replay_server),
    }
    result = dg.materialize(
        ALL_ASSETS,
        resources=resources,
        instance=instance,
        partition_key=day.isoformat(),
        raise_on_error=False,
    )
    assert not result.success
    return result


def evaluate_run_failure_sensor(result, instance, alerts: AlertsResource) -> None:
    context = build_run_status_context(result, instance, alerts)
    run_failure_alert(context)


def build_run_status_context(result, instance, alerts):
    return dg.build_run_status_sensor_context(
        sensor_name=run_failure_alert.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alerts": alerts},
    ).for_run_failure()


def test_failed_run_is_published_to_the_stacks_sns_topic(moto_server, tmp_path, replay_server, monkeypatch):
    """A past date without captures fails raw ("nothing captured"); the alert reaches the stack's
    AlertTopic, read back from an SQS queue subscribed to it."""
    outputs = deploy_stack(moto_server, CreateAlertTopic="true")
    topic = outputs["AlertTopicArn"]
    sns, sqs = client(moto_server, "sns"), client(moto_server, "sqs")
    queue = sqs.create_queue(QueueName=f"alerts-{tmp_path.name[-20:]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    missing_day = dt.date(2025, 7, 9)  # a trading day the samples do not hold
    with dg.instance_for_test() as instance:
        result = failing_run(tmp_path / "lake", instance, replay_server, day=missing_day)
        alerts = alerts_from(
            {
                "B3_PLATFORM_ALERT_SNS_TOPIC_ARN": topic,
                "B3_PLATFORM_AWS_ENDPOINT_URL": moto_server.endpoint,
                "B3_PLATFORM_UI_URL": UI,
            },
            monkeypatch,
        )
        evaluate_run_failure_sensor(result, instance, alerts)

    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["TopicArn"] == topic
    job = result.dagster_run.job_name
    assert envelope["Subject"] == f"[b3_platform] run failed: {job} {missing_day}"
    body = envelope["Message"]
    assert f"Run {result.run_id} of job {job} failed." in body
    assert f"Date: {missing_day}" in body
    assert "Failed step raw_portfolio:" in body and "nothing captured" in body
    assert f"Open: https://dagster.example.com/runs/{result.run_id}" in body


def test_failed_blocking_check_is_posted_to_slack(slack, tmp_path, replay_server, monkeypatch):
    """Silver's weights of 2025-07-10 made to sum to 105 (and a type code odd, which only warns):
    the blocking check fails, gold does not run, and Slack gets the check's message (not a generic
    run failure) naming the blocking rule, with the token as auth.
    The publish audit would keep such a capture out before silver is written (so the checks fail
    only on a bug); its rules are switched off here to reach the check."""
    import b3_platform.audit as audit_module

    monkeypatch.setattr(audit_module, "PUBLISH_RULES", ())
    lake = tmp_path / "lake"

    def heavier_and_odd(data):
        data["results"][0].update(part="5,493")
        data["results"][5].update(type="ON  QQ  NM")  # a warning rule fails on the same date

    body = with_changes(sample_bytes(f"GetPortfolioDay/IBOV/{DAY}.json"), heavier_and_odd)
    RawStore(LocalStorage(lake)).store(
        DAY, "IBOV", [body], fetched_at=dt.datetime.now(dt.timezone.utc), source_format="json", meta={}
    )
    with dg.instance_for_test() as instance:
        result = failing_run(lake, instance, replay_server, day=DAY)
        alerts = alerts_from(
            {
                "B3_PLATFORM_SLACK_TOKEN": SLACK_TOKEN,
                "B3_PLATFORM_SLACK_CHANNEL": "#b3-alerts",
                "B3_PLATFORM_SLACK_API_URL": slack.url,
                "B3_PLATFORM_UI_URL": UI,
            },
            monkeypatch,
        )
        evaluate_run_failure_sensor(result, instance, alerts)

    (request,) = slack.requests
    assert request["path"] == "/api/chat.postMessage"
    assert request["auth"] == f"Bearer {SLACK_TOKEN}"
    assert request["body"]["channel"] == "#b3-alerts"
    text = request["body"]["text"]
    # Only the blocking rule is named as what failed: the warning beside it blocked nothing.
    assert text.startswith(f"[b3_platform] blocking check failed: silver_assets.weights_sum_to_100 {DAY}\n")
    assert (
        f"Asset silver_assets, check silver_assets_rules, rules failed weights_sum_to_100, date {DAY}: "
        in text
    )
    assert "IBOV: weights sum to 105.000, not 100" in text
    assert "Open: https://dagster.example.com/assets/silver_assets?view=checks" in text
    assert f"Run: https://dagster.example.com/runs/{result.run_id}" in text
    assert SLACK_TOKEN not in text


def test_a_channel_that_fails_does_not_stop_the_others(tmp_path, replay_server, smtp, monkeypatch):
    """Slack answers channel_not_found: the e-mail still goes out, then the sensor fails naming
    Slack's error (and no secret)."""
    refusing = SlackStandIn(error="channel_not_found")
    try:
        with dg.instance_for_test() as instance:
            result = failing_run(tmp_path / "lake", instance, replay_server, day=dt.date(2025, 7, 9))
            alerts = alerts_from(
                email_env(
                    smtp,
                    B3_PLATFORM_SLACK_TOKEN=SLACK_TOKEN,
                    B3_PLATFORM_SLACK_CHANNEL="#gone",
                    B3_PLATFORM_SLACK_API_URL=refusing.url,
                ),
                monkeypatch,
            )
            with pytest.raises(Exception) as raised:
                evaluate_run_failure_sensor(result, instance, alerts)
    finally:
        refusing.close()
    error = raised.value
    while not isinstance(error, AlertDeliveryError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, AlertDeliveryError), raised.value
    assert "slack: AlertDeliveryError: Slack refused the message: channel_not_found" in str(error)
    assert "(sent on: email)" in str(error)
    assert SLACK_TOKEN not in str(error) and SMTP_PASSWORD not in str(error)
    assert len(smtp.received) == 1


# A missed capture --------------------------------------------------------------------------------


def missed_tick(lake, alerts, now: dt.datetime, cursor: str | None, monkeypatch, indices=("IBOV", "IBXX")):
    monkeypatch.setattr(missed_clock, "now_sao_paulo", lambda: now)
    from b3_platform.resources import B3ApiResource

    lake_resource = LakeResource(root=str(lake))
    # The b3 resource holds the lake (where the discovered index list is read): a nested resource,
    # so the context is opened as a context manager.
    with dg.build_sensor_context(
        cursor=cursor,
        resources={
            "lake": lake_resource,
            "b3": B3ApiResource(indices=list(indices), lake=lake_resource),
            "alerts": alerts,
        },
    ) as context:
        return missed_capture_alert.evaluate_tick(context)


def test_missed_capture_is_emailed_at_10_and_again_at_21_never_on_holidays(tmp_path, smtp, monkeypatch):
    """IBOV is captured on 2025-07-10, IBXX is not: at 10:00 the e-mail names IBXX; the tick
    after that sends nothing more; at 21:00 it is sent again. A holiday, and a day with every
    index captured, send nothing."""
    lake = tmp_path / "lake"
    seed(lake, DAY)
    alerts = alerts_from(email_env(smtp), monkeypatch)

    early = missed_tick(lake, alerts, at(DAY, 9, 30), None, monkeypatch)
    assert early.skip_message == "no capture deadline due" and early.cursor is None
    morning = missed_tick(lake, alerts, at(DAY, 10, 1), None, monkeypatch)
    assert morning.cursor == "2025-07-10T10:00"
    assert (
        morning.skip_message
        == "alert sent on email: [b3_platform] missed capture 2025-07-10: IBXX (by 10:00)"
    )
    (mail,) = smtp.received
    assert mail["to"] == ["ops@example.com", "data@example.com"] and mail["from"] == "b3-platform@example.com"
    assert "Subject: [b3_platform] missed capture 2025-07-10: IBXX (by 10:00)" in mail["data"]
    assert "Trading day 2025-07-10: no capture of IBXX by 10:00 S" in mail["data"]
    assert "Captured so far: IBOV." in mail["data"]
    assert "Open: https://dagster.example.com/assets/raw_portfolio?view=partitions" in mail["data"]
    assert SMTP_PASSWORD not in mail["data"]

    again = missed_tick(lake, alerts, at(DAY, 10, 30), morning.cursor, monkeypatch)
    assert again.skip_message == "no capture deadline due" and len(smtp.received) == 1
    evening = missed_tick(lake, alerts, at(DAY, 21, 0), morning.cursor, monkeypatch)
    assert evening.cursor == "2025-07-10T21:00" and len(smtp.received) == 2
    assert "IBXX (by 21:00)" in smtp.received[1]["data"]

    holiday = missed_tick(lake, alerts, at(HOLIDAY, 10, 30), None, monkeypatch)
    assert holiday.skip_message == "no capture deadline due"
    complete = missed_tick(lake, alerts, at(DAY, 10, 5), None, monkeypatch, indices=("IBOV",))
    assert complete.skip_message == "2025-07-10 10:00: every expected index captured (IBOV)"
    assert complete.cursor == "2025-07-10T10:00"
    assert len(smtp.received) == 2


def test_missed_capture_expects_what_the_b3_resource_captures(tmp_path, monkeypatch):
    """The expected list is `b3.capture_list()` (what the capture schedule fetches); with no
    channel configured the tick says what it would have sent."""
    lake = tmp_path / "lake"
    calls = []
    original = alerts_module.B3ApiResource.capture_list

    def spy(self):
        calls.append(True)
        return original(self)

    monkeypatch.setattr(alerts_module.B3ApiResource, "capture_list", spy)
    tick = missed_tick(
        lake, AlertsResource.from_env({}), at(DAY, 10, 0), None, monkeypatch, indices=("IBOV", "SMLL")
    )
    assert calls
    assert tick.skip_message == (
        "no alert channel configured: [b3_platform] missed capture 2025-07-10: IBOV, SMLL (by 10:00)"
    )
