"""The AWS mode as a user drives it, in subprocesses against the moto server: `python -m b3_platform
import` files into S3, `dagster asset materialize` builds every layer and the Glue catalog for a
range in one run, and `python -m b3_platform query` goes to Athena. Nothing but the environment
differs from the local commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_platform.lake.schemas import DAY_PORTFOLIO_TABLES as TABLES
from b3_platform_tests.conftest import REPO
from b3_platform_tests.moto_aws import CREDENTIALS, AwsTarget

DAGSTER = str(Path(sys.executable).with_name("dagster"))
DATES = ["2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03"]


@pytest.fixture(scope="module")
def target(moto_server) -> AwsTarget:
    target = AwsTarget.create(moto_server)
    target.client("athena").create_work_group(
        Name=target.workgroup,
        Configuration={"ResultConfiguration": {"OutputLocation": target.output_location}},
    )
    return target


@pytest.fixture(scope="module")
def env(target, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_", "AWS_"))}
    return {
        **clean,
        **CREDENTIALS,
        **target.env(),
        "DAGSTER_HOME": str(home),
        "B3_PLATFORM_INDICES": "IBOV",
        "B3_PLATFORM_B3_URL": "http://127.0.0.1:9/indexProxy/indexCall",  # past dates never call B3
    }


def run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def imported(env, target) -> subprocess.CompletedProcess:
    files = [f"demo_data/GetPortfolioDay/IBOV/{d}.json" for d in DATES]
    return run(env, sys.executable, "-m", "b3_platform", "import", *files)


def test_import_writes_raw_to_s3(imported, target):
    assert imported.returncode == 0, imported.stderr
    assert f"Importing into s3://{target.bucket}/{target.prefix}" in imported.stdout
    raw = [k for k in target.keys("raw/") if k.endswith(".meta.json")]
    assert sorted(k.split("/")[2] for k in raw) == [f"date={d}" for d in DATES]


def test_dagster_materializes_a_range_on_s3_and_registers_glue_in_one_run(imported, env, target):
    proc = run(
        env,
        DAGSTER,
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        "raw_portfolio*",
        "--partition-range",
        f"{DATES[0]}...{DATES[-1]}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("RUN_SUCCESS") == 1
    for table_def in TABLES.values():
        keys = target.keys(table_def.location)
        assert keys == [f"{table_def.location}date={d}/data.parquet" for d in DATES]
        body = target.client("s3").get_object(Bucket=target.bucket, Key=f"{target.prefix}/{keys[0]}")["Body"]
        assert pq.read_schema(pa.BufferReader(body.read())).equals(table_def.schema, check_metadata=False)
    glue = target.client("glue")
    names = {t["Name"] for t in glue.get_tables(DatabaseName=target.database)["TableList"]}
    assert set(TABLES) <= names
    partitions = glue.get_partitions(DatabaseName=target.database, TableName="silver_assets")["Partitions"]
    assert sorted(p["Values"][0] for p in partitions) == DATES


def test_query_runs_on_athena_in_the_workgroup(imported, env, target):
    sql = 'SELECT "date", count(*) AS n FROM silver_assets GROUP BY 1'
    athena = target.client("athena")
    # The materialization already sent the dashboard's queries (its page's and gold's picture's): only this one counts.
    earlier = set(athena.list_query_executions(WorkGroup=target.workgroup)["QueryExecutionIds"])
    proc = run(env, sys.executable, "-m", "b3_platform", "query", sql)
    assert proc.returncode == 0, proc.stderr
    assert "(0 rows)" in proc.stdout  # moto's Athena runs no SQL; the same query is proven on DuckDB
    ids = athena.list_query_executions(WorkGroup=target.workgroup)["QueryExecutionIds"]
    sent = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids if i not in earlier]
    assert [q["Query"] for q in sent] == [sql]
    assert sent[0]["QueryExecutionContext"]["Database"] == target.database
    assert sent[0]["ResultConfiguration"]["OutputLocation"].startswith(target.output_location)


def test_a_missing_setting_is_one_clear_line_not_a_traceback(env):
    broken = {k: v for k, v in env.items() if k != "B3_PLATFORM_S3_BUCKET"}
    proc = run(broken, sys.executable, "-m", "b3_platform", "query", "SELECT 1")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: B3_PLATFORM_S3_BUCKET is not set: the AWS mode needs the lake's S3 bucket"
    )
