"""A run plans each asset once on the local instance, and a failed run still marks its dates failed.

The pooled sqlite event log (b3_platform.sqlite_storage) has a run plan each asset with one event
naming its dates, instead of one event per asset and date, and on the run's failure writes the
per-date planned events of the dates it did not build, from which Dagster computes failed dates.
The same history is built on the repo's instance and on one with Dagster's own event log class
(the same dagster.yaml without its `event_log_storage` entry): a single-run range of bronze → gold
over 2025-07-07 … 2025-07-10 (07-09 has no capture: bronze's check fails on it, a warning), then a backfill of
2025-06-30 … 2025-07-03 that fails (07-02 was never captured, so raw_portfolio fails and nothing below
it runs). Every date's status must read the same on both, in the instance and in the UI.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from b3_platform.definitions import build_defs
from b3_platform.runs import archive_selection
from b3_platform_tests.conftest import dagster_home_and_lake
from b3_platform_tests.test_postgres_batching import (
    BUILT,
    CAPTURED,
    FAILED,
    JSON_DIR,
    LAYERS,
    PARTITION_STATUSES,
    expected_statuses,
    run_history,
)
from b3_platform_tests.test_webserver import graphql, running_webserver


@dataclass
class History:
    env: dict[str, str]
    home: Path
    range_run: str
    backfill_run: str


def build_history(base: Path, pooled: bool) -> History:
    env, home, _lake = dagster_home_and_lake(base, [JSON_DIR / f"{day}.json" for day in CAPTURED])
    if not pooled:
        config = yaml.safe_load((home / "dagster.yaml").read_text())
        config.pop("event_log_storage")
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert (type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage") == pooled
        range_run, backfill_run = run_history(build_defs(env), instance)
    return History(env, home, range_run, backfill_run)


@pytest.fixture(scope="module")
def histories(tmp_path_factory) -> dict[str, History]:
    return {
        "pooled": build_history(tmp_path_factory.mktemp("pooled"), pooled=True),
        "dagster's": build_history(tmp_path_factory.mktemp("stock"), pooled=False),
    }


def partition_statuses(history: History) -> dict[str, dict[str, str | None]]:
    graph = build_defs(history.env).resolve_asset_graph()
    keys = sorted({*BUILT, *FAILED, "2025-07-04"})
    statuses = {}
    with dg.DagsterInstance.from_config(str(history.home)) as instance:
        for name in [*LAYERS, "raw_portfolio"]:
            key = dg.AssetKey(name)
            found = instance.get_status_by_partition(key, keys, graph.get(key).partitions_def)
            statuses[name] = {day: (status.value if status else None) for day, status in found.items()}
    return statuses


def test_a_failed_backfill_marks_its_dates_failed_as_with_dagsters_class(histories):
    statuses = partition_statuses(histories["pooled"])
    assert statuses == partition_statuses(histories["dagster's"])
    assert statuses == expected_statuses()


def planned_in_run_logs(history: History) -> Counter:
    """(run, asset, date or the dates planned together) → planned events in each run's own log."""
    runs = {history.range_run: "range", history.backfill_run: "backfill"}
    counts = Counter()
    with dg.DagsterInstance.from_config(str(history.home)) as instance:
        for run_id, run in runs.items():
            records = instance.event_log_storage.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ).records
            for record in records:
                data = record.event_log_entry.dagster_event.event_specific_data
                dates = data.partition or tuple(data.partitions_subset.get_partition_keys())
                counts[(run, data.asset_key.to_user_string(), dates)] += 1
    return counts


def test_a_run_plans_each_asset_once_with_its_dates(histories):
    pooled = planned_in_run_logs(histories["pooled"])
    graph = build_defs().resolve_asset_graph()
    backfilled = [k for k in archive_selection(graph) if graph.get(dg.AssetKey(k)).is_partitioned]
    assert pooled == Counter(
        {
            **{("range", asset, tuple(BUILT)): 1 for asset in LAYERS},
            **{("backfill", asset, tuple(FAILED)): 1 for asset in backfilled},
        }
    )
    # Dagster's own class: one event per asset and date.
    stock = planned_in_run_logs(histories["dagster's"])
    assert sum(stock.values()) == len(LAYERS) * len(BUILT) + len(backfilled) * len(FAILED)


def test_the_ui_shows_the_failed_dates(histories):
    history = histories["pooled"]
    with running_webserver(["-m", "b3_platform.definitions"], history.env) as url:
        (node,) = graphql(url, PARTITION_STATUSES, path=["silver_assets"])["assetNodes"]
        ranges = node["assetPartitionStatuses"]["ranges"]
    shown = {(r["startKey"], r["endKey"]): r["status"] for r in ranges}
    assert shown == {(FAILED[0], FAILED[-1]): "FAILED", (BUILT[0], BUILT[-1]): "MATERIALIZED"}
