"""What the UI shows of a landing sensor tick that imported one file and rejected others, read the
way the UI reads it: the real `dagster-webserver` on 127.0.0.1, asked over GraphQL.

Dagster 1.13 labels a runless sensor's tick "0 runs requested" whatever it did (it counts run
requests only), like an idle tick. So the tick itself carries what it did: its message (the skip
reason, shown on that tag and in the tick's details) names the files imported, with their index and
date, the files rejected, with why, and the dates reported to raw_portfolio; its logs ("View logs")
hold one line per file. The tick is made by one iteration of Dagster's own sensor daemon over the
same DAGSTER_HOME and code location the webserver serves."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from b3_platform_tests.conftest import REPO
from b3_platform_tests.test_webserver import running_webserver

SAMPLE = REPO / "demo_data" / "GetPortfolioDay" / "IBOV" / "2025-07-10.json"
LOCATION = "landing"
STARTUP_SECONDS = 120
TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        ticks(limit: 5) {
          status
          runIds
          skipReason
          logEvents { events { message level } }
        }
      }
    }
  }
}
"""


def put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def one_daemon_iteration(instance: dg.DagsterInstance, module: Path) -> None:
    """Dagster's sensor daemon, once, over the code location `module` (named LOCATION)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.sensor import execute_sensor_iteration

    origin = LoadableTargetOrigin(python_file=str(module), attribute="defs", working_directory=str(REPO))
    target = InProcessTestWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin, location_name=LOCATION))
    with create_test_daemon_workspace_context(target, instance) as workspace:
        list(execute_sensor_iteration(workspace, logging.getLogger("landing_tick_test"), None, None))


@pytest.fixture
def webserver(tmp_path):
    """A DAGSTER_HOME whose landing sensor ticked once over dropped files, and the webserver on it."""
    home, lake = tmp_path / "home", tmp_path / "lake"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    landing = lake / "landing"
    put(landing / "IBOV" / "2025-07-10.json", SAMPLE.read_bytes())
    put(landing / "notes.txt", b"not a portfolio")
    body = SAMPLE.read_bytes()
    put(landing / "IBOV" / "broken" / "2025-07-09.json", body[: len(body) // 2])
    module = tmp_path / "landing_location.py"
    # The project's assets and sensors over this lake; landing files are taken at once (test_landing).
    module.write_text(
        f"from b3_platform_tests.test_landing import landing_defs\ndefs = landing_defs({str(lake)!r})\n"
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {module}\n      attribute: defs\n"
        f"      working_directory: {REPO}\n      location_name: {LOCATION}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            one_daemon_iteration(instance, module)
    env = {
        k: v for k, v in __import__("os").environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))
    }
    env["DAGSTER_HOME"] = str(home)
    with running_webserver(["-w", str(workspace)], env, ready_query="{ version }") as url:
        yield url


def test_a_landing_tick_says_what_it_imported_and_rejected(webserver):
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "sensorName": "landing_sensor",
    }
    # The code location loads in the background: ask until it answers with the sensor.
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        body = requests.post(
            webserver, json={"query": TICKS, "variables": {"selector": selector}}, timeout=30
        ).json()
        if body.get("data", {}).get("sensorOrError", {}).get("__typename") == "Sensor":
            break
        assert time.monotonic() < deadline, body
        time.sleep(1)
    [tick] = body["data"]["sensorOrError"]["sensorState"]["ticks"]

    # What the tick row and its details show: no run requested, and the message saying what it did.
    assert (tick["status"], tick["runIds"]) == ("SKIPPED", [])
    message = tick["skipReason"]
    assert message.startswith(
        "3 landed file(s): 1 imported, 2 rejected. Imported: IBOV/2025-07-10.json → IBOV 2025-07-10. "
        "Rejected, moved to landing_rejected/: notes.txt (not a .json or .csv file (.txt)), "
        "IBOV/broken/2025-07-09.json (B3 response for IBOV: invalid or truncated JSON"
    ), message
    assert message.endswith(". Reported raw_portfolio 2025-07-10: the layers below follow"), message

    # "View logs": one line per file, as the sensor logged it.
    lines = [e["message"] for e in tick["logEvents"]["events"]]
    assert any(
        line.startswith("imported  ") and "2025-07-10.json  IBOV 2025-07-10" in line for line in lines
    ), lines
    assert sum(line.startswith("rejected  ") for line in lines) == 2, lines
