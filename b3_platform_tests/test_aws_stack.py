"""The pipeline against the resources of the deployed template (infra/b3_platform.yaml on the moto
server): nothing but the stack's `EnvironmentExports` output configures it. Real files uploaded into
the stack's landing prefix reach its queue, the landing sensor files them in raw, the layers and the
catalog build in the stack's bucket and Glue database, and a query goes to the stack's workgroup."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from b3_platform.definitions import build_defs

# The tables built from the day portfolios (index_members comes from GetStockIndex, not here).
from b3_platform.lake.schemas import PORTFOLIO_TABLES as TABLES
from b3_platform.runs import materialize_days
from b3_platform_tests.conftest import REPO
from b3_platform_tests.stack import client, deploy_stack, stack_environment
from b3_platform_tests.test_landing import run_sensor

DAYS = [dt.date(2025, 7, 7), dt.date(2025, 7, 8)]
CSV = "IBOV_2025-07-10.csv"


def test_the_pipeline_runs_on_the_stacks_resources(moto_server, monkeypatch):
    outputs = deploy_stack(moto_server)
    env = stack_environment(outputs, moto_server.endpoint)
    for var, value in {
        **env,
        "B3_PLATFORM_INDICES": "IBOV",
        "B3_PLATFORM_B3_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(var, value)
    defs = build_defs()
    bucket, landing = outputs["BucketName"], outputs["LandingPrefix"]
    assert defs.resources["lake"].root == f"s3://{bucket}/{outputs['LakePrefix']}"

    s3 = client(moto_server, "s3")
    for day in DAYS:
        body = (REPO / "demo_data" / "GetPortfolioDay" / "IBOV" / f"{day}.json").read_bytes()
        s3.put_object(Bucket=bucket, Key=f"{landing}IBOV/{day}.json", Body=body)
    s3.put_object(Bucket=bucket, Key=f"{landing}{CSV}", Body=(REPO / "demo_data" / "csv" / CSV).read_bytes())

    with dg.instance_for_test() as instance:
        data = run_sensor(instance, defs.resources)
        imported = sorted(e.partition for e in data.asset_events)
        assert imported == ["2025-07-07", "2025-07-08", "2025-07-10"]
        days = [dt.date.fromisoformat(d) for d in imported]
        runs = materialize_days(defs, days, instance=instance, quiet=True)
        assert [r.success for r in runs] == [True] * len(runs)

    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=outputs["LakePrefix"] + "/")["Contents"]
    ]
    assert not [k for k in keys if k.startswith(landing)], "landing is emptied once files are filed"
    for table_def in TABLES.values():
        for day in days:
            key = f"{outputs['LakePrefix']}/{table_def.location}date={day}/data.parquet"
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert pq.read_schema(pa.BufferReader(body)).equals(table_def.schema, check_metadata=False)
    glue = client(moto_server, "glue")
    for name in TABLES:
        table = glue.get_table(DatabaseName=outputs["GlueDatabase"], Name=name)["Table"]
        assert table["StorageDescriptor"]["Location"].startswith(f"s3://{bucket}/{outputs['LakePrefix']}/")
        partitions = glue.get_partitions(DatabaseName=outputs["GlueDatabase"], TableName=name)["Partitions"]
        assert sorted(p["Values"][0] for p in partitions) == imported

    result = defs.resources["catalog"].query("SELECT count(*) FROM silver_assets")
    assert result.rows == []  # moto's Athena runs no SQL; what was sent is read back below
    athena = client(moto_server, "athena")
    ids = athena.list_query_executions(WorkGroup=outputs["WorkGroup"])["QueryExecutionIds"]
    sent = athena.get_query_execution(QueryExecutionId=ids[-1])["QueryExecution"]
    assert sent["QueryExecutionContext"]["Database"] == outputs["GlueDatabase"]
    assert sent["ResultConfiguration"]["OutputLocation"].startswith(outputs["AthenaOutput"])
