"""The pooled event log's batch write (`PooledSqliteEventLogStorage.store_event_batch`), which Dagster
uses when DAGSTER_EVENT_BATCH_SIZE > 0 (the storage sets it when unset).

A real single-run range's events (planned materializations and checks naming their dates, each
date's materialization with its tags, each date's check evaluation, one of them failed, the
run-level check result and the run's own events) are stored again into fresh folders: one event at
a time, all in one batch, and in batches of three. Every table of the index and of the run's file
must hold the same rows, value for value (bodies read back as text, only the database's own
creation times left out). A batch that fails part-way must leave both files as they were, so that
Dagster's fallback (storing the same events one by one) writes each event once.
"""

import datetime as dt
import os
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events.log import EventLogEntry

from b3_platform import sqlite_storage
from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec
from b3_platform.sqlite_storage import PooledSqliteEventLogStorage, plain_body
from b3_platform_tests.test_sqlite_storage import home_with, open_instance

DAYS = dg.DailyPartitionsDefinition(start_date="2025-07-01")
KEYS = ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-04", "2025-07-05"]
FAILING = "2025-07-03"


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version="1",
    check_specs=[dg.AssetCheckSpec("quotes_rules", asset="quotes", partitions_def=DAYS)],
)
def quotes(context: dg.AssetExecutionContext):
    """Each date materialized, then each date's evaluation logged against it (as CheckBook does),
    then the run's result."""
    yield dg.MaterializeResult(
        metadata={"dates": len(context.partition_keys)}, data_version=dg.DataVersion("v1")
    )
    for key in context.partition_keys:
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("quotes"),
                check_name="quotes_rules",
                passed=key != FAILING,
                partition=key,
                severity=dg.AssetCheckSeverity.WARN,
            )
        )
    yield dg.AssetCheckResult(check_name="quotes_rules", passed=False, severity=dg.AssetCheckSeverity.WARN)


def run_range(instance: dg.DagsterInstance) -> str:
    job = dg.Definitions(assets=[quotes]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]},
    )
    assert result.success
    return result.run_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[str, list[EventLogEntry]]:
    """The run's id and every event of its log, in order."""
    with open_instance(home_with(tmp_path_factory.mktemp("recorded"), "home", pooled=True)) as instance:
        run_id = run_range(instance)
        return run_id, list(instance.all_logs(run_id))


# Columns the database fills in itself at insert time: they differ between any two writes.
_OWN_TIMES = {"create_timestamp", "update_timestamp", "migration_completed"}


def tables(db_file: Path) -> dict[str, list[tuple]]:
    """Every row of every table of one database file, bodies as text, in id order."""
    conn = sqlite3.connect(db_file)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = {}
        for name in sorted(names):
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({name})") if r[1] not in _OWN_TIMES]
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {listed} FROM "{name}" ORDER BY rowid').fetchall()
            out[name] = [tuple(plain_body(v) if isinstance(v, bytes) else v for v in row) for row in rows]
        return out
    finally:
        conn.close()


def stored(folder: Path, run_id: str, store) -> dict[str, dict[str, list[tuple]]]:
    """The index's and the run file's tables after `store(storage)` on a fresh storage in `folder`."""
    storage = PooledSqliteEventLogStorage(base_dir=str(folder))
    try:
        store(storage)
    finally:
        storage.dispose()
    return {"index": tables(folder / "index.db"), "run": tables(folder / f"{run_id}.db")}


def one_by_one(events):
    def store(storage):
        for event in events:
            storage.store_event(event)

    return store


def in_batches(events, size: int):
    def store(storage):
        for start in range(0, len(events), size):
            storage.store_event_batch(events[start : start + size])

    return store


def test_the_recorded_run_has_what_a_range_writes(recorded):
    """The events replayed below cover every kind the batch path handles."""
    _, events = recorded
    kinds = {e.dagster_event_type for e in events if e.is_dagster_event}
    for kind in (
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.DagsterEventType.RUN_SUCCESS,
    ):
        assert kind in kinds, kind
    materialized = [e for e in events if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]
    assert [e.dagster_event.partition for e in materialized] == KEYS


def test_a_batch_writes_the_rows_one_by_one_writes(recorded, tmp_path):
    run_id, events = recorded
    single = stored(tmp_path / "single", run_id, one_by_one(events))
    whole = stored(tmp_path / "whole", run_id, in_batches(events, len(events)))
    threes = stored(tmp_path / "threes", run_id, in_batches(events, 3))
    assert whole == single
    assert threes == single
    # What was compared is what a user reads of the range: a row per date everywhere.
    index = single["index"]
    checks = index["asset_check_executions"]
    assert sorted((row[3], row[5]) for row in checks if row[3] is not None) == sorted(
        (key, "FAILED" if key == FAILING else "SUCCEEDED") for key in KEYS
    )
    assert len(index["asset_event_tags"]) >= len(KEYS)
    assert [row[1] for row in index["asset_keys"]] == ['["quotes"]']
    assert len(single["run"]["event_logs"]) == len(events)


def test_the_instance_reads_a_batched_history_as_one_written_event_by_event(tmp_path, monkeypatch):
    """The same range run on two instances, with and without batching: what the instance reads back
    (dates, latest materialization, each date's check status) is the same."""
    seen = {}
    for name, batch in (("unbatched", "0"), ("batched", "1000")):
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch)
        with open_instance(home_with(tmp_path, name, pooled=True)) as instance:
            run_range(instance)
            key = dg.AssetKey("quotes")
            latest = instance.get_latest_materialization_event(key)
            summary = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(key, "quotes_rules"), limit=100
            )
            seen[name] = {
                "partitions": sorted(instance.get_materialized_partitions(key)),
                "latest": latest.dagster_event.partition,
                "checks": sorted((c.partition or "", c.status.value) for c in summary),
                "materializations": sorted(
                    r.partition_key for r in instance.fetch_materializations(key, limit=100).records
                ),
            }
    assert seen["batched"] == seen["unbatched"]
    assert seen["batched"]["latest"] == KEYS[-1]


class Boom(Exception):
    pass


def test_a_batch_that_fails_part_way_leaves_nothing_and_the_fallback_writes_each_event_once(
    recorded, tmp_path, monkeypatch
):
    """The index's share fails after writing all it would write: neither file keeps any of it, and
    Dagster's fallback (each event through `store_event`) ends where one-by-one storing ends."""
    run_id, events = recorded
    single = stored(tmp_path / "single", run_id, one_by_one(events))

    folder = tmp_path / "failing"
    storage = PooledSqliteEventLogStorage(base_dir=str(folder))
    try:
        storage.store_event(events[0])  # the files exist, with one event in them
        before = {"index": tables(folder / "index.db"), "run": tables(folder / f"{run_id}.db")}
        index_events = PooledSqliteEventLogStorage._index_events

        def fails_at_the_end(self, conn, indexed):
            index_events(self, conn, indexed)
            raise Boom

        monkeypatch.setattr(PooledSqliteEventLogStorage, "_index_events", fails_at_the_end)
        with pytest.raises(Boom):
            storage.store_event_batch(events[1:])
        assert {"index": tables(folder / "index.db"), "run": tables(folder / f"{run_id}.db")} == before
        monkeypatch.undo()
        for event in events[1:]:  # what Dagster's handle_new_event does after a failed batch
            storage.store_event(event)
    finally:
        storage.dispose()
    assert {"index": tables(folder / "index.db"), "run": tables(folder / f"{run_id}.db")} == single


def test_batching_is_on_unless_the_environment_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    PooledSqliteEventLogStorage(base_dir=str(tmp_path / "a")).dispose()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == str(sqlite_storage.EVENT_BATCH_SIZE)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    PooledSqliteEventLogStorage(base_dir=str(tmp_path / "b")).dispose()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "0"


BOOK_SPECS = [
    check_spec("booked_rows", "booked", blocking=True, description="rows"),
    check_spec("booked_prices", "booked", blocking=False, description="prices"),
]


@dg.asset(check_specs=BOOK_SPECS, **PARTITIONED)
def booked(context: dg.AssetExecutionContext):
    """A range's CheckBook: one rule fails on one date, the other judges every date."""
    book = CheckBook(BOOK_SPECS, context)
    for key in context.partition_keys:
        day = dt.date.fromisoformat(key)
        book.record("booked_rows", day, ["no rows"] if key == TRADING_KEYS[1] else [])
        book.record("booked_prices", day, [])
    yield dg.MaterializeResult(metadata={"rows": 1})
    yield from book.results()


TRADING_KEYS = ["2025-07-07", "2025-07-08", "2025-07-09", "2025-07-10"]


def _evaluation_fields(evaluation: dg.AssetCheckEvaluation) -> tuple:
    """What an evaluation says, but for its target materialization's id, run and time."""
    return (
        evaluation.asset_key,
        evaluation.check_name,
        evaluation.passed,
        evaluation.partition,
        evaluation.severity,
        evaluation.blocking,
        evaluation.description,
        dict(evaluation.metadata),
    )


def test_checkbook_logs_a_ranges_evaluations_as_one_batch_and_the_same_events(tmp_path, monkeypatch):
    """With batching, a range's per-date evaluations reach the event log in one batch; the run's log
    (each event's kind, message and data, target materializations but for their ids and times) and
    each date's check status read the same as when logged one by one."""
    batches = []
    store_batch = PooledSqliteEventLogStorage.store_event_batch

    def counted(self, events):
        batches.append([e.dagster_event_type for e in events])
        store_batch(self, events)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event_batch", counted)
    seen = {}
    for name, size in (("unbatched", "0"), ("batched", "1000")):
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", size)
        batches.clear()
        with open_instance(home_with(tmp_path, name, pooled=True)) as instance:
            result = (
                dg.Definitions(assets=[booked])
                .resolve_implicit_global_asset_job_def()
                .execute_in_process(
                    instance=instance,
                    raise_on_error=False,
                    tags={
                        "dagster/asset_partition_range_start": TRADING_KEYS[0],
                        "dagster/asset_partition_range_end": TRADING_KEYS[-1],
                    },
                )
            )
            evaluations = [
                e
                for e in instance.all_logs(result.run_id)
                if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ]
            history = {
                check: sorted(
                    (r.partition or "", r.status.value)
                    for r in instance.event_log_storage.get_asset_check_execution_history(
                        dg.AssetCheckKey(dg.AssetKey("booked"), check), limit=100
                    )
                )
                for check in ("booked_rows", "booked_prices")
            }
            seen[name] = {
                "evaluations": [
                    (
                        e.dagster_event.message,
                        _evaluation_fields(e.dagster_event.asset_check_evaluation_data),
                        e.dagster_event.asset_check_evaluation_data.target_materialization_data is not None,
                    )
                    for e in evaluations
                ],
                "history": history,
                "yielded": len(result.get_asset_check_evaluations()),
            }
            stored_batches = list(batches)
        if name == "batched":
            per_date = [b for b in stored_batches if set(b) == {dg.DagsterEventType.ASSET_CHECK_EVALUATION}]
            assert [len(b) for b in per_date] == [2 * len(TRADING_KEYS)]
        else:
            assert stored_batches == []
    assert seen["batched"] == seen["unbatched"]
    assert len(seen["batched"]["evaluations"]) == 2 * len(TRADING_KEYS) + 2  # + the run's results
    assert all(targeted for _, _, targeted in seen["batched"]["evaluations"][:-2])
    assert ("2025-07-08", "FAILED") in seen["batched"]["history"]["booked_rows"]


def test_a_ranges_planned_dates_are_the_rows_one_event_per_date_makes(recorded, tmp_path):
    """The per-date planned rows indexed for a range (its event serialized once, each date's key
    put in its text) are the rows of one planned event per date, serialized each on its own; a
    key JSON writes otherwise than as it is (a quote, a non-ASCII letter) is serialized on its own."""
    _, events = recorded
    [planned] = [
        e for e in events if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ]
    storage = PooledSqliteEventLogStorage(base_dir=str(tmp_path))
    try:
        rows = storage._planned_date_rows(planned)
        assert [row["partition"] for row in rows] == KEYS
        assert rows == [storage._planned_date_row(planned, key) for key in KEYS]
        assert all(key in row["event"] and "planned-date" not in row["event"] for key, row in zip(KEYS, rows))
        odd = dg.StaticPartitionsDefinition(['say "hi"', "café", "plain"])
        data = planned.dagster_event.event_specific_data._replace(
            partitions_subset=odd.subset_with_partition_keys(odd.get_partition_keys())
        )
        odd_event = planned._replace(dagster_event=planned.dagster_event._replace(event_specific_data=data))
        rows = storage._planned_date_rows(odd_event)
        odd_keys = list(data.partitions_subset.get_partition_keys())
        assert sorted(odd_keys) == sorted(odd.get_partition_keys())
        assert rows == [storage._planned_date_row(odd_event, key) for key in odd_keys]
        assert [row["partition"] for row in rows] == odd_keys
    finally:
        storage.dispose()
