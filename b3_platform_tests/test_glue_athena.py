"""The AWS catalog against a moto server: Glue tables and partitions registered by `sync`, the
athena_tables asset and its check on Glue, and Athena queries (what is sent, polling, failures,
result conversion) down to `python -m b3_platform query` in the AWS mode.

Every call goes over HTTP to moto on 127.0.0.1. moto's Glue is real; moto's Athena runs no SQL, so
results are preset through moto's API and the states moto cannot produce (FAILED, CANCELLED, a
query that never ends, a refused statement) are steered inside the moto server, never by stubbing
boto3. The lake is two real IBOV samples imported into S3 and taken through the whole asset graph
once per module; tests that change files or Glue work on a copy in their own bucket and database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import boto3
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.athena.models import Execution, athena_backends
from moto.athena.responses import AthenaResponse
from moto.core.exceptions import JsonRESTError
from moto.glue.models import GlueBackend

from b3_platform import aws
from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.athena_tables import athena_tables
from b3_platform.catalog.base import CatalogError, QueryError, QueryResult, RegisteredTable
from b3_platform.catalog.glue_athena import GlueAthenaCatalogResource
from b3_platform.catalog.types import sql_type
from b3_platform.cli import main
from b3_platform.discovery import import_listing, listing_store
from b3_platform.importer import import_paths
from b3_platform.lake.paths import year_file
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.s3_storage import S3Storage
from b3_platform.lake.schemas import (
    ANNOUNCED_TABLES,
    CATALOG_TABLES,
    COVERAGE,
    RAW_CAPTURES,
    SILVER_ASSETS,
    TABLES,
)
from b3_platform.lake.schemas import DAY_PORTFOLIO_TABLES as DAY_TABLES
from b3_platform.lake.storage import open_storage
from b3_platform.lake.tables import manifest_key
from b3_platform.resources import B3ApiResource, lake_resources
from b3_platform.runs import RunOutcome, materialize_days
from b3_platform.trading_calendar import today_sao_paulo
from b3_platform_tests.conftest import ENV_VARS
from b3_platform_tests.moto_aws import CREDENTIALS, REGION, AwsTarget
from b3_platform_tests.replay import SAMPLES, STOCK_INDEX_SAMPLE
from b3_platform_tests.test_catalog import DAYS, JSON_DIR, check_evaluation, recorded_run

NEW_DAY = dt.date(2025, 7, 3)
ACCOUNT = "123456789012"  # moto's default account
SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there: connection refused at once
LISTENER = "b3-platform-tests-calls"


# ------------------------------------------------------------------------------------------ helpers


@functools.cache
def _client(endpoint: str, service: str):
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    return session.client(service, endpoint_url=endpoint)


def client(target: AwsTarget, service: str):
    """The tests' own client of a service, built once: a boto3 client costs ~0.3 s to build."""
    return _client(target.endpoint, service)


@functools.cache
def _storage(root: str, endpoint: str) -> S3Storage:
    return open_storage(root, region=REGION, endpoint_url=endpoint)


def storage(target: AwsTarget) -> S3Storage:
    return _storage(target.root, target.endpoint)


def keys(target: AwsTarget, under: str = "") -> list[str]:
    """Every object key under the lake prefix (relative to it), sorted."""
    return storage(target).list_keys(under)


def glue_catalog(target: AwsTarget, **overrides) -> GlueAthenaCatalogResource:
    return target.catalog(**{"poll_interval_seconds": 0.01, "timeout_seconds": 10.0, **overrides})


def platform_resources(target: AwsTarget) -> dict:
    """The S3 lake, its Glue catalog, and a B3 resource that is never called (every date is past)."""
    return {
        **lake_resources(target.lake()),
        "catalog": glue_catalog(target),
        "b3": B3ApiResource(
            base_url=UNREACHABLE,
            indices=["IBOV"],
            max_attempts=1,
            timeout_seconds=0.5,
            connect_timeout_seconds=0.5,
        ),
    }


def sync(target: AwsTarget, tables=None, catalog: GlueAthenaCatalogResource | None = None):
    catalog = catalog or glue_catalog(target)
    return catalog.sync(storage(target), list((tables or TABLES).values()))


def glue_table(target: AwsTarget, name: str) -> dict:
    return client(target, "glue").get_table(DatabaseName=target.database, Name=name)["Table"]


def glue_partitions(target: AwsTarget, name: str) -> dict[str, dict]:
    """{date value: partition} as Glue holds them."""
    glue = client(target, "glue")
    partitions = {}
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=target.database, TableName=name):
        partitions.update({p["Values"][0]: p for p in page["Partitions"]})
    return partitions


def file_schema(target: AwsTarget, key: str, filesystem) -> pa.Schema:
    """A Parquet file's schema, read back from S3 by pyarrow itself."""
    return pq.read_schema(f"{target.bucket}/{target.prefix}/{key}", filesystem=filesystem)


def parquet_dates(target: AwsTarget, table_def) -> list[str]:
    """The dates whose data.parquet exists in S3 under the table's folder."""
    return sorted(
        k.removeprefix(f"{table_def.location}date=").removesuffix("/data.parquet")
        for k in keys(target, table_def.location)
        if k.endswith("/data.parquet")
    )


def copy_lake(source: AwsTarget, moto_server) -> AwsTarget:
    """The source lake's objects in a bucket of their own, with a database of its own (none yet)."""
    target = AwsTarget.create(moto_server, make_bucket=False)
    s3 = client(target, "s3")
    s3.create_bucket(Bucket=target.bucket)
    for key in keys(source):
        s3.copy_object(
            Bucket=target.bucket,
            Key=f"{target.prefix}/{key}",
            CopySource={"Bucket": source.bucket, "Key": f"{source.prefix}/{key}"},
        )
    return target


@dataclass
class Call:
    service: str
    operation: str
    params: dict


@pytest.fixture
def calls(monkeypatch) -> Iterator[list[Call]]:
    """Every AWS call the code under test makes (still sent to moto: this only listens)."""
    made: list[Call] = []
    listened = []
    real_client = aws.client

    def record(params, model, **_):
        service = model.service_model.service_name
        made.append(Call(service, model.name, json.loads(json.dumps(params, default=str))))

    def listening_client(service, *args, **kwargs):
        client = real_client(service, *args, **kwargs)  # cached per process: listen once, then stop
        client.meta.events.register("provide-client-params.*.*", record, unique_id=LISTENER)
        listened.append(client)
        return client

    monkeypatch.setattr(aws, "client", listening_client)
    yield made
    for client in listened:
        client.meta.events.unregister("provide-client-params.*.*", unique_id=LISTENER)


def operations(calls: list[Call], service: str = "glue") -> list[str]:
    return [c.operation for c in calls if c.service == service]


# ------------------------------------------------------------------------------------------ the lake


@dataclass
class Built:
    target: AwsTarget
    runs: list[RunOutcome]
    instance: dg.DagsterInstance


@pytest.fixture(scope="module")
def built(moto_server, tmp_path_factory) -> Built:
    """Two real samples imported into S3, then raw → bronze → silver → gold → athena_tables on Glue."""
    no_files = tmp_path_factory.mktemp("no-aws-files")
    with pytest.MonkeyPatch.context() as mp:  # as conftest's _isolated_env (moto_server sets the keys)
        for var in ENV_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("AWS_CONFIG_FILE", str(no_files / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_files / "credentials"))
        target = AwsTarget.create(moto_server, make_bucket=False)
        client(target, "s3").create_bucket(Bucket=target.bucket)
        results = import_paths(RawStore(storage(target)), [JSON_DIR / f"{d}.json" for d in DAYS])
        assert [r.status for r in results] == ["imported"] * len(DAYS), [r.reason for r in results]
        # B3's GetStockIndex listing on both days too, so index_members has files like every table.
        listings = listing_store(RawStore(storage(target)))
        for day in DAYS:
            import_listing(listings, day, SAMPLES / STOCK_INDEX_SAMPLE)
        defs = dg.Definitions(assets=ALL_ASSETS, resources=platform_resources(target))
        # The dashboard asks Athena (this target has no workgroup): tested in test_dashboard*.py.
        no_dashboard = dg.AssetSelection.all() - dg.AssetSelection.assets("dashboard")
        instance = dg.DagsterInstance.ephemeral()
        runs = materialize_days(defs, DAYS, instance=instance, selection=no_dashboard, quiet=True)
    assert [r.success for r in runs] == [True, True]
    return Built(target, runs, instance)


@pytest.fixture
def lake_copy(built, moto_server) -> AwsTarget:
    return copy_lake(built.target, moto_server)


# ---------------------------------------------------------------------------------------- Glue sync


def test_one_external_parquet_table_per_lake_table_and_no_raw_captures(built):
    target = built.target
    glue = client(target, "glue")
    assert glue.get_database(Name=target.database)["Database"]["Name"] == target.database
    names = [t["Name"] for t in glue.get_tables(DatabaseName=target.database)["TableList"]]
    assert sorted(names) == sorted([*TABLES, COVERAGE.name])  # the layers' tables, and coverage
    assert RAW_CAPTURES.name not in names and RAW_CAPTURES.name in CATALOG_TABLES
    catalog = glue_catalog(target)  # what athena_tables asks before syncing and checking
    assert [t.name for t in CATALOG_TABLES.values() if catalog.covers(t)] == [*TABLES, COVERAGE.name]

    for table_def in TABLES.values():
        table = glue_table(target, table_def.name)
        descriptor = table["StorageDescriptor"]
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["Description"] == table_def.description
        assert table["Parameters"]["classification"] == "parquet"
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == SERDE
        assert (descriptor["InputFormat"], descriptor["OutputFormat"]) == (INPUT_FORMAT, OUTPUT_FORMAT)
        comments = {c["Name"]: c["Comment"] for c in descriptor["Columns"]}
        assert comments == {f.name: f.metadata[b"description"].decode() for f in table_def.schema}


def test_glue_columns_are_the_parquet_files_schemas_and_date_is_a_date_partition_key(built):
    target = built.target
    catalog = glue_catalog(target)
    filesystem = storage(target).arrow_filesystem()
    for table_def in DAY_TABLES.values():
        table = glue_table(target, table_def.name)
        columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
        dates = parquet_dates(target, table_def)
        assert dates, table_def.name
        for day in dates:
            schema = file_schema(target, f"{table_def.location}date={day}/data.parquet", filesystem)
            assert columns == [(f.name, sql_type(f.type)) for f in schema], (table_def.name, day)
        assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("date", "date")]
        assert "date" not in dict(columns)  # the folder, not a file column
        assert catalog.describe(table_def.name) == [*columns, ("date", "date")]
    types = dict(catalog.describe("silver_assets"))
    assert (types["weight"], types["theoretical_quantity"], types["row_number"]) == (
        "decimal(7,3)",
        "bigint",
        "int",
    )
    assert dict(catalog.describe("silver_header"))["fetched_at"] == "timestamp"


def test_locations_are_the_s3_folders_that_hold_data_parquet(built):
    target = built.target
    s3 = client(target, "s3")
    for table_def in ANNOUNCED_TABLES:  # registered, no partitions: the samples hold no announcements
        assert glue_table(target, table_def.name)["StorageDescriptor"]["Location"].endswith(
            table_def.location
        )
        assert glue_partitions(target, table_def.name) == {}
    for table_def in DAY_TABLES.values():
        table = glue_table(target, table_def.name)
        base = f"s3://{target.bucket}/{target.prefix}/{table_def.location}"
        assert table["StorageDescriptor"]["Location"] == base
        partitions = glue_partitions(target, table_def.name)
        assert sorted(partitions) == parquet_dates(target, table_def) == [d.isoformat() for d in DAYS]
        for value, partition in partitions.items():
            location = partition["StorageDescriptor"]["Location"]
            assert location == f"{base}date={value}/"
            assert partition["StorageDescriptor"]["Columns"] == table["StorageDescriptor"]["Columns"]
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
            assert [o["Key"].removeprefix(prefix) for o in listed] == ["data.parquet"]


def test_sync_again_registers_nothing_new(built, calls):
    target = built.target
    before = {n: (glue_table(target, n), glue_partitions(target, n)) for n in TABLES}

    registered = sync(target)

    assert set(operations(calls)) == {"GetDatabase", "GetTable", "GetPartitions"}  # reads only
    assert {n: (glue_table(target, n), glue_partitions(target, n)) for n in TABLES} == before
    assert registered == [
        RegisteredTable(n, None, 2, *DAYS)
        if n in DAY_TABLES or n == "index_members"  # the fixture files the listing on both days
        else RegisteredTable(n, None, 0, None, None)
        for n in TABLES
    ]


def publish(target, s3, layer: str, day: dt.date) -> None:
    """Publish a date of a layer as its writer does: with the layer's manifest for that date (a
    copy of an existing one: only its presence counts)."""
    s3.copy_object(
        Bucket=target.bucket,
        Key=f"{target.prefix}/{manifest_key(layer, day)}",
        CopySource={"Bucket": target.bucket, "Key": f"{target.prefix}/{manifest_key(layer, DAYS[0])}"},
    )


def test_a_new_date_adds_one_partition_and_a_deleted_file_removes_its_partition(lake_copy, calls):
    target, s3, catalog = lake_copy, client(lake_copy, "s3"), glue_catalog(lake_copy)
    sync(target, catalog=catalog)
    location = f"{target.prefix}/{SILVER_ASSETS.location}"
    s3.copy_object(
        Bucket=target.bucket,
        Key=f"{location}date={NEW_DAY}/data.parquet",
        CopySource={"Bucket": target.bucket, "Key": f"{location}date={DAYS[1]}/data.parquet"},
    )
    publish(target, s3, "silver", NEW_DAY)
    calls.clear()

    by_name = {t.name: t for t in sync(target, catalog=catalog)}
    (created,) = [c for c in calls if c.operation == "BatchCreatePartition"]
    assert created.params["TableName"] == "silver_assets"
    assert [p["Values"] for p in created.params["PartitionInputList"]] == [[NEW_DAY.isoformat()]]
    writes = {"CreateTable", "UpdateTable", "BatchUpdatePartition", "BatchDeletePartition"}
    assert not writes & set(operations(calls))
    assert sorted(glue_partitions(target, "silver_assets")) == [d.isoformat() for d in (*DAYS, NEW_DAY)]
    assert by_name["silver_assets"] == RegisteredTable("silver_assets", None, 3, DAYS[0], NEW_DAY)
    assert len(glue_partitions(target, "silver_header")) == 2

    # The file of a date is deleted: its partition goes, so Athena stops answering for that date.
    s3.delete_object(Bucket=target.bucket, Key=f"{location}date={DAYS[0]}/data.parquet")
    calls.clear()
    by_name = {t.name: t for t in sync(target, catalog=catalog)}
    (deleted,) = [c for c in calls if c.operation == "BatchDeletePartition"]
    assert deleted.params["PartitionsToDelete"] == [{"Values": [DAYS[0].isoformat()]}]
    assert sorted(glue_partitions(target, "silver_assets")) == [DAYS[1].isoformat(), NEW_DAY.isoformat()]
    assert by_name["silver_assets"] == RegisteredTable("silver_assets", None, 2, DAYS[1], NEW_DAY)
    assert sorted(glue_partitions(target, "gold_changes")) == [d.isoformat() for d in DAYS]  # untouched


def test_many_dates_are_registered_and_removed_within_glues_batch_limits(lake_copy, calls):
    target, s3, catalog = lake_copy, client(lake_copy, "s3"), glue_catalog(lake_copy)
    location = f"{target.prefix}/{SILVER_ASSETS.location}"
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(130)]
    for day in days:
        s3.copy_object(
            Bucket=target.bucket,
            Key=f"{location}date={day}/data.parquet",
            CopySource={"Bucket": target.bucket, "Key": f"{location}date={DAYS[0]}/data.parquet"},
        )
        publish(target, s3, "silver", day)
    only = {"silver_assets": SILVER_ASSETS}
    assert sync(target, only, catalog)[0].dates == 132
    sizes = [len(c.params["PartitionInputList"]) for c in calls if c.operation == "BatchCreatePartition"]
    assert sizes == [100, 32]  # Glue takes at most 100 per BatchCreatePartition
    assert len(glue_partitions(target, "silver_assets")) == 132

    s3.delete_objects(
        Bucket=target.bucket,
        Delete={"Objects": [{"Key": f"{location}date={day}/data.parquet"} for day in days[:60]]},
    )
    calls.clear()
    assert sync(target, only, catalog)[0].dates == 72
    sizes = [len(c.params["PartitionsToDelete"]) for c in calls if c.operation == "BatchDeletePartition"]
    assert sizes == [25, 25, 10]  # and at most 25 per BatchDeletePartition
    assert sorted(glue_partitions(target, "silver_assets")) == sorted(
        [d.isoformat() for d in days[60:]] + [d.isoformat() for d in DAYS]
    )


def test_a_changed_schema_updates_the_table_and_its_partitions(lake_copy, calls):
    target, glue, catalog = lake_copy, client(lake_copy, "glue"), glue_catalog(lake_copy)
    sync(target, catalog=catalog)

    def versions() -> int:
        return len(
            glue.get_table_versions(DatabaseName=target.database, TableName="silver_assets")["TableVersions"]
        )

    assert versions() == 1
    comment = pa.field("comment", pa.string(), metadata={"description": "A note added later"})
    evolved = dataclasses.replace(SILVER_ASSETS, schema=SILVER_ASSETS.schema.append(comment))
    calls.clear()
    sync(target, {"silver_assets": evolved}, catalog)

    assert operations(calls).count("UpdateTable") == 1 and "CreateTable" not in operations(calls)
    assert versions() == 2
    table = glue_table(target, "silver_assets")
    assert table["StorageDescriptor"]["Columns"][-1] == {
        "Name": "comment",
        "Type": "string",
        "Comment": "A note added later",
    }
    # The partitions follow, so Athena never meets a partition schema that disagrees with the table.
    (updated,) = [c for c in calls if c.operation == "BatchUpdatePartition"]
    assert [e["PartitionValueList"] for e in updated.params["Entries"]] == [[d.isoformat()] for d in DAYS]
    for partition in glue_partitions(target, "silver_assets").values():
        assert partition["StorageDescriptor"]["Columns"] == table["StorageDescriptor"]["Columns"]
    assert catalog.describe("silver_assets")[-2:] == [("comment", "string"), ("date", "date")]

    calls.clear()
    sync(target, {"silver_assets": evolved}, catalog)
    assert not {"UpdateTable", "BatchUpdatePartition"} & set(operations(calls)) and versions() == 2

    # A table edited by hand in Glue (a column retyped) is put back as declared by the next sync.
    kept = ("Name", "Description", "TableType", "Parameters", "PartitionKeys", "StorageDescriptor")
    edited = {k: v for k, v in glue_table(target, "gold_changes").items() if k in kept}
    (weight,) = [c for c in edited["StorageDescriptor"]["Columns"] if c["Name"] == "weight"]
    weight["Type"] = "double"
    glue.update_table(DatabaseName=target.database, TableInput=edited)
    assert dict(catalog.describe("gold_changes"))["weight"] == "double"
    sync(target, catalog=catalog)
    assert dict(catalog.describe("gold_changes"))["weight"] == "decimal(7,3)"


def test_the_catalog_asset_registers_every_parquet_table_on_glue_and_its_check_passes(built):
    recorded = recorded_run(built.instance, built.runs[-1].run_id)
    evaluation = recorded.evaluation
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["problems"].value == "none"
    (mat,) = recorded.materializations
    metadata = {k: v.value for k, v in mat.metadata.items()}
    target = built.target
    assert metadata["catalog"] == (
        f"glue://{target.database} (Athena workgroup {target.workgroup}, region {REGION}, "
        f"endpoint {target.endpoint})"
    )
    assert metadata["tables"] == len(TABLES) + 1  # and coverage
    assert not [k for k in metadata if k.startswith("rows_")]  # Glue counts no rows: none reported
    assert (metadata["dates"], metadata["last_date"]) == (2, "2025-07-02")


def test_coverage_is_an_unpartitioned_glue_table_over_the_file_the_catalog_asset_wrote(built):
    target = built.target
    table = glue_table(target, COVERAGE.name)
    assert table["PartitionKeys"] == [] and glue_partitions(target, COVERAGE.name) == {}
    descriptor = table["StorageDescriptor"]
    assert descriptor["Location"] == f"s3://{target.bucket}/{target.prefix}/catalog/coverage/"
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        ("index", "string"),
        ("date", "date"),
        ("status", "string"),
        ("expected", "boolean"),
    ]
    # All Athena reads there: a file per year, from the first capture's to today's.
    years = range(DAYS[0].year, today_sao_paulo().year + 1)
    files = [f"catalog/coverage/{year_file(y)}" for y in years]
    assert keys(target, COVERAGE.location) == files
    rows = []
    for year, key in zip(years, files):
        written = pq.read_table(pa.BufferReader(storage(target).read_bytes(key)))
        assert written.schema.equals(COVERAGE.schema, check_metadata=False)
        assert {r["date"].year for r in written.to_pylist()} == {year}  # that year's rows only
        rows += written.to_pylist()
    # IBOV (configured, so expected) from its first capture to today: the two samples captured.
    assert {r["index"] for r in rows} == {"IBOV"} and all(r["expected"] for r in rows)
    assert [r["date"] for r in rows if r["status"] == "captured"] == list(DAYS)
    assert rows[0]["date"] == DAYS[0] and len(rows) > len(DAYS)
    assert glue_catalog(target).describe(COVERAGE.name) == [
        (c["Name"], c["Type"]) for c in descriptor["Columns"]
    ]


def test_the_check_on_glue_names_a_file_that_differs_from_the_declared_schema(lake_copy):
    target = lake_copy
    key = f"{SILVER_ASSETS.location}date={DAYS[1]}/data.parquet"
    lake = storage(target)
    table = pq.read_table(pa.BufferReader(lake.read_bytes(key))).drop_columns(["sector"])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    lake.write_bytes(key, sink.getvalue().to_pybytes())

    resources = platform_resources(target)
    result = dg.materialize(
        [athena_tables],
        resources={
            **lake_resources(resources["lake"]),
            "catalog": resources["catalog"],
            "b3": resources["b3"],
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    evaluation = check_evaluation(result)
    assert not evaluation.passed
    # Glue's columns come from the declaration, so only the file check can see it.
    assert evaluation.description == f"{key}: missing sector"


def test_glue_errors_are_catalog_errors_naming_the_database_and_table(built, monkeypatch):
    target = built.target
    catalog = glue_catalog(target)
    with pytest.raises(CatalogError) as caught:
        catalog.describe("no_such_table")
    message = str(caught.value)
    assert message.startswith(f"Glue GetTable on table {target.database}.no_such_table: not found")
    assert "materialize athena_tables" in message

    def denied(self, database_name, table_name):
        raise JsonRESTError(
            "AccessDeniedException", f"not authorized to perform glue:GetTable on {table_name}"
        )

    with monkeypatch.context() as patched, pytest.raises(CatalogError) as caught:
        patched.setattr(GlueBackend, "get_table", denied)  # moto checks no IAM policy by itself
        sync(target)
    assert str(caught.value) == (
        f"Glue GetTable on table {target.database}.bronze_portfolio: access denied; the credentials in "
        "use lack the permission (the pipeline's IAM policy is in infra/b3_platform.yaml)"
    )

    unreachable = glue_catalog(target, endpoint_url=UNREACHABLE, max_attempts=1)
    with pytest.raises(CatalogError) as caught:
        unreachable.sync(storage(target), list(TABLES.values()))
    message = str(caught.value)
    assert message.startswith(
        f"cannot reach Glue for database {target.database} (region {REGION}, endpoint {UNREACHABLE}): "
    )
    assert "Could not connect to the endpoint URL" in message


# ------------------------------------------------------------------------------------------- Athena


@pytest.fixture
def target(moto_server) -> AwsTarget:
    """As conftest's aws_target (its own bucket, database and workgroup names), on the tests' client."""
    target = AwsTarget.create(moto_server, make_bucket=False)
    client(target, "s3").create_bucket(Bucket=target.bucket)
    return target


@pytest.fixture
def athena(target) -> Iterator[AwsTarget]:
    """The target with its workgroup; moto's preset results and state transitions reset after."""
    client(target, "athena").create_work_group(Name=target.workgroup)
    yield target
    athena_backends[ACCOUNT][REGION].query_results_queue.clear()
    moto_api(target, "state-manager/unset-transition", {"model_name": "athena::execution"})


def moto_api(target: AwsTarget, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{target.endpoint}/moto-api/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


def preset_results(target: AwsTarget, columns: list[dict], rows: list[list[str | None]]) -> None:
    """What moto answers the next query: a header row of labels, then `rows` (None = SQL NULL)."""
    header = {"Data": [{"VarCharValue": c["Name"]} for c in columns]}
    data = [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows]
    result = {"rows": [header, *data], "column_info": columns}
    moto_api(
        target, "static/athena/query-results", {"account_id": ACCOUNT, "region": REGION, "results": [result]}
    )


def executions(target: AwsTarget) -> list[dict]:
    athena = client(target, "athena")
    ids = athena.list_query_executions(WorkGroup=target.workgroup)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


@pytest.fixture
def steer(monkeypatch):
    """Make new executions end in `state`, with Athena's `reason` (moto's own all succeed, unexplained)."""

    def outcome(state: str, reason: str | None = None) -> None:
        original_init = Execution.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self._transitions = [("QUEUED", "RUNNING"), ("RUNNING", state)]
            self.state_change_reason = reason

        original_get = AthenaResponse.get_query_execution

        def get_query_execution(self):
            body = json.loads(original_get(self))
            execution = self.athena_backend.executions[body["QueryExecution"]["QueryExecutionId"]]
            if getattr(execution, "state_change_reason", None):
                body["QueryExecution"]["Status"]["StateChangeReason"] = execution.state_change_reason
            return json.dumps(body)

        monkeypatch.setattr(Execution, "__init__", init)
        monkeypatch.setattr(AthenaResponse, "get_query_execution", get_query_execution)

    return outcome


def test_a_query_sends_the_sql_database_workgroup_and_output_location(athena):
    sql = "SELECT ticker, weight FROM silver_assets WHERE \"date\" = DATE '2025-07-02'"
    result = glue_catalog(athena).query(sql)

    (execution,) = executions(athena)
    assert execution["Query"] == sql
    assert execution["QueryExecutionContext"] == {"Database": athena.database}
    assert execution["WorkGroup"] == athena.workgroup
    # moto appends "<query id>.csv" to the location it was given.
    output = execution["ResultConfiguration"]["OutputLocation"]
    assert output == f"{athena.output_location}{execution['QueryExecutionId']}.csv"
    assert result == QueryResult([], [], [])  # moto runs no SQL: no rows unless preset


COLUMNS = [
    {"Name": "ticker", "Type": "varchar"},
    {"Name": "weight", "Type": "decimal", "Precision": 7, "Scale": 3},
    {"Name": "quantity", "Type": "bigint"},
    {"Name": "row_number", "Type": "integer"},
    {"Name": "share", "Type": "double"},
    {"Name": "has_sector", "Type": "boolean"},
    {"Name": "date", "Type": "date"},
    {"Name": "fetched_at", "Type": "timestamp"},
    {"Name": "seen_at", "Type": "timestamp with time zone"},
    {"Name": "tags", "Type": "array"},
]


def test_results_are_typed_by_athenas_column_types_and_nulls_stay_null(athena):
    preset_results(
        athena,
        COLUMNS,
        [
            [
                "PETR4",
                "6.509",
                "4566445852",
                "12",
                "0.25",
                "true",
                "2025-07-02",
                "2025-07-02 12:00:01.500",
                "2025-07-02 12:00:01.000 UTC",
                "[a, b]",
            ],
            [
                "NATU3",
                None,
                None,
                None,
                None,
                "false",
                None,
                None,
                "2025-07-02 09:00:01.000 America/Sao_Paulo",
                None,
            ],
            ["", "0.000", "0", "-1", "NaN", None, "2024-02-29", "2024-02-29 00:00:00.000", None, "[]"],
        ],
    )
    result = glue_catalog(athena).query("SELECT * FROM anything")
    assert result.columns == [c["Name"] for c in COLUMNS]
    assert result.types == [
        "varchar",
        "decimal(7,3)",
        "bigint",
        "integer",
        "double",
        "boolean",
        "date",
        "timestamp",
        "timestamp with time zone",
        "array",
    ]
    first, second, third = result.rows
    assert first == (
        "PETR4",
        Decimal("6.509"),
        4566445852,
        12,
        0.25,
        True,
        dt.date(2025, 7, 2),
        dt.datetime(2025, 7, 2, 12, 0, 1, 500000),
        dt.datetime(2025, 7, 2, 12, 0, 1, tzinfo=dt.timezone.utc),
        "[a, b]",
    )
    assert second[:2] == ("NATU3", None) and second[2:5] == (None, None, None) and second[5] is False
    assert second[8].utcoffset() == dt.timedelta(hours=-3)  # a zone name becomes that zone
    assert third[0] == "" and third[1] == Decimal("0.000") and third[4] != third[4]  # '' is not NULL; NaN
    assert third[5] is None and third[6] == dt.date(2024, 2, 29)
    assert str(first[1]) == "6.509"  # Decimal keeps B3's digits


def test_results_on_several_pages_skip_only_the_first_pages_header(athena, monkeypatch, calls):
    """moto answers in one page; here it pages by 2 rows so the client has to follow NextToken."""
    original = AthenaResponse.get_query_results

    def paged(self):
        body = json.loads(original(self))
        start = int(self._get_param("NextToken") or 0)
        rows = body["ResultSet"]["Rows"]
        body["ResultSet"]["Rows"] = rows[start : start + 2]
        if start + 2 < len(rows):
            body["NextToken"] = str(start + 2)
        return json.dumps(body)

    monkeypatch.setattr(AthenaResponse, "get_query_results", paged)
    preset_results(athena, [{"Name": "n", "Type": "integer"}], [[str(i)] for i in range(5)])
    result = glue_catalog(athena).query("SELECT n FROM t")
    assert result.rows == [(i,) for i in range(5)]
    assert operations(calls, "athena").count("GetQueryResults") == 3


def test_a_query_is_polled_through_queued_and_running_until_it_succeeds(athena):
    # moto moves an execution one state on every second GetQueryExecution.
    moto_api(
        athena,
        "state-manager/set-transition",
        {"model_name": "athena::execution", "transition": {"progression": "manual", "times": 2}},
    )
    preset_results(athena, [{"Name": "x", "Type": "integer"}], [["1"]])
    states = []

    def seen(parsed, **_):
        states.append(parsed["QueryExecution"]["Status"]["State"])

    catalog = glue_catalog(athena, poll_interval_seconds=0.05)
    events = catalog._client("athena").meta.events  # the client the catalog uses (cached by aws.client)
    events.register("after-call.athena.GetQueryExecution", seen, unique_id=f"{LISTENER}-states")
    started = time.monotonic()
    try:
        result = catalog.query("SELECT 1 AS x")
    finally:
        events.unregister("after-call.athena.GetQueryExecution", unique_id=f"{LISTENER}-states")
    assert states == ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"]
    assert time.monotonic() - started >= 0.05 + 0.075 + 0.1125  # waited, longer each time
    assert result.rows == [(1,)]


def test_a_failed_query_is_a_query_error_with_athenas_reason(athena, steer):
    reason = "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.b3.nope' does not exist"
    steer("FAILED", reason)
    with pytest.raises(QueryError) as caught:
        glue_catalog(athena).query("SELECT * FROM nope")
    (execution,) = executions(athena)
    assert str(caught.value) == f"{reason} (Athena query {execution['QueryExecutionId']})"


def test_a_cancelled_query_is_a_query_error(athena, steer):
    steer("CANCELLED", "Query cancelled by user")
    with pytest.raises(QueryError) as caught:
        glue_catalog(athena).query("SELECT 1")
    (execution,) = executions(athena)
    assert (
        str(caught.value)
        == f"Athena query {execution['QueryExecutionId']} was cancelled: Query cancelled by user"
    )


def test_a_query_over_the_timeout_is_stopped_and_reported(athena, calls):
    moto_api(
        athena,
        "state-manager/set-transition",
        {"model_name": "athena::execution", "transition": {"progression": "manual", "times": 10**9}},
    )
    catalog = glue_catalog(athena, poll_interval_seconds=0.05, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(CatalogError) as caught:
        catalog.query("SELECT count(*) FROM silver_assets")
    waited = time.monotonic() - started
    (execution,) = executions(athena)
    query_id = execution["QueryExecutionId"]
    assert (
        str(caught.value) == f"Athena query {query_id} timed out after 0.3 s (still QUEUED) and was stopped"
    )
    assert 0.3 <= waited < 5
    (stop,) = [c for c in calls if c.operation == "StopQueryExecution"]
    assert stop.params == {"QueryExecutionId": query_id}
    assert execution["Status"]["State"] == "CANCELLED"


def test_sql_athena_refuses_before_running_it_is_a_query_error(athena, monkeypatch):
    """Athena parses the SQL in StartQueryExecution: a syntax error comes back as InvalidRequestException."""
    message = "line 1:1: mismatched input 'SELEC'. Expecting: 'ALTER', 'ANALYZE', 'CALL', <query>"

    def refuse(self):
        return self.error(message, 400)

    monkeypatch.setattr(AthenaResponse, "start_query_execution", refuse)
    with pytest.raises(QueryError) as caught:
        glue_catalog(athena).query("SELEC 1")
    assert str(caught.value) == message


def test_athena_that_cannot_be_reached_or_used_is_a_catalog_error(target):
    # No workgroup created: moto refuses the query as Athena does.
    with pytest.raises(CatalogError) as caught:
        glue_catalog(target).query("SELECT 1")
    assert str(caught.value) == (
        f"cannot start a query in Athena workgroup {target.workgroup!r} (region {REGION}, endpoint "
        f"{target.endpoint}): InvalidRequestException: WorkGroup does not exist"
    )
    unreachable = glue_catalog(target, endpoint_url=UNREACHABLE, max_attempts=1)
    with pytest.raises(CatalogError) as caught:
        unreachable.query("SELECT 1")
    message = str(caught.value)
    assert message.startswith(
        f"cannot reach Athena workgroup {target.workgroup!r} (region {REGION}, endpoint {UNREACHABLE}) to start a query: "
    )
    assert "Could not connect" in message


# ------------------------------------------------------------------ `python -m b3_platform query`


def test_cli_query_in_aws_mode_prints_athenas_results(athena, monkeypatch, capsys):
    for var, value in athena.env().items():
        monkeypatch.setenv(var, value)
    columns = [
        {"Name": "ticker", "Type": "varchar"},
        {"Name": "weight", "Type": "decimal", "Precision": 7, "Scale": 3},
        {"Name": "date", "Type": "date"},
    ]
    sql = 'SELECT ticker, weight, "date" FROM silver_assets ORDER BY weight DESC LIMIT 2'
    preset_results(athena, columns, [["PETR4", "6.509", "2025-07-02"], ["VALE3", "10.120", "2025-07-02"]])
    assert main(["query", sql, "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out, parse_float=Decimal) == [
        {"ticker": "PETR4", "weight": Decimal("6.509"), "date": "2025-07-02"},
        {"ticker": "VALE3", "weight": Decimal("10.120"), "date": "2025-07-02"},
    ]
    assert '"weight": 10.120' in out  # the digits Athena gave, not a float's

    preset_results(athena, columns, [["PETR4", "6.509", "2025-07-02"]])
    assert main(["query", sql]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ticker  weight  date",
        "------  ------  ----------",
        "PETR4    6.509  2025-07-02",
        "(1 row)",
    ]
    assert [e["Query"] for e in executions(athena)] == [sql, sql]

    monkeypatch.setenv("B3_PLATFORM_ATHENA_WORKGROUP", "no-such-workgroup")
    assert main(["query", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot start a query in Athena workgroup 'no-such-workgroup'")
    assert "Traceback" not in err
