"""Event-driven raw: files dropped into landing are imported by `landing_sensor`, and the layers follow.

Locally the landing is a folder (`<data dir>/landing/`); on AWS it is an S3 prefix whose
ObjectCreated notifications reach an SQS queue (a moto server here, with real boto3 clients and real
S3 → SQS notifications). The sensor is evaluated once through Dagster's own sensor daemon iteration
(which records `SensorResult.asset_events` on the instance), and elsewhere with `evaluate_tick`
followed by the one call the daemon makes for each asset event (`_daemon/sensor.py`:
`instance.report_runless_asset_event`). The automation conditions are then evaluated tick by tick
as in test_automation.py and the runs they request executed in-process."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.sensor_definition import SensorExecutionData

from b3_platform.assets import ALL_ASSETS
from b3_platform.automation import (
    LandingError,
    follow_upstream_sensor,
    landing_sensor,
    with_automation,
)
from b3_platform.lake.paths import table_partition_key
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import TABLES
from b3_platform.lake.storage import LocalStorage, open_storage
from b3_platform.landing import LocalLandingResource, SqsLandingResource
from b3_platform.resources import B3ApiResource, LakeResource, build_resources, lake_resources
from b3_platform.runs import materialize_days
from b3_platform_tests.conftest import REPO, duckdb_catalog
from b3_platform_tests.moto_aws import REGION, AwsTarget
from b3_platform_tests.test_automation import LAYER_ORDER

IBOV_JSON = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
CSV = REPO / "demo_data" / "csv"
#: Real samples, few enough to keep the runs short: two consecutive trading days in one block.
JSON_DAYS = [dt.date(2025, 7, 10)]
CSV_FILES = ["IBOV_2025-07-10.csv", "IBOV_2025-07-11.csv"]  # 07-10 again: a second, distinct capture
#: Every partitioned layer below raw (the catalog is unpartitioned).
BELOW_RAW = set(LAYER_ORDER) - {"athena_tables", "dashboard"}
UNREACHABLE = "http://127.0.0.1:9"  # B3 is never called: every date comes from landing


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def b3_never_called() -> B3ApiResource:
    return B3ApiResource(base_url=UNREACHABLE, indices=["IBOV"], max_attempts=1, timeout_seconds=0.5)


def landing_defs(lake_root: str, **landing_config) -> dg.Definitions:
    """The project's assets and sensors over a test lake, landing = `<lake>/landing` taken at once."""
    return dg.Definitions(
        assets=with_automation(ALL_ASSETS),
        sensors=[follow_upstream_sensor, landing_sensor],
        resources={
            **lake_resources(LakeResource(root=lake_root)),
            "catalog": duckdb_catalog(lake_root),
            "b3": b3_never_called(),
            "landing": LocalLandingResource(
                folder=f"{lake_root}/landing", **{"min_age_seconds": 0, **landing_config}
            ),
        },
    )


def run_sensor(instance: dg.DagsterInstance, resources: dict) -> SensorExecutionData:
    """One evaluation of landing_sensor, its asset events recorded as the sensor daemon does."""
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        data = landing_sensor.evaluate_tick(context)
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return data


def run_sensor_through_the_daemon(instance: dg.DagsterInstance, lake_root: Path) -> None:
    """One iteration of Dagster's sensor daemon over a code location built by `landing_defs`:
    proves the sensor loads with its resources and that the daemon records its asset events."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.sensor import execute_sensor_iteration

    module = lake_root.parent / "landing_code_location.py"
    module.write_text(
        f"from b3_platform_tests.test_landing import landing_defs\ndefs = landing_defs({str(lake_root)!r})\n"
    )
    origin = LoadableTargetOrigin(python_file=str(module), attribute="defs", working_directory=str(REPO))
    target = InProcessTestWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin))
    with create_test_daemon_workspace_context(target, instance) as workspace:
        list(execute_sensor_iteration(workspace, logging.getLogger("landing_test"), None, None))


def automation_tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor=None):
    """What follow_upstream requests now: ({asset: partitions}, cursor)."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {
        key.to_user_string(): set(result.get_requested_partitions(key))
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(key)
    }
    return requested, result.cursor


def latest(instance: dg.DagsterInstance, key: str, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def counts_of(message: str) -> str:
    """A landing tick's message up to its counts ("3 landed file(s): 2 imported, 1 rejected"); the
    files it names follow (`tick_details`)."""
    return message.split(". ", 1)[0]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------- local folder


def test_files_dropped_in_the_local_landing_are_imported_and_every_layer_follows(tmp_path, instance):
    lake_root = tmp_path / "lake"
    landing = lake_root / "landing"
    for day in JSON_DAYS:
        put(landing / "IBOV" / f"{day}.json", (IBOV_JSON / f"{day}.json").read_bytes())
    for name in CSV_FILES:
        put(landing / name, (CSV / name).read_bytes())
    good = (IBOV_JSON / "2025-07-04.json").read_bytes()
    put(landing / "IBOV" / "broken" / "2025-07-09.json", good[: len(good) // 2])  # truncated
    put(landing / "notes.txt", b"not a portfolio")
    put(landing / ".DS_Store", b"hidden: ignored")
    put(landing / "IBOV" / "2025-07-11.json.part", b"still being written: ignored")
    defs = landing_defs(str(lake_root))
    requested, cursor = automation_tick(defs, instance)
    assert requested == {}

    run_sensor_through_the_daemon(instance, lake_root)

    # Raw holds each capture under its header date (07-10 twice: the JSON and the CSV differ).
    store = RawStore(LocalStorage(lake_root))
    days = sorted({*JSON_DAYS, dt.date(2025, 7, 11)})
    assert store.dates() == days
    assert len(store.captures(dt.date(2025, 7, 10), "IBOV")) == 2
    assert {c.meta["file_name"] for c in store.captures(dt.date(2025, 7, 10))} == {
        str(landing / "IBOV/2025-07-10.json"),
        str(landing / "IBOV_2025-07-10.csv"),
    }
    # Landing keeps only what is not an import candidate yet; the bad files wait with their reasons.
    assert files_under(landing) == [".DS_Store", "IBOV/2025-07-11.json.part"]
    rejected = lake_root / "landing_rejected"
    assert files_under(rejected) == [
        "IBOV/broken/2025-07-09.json",
        "IBOV/broken/2025-07-09.json.reason.txt",
        "notes.txt",
        "notes.txt.reason.txt",
    ]
    assert "invalid or truncated JSON" in (rejected / "IBOV/broken/2025-07-09.json.reason.txt").read_text()
    assert "not a .json or .csv file (.txt)" in (rejected / "notes.txt.reason.txt").read_text()
    # The daemon recorded one raw_portfolio materialization per imported file.
    records = instance.fetch_materializations(dg.AssetKey("raw_portfolio"), limit=100).records
    assert sorted(r.partition_key for r in records) == sorted(
        [d.isoformat() for d in JSON_DAYS] + ["2025-07-10", "2025-07-11"]
    )
    assert {r.asset_materialization.metadata["source"].value for r in records} == {"landing"}
    ticks = instance.get_ticks(
        *next(
            (s.instigator_origin_id, s.selector_id)
            for s in instance.all_instigator_state()
            if s.instigator_name == "landing_sensor"
        )
    )
    message = ticks[0].skip_reason
    assert counts_of(message) == "5 landed file(s): 3 imported, 2 rejected"
    # The tick names what it did (the UI shows it beside "0 runs requested"; test_landing_tick.py).
    assert (
        ". Imported: IBOV/2025-07-10.json → IBOV 2025-07-10, IBOV_2025-07-10.csv → IBOV 2025-07-10" in message
    )
    assert "notes.txt (not a .json or .csv file (.txt))" in message
    assert message.endswith(". Reported raw_portfolio 2025-07-10, 2025-07-11: the layers below follow")

    # follow_upstream asks for every partitioned layer below raw, for exactly those dates.
    requested, cursor = automation_tick(defs, instance, cursor)
    assert requested == {key: {d.isoformat() for d in days} for key in BELOW_RAW}
    results = materialize_days(defs, days, instance=instance, selection=sorted(BELOW_RAW))
    assert len(results) == 1 and results[0].success  # 07-10..07-11 in one single run
    for key in BELOW_RAW:
        for day in days:
            assert latest(instance, key, day.isoformat()) is not None, (key, day)
    requested, cursor = automation_tick(defs, instance, cursor)
    assert requested == {"athena_tables": {None}, "dashboard": {None}}  # the catalog, then its dashboard

    # The same files dropped again are duplicates: removed, nothing stored or reported.
    put(landing / "again" / "IBOV" / "2025-07-10.json", (IBOV_JSON / "2025-07-10.json").read_bytes())
    result = run_sensor(instance, dict(defs.resources))
    assert counts_of(result.skip_message) == "1 landed file(s): 1 duplicate"
    assert result.asset_events == []
    assert files_under(landing) == [".DS_Store", "IBOV/2025-07-11.json.part"]
    assert len(store.captures(dt.date(2025, 7, 10))) == 2


def test_a_file_still_being_written_waits_for_a_later_tick(tmp_path, instance):
    lake_root = tmp_path / "lake"
    fresh = put(
        lake_root / "landing" / "IBOV" / "2025-07-08.json", (IBOV_JSON / "2025-07-08.json").read_bytes()
    )
    resources = dict(landing_defs(str(lake_root), min_age_seconds=60).resources)
    result = run_sensor(instance, resources)
    assert result.skip_message == f"nothing landed in {lake_root / 'landing'}"
    assert fresh.exists() and RawStore(LocalStorage(lake_root)).dates() == []

    resources["landing"] = LocalLandingResource(folder=str(lake_root / "landing"), min_age_seconds=0)
    assert counts_of(run_sensor(instance, resources).skip_message) == "1 landed file(s): 1 imported"
    assert not fresh.exists() and not fresh.parent.exists()  # IBOV/ emptied and removed
    assert (lake_root / "landing").is_dir()


def test_work_per_tick_is_bounded_by_a_time_budget(tmp_path, instance, monkeypatch):
    from b3_platform.automation import landing_intake  # the sensor reads its budget there

    lake_root = tmp_path / "lake"
    for name in CSV_FILES:
        put(lake_root / "landing" / name, (CSV / name).read_bytes())
    monkeypatch.setattr(landing_intake, "LANDING_BUDGET_SECONDS", 0.0)
    resources = dict(landing_defs(str(lake_root)).resources)
    result = run_sensor(instance, resources)
    assert counts_of(result.skip_message) == "2 landed file(s): 1 imported, 1 left for the next tick"
    assert files_under(lake_root / "landing") == [CSV_FILES[1]]  # oldest first
    assert counts_of(run_sensor(instance, resources).skip_message) == "1 landed file(s): 1 imported"
    assert files_under(lake_root / "landing") == []


def test_a_failure_while_filing_leaves_the_file_in_landing(tmp_path, instance):
    lake_root = tmp_path / "lake"
    dropped = put(
        lake_root / "landing" / "IBOV" / "2025-07-08.json", (IBOV_JSON / "2025-07-08.json").read_bytes()
    )
    resources = dict(landing_defs(str(lake_root)).resources)
    put(tmp_path / "not-a-folder", b"")
    resources["lake"] = LakeResource(root=str(tmp_path / "not-a-folder" / "lake"))
    with pytest.raises(LandingError, match="1 landed file"):
        run_sensor(instance, resources)
    assert dropped.read_bytes() == (IBOV_JSON / "2025-07-08.json").read_bytes()
    assert not (lake_root / "landing_rejected").exists()


def test_resources_per_environment_name_the_landing(tmp_path, moto_server, instance):
    local = build_resources({"B3_PLATFORM_DATA_DIR": str(tmp_path / "data")})["landing"]
    assert isinstance(local, LocalLandingResource) and local.folder == f"{tmp_path / 'data'}/landing"

    target = AwsTarget.create(moto_server, make_bucket=False)
    without_queue = build_resources(target.env())["landing"]
    assert isinstance(without_queue, SqsLandingResource)
    assert (without_queue.bucket, without_queue.landing_prefix) == (target.bucket, "lake/landing/")
    result = run_sensor(instance, {"lake": LakeResource(root=target.root), "landing": without_queue})
    assert "B3_PLATFORM_LANDING_QUEUE_URL is not set" in result.skip_message

    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/b3-landing"
    landing = build_resources(target.env(B3_PLATFORM_LANDING_QUEUE_URL=queue))["landing"]
    assert (landing.queue_url, landing.region, landing.endpoint_url) == (queue, REGION, target.endpoint)


# ---------------------------------------------------------------------------------- S3 events → SQS


class Landing:
    """A test's landing on moto: its bucket's `lake/landing/` prefix notifying a fresh SQS queue."""

    def __init__(self, target: AwsTarget, *, redrive_to_dlq_after: int | None = None) -> None:
        self.target = target
        self.s3 = target.client("s3")
        self.sqs = target.client("sqs")
        tag = uuid.uuid4().hex[:8]
        attributes = {}
        self.dlq_url = None
        if redrive_to_dlq_after:
            self.dlq_url = self.sqs.create_queue(QueueName=f"landing-dlq-{tag}")["QueueUrl"]
            dlq_arn = self._arn(self.dlq_url)
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(redrive_to_dlq_after)}
            )
        self.queue_url = self.sqs.create_queue(QueueName=f"landing-{tag}", Attributes=attributes)["QueueUrl"]
        self.prefix = f"{target.prefix}/landing/"
        self.s3.put_bucket_notification_configuration(
            Bucket=target.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": self._arn(self.queue_url),
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": self.prefix}]}},
                    }
                ]
            },
        )

    def _arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def resource(self, **overrides) -> SqsLandingResource:
        config = dict(
            queue_url=self.queue_url,
            bucket=self.target.bucket,
            landing_prefix=self.prefix,
            region=REGION,
            endpoint_url=self.target.endpoint,
            s3_endpoint_url=self.target.endpoint,
            wait_seconds=0,
        )
        return SqsLandingResource(**{**config, **overrides})

    def upload(self, name: str, data: bytes) -> str:
        key = self.prefix + name
        self.s3.put_object(Bucket=self.target.bucket, Key=key, Body=data)
        return key

    def messages(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def wait_until_visible(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.messages()[0] < count:
            assert time.monotonic() < deadline, self.messages()
            time.sleep(0.1)

    def event(self, key: str, *, bucket: str | None = None, name: str = "ObjectCreated:Put") -> str:
        """An S3 event message body as S3 writes it (the key URL-encoded)."""
        from urllib.parse import quote_plus

        record = {
            "eventSource": "aws:s3",
            "eventName": name,
            "s3": {"bucket": {"name": bucket or self.target.bucket}, "object": {"key": quote_plus(key)}},
        }
        return json.dumps({"Records": [record]})


def s3_resources(target: AwsTarget, landing: SqsLandingResource, **overrides) -> dict:
    return {
        **lake_resources(target.lake()),
        "landing": landing,
        **overrides,
    }


def test_uploads_to_the_s3_landing_are_imported_through_their_events(aws_target, instance):
    landing = Landing(aws_target)
    catalog = aws_target.catalog()
    defs = dg.Definitions(
        assets=with_automation(ALL_ASSETS),
        resources={
            **s3_resources(aws_target, landing.resource()),
            "catalog": catalog,
            "b3": b3_never_called(),
        },
    )
    requested, cursor = automation_tick(defs, instance)  # follow_upstream has been running: nothing new
    assert requested == {}
    assert landing.messages() == (1, 0)  # s3:TestEvent, sent when the notification was set up
    json_key = landing.upload("IBOV/2025-07-10.json", (IBOV_JSON / "2025-07-10.json").read_bytes())
    csv_key = landing.prefix + "IBOV 2025-07-10.csv"  # a space: URL-encoded as '+' in the event
    landing.s3.upload_file(str(CSV / "IBOV_2025-07-10.csv"), aws_target.bucket, csv_key)
    good = (IBOV_JSON / "2025-07-04.json").read_bytes()
    landing.upload("IBOV/2025-07-04.json", good[:-40])  # truncated: rejected
    gone = landing.upload("IBOV/2025-07-03.json", (IBOV_JSON / "2025-07-03.json").read_bytes())
    landing.s3.delete_object(Bucket=aws_target.bucket, Key=gone)  # its event remains
    landing.s3.put_object(Bucket=aws_target.bucket, Key=f"{aws_target.prefix}/other/x.csv", Body=b"no event")
    # The CSV's event again, fanned out through SNS (the body wraps the S3 event): a duplicate.
    sns = {"Type": "Notification", "Message": landing.event(csv_key)}
    landing.sqs.send_message(QueueUrl=landing.queue_url, MessageBody=json.dumps(sns))
    for body in (  # events the sensor must acknowledge and ignore
        landing.event(f"{aws_target.prefix}/other/2025-07-02.json"),
        landing.event(json_key, bucket="someone-elses-bucket"),
        landing.event(json_key, name="ObjectRemoved:Delete"),
    ):
        landing.sqs.send_message(QueueUrl=landing.queue_url, MessageBody=body)
    assert landing.messages() == (1 + 4 + 1 + 3, 0)

    result = run_sensor(instance, s3_resources(aws_target, landing.resource()))

    assert counts_of(result.skip_message) == "4 landed file(s): 2 imported, 1 duplicate, 1 rejected"
    assert [e.partition for e in result.asset_events] == ["2025-07-10", "2025-07-10"]
    assert {e.metadata["file_name"].value for e in result.asset_events} == {
        f"s3://{aws_target.bucket}/{json_key}",
        f"s3://{aws_target.bucket}/{csv_key}",
    }
    raw = aws_target.keys("raw/")
    folder = "raw/GetPortfolioDay/date=2025-07-10/index=IBOV/"
    bodies = [k for k in raw if k.startswith(folder) and not k.endswith(".meta.json")]
    assert sorted(k.rsplit(".", 1)[1] for k in bodies) == ["csv", "json"]  # two distinct captures
    assert len([k for k in raw if k.endswith(".meta.json")]) == 2
    assert aws_target.keys("landing/") == []
    assert aws_target.keys("landing_rejected/") == [
        "landing_rejected/IBOV/2025-07-04.json",
        "landing_rejected/IBOV/2025-07-04.json.reason.txt",
    ]
    reason = landing.s3.get_object(
        Bucket=aws_target.bucket, Key=f"{aws_target.prefix}/landing_rejected/IBOV/2025-07-04.json.reason.txt"
    )["Body"].read()
    assert b"invalid or truncated JSON" in reason
    assert aws_target.keys("other/") == ["other/x.csv"]
    assert landing.messages() == (0, 0)  # every message deleted, none left in flight

    # The same file uploaded again (or its event redelivered): a duplicate, not stored twice.
    landing.upload("again/IBOV/2025-07-10.json", (IBOV_JSON / "2025-07-10.json").read_bytes())
    again = run_sensor(instance, s3_resources(aws_target, landing.resource()))
    assert counts_of(again.skip_message) == "1 landed file(s): 1 duplicate" and again.asset_events == []
    assert len([k for k in aws_target.keys("raw/") if k.endswith(".meta.json")]) == 2
    assert aws_target.keys("landing/") == [] and landing.messages() == (0, 0)
    assert run_sensor(instance, s3_resources(aws_target, landing.resource())).skip_message.startswith(
        "nothing landed in s3://"
    )

    # The layers follow on S3: bronze → silver → gold for that date, then the catalog in Glue.
    days = [dt.date(2025, 7, 10)]
    requested, cursor = automation_tick(defs, instance, cursor)
    assert requested == {key: {d.isoformat() for d in days} for key in BELOW_RAW}
    assert all(
        r.success for r in materialize_days(defs, days, instance=instance, selection=sorted(BELOW_RAW))
    )
    requested, cursor = automation_tick(defs, instance, cursor)
    assert requested == {"athena_tables": {None}, "dashboard": {None}}  # the catalog, then its dashboard
    assert all(r.success for r in materialize_days(defs, [], instance=instance, selection=["athena_tables"]))
    keys = set(aws_target.keys())
    for name in BELOW_RAW:
        for day in days:
            assert table_partition_key(TABLES[name].location, day) in keys, (name, day)
    partitions = aws_target.client("glue").get_partitions(
        DatabaseName=aws_target.database, TableName="silver_assets"
    )
    assert sorted(p["Values"][0] for p in partitions["Partitions"]) == [d.isoformat() for d in days]


def test_a_failure_while_storing_leaves_the_message_for_redelivery_and_poison_goes_to_the_dlq(
    aws_target, instance
):
    landing = Landing(aws_target, redrive_to_dlq_after=2)
    key = landing.upload("IBOV/2025-07-08.json", (IBOV_JSON / "2025-07-08.json").read_bytes())
    landing.sqs.send_message(QueueUrl=landing.queue_url, MessageBody="not an S3 event")
    sqs_landing = landing.resource(visibility_timeout_seconds=1)
    no_lake = LakeResource(
        root="s3://no-such-lake-bucket/lake", region=REGION, endpoint_url=aws_target.endpoint
    )

    with pytest.raises(LandingError, match="no-such-lake-bucket"):
        run_sensor(instance, s3_resources(aws_target, sqs_landing, lake=no_lake))
    assert aws_target.keys("landing/") == ["landing/IBOV/2025-07-08.json"]
    assert sum(landing.messages()) == 2  # the file's event and the poison message: not deleted

    landing.wait_until_visible(2)  # the visibility timeout passed: SQS redelivers both
    result = run_sensor(instance, s3_resources(aws_target, sqs_landing))
    assert counts_of(result.skip_message) == "1 landed file(s): 1 imported"
    assert [e.partition for e in result.asset_events] == ["2025-07-08"]
    assert aws_target.keys("landing/") == []
    assert landing.s3.list_objects_v2(Bucket=aws_target.bucket, Prefix=key).get("KeyCount") == 0
    assert sum(landing.messages()) == 1  # only the poison message is left

    landing.wait_until_visible(1)  # received twice already: SQS moves it to the dead-letter queue
    assert run_sensor(instance, s3_resources(aws_target, sqs_landing)).skip_message.startswith(
        "nothing landed"
    )
    assert landing.messages() == (0, 0)
    assert landing.messages(landing.dlq_url) == (1, 0)


def test_a_replaced_upload_is_not_deleted_before_its_own_event(aws_target, instance):
    """The object is overwritten between the sensor's read and its delete: the new version stays for
    its own event and is imported on the next tick."""
    landing = Landing(aws_target)
    sqs_landing = landing.resource()
    first = landing.upload("IBOV/latest.json", (IBOV_JSON / "2025-07-07.json").read_bytes())
    (landed,) = [f for f in sqs_landing.receive(10) if f.name == "IBOV/latest.json"]
    landing.upload("IBOV/latest.json", (IBOV_JSON / "2025-07-08.json").read_bytes())
    from b3_platform.importer import import_body

    store = RawStore(open_storage(aws_target.root, region=REGION, endpoint_url=aws_target.endpoint))
    sqs_landing.settle(landed, import_body(store, landed.name, landed.body))
    assert aws_target.keys("landing/") == ["landing/IBOV/latest.json"]
    result = run_sensor(instance, s3_resources(aws_target, sqs_landing))
    assert counts_of(result.skip_message) == "1 landed file(s): 1 imported"
    assert [e.partition for e in result.asset_events] == ["2025-07-08"]
    assert aws_target.keys("landing/") == [] and first.endswith("latest.json")


@pytest.fixture
def s3_proxy(moto_server):
    from b3_platform_tests.s3_proxy import S3FaultProxy

    proxy = S3FaultProxy(moto_server.endpoint).start()
    yield proxy
    proxy.stop()


def test_s3_failures_of_the_landing_are_storage_errors_that_say_what_to_check(aws_target, s3_proxy, caplog):
    """The landed objects go through S3Storage: a key gone meanwhile is acknowledged, access denied
    names the object and the IAM policy (on read the message stays queued; on settle it raises)."""
    from b3_platform.importer import FileResult
    from b3_platform.lake.storage import StorageError

    landing = Landing(aws_target)
    sqs_landing = landing.resource(s3_endpoint_url=s3_proxy.endpoint, visibility_timeout_seconds=1)
    sqs_landing.receive(10)  # the s3:TestEvent
    key = landing.upload("IBOV/2025-07-08.json", (IBOV_JSON / "2025-07-08.json").read_bytes())
    uri = f"s3://{aws_target.bucket}/{key}"
    iam = "access denied; the credentials in use lack the permission (the pipeline's IAM policy is in infra/b3_platform.yaml)"

    s3_proxy.fail("GET", f"/{key}", status=403)
    with caplog.at_level(logging.WARNING, logger="b3_platform.landing"):
        assert sqs_landing.receive(10) == []
    assert f"StorageError: cannot read {uri}: {iam}; left in the queue" in caplog.text
    assert sum(landing.messages()) == 1  # not acknowledged: redelivered later
    s3_proxy.heal()

    landing.wait_until_visible(1)
    (landed,) = sqs_landing.receive(10)
    s3_proxy.fail("PUT", "/landing_rejected/", status=403)
    with pytest.raises(StorageError) as raised:
        sqs_landing.settle(landed, FileResult(landed.name, "rejected", "not a portfolio"))
    rejected = f"s3://{aws_target.bucket}/{aws_target.prefix}/landing_rejected/IBOV/2025-07-08.json"
    assert str(raised.value) == f"cannot write {rejected}: {iam}"
    s3_proxy.heal()
    s3_proxy.fail("HEAD", f"/{key}", status=403)
    with pytest.raises(StorageError) as raised:
        sqs_landing.settle(landed, FileResult(landed.name, "duplicate"))
    assert str(raised.value) == f"cannot look up {uri}: {iam}"
    assert aws_target.keys("landing/") == ["landing/IBOV/2025-07-08.json"]  # nothing removed
    s3_proxy.heal()

    # Deleted before its event is read: a MissingKey (a StorageError), the event acknowledged.
    landing.wait_until_visible(1)
    landing.s3.delete_object(Bucket=aws_target.bucket, Key=key)
    with caplog.at_level(logging.INFO, logger="b3_platform.landing"):
        assert sqs_landing.receive(10) == []
    assert f"{uri} no longer exists (settled or deleted): acknowledged" in caplog.text
    assert landing.messages() == (0, 0)


def test_a_queue_that_does_not_exist_is_a_queue_error_naming_the_setting(aws_target):
    from b3_platform.landing import QueueError

    landing = Landing(aws_target)
    missing = landing.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    with pytest.raises(QueueError) as raised:
        landing.resource(queue_url=missing).receive(10)
    assert str(raised.value).startswith(f"cannot receive messages from {missing}: ")
    assert "B3_PLATFORM_LANDING_QUEUE_URL" in str(raised.value)


def test_a_key_with_a_dotdot_folder_is_ignored_saying_so(aws_target, caplog):
    """Lake keys never hold '..' parts (S3Storage refuses them), so such an upload is not imported."""
    landing = Landing(aws_target)
    sqs_landing = landing.resource()
    sqs_landing.receive(10)  # the s3:TestEvent
    key = landing.upload("x/../IBOV/2025-07-08.json", (IBOV_JSON / "2025-07-08.json").read_bytes())
    with caplog.at_level(logging.WARNING, logger="b3_platform.landing"):
        assert sqs_landing.receive(10) == []
    assert f"ignored s3://{aws_target.bucket}/{key}: a '..' folder in its key" in caplog.text
    assert landing.messages() == (0, 0)
