"""Which materialization a range run's per-date check evaluation names as its target.

CheckBook (b3_platform.assets.common) names, for each date, the partition's latest materialization:
Dagster counts an evaluation in the UI only when it targets that one. On the repo's pooled sqlite
event log it reads them from the index's columns (`latest_materialization_targets`) instead of
reading every materialization back whole (`fetch_materializations`); elsewhere it reads the
records. Both must name the same materialization: same storage id and run, the time to the
microsecond — after re-runs of part of the range, and after a wipe.
"""

import dagster as dg
import pytest

from b3_platform.assets.common import READS_MATERIALIZATION_TARGETS
from b3_platform.sqlite_storage import PooledSqliteEventLogStorage
from b3_platform_tests.test_sqlite_batch import TRADING_KEYS, booked
from b3_platform_tests.test_sqlite_storage import home_with, open_instance

BOOKED = dg.AssetKey("booked")


def run_range(instance: dg.DagsterInstance, first: str, last: str) -> str:
    result = (
        dg.Definitions(assets=[booked])
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=instance,
            raise_on_error=False,  # one date's blocking rule fails on purpose
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )
    )
    return result.run_id


def from_records(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, tuple]:
    """Each key's latest materialization as Dagster reads it back: (storage id, run id, time)."""
    latest: dict[str, tuple] = {}
    for record in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BOOKED, asset_partitions=keys), limit=100
    ).records:
        latest.setdefault(record.partition_key, (record.storage_id, record.run_id, record.timestamp))
    return latest


def targets_logged(instance: dg.DagsterInstance, run_id: str) -> dict[tuple[str, str], tuple]:
    """(check, date) → the target its per-date evaluation in `run_id` names."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if evaluation.partition is not None:
            target = evaluation.target_materialization_data
            found[(evaluation.check_name, evaluation.partition)] = (
                target.storage_id,
                target.run_id,
                target.timestamp,
            )
    return found


def same_target(a: tuple, b: tuple) -> bool:
    return a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-6


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "dagsters-own"])
def test_each_dates_evaluation_targets_its_latest_materialization(tmp_path, monkeypatch, pooled):
    """Three runs (the whole range, then its middle, then its last date): each run's evaluations
    target that run's own materializations, which are each date's latest when it ran; the pooled
    event log's reading from its columns is what the book used, and agrees with the records."""
    calls = []
    if pooled:
        original = PooledSqliteEventLogStorage.latest_materialization_targets

        def counted(self, asset_key, partitions):
            calls.append(list(partitions))
            return original(self, asset_key, partitions)

        monkeypatch.setattr(PooledSqliteEventLogStorage, "latest_materialization_targets", counted)
    with open_instance(home_with(tmp_path, "home", pooled=pooled)) as instance:
        storage = instance.event_log_storage
        assert getattr(storage, READS_MATERIALIZATION_TARGETS, False) is pooled
        ranges = [
            (TRADING_KEYS[0], TRADING_KEYS[-1]),
            (TRADING_KEYS[1], TRADING_KEYS[2]),
            (TRADING_KEYS[3],) * 2,
        ]
        for first, last in ranges:
            run_id = run_range(instance, first, last)
            keys = TRADING_KEYS[TRADING_KEYS.index(first) : TRADING_KEYS.index(last) + 1]
            latest = from_records(instance, keys)
            assert {run for _, run, _ in latest.values()} == {run_id}
            logged = targets_logged(instance, run_id)
            if len(keys) > 1:  # a one-date run's evaluation is Dagster's own (no per-date book)
                assert {date for _, date in logged} == set(keys)
                assert all(same_target(target, latest[date]) for (_, date), target in logged.items())
        latest = from_records(instance, TRADING_KEYS)
        # The dates' latest runs: the whole range's, the middle run's twice, the last date's own.
        runs = [latest[k][1] for k in TRADING_KEYS]
        assert runs[1] == runs[2] and len({runs[0], runs[1], runs[3]}) == 3
        if pooled:
            assert calls == [TRADING_KEYS, TRADING_KEYS[1:3]]  # one query per asset per range run
            read = storage.latest_materialization_targets(BOOKED, TRADING_KEYS)
            assert set(read) == set(latest)
            assert all(same_target((t.storage_id, t.run_id, t.timestamp), latest[k]) for k, t in read.items())
            assert storage.latest_materialization_targets(BOOKED, ["2025-07-11"]) == {}
            instance.wipe_assets([BOOKED])
            assert from_records(instance, TRADING_KEYS) == {}
            assert storage.latest_materialization_targets(BOOKED, TRADING_KEYS) == {}
