"""Dagster's event batching (`DAGSTER_EVENT_BATCH_SIZE`, set by the PostgreSQL deployments) on a
real PostgreSQL server: what a user reads of a backfill is the same with it as without it.

With the variable > 0, Dagster 1.13 hands a range output's per-date materializations and a run's
planned events to the event log in batches, and dagster-postgres writes the materializations of a
batch in one INSERT (and updates the asset's latest materialization once, from the batch's last
event). The same history is built three times, each on its own database and lake: without batching,
with the deploy's batch size, and with a batch of 3 (a 4-date range then flushes mid-range). The
history: a single-run range of bronze → gold over 2025-07-07 … 2025-07-10 (07-09 is a trading day
without a capture: bronze's warnings fail on it), then a backfill of 2025-06-30 … 2025-07-03 that
fails (07-02 was never captured, so raw_portfolio fails and nothing below it runs).

Read back: every date's materialization and row count, every date's check result (also as the UI
shows it, over the webserver's GraphQL), the partition status Dagster computes (a failed run's dates
read FAILED), the planned events, and the same numbers with and without batching.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from b3_platform.definitions import build_defs
from b3_platform.lake.schemas import BRONZE_PORTFOLIO
from b3_platform.runs import archive_selection, materialize_days, range_tags
from b3_platform_tests.conftest import REPO, dagster_home_and_lake
from b3_platform_tests.postgres import PostgresServer
from b3_platform_tests.test_webserver import check_statuses, graphql, running_webserver

JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: 2025-07-02 and 2025-07-09 are trading days without a capture.
CAPTURED = ["2025-06-30", "2025-07-01", "2025-07-03", "2025-07-07", "2025-07-08", "2025-07-10"]
BUILT = ["2025-07-07", "2025-07-08", "2025-07-09", "2025-07-10"]
FAILED = ["2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03"]
LAYERS = [
    "bronze_portfolio", "silver_header", "silver_assets",
    "gold_composition", "gold_changes", "gold_index_summary", "gold_time_in_index",
]  # fmt: skip
#: The deploy's environment (deploy/compose.yaml): where the batch size of production is set.
DEPLOY_BATCH_SIZE = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["x-dagster-env"][
    "DAGSTER_EVENT_BATCH_SIZE"
]
VARIANTS = {"unbatched": None, "deploy": DEPLOY_BATCH_SIZE, "batch of 3": "3"}

PARTITION_STATUSES = """
query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetPartitionStatuses {
      ... on TimePartitionStatuses { ranges { startKey endKey status } }
    }
  }
}
"""


@dataclass
class History:
    server: PostgresServer
    env: dict[str, str]
    home: Path
    lake: Path
    database: str
    range_run: str
    backfill_run: str
    sessions: int  # connections the two runs opened to the database


@contextlib.contextmanager
def opened(env: dict[str, str], home: Path) -> Iterator[dg.DagsterInstance]:
    """The instance of `home` with the DAGSTER_/B3_PLATFORM_ variables of `env` (and only them)
    set while it is open: deploy/dagster.yaml reads its settings from the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
        for var, value in env.items():
            if var.startswith(("DAGSTER_", "B3_PLATFORM_")):
                patch.setenv(var, value)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance


def build_history(postgres_server, base: Path, batch: str | None) -> History:
    """The history of the module docstring on a fresh PostgreSQL database and lake, with
    DAGSTER_EVENT_BATCH_SIZE = `batch` (unset when None) while it runs."""
    env, home, lake = dagster_home_and_lake(base, [JSON_DIR / f"{day}.json" for day in CAPTURED])
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    database = postgres_server.create_database()
    env.update(postgres_server.env(database))
    if batch is not None:
        env["DAGSTER_EVENT_BATCH_SIZE"] = batch
    with opened(env, home) as instance:
        before = postgres_server.sessions(database)
        range_run, backfill_run = run_history(build_defs(env), instance)
    postgres_server.wait_for_no_client()
    sessions = postgres_server.sessions(database) - before - 1  # less the reading after
    return History(postgres_server, env, home, lake, database, range_run, backfill_run, sessions)


def run_history(defs: dg.Definitions, instance: dg.DagsterInstance) -> tuple[str, str]:
    """The two runs of the module docstring on `instance`: (the range run's id, the failed
    backfill's id)."""
    built = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in LAYERS],
        tags=range_tags(dt.date.fromisoformat(BUILT[0]), dt.date.fromisoformat(BUILT[-1])),
    )
    assert built.success
    (failed,) = materialize_days(
        defs,
        [dt.date.fromisoformat(day) for day in FAILED],
        instance=instance,
        selection=archive_selection(defs.resolve_asset_graph()),
        quiet=True,
    )
    assert not failed.success
    return built.run_id, failed.run_id


@pytest.fixture(scope="module")
def histories(postgres_server, tmp_path_factory) -> dict[str, History]:
    return {
        name: build_history(postgres_server, tmp_path_factory.mktemp(name.replace(" ", "-")), batch)
        for name, batch in VARIANTS.items()
    }


def materializations(history: History) -> dict[tuple[str, str], list[dict]]:
    """Each (asset, date)'s materializations as the instance returns them. In their metadata the
    lake's folder reads `<lake>` (the variants' lakes are different folders), and the capture ids,
    stamped with the time each lake imported its files, are left out."""
    lake = str(history.lake.resolve())
    found: dict[tuple[str, str], list[dict]] = {}
    with opened(history.env, history.home) as instance:
        for name in LAYERS:
            records = instance.fetch_materializations(dg.AssetKey(name), limit=100).records
            for record in records:
                metadata = {
                    label: value.value.replace(lake, "<lake>")
                    if isinstance(value.value, str)
                    else value.value
                    for label, value in record.asset_materialization.metadata.items()
                    if label != "capture_ids"
                }
                found.setdefault((name, record.partition_key), []).append(
                    {"run": record.run_id, "metadata": metadata}
                )
    return found


def test_the_deploy_batches_and_batching_takes_effect(histories):
    """The deploy's size writes a range output of a long backfill block in a few batches, and
    batching really changed how the events were written: the same history opened fewer connections
    (one INSERT per batch instead of two connections per materialization)."""
    assert int(DEPLOY_BATCH_SIZE) >= 100
    unbatched = histories["unbatched"].sessions
    assert histories["deploy"].sessions < unbatched - 30, {n: h.sessions for n, h in histories.items()}
    assert histories["batch of 3"].sessions < unbatched - 20
    assert histories["deploy"].sessions <= histories["batch of 3"].sessions


@pytest.mark.parametrize("variant", ["deploy", "batch of 3"])
def test_each_date_keeps_one_materialization_with_its_own_row_count(histories, variant):
    history = histories[variant]
    found = materializations(history)
    assert sorted(found) == sorted((name, day) for name in LAYERS for day in BUILT)
    for (name, day), records in found.items():
        assert [r["run"] for r in records] == [history.range_run], (name, day)
        metadata = records[0]["metadata"]
        if day == "2025-07-09":
            assert metadata["dagster/row_count"] == 0, name
            continue
        path = Path(metadata["dagster/uri"].replace("<lake>", str(history.lake.resolve())))
        assert metadata["dagster/row_count"] == pq.read_metadata(path).num_rows, (name, day)
        if name == "silver_assets":
            assert metadata["dagster/row_count"] > 50, day
    # The same metadata, date by date, as without batching (the run ids aside).
    unbatched = materializations(histories["unbatched"])
    labels = {key: sorted(records[0]["metadata"]) for key, records in found.items()}
    assert labels == {key: sorted(records[0]["metadata"]) for key, records in unbatched.items()}
    differing = [
        (key, label, value, unbatched[key][0]["metadata"].get(label))
        for key, records in found.items()
        for label, value in records[0]["metadata"].items()
        if unbatched[key][0]["metadata"].get(label) != value
    ]
    assert differing == []
    # The asset's latest materialization (written once per batch, from its last event) is 07-10's.
    with opened(history.env, history.home) as instance:
        for name in LAYERS:
            latest = instance.get_latest_materialization_event(dg.AssetKey(name))
            assert latest.dagster_event.partition == BUILT[-1], name


def check_results(history: History) -> Counter:
    """(asset, check, date, passed) of every per-date check evaluation, straight from PostgreSQL."""
    rows = history.server.query(
        history.database,
        "SELECT event FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION' AND run_id = %s",
        (history.range_run,),
    )
    results = Counter()
    for (body,) in rows:
        evaluation = dg.deserialize_value(body).dagster_event.asset_check_evaluation_data
        results[
            (
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                evaluation.partition,
                evaluation.passed,
            )
        ] += 1
    return results


@pytest.mark.parametrize("variant", ["deploy", "batch of 3"])
def test_each_date_keeps_its_own_check_result(histories, variant):
    """Every date's own evaluation of every check (and each check's run-level result, partition
    None, which fails when any date failed), as without batching."""
    results = check_results(histories[variant])
    assert results == check_results(histories["unbatched"])
    assert set(results.values()) == {1}  # one evaluation per check per date
    per_date = {key: n for key, n in results.items() if key[2] is not None}
    failed = {(asset, check, day) for asset, check, day, passed in per_date if not passed}
    assert failed == {(BRONZE_PORTFOLIO.name, "bronze_portfolio_rules", "2025-07-09")}
    assert {day for _asset, _check, day, _passed in per_date} == set(BUILT)
    checks = {(asset, check) for asset, check, _day, _passed in results}
    run_level = {(asset, check, passed) for asset, check, day, passed in results if day is None}
    assert {(asset, check) for asset, check, _passed in run_level} == checks
    assert {key for key in run_level if not key[2]} == {
        (BRONZE_PORTFOLIO.name, "bronze_portfolio_rules", False)
    }


def partition_statuses(history: History) -> dict[str, dict[str, str | None]]:
    """The status Dagster computes for each date of each asset the history touched."""
    graph = build_defs(history.env).resolve_asset_graph()
    keys = sorted({*BUILT, *FAILED, "2025-07-04"})
    statuses = {}
    with opened(history.env, history.home) as instance:
        for name in [*LAYERS, "raw_portfolio"]:
            key = dg.AssetKey(name)
            found = instance.get_status_by_partition(key, keys, graph.get(key).partitions_def)
            statuses[name] = {day: (status.value if status else None) for day, status in found.items()}
    return statuses


def expected_statuses() -> dict[str, dict[str, str | None]]:
    """Each date's status after the module docstring's history, whatever stored it."""
    return {
        **{
            name: {
                **dict.fromkeys(FAILED, "FAILED"),
                "2025-07-04": None,  # in neither run
                **dict.fromkeys(BUILT, "MATERIALIZED"),
            }
            for name in LAYERS
        },
        # the range run did not select raw
        "raw_portfolio": {**dict.fromkeys(FAILED, "FAILED"), **dict.fromkeys(["2025-07-04", *BUILT], None)},
    }


@pytest.mark.parametrize("variant", ["deploy", "batch of 3"])
def test_a_failed_backfill_still_marks_its_dates_failed(histories, variant):
    statuses = partition_statuses(histories[variant])
    assert statuses == partition_statuses(histories["unbatched"])
    assert statuses == expected_statuses()


def planned(history: History) -> Counter:
    """(run, event type, asset or check) → planned events, straight from PostgreSQL."""
    rows = history.server.query(
        history.database,
        "SELECT run_id, dagster_event_type, event FROM event_logs "
        "WHERE dagster_event_type IN ('ASSET_MATERIALIZATION_PLANNED', 'ASSET_CHECK_EVALUATION_PLANNED')",
    )
    runs = {history.range_run: "range", history.backfill_run: "backfill"}
    counts = Counter()
    for run_id, kind, body in rows:
        event = dg.deserialize_value(body).dagster_event
        if kind == "ASSET_MATERIALIZATION_PLANNED":
            data = event.event_specific_data
            subject = (event.asset_key.to_user_string(), data.partition)
        else:
            subject = (event.asset_check_planned_data.asset_check_key.name, None)
        counts[(runs[run_id], kind, *subject)] += 1
    return counts


@pytest.mark.parametrize("variant", ["deploy", "batch of 3"])
def test_every_date_is_planned(histories, variant):
    """Each run plans every (asset, date) of its selection, one event each, and its checks: what
    lets a failed run's dates read FAILED and the UI show a run's dates in progress."""
    counts = planned(histories[variant])
    assert counts == planned(histories["unbatched"])
    materializations_planned = {
        (run, asset, day) for run, kind, asset, day in counts if kind == "ASSET_MATERIALIZATION_PLANNED"
    }
    graph = build_defs().resolve_asset_graph()
    backfilled = [k for k in archive_selection(graph) if graph.get(dg.AssetKey(k)).is_partitioned]
    assert materializations_planned == {
        *(("range", asset, day) for asset in LAYERS for day in BUILT),
        *(("backfill", asset, day) for asset in backfilled for day in FAILED),
    }
    assert {n for (_run, kind, *_rest), n in counts.items() if kind == "ASSET_MATERIALIZATION_PLANNED"} == {1}
    checks_planned = {
        (run, check) for run, kind, check, _day in counts if kind == "ASSET_CHECK_EVALUATION_PLANNED"
    }
    assert ("range", "bronze_portfolio_rules") in checks_planned
    assert ("backfill", "bronze_portfolio_rules") in checks_planned


def test_the_ui_shows_each_dates_check_and_the_failed_dates(histories):
    """The webserver over the deploy's batched history: bronze's check reads Failed on 07-09 and
    Passed on the other built dates; the failed backfill's dates read FAILED."""
    history = histories["deploy"]
    with running_webserver(["-m", "b3_platform.definitions"], history.env) as url:
        bronze = check_statuses(url, BRONZE_PORTFOLIO.name)
        expected = {**dict.fromkeys(BUILT, "SUCCEEDED"), "2025-07-09": "FAILED"}
        assert {day: bronze["bronze_portfolio_rules"].get(day) for day in BUILT} == expected
        (node,) = graphql(url, PARTITION_STATUSES, path=["silver_assets"])["assetNodes"]
        ranges = node["assetPartitionStatuses"]["ranges"]
    shown = {(r["startKey"], r["endKey"]): r["status"] for r in ranges}
    assert shown == {(FAILED[0], FAILED[-1]): "FAILED", (BUILT[0], BUILT[-1]): "MATERIALIZED"}
