"""One switch: `B3_PLATFORM_ENV=aws` plus its settings selects the AWS resources under the same keys
and the very same asset graph; a missing or malformed setting fails at load, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from b3_platform import aws
from b3_platform.aws import AwsSettings
from b3_platform.definitions import build_defs
from b3_platform.lake.s3_storage import S3Storage
from b3_platform.resources import LakeResource, build_resources
from b3_platform.settings_errors import ConfigError
from b3_platform_tests.conftest import REPO

ENV = {
    "B3_PLATFORM_ENV": "aws",
    "B3_PLATFORM_S3_BUCKET": "my-b3-lake",
    "B3_PLATFORM_S3_PREFIX": "prod/b3",
    "B3_PLATFORM_AWS_REGION": "sa-east-1",
    "B3_PLATFORM_GLUE_DATABASE": "b3_prod",
    "B3_PLATFORM_ATHENA_WORKGROUP": "b3-analysts",
    "B3_PLATFORM_ATHENA_OUTPUT": "s3://my-athena-results/b3",
    "B3_PLATFORM_LANDING_QUEUE_URL": "https://sqs.sa-east-1.amazonaws.com/123456789012/b3-landing",
}


def test_aws_settings_select_s3_glue_and_athena_under_the_same_keys():
    resources = build_resources(ENV)
    local = build_resources({})
    assert set(resources) == set(local)
    lake = resources["lake"]
    assert (lake.root, lake.region, lake.endpoint_url) == ("s3://my-b3-lake/prod/b3", "sa-east-1", None)
    storage = lake.storage()
    assert isinstance(storage, S3Storage)
    assert storage.uri("silver/assets/") == "s3://my-b3-lake/prod/b3/silver/assets/"
    assert storage.client.meta.region_name == "sa-east-1"
    catalog = resources["catalog"]
    assert type(catalog).__name__ == "GlueAthenaCatalogResource"
    assert (catalog.region, catalog.database, catalog.workgroup, catalog.output_location) == (
        "sa-east-1",
        "b3_prod",
        "b3-analysts",
        "s3://my-athena-results/b3/",
    )
    # The same B3 client settings; only the lake it reads the discovered index list from differs.
    b3, local_b3 = resources["b3"].model_dump(), local["b3"].model_dump()
    assert b3.pop("lake") == resources["lake"].model_dump()
    assert local_b3.pop("lake") == local["lake"].model_dump()
    assert b3 == local_b3


def test_defaults_and_the_region_from_the_standard_variable():
    settings = AwsSettings.from_env({"B3_PLATFORM_S3_BUCKET": "lake-bucket", "AWS_REGION": "us-east-2"})
    assert settings.lake_root == "s3://lake-bucket/b3_platform"
    assert settings.region == "us-east-2"
    assert (settings.glue_database, settings.athena_workgroup) == ("b3_platform", "b3_platform")
    assert settings.athena_output == "s3://lake-bucket/athena-results/"
    assert settings.landing_prefix == "b3_platform/landing/"
    assert settings.s3_endpoint_url is None and settings.endpoint_url is None
    # An empty prefix puts the lake at the bucket's root.
    bare = AwsSettings.from_env(
        {"B3_PLATFORM_S3_BUCKET": "lake-bucket", "AWS_REGION": "us-east-2", "B3_PLATFORM_S3_PREFIX": "/"}
    )
    assert (bare.lake_root, bare.landing_prefix) == ("s3://lake-bucket", "landing/")


def test_one_endpoint_for_every_client_or_one_for_s3_only():
    both = AwsSettings.from_env({**ENV, "B3_PLATFORM_AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert (both.s3_endpoint_url, both.endpoint_url) == ("http://127.0.0.1:5000",) * 2
    minio = AwsSettings.from_env({**ENV, "B3_PLATFORM_S3_ENDPOINT_URL": "https://minio.internal:9000"})
    assert (minio.s3_endpoint_url, minio.endpoint_url) == ("https://minio.internal:9000", None)


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("B3_PLATFORM_S3_BUCKET", None, "is not set"),
        ("B3_PLATFORM_S3_BUCKET", "s3://my-b3-lake", "not an S3 bucket name"),
        ("B3_PLATFORM_S3_BUCKET", "My_Bucket", "not an S3 bucket name"),
        ("B3_PLATFORM_S3_PREFIX", "a//b", "not a key prefix"),
        ("B3_PLATFORM_S3_PREFIX", "a/../b", "not a key prefix"),
        ("B3_PLATFORM_AWS_REGION", None, "is not set"),
        ("B3_PLATFORM_AWS_REGION", "Brazil", "not an AWS region"),
        ("B3_PLATFORM_GLUE_DATABASE", "B3-Prod", "lower-case letters, digits and underscores"),
        ("B3_PLATFORM_ATHENA_WORKGROUP", "has spaces", "not an Athena workgroup"),
        ("B3_PLATFORM_ATHENA_OUTPUT", "/tmp/results", "must be an s3://"),
        ("B3_PLATFORM_S3_ENDPOINT_URL", "127.0.0.1:9000", "not an http(s)"),
        ("B3_PLATFORM_AWS_ENDPOINT_URL", "localhost", "not an http(s)"),
        ("B3_PLATFORM_LANDING_QUEUE_URL", "b3-landing", "not an SQS queue URL"),
        ("B3_PLATFORM_INDICES", "IBOV,ibovespa", "B3_PLATFORM_INDICES"),
    ],
)
def test_a_missing_or_malformed_setting_names_its_variable(var, value, says):
    env = {k: v for k, v in ENV.items() if k != var}
    if value is not None:
        env[var] = value
    with pytest.raises(ConfigError) as raised:
        build_resources(env)
    assert var in str(raised.value)
    assert says in str(raised.value)


def test_the_asset_graph_is_the_same_in_both_environments(monkeypatch):
    local = build_defs()
    for var, value in ENV.items():
        monkeypatch.setenv(var, value)
    aws = build_defs()

    def graph(defs: dg.Definitions) -> dict:
        asset_graph = defs.resolve_asset_graph()
        return {
            key.to_user_string(): (
                sorted(k.to_user_string() for k in node.parent_keys),
                node.group_name,
                node.partitions_def,
                node.automation_condition is not None,
                tuple(sorted(node.metadata)),
            )
            for key, node in ((k, asset_graph.get(k)) for k in asset_graph.get_all_asset_keys())
        }

    assert graph(aws) == graph(local)
    checks = lambda d: sorted(k.to_user_string() for k in d.resolve_asset_graph().asset_check_keys)  # noqa: E731
    assert checks(aws) == checks(local)
    assert sorted(s.name for s in aws.sensors) == sorted(s.name for s in local.sensors)
    assert sorted(s.name for s in aws.schedules) == sorted(s.name for s in local.schedules)
    assert sorted(aws.resources) == sorted(local.resources)
    # What stands behind the same keys differs, and the catalog asset shows which engine runs it.
    assert type(aws.resources["lake_io_manager"]) is type(local.resources["lake_io_manager"])
    assert aws.resources["lake_io_manager"].lake.root.startswith("s3://")
    kinds = lambda d: d.resolve_asset_graph().get(dg.AssetKey("athena_tables")).kinds  # noqa: E731
    assert (kinds(local), kinds(aws)) == ({"duckdb"}, {"glue", "athena"})


def _load_definitions(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("B3_PLATFORM_")}
    return subprocess.run(
        [sys.executable, "-c", "import b3_platform.definitions"],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_location_fails_at_load_naming_the_missing_variable():
    env = {k: v for k, v in ENV.items() if k != "B3_PLATFORM_S3_BUCKET"}
    loaded = _load_definitions(env)
    assert loaded.returncode != 0
    assert "ConfigError: B3_PLATFORM_S3_BUCKET is not set" in loaded.stderr
    assert _load_definitions(ENV).returncode == 0, _load_definitions(ENV).stderr[-2000:]


def test_no_credential_is_a_setting():
    """Credentials come from the standard AWS chain only: no resource has a field for them."""
    for resource in build_resources(ENV).values():
        fields = {name.lower() for name in type(resource).model_fields}
        assert not {f for f in fields if "secret" in f or "access_key" in f or "token" in f}, resource


def test_the_s3_client_is_dagster_aws_s3resource_with_timeouts_built_once_per_process(monkeypatch):
    """Every storage the steps of a run open, and the S3 landing on the same bucket, share one client:
    built once by dagster-aws's S3Resource (LakeS3Resource), with connect and read timeouts."""
    from dagster_aws.s3 import S3Resource

    assert issubclass(aws.LakeS3Resource, S3Resource)
    aws.clear_s3_clients()
    built = []
    get_client = aws.LakeS3Resource.get_client

    def counted(self):
        built.append(self.model_dump())
        return get_client(self)

    monkeypatch.setattr(aws.LakeS3Resource, "get_client", counted)
    clients = []

    @dg.asset
    def first(lake: LakeResource):
        clients.extend([lake.storage().client, lake.storage().client, lake.raw().storage.client])

    @dg.asset(deps=[first])
    def second(lake: LakeResource):
        clients.append(lake.storage().client)

    resources = build_resources(ENV)
    result = dg.materialize([first, second], resources={"lake": resources["lake"]})
    assert result.success
    assert len(result.get_step_success_events()) == 2
    assert len(built) == 1 and len({id(c) for c in clients}) == 1
    (settings,) = built
    assert (settings["region_name"], settings["endpoint_url"]) == ("sa-east-1", None)
    assert not any(settings[k] for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"))
    client = clients[0]
    assert client.meta.service_model.service_name == "s3"
    assert client.meta.region_name == "sa-east-1"
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 6}  # max_attempts=5 retries
    assert resources["landing"]._storage().client is client  # the S3 landing: the same client
    assert len(built) == 1


def test_s3resource_fields_and_timeouts_reach_the_client():
    resource = aws.LakeS3Resource(
        region_name="us-east-2",
        endpoint_url="http://127.0.0.1:9000",
        max_attempts=2,
        connect_timeout_seconds=1.5,
        read_timeout_seconds=7,
    )
    client = resource.get_client()
    assert (client.meta.region_name, client.meta.endpoint_url) == ("us-east-2", "http://127.0.0.1:9000")
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (1.5, 7)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert resource.get_client() is not client  # get_client builds; client() keeps one per process
    assert resource.client() is resource.client()


def test_s3_clients_come_from_the_s3_resource_only():
    with pytest.raises(ValueError, match="aws.s3_client"):
        aws.client("s3", "us-east-1")
