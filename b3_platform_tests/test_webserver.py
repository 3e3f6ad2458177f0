"""What the Dagster UI shows of a range stored by the lake IO manager, read the way the UI reads it:
the real `dagster-webserver` in a subprocess on 127.0.0.1, asked over its GraphQL endpoint.

A single-run range is one step per layer, yet every date gets its own materialization with its own
row count and file (the IO manager reports each written date back to the asset); a date without
input shows 0 rows and why; and the catalog asset shows the engine that runs it."""

import contextlib
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import requests

from b3_platform.definitions import build_defs
from b3_platform.lake.schemas import BRONZE_PORTFOLIO, GOLD_INDEX_SUMMARY, SILVER_ASSETS
from b3_platform.runs import range_tags
from b3_platform_tests.conftest import REPO, dagster_home_and_lake, unused_port

WEBSERVER = str(Path(sys.executable).with_name("dagster-webserver"))
JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: Trading days with a sample, around 2025-07-09 (a trading day without one).
DAYS = [dt.date(2025, 7, 7), dt.date(2025, 7, 8), dt.date(2025, 7, 10)]
FIRST, LAST = dt.date(2025, 7, 7), dt.date(2025, 7, 10)
STARTUP_SECONDS = 120

MATERIALIZATIONS = """
query ($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on PathMetadataEntry { path }
          ... on UrlMetadataEntry { url }
        }
      }
    }
  }
}
"""
KINDS = "{ assetNodes { assetKey { path } kinds } }"


@contextlib.contextmanager
def running_webserver(target: list[str], env: dict[str, str], ready_query: str = KINDS) -> Iterator[str]:
    """The real `dagster-webserver` on a free 127.0.0.1 port, loading `target` (`-m module` or
    `-w workspace.yaml`) with `env`; yields its GraphQL URL once `ready_query` answers with data,
    and stops it afterwards. Fails the test with the server's own error if it never comes up."""
    port = unused_port()
    server = subprocess.Popen(
        [WEBSERVER, *target, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            try:
                data = requests.post(url, json={"query": ready_query}, timeout=10).json().get("data") or {}
                if any(data.values()):
                    break
            except (requests.ConnectionError, ValueError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"dagster-webserver did not come up: {server.stderr.read()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A DAGSTER_HOME holding one single-run range of bronze → gold, and the webserver on it."""
    env, home, lake = dagster_home_and_lake(
        tmp_path_factory.mktemp("ui"), [JSON_DIR / f"{d}.json" for d in DAYS]
    )
    defs = build_defs(env)
    # The repo's dagster.yaml names its folders by $DAGSTER_HOME, as it does for the webserver.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            job = defs.resolve_implicit_global_asset_job_def()
            graph = defs.resolve_asset_graph()
            layers = [
                k
                for k in graph.get_all_asset_keys()
                if k.path[0] not in ("raw_portfolio", "athena_tables", "dashboard")
            ]
            result = job.execute_in_process(
                instance=instance, asset_selection=layers, tags=range_tags(FIRST, LAST)
            )
            assert result.success
            run_id = result.run_id
    with running_webserver(["-m", "b3_platform.definitions"], env) as url:
        yield url, lake, run_id


def graphql(url: str, query: str, **variables) -> dict:
    response = requests.post(url, json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def metadata(materialization: dict) -> dict:
    values = {}
    for entry in materialization["metadataEntries"]:
        value = next((entry[k] for k in ("intValue", "text", "path", "url") if k in entry), None)
        values[entry["label"]] = value
    return values


def test_each_date_of_a_single_run_range_has_its_own_row_count_and_file(ui):
    url, lake, run_id = ui
    partitions = [d.isoformat() for d in [FIRST, dt.date(2025, 7, 8), dt.date(2025, 7, 9), LAST]]
    data = graphql(url, MATERIALIZATIONS, path=[SILVER_ASSETS.name], partitions=partitions)
    found = {m["partition"]: m for m in data["assetOrError"]["assetMaterializations"]}
    assert sorted(found) == partitions
    assert {m["runId"] for m in found.values()} == {run_id}  # one run for the range
    for day in DAYS:
        shown = metadata(found[day.isoformat()])
        path = lake / SILVER_ASSETS.location / f"date={day}" / "data.parquet"
        assert shown["dagster/row_count"] == pq.read_metadata(path).num_rows > 50
        assert shown["dagster/uri"] == str(path.resolve())
    assert metadata(found["2025-07-09"])["dagster/row_count"] == 0
    assert metadata(found["2025-07-09"])["status"] == "no bronze partition"

    bronze = graphql(url, MATERIALIZATIONS, path=[BRONZE_PORTFOLIO.name], partitions=["2025-07-09"])
    (gap,) = bronze["assetOrError"]["assetMaterializations"]
    assert metadata(gap)["status"] == "no raw capture"
    assert metadata(gap)["dagster/row_count"] == 0


def test_the_catalog_asset_shows_the_engine_that_runs_it(ui):
    url, _lake, _run = ui
    kinds = {"/".join(n["assetKey"]["path"]): set(n["kinds"]) for n in graphql(url, KINDS)["assetNodes"]}
    assert kinds["athena_tables"] == {"duckdb"}
    assert kinds["silver_assets"] == {"parquet"}


CHECK_STATUSES = """
query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization { status }
          partitionStatuses {
            ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
          }
        }
      }
    }
  }
}
"""


def check_statuses(url: str, asset: str) -> dict[str, dict[str, str]]:
    """Per check of `asset`, the status the UI shows for each date (its Partitions tab)."""
    (node,) = graphql(url, CHECK_STATUSES, path=[asset])["assetNodes"]
    shown: dict[str, dict[str, str]] = {}
    partitions = build_defs().resolve_asset_graph().get(dg.AssetKey(asset)).partitions_def
    for check in node["assetChecksOrError"]["checks"]:
        per_date: dict[str, str] = {}
        for r in check["partitionStatuses"]["ranges"]:
            for key in partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(r["startKey"], r["endKey"])
            ):
                per_date[key] = r["status"]
        shown[check["name"]] = per_date
    return shown


def test_after_a_range_run_every_date_shows_its_own_check_result(ui):
    """A single-run range records a result per date: the dates that passed read Passed (not
    "Skipped", as they did when only failing dates were recorded), a date that failed reads Failed
    — bronze's check (its warning rule raw_capture_present) on 2025-07-09, a trading day without a
    capture — and the checks whose rules had nothing to judge on that date read Skipped."""
    url, _lake, _run = ui
    built = [d.isoformat() for d in DAYS]
    gap = "2025-07-09"
    expected = {**dict.fromkeys(built, "SUCCEEDED"), gap: "SKIPPED"}
    for asset in (SILVER_ASSETS.name, "gold_composition", "gold_index_summary", "gold_time_in_index"):
        checks = check_statuses(url, asset)
        assert checks, asset
        for name, per_date in checks.items():
            assert {k: per_date.get(k) for k in expected} == expected, (asset, name)
    bronze = check_statuses(url, BRONZE_PORTFOLIO.name)
    assert set(bronze) == {"bronze_portfolio_rules"}  # one check for the asset's rules
    assert {k: bronze["bronze_portfolio_rules"].get(k) for k in expected} == {**expected, gap: "FAILED"}


CHECK_EXECUTIONS = """
query ($path: [String!]!, $check: String!, $partition: String) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, partition: $partition, limit: 10) {
    status
    partition
    evaluation {
      severity
      description
      metadataEntries { label ... on TextMetadataEntry { text } }
    }
  }
}
"""


def test_a_date_only_a_warning_rule_failed_reads_as_a_warning_and_blocks_nothing(ui):
    """Bronze's one check holds blocking and warning rules. On 2025-07-09 only its warning rule
    (raw_capture_present) failed: the UI gets that date's execution as failed with severity WARN
    (drawn as a warning, not an error) although the check is blocking, and the layers below were
    built for the other dates of the same run."""
    url, lake, _run = ui
    data = graphql(
        url,
        CHECK_EXECUTIONS,
        path=[BRONZE_PORTFOLIO.name],
        check="bronze_portfolio_rules",
        partition="2025-07-09",
    )
    (node,) = data["assetNodes"]
    assert node["assetChecksOrError"]["checks"] == [{"name": "bronze_portfolio_rules", "blocking": True}]
    (execution,) = data["assetCheckExecutions"]
    assert (execution["status"], execution["partition"]) == ("FAILED", "2025-07-09")
    evaluation = execution["evaluation"]
    assert evaluation["severity"] == "WARN"
    assert evaluation["description"] == "raw_capture_present: no raw capture"
    entries = {e["label"]: e.get("text") for e in evaluation["metadataEntries"]}
    assert entries["failed_rules"] == "raw_capture_present"
    assert entries["raw_capture_present"] == "failed: no raw capture"
    passed = graphql(
        url,
        CHECK_EXECUTIONS,
        path=[BRONZE_PORTFOLIO.name],
        check="bronze_portfolio_rules",
        partition="2025-07-10",
    )["assetCheckExecutions"]
    assert [e["status"] for e in passed] == ["SUCCEEDED"]
    # Not blocked: gold of the run's last date was built from that silver.
    assert (lake / GOLD_INDEX_SUMMARY.location / "date=2025-07-10" / "data.parquet").is_file()


ASSET_SCHEMA = """
query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    metadataEntries {
      label
      ... on TableSchemaMetadataEntry { schema { columns { name type } } }
    }
  }
}
"""


def test_a_tables_schema_is_shown_on_its_asset_not_repeated_per_date(ui):
    """The asset page shows the table's columns from its definition; no date's materialization
    carries a copy (it would be stored twice per date in the instance)."""
    url, _lake, _run = ui
    (node,) = graphql(url, ASSET_SCHEMA, path=[SILVER_ASSETS.name])["assetNodes"]
    (schema,) = [e["schema"] for e in node["metadataEntries"] if e["label"] == "dagster/column_schema"]
    assert [c["name"] for c in schema["columns"]] == SILVER_ASSETS.schema.names
    dates = [d.isoformat() for d in DAYS]
    data = graphql(url, MATERIALIZATIONS, path=[SILVER_ASSETS.name], partitions=dates)
    for materialization in data["assetOrError"]["assetMaterializations"]:
        assert "dagster/column_schema" not in metadata(materialization), materialization["partition"]
