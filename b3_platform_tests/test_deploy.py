"""deploy/compose.yaml without Docker: its three Dagster commands (code server, webserver, daemon),
read from the file with their environment and started as local processes against the test
PostgreSQL server. A partition run and a backfill launched through the webserver's GraphQL API
(as the UI's Materialize dialog does) are queued, dequeued by the daemon, executed by the code
server and end in SUCCESS; their state is in PostgreSQL.

What this does not prove without Docker: that the image builds and the containers reach each other
by service name (here every host is 127.0.0.1), the volumes, the restart policies and the
PostgreSQL image's own setup.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from b3_platform.lake.schemas import SILVER_ASSETS
from b3_platform_tests.conftest import REPO, UNREACHABLE_B3_URL, dagster_home_and_lake, unused_port
from b3_platform_tests.postgres import PASSWORD
from b3_platform_tests.test_alerts import SlackStandIn

COMPOSE = REPO / "deploy" / "compose.yaml"
JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
DAYS = ["2025-07-07", "2025-07-08", "2025-07-10"]
STARTUP_SECONDS = 180
RUN_SECONDS = 300
#: Container-side values of the compose environment that are different on this machine: host
#: names of other services, paths inside the image, the database of this test.
MACHINE_SPECIFIC = {
    "DAGSTER_HOME",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_DB",
    "DAGSTER_CODE_SERVER_HOST",
    "B3_PLATFORM_DATA_DIR",
}
SLACK_TOKEN = "xoxb-deploy-test-token"
LAYERS = ["raw_portfolio", "bronze_portfolio", "silver_header", "silver_assets"]

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, variables: dict[str, str]):
    """Compose's variable interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`) on a
    command or an environment mapping."""
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if not isinstance(value, str):
        return str(value)

    def replace(match: re.Match) -> str:
        name, operator, argument = match.groups()
        current = variables.get(name)
        if operator in (":-", "-"):
            return current if current or (operator == "-" and current is not None) else argument
        if operator in (":?", "?") and not current:
            raise KeyError(f"compose requires {name}: {argument}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def graphql(url: str, query: str, **variables) -> dict:
    response = requests.post(url, json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


LOCATION = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
#: A run failure sensor starts from the runs that fail after its first tick.
SENSOR_TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { ... on Sensor { sensorState { ticks(limit: 1) { status } } } }
}
"""
RUN = "query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status tags { key value } } } }"
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
BACKFILL = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } } }
"""
BACKFILL_RUNS = """
query ($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) { ... on Runs { results { runId status } } }
}
"""


@pytest.fixture(scope="module")
def deployment(postgres_server, tmp_path_factory):
    """The compose file's code server, webserver and daemon, on this machine; ready once the code
    location is loaded and the daemon has ticked the run failure sensor."""
    compose = yaml.safe_load(COMPOSE.read_text())
    env, home, lake = dagster_home_and_lake(
        tmp_path_factory.mktemp("deploy"), [JSON_DIR / f"{d}.json" for d in DAYS]
    )
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    database = postgres_server.create_database()
    web_port, code_port = unused_port(), unused_port()
    slack = SlackStandIn()
    shell = {
        "DAGSTER_PG_PASSWORD": PASSWORD,
        "B3_PLATFORM_SLACK_TOKEN": SLACK_TOKEN,
        "B3_PLATFORM_SLACK_CHANNEL": "#b3-alerts",
        "B3_PLATFORM_UI_URL": "https://dagster.example.com",
        "DAGSTER_LISTEN_HOST": "127.0.0.1",
        "DAGSTER_WEBSERVER_PORT": str(web_port),
        "DAGSTER_CODE_SERVER_PORT": str(code_port),
    }
    here = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres_server.host,
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_DB": database,
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "B3_PLATFORM_DATA_DIR": str(lake),
    }
    processes: list[subprocess.Popen] = []
    logs = tmp_path_factory.mktemp("deploy-logs")
    try:
        for name in ("code", "webserver", "daemon"):
            service = compose["services"][name]
            environment = interpolate(service["environment"], shell)
            assert MACHINE_SPECIFIC <= set(environment), name
            assert (
                environment["DAGSTER_PG_USERNAME"] == "dagster"
                and environment["DAGSTER_PG_PASSWORD"] == PASSWORD
            )
            process_env = {**env, **environment, **here, "B3_PLATFORM_B3_URL": UNREACHABLE_B3_URL}
            # Where Slack's API is: the one alert setting a deployment never changes.
            process_env["B3_PLATFORM_SLACK_API_URL"] = slack.url
            # The image has the package's console scripts on PATH; here they are in this venv.
            process_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            command = interpolate(service["command"], shell)
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=process_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its children (run workers, gRPC) go with it
                )
            )
        url = f"http://127.0.0.1:{web_port}/graphql"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                entries = graphql(url, LOCATION)["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                    selector = {
                        "repositoryLocationName": "b3_platform",
                        "repositoryName": "__repository__",
                        "sensorName": "run_failure_alert",
                    }
                    sensor = graphql(url, SENSOR_TICKS, selector=selector)["sensorOrError"]
                    if sensor["sensorState"]["ticks"]:
                        break
            except (requests.ConnectionError, ValueError, KeyError, TypeError):
                pass
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                pytest.fail(f"the deployment did not come up: {tail(logs)}")
            time.sleep(1)
        yield url, lake, database, logs, slack
    finally:
        slack.close()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(logs.glob("*.log")))


def selection() -> list[dict]:
    return [{"path": [name]} for name in LAYERS]


def wait_for_run(url: str, run_id: str, logs: Path) -> str:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        status = graphql(url, RUN, id=run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    pytest.fail(f"run {run_id} still {status} after {RUN_SECONDS} s: {tail(logs)}")


def launch(url: str, day: str) -> str:
    params = {
        "selector": {
            "repositoryLocationName": "b3_platform",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": selection(),
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
    }
    launched = graphql(url, LAUNCH_RUN, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def test_a_partition_run_launched_through_graphql_succeeds(deployment, postgres_server):
    url, lake, database, logs, _slack = deployment
    run_id = launch(url, "2025-07-10")
    assert wait_for_run(url, run_id, logs) == "SUCCESS", tail(logs)
    assert (lake / SILVER_ASSETS.location / "date=2025-07-10" / "data.parquet").is_file()
    # Queued by the webserver, dequeued by the daemon: both wrote to PostgreSQL.
    rows = postgres_server.query(database, f"SELECT status FROM runs WHERE run_id = '{run_id}'")
    assert rows == [("SUCCESS",)]
    kinds = {
        kind
        for (kind,) in postgres_server.query(
            database, f"SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = '{run_id}'"
        )
    }
    assert {"PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_SUCCESS", "ASSET_MATERIALIZATION"} <= kinds


def test_a_backfill_launched_through_graphql_completes(deployment, postgres_server):
    url, lake, database, logs, _slack = deployment
    params = {"partitionNames": DAYS[:2], "assetSelection": selection(), "fromFailure": False}
    launched = graphql(url, LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        status = graphql(url, BACKFILL, id=backfill)["partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"backfill {backfill} still {status}: {tail(logs)}")
        time.sleep(1)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), tail(logs)
    runs = graphql(url, BACKFILL_RUNS, id=backfill)["runsOrError"]["results"]
    # BackfillPolicy.single_run: the two dates are one run.
    assert [r["status"] for r in runs] == ["SUCCESS"], runs
    for day in DAYS[:2]:
        assert (lake / SILVER_ASSETS.location / f"date={day}" / "data.parquet").is_file()
    assert postgres_server.query(database, f"SELECT status FROM bulk_actions WHERE key = '{backfill}'") == [
        (status,)
    ]
    # Written in batches (the compose environment's DAGSTER_EVENT_BATCH_SIZE), each date of each
    # asset still has its own materialization.
    materialized = postgres_server.query(
        database,
        "SELECT asset_key, partition, count(*) FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND run_id = %s GROUP BY 1, 2",
        (runs[0]["runId"],),
    )
    assert sorted(materialized) == sorted((f'["{name}"]', day, 1) for name in LAYERS for day in DAYS[:2])


def test_a_failed_run_is_posted_to_slack_by_the_daemons_sensor(deployment):
    """2025-07-09 has no capture: the run fails, and the daemon's run_failure_alert sensor posts
    it through the compose file's alert settings (the Slack API stood in for on 127.0.0.1)."""
    url, _lake, _database, logs, slack = deployment
    run_id = launch(url, "2025-07-09")
    assert wait_for_run(url, run_id, logs) == "FAILURE"
    deadline = time.monotonic() + 120  # the sensor ticks every 30 s
    while not any(run_id in r["body"]["text"] for r in slack.requests):
        if time.monotonic() > deadline:
            pytest.fail(f"no Slack message for run {run_id}: {slack.requests} {tail(logs)}")
        time.sleep(1)
    (posted,) = [r for r in slack.requests if run_id in r["body"]["text"]]
    assert posted["auth"] == f"Bearer {SLACK_TOKEN}" and posted["body"]["channel"] == "#b3-alerts"
    text = posted["body"]["text"]
    assert text.startswith("[b3_platform] run failed: __ASSET_JOB 2025-07-09\n")
    assert "nothing captured" in text
    assert f"Open: https://dagster.example.com/runs/{run_id}" in text
    assert SLACK_TOKEN not in text and SLACK_TOKEN not in tail(logs)


def test_the_image_holds_what_the_compose_file_and_the_stack_use():
    """Without Docker, the Dockerfile read as text: every file it copies exists and is in the build
    context (its .dockerignore lets exactly those through), and the workspace the compose commands
    name is copied where they run (WORKDIR)."""
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (.+) (\S+)$", dockerfile, flags=re.M)
    sources = {src for group, _dest in copies for src in group.split()}
    assert sources == {
        "pyproject.toml", "README.md", "b3_platform", "workspace.yaml", "deploy/dagster.yaml",
        "deploy/workspace.yaml", "deploy/aws/dagster.yaml",
    }  # fmt: skip
    assert all((REPO / src).exists() for src in sources)
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert allowed == sources
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", dockerfile, flags=re.M)
    assert ("deploy/workspace.yaml", "./deploy/workspace.yaml") in copies and workdir == "/opt/dagster/app"
    compose = yaml.safe_load(COMPOSE.read_text())
    for name in ("webserver", "daemon"):
        command = compose["services"][name]["command"]
        assert command[command.index("-w") + 1] == "deploy/workspace.yaml"
    assert "USER dagster" in dockerfile  # not root


def test_every_dagster_process_of_the_postgresql_deployment_batches_event_writes():
    """The compose services that run Dagster (all on the PostgreSQL instance) write a range run's
    per-date materializations in batches: DAGSTER_EVENT_BATCH_SIZE is set, as a whole number large
    enough for any backfill block's dates to be one batch per asset (benchmarks/README.md). The
    PostgreSQL server itself does not read it; the root dagster.yaml (sqlite, which has no batch
    write) is not selected by any of them."""
    compose = yaml.safe_load(COMPOSE.read_text())
    dagster_services = {
        name
        for name, service in compose["services"].items()
        if "DAGSTER_HOME" in service.get("environment", {})
    }
    assert dagster_services == {"code", "webserver", "daemon"}
    for name in dagster_services:
        environment = interpolate(compose["services"][name]["environment"], {"DAGSTER_PG_PASSWORD": "x"})
        assert int(environment["DAGSTER_EVENT_BATCH_SIZE"]) >= 100, name
        assert environment["DAGSTER_HOME"] == "/opt/dagster/home"
    # The image's instance there is deploy/dagster.yaml: PostgreSQL.
    assert (
        "COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml"
        in (REPO / "deploy" / "Dockerfile").read_text()
    )
    assert set(yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())["storage"]) == {"postgres"}
    assert "DAGSTER_EVENT_BATCH_SIZE" not in compose["services"]["postgres"]["environment"]
