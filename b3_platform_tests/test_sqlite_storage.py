"""The instance's event log (b3_platform.sqlite_storage): Dagster's sqlite files, written through
connections kept open. What is stored must be exactly what Dagster's own class stores and reads, from
several threads and processes at once, and across runs, wipes and forks.

The graphs here are tiny on purpose (a partitioned asset with a check): the storage does not care
what is materialized, and the project's real graphs run on this storage in every other test that
uses the repo's dagster.yaml (the CLI, `dagster dev`, the demo)."""

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dagster as dg
import sqlalchemy as db
import yaml
from alembic.script import ScriptDirectory
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import AssetKeyTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from b3_platform import sqlite_storage
from b3_platform.sqlite_storage import MAX_OPEN_SHARDS, PooledSqliteEventLogStorage
from b3_platform_tests.conftest import REPO

DAYS = dg.DailyPartitionsDefinition(start_date="2025-07-01")
RUN_SUCCESS = dg.DagsterEventType.RUN_SUCCESS.value
KEYS = ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-04"]


@dg.asset(partitions_def=DAYS)
def prices(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": len(context.partition_key)})


@dg.asset_check(asset=prices, blocking=True, partitions_def=DAYS)
def prices_rules(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"judged": True})


def home_with(tmp_path: Path, name: str, pooled: bool) -> Path:
    """An instance folder with the repo's dagster.yaml (pooled) or the same file without its
    event_log_storage entry (Dagster's own class)."""
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    if not pooled:
        config.pop("event_log_storage")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def open_instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def materialize(instance: dg.DagsterInstance, key: str) -> None:
    result = dg.materialize([prices, prices_rules], partition_key=key, instance=instance)
    assert result.success


def what_is_stored(instance: dg.DagsterInstance) -> dict:
    """Everything a user reads about the asset: its partitions, its materializations with their
    metadata, its check's evaluations, and each run's full event log."""
    key = dg.AssetKey("prices")
    records = instance.fetch_materializations(key, limit=1000).records
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, "prices_rules"), limit=1000
    )
    runs = sorted(r.run_id for r in instance.get_runs())
    return {
        "partitions": sorted(instance.get_materialized_partitions(key)),
        "materializations": sorted(
            (r.partition_key, r.run_id, r.asset_materialization.metadata["rows"].value) for r in records
        ),
        "checks": sorted((c.run_id, c.partition, c.status.value) for c in checks),
        "logs": {
            run_id: [
                (e.dagster_event_type.value if e.dagster_event_type else None, e.message)
                for e in instance.all_logs(run_id)
            ]
            for run_id in runs
        },
    }


def test_the_repo_instance_uses_it_in_dagsters_default_place(tmp_path, monkeypatch):
    home = home_with(tmp_path, "home", pooled=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        materialize(instance, KEYS[0])
    finally:
        instance.dispose()
    runs = home / "history" / "runs"
    assert (runs / "index.db").is_file()
    assert len(list(runs.glob("*.db"))) == 2  # the index and the one run


def test_a_throw_away_instance_keeps_its_event_log_in_its_own_folder(tmp_path, monkeypatch):
    """Without DAGSTER_HOME (`dagster dev`, `dg` from the repo root) Dagster makes an instance in a
    temporary folder from ./dagster.yaml: the event log goes under that folder, as with Dagster's
    own class, not wherever DAGSTER_HOME might point."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    folder = tmp_path / "tmp_home"
    folder.mkdir()
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(folder), config_dir=str(REPO))) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        materialize(instance, KEYS[0])
        assert instance.get_materialized_partitions(dg.AssetKey("prices")) == {KEYS[0]}
    assert (folder / "history" / "runs" / "index.db").is_file()


def test_what_it_writes_reads_the_same_through_dagsters_own_storage(tmp_path):
    """One folder, written by both classes in turn: each reads exactly what the other reads."""
    pooled_home = home_with(tmp_path, "shared", pooled=True)
    with open_instance(pooled_home) as pooled:
        assert isinstance(pooled.event_log_storage, PooledSqliteEventLogStorage)
        materialize(pooled, KEYS[0])
        materialize(pooled, KEYS[1])
    stock_home = home_with(tmp_path, "shared", pooled=False)  # the same folder, the stock config
    with open_instance(stock_home) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        materialize(stock, KEYS[2])
        seen_by_stock = what_is_stored(stock)
    home_with(tmp_path, "shared", pooled=True)
    with open_instance(pooled_home) as pooled:
        materialize(pooled, KEYS[3])
        seen_by_pooled = what_is_stored(pooled)
    with open_instance(home_with(tmp_path, "shared", pooled=False)) as stock:
        seen_by_stock_after = what_is_stored(stock)

    assert seen_by_pooled == seen_by_stock_after
    assert seen_by_pooled["partitions"] == KEYS
    assert [m[0] for m in seen_by_pooled["materializations"]] == KEYS
    assert len(seen_by_pooled["checks"]) == 4 and {c[2] for c in seen_by_pooled["checks"]} == {"SUCCEEDED"}
    # What the stock class had read before the last run is still there, unchanged.
    for run_id, log in seen_by_stock["logs"].items():
        assert seen_by_pooled["logs"][run_id] == log
    for log in seen_by_pooled["logs"].values():
        assert log[-1][0] == RUN_SUCCESS


def test_threads_storing_at_once_lose_nothing(tmp_path):
    home = home_with(tmp_path, "home", pooled=True)
    errors: list[BaseException] = []
    with open_instance(home) as instance:

        def report(thread: int) -> None:
            try:
                for i in range(25):
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization("ticks", metadata={"thread": thread, "i": i})
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=report, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        records = instance.fetch_materializations(dg.AssetKey("ticks"), limit=1000).records
    seen = {
        (r.asset_materialization.metadata["thread"].value, r.asset_materialization.metadata["i"].value)
        for r in records
    }
    assert seen == {(t, i) for t in range(4) for i in range(25)}


WRITER = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef
    from b3_platform_tests.test_sqlite_storage import prices, prices_rules

    home, keys = sys.argv[1], sys.argv[2:]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        for key in keys:
            assert dg.materialize([prices, prices_rules], partition_key=key, instance=instance).success
    """
)


def test_processes_writing_the_same_instance_at_once(tmp_path):
    """Two run processes and a reader (as the daemon's runs and the webserver are) share the files:
    busy waits, not errors, and every event of every run is there."""
    home = home_with(tmp_path, "home", pooled=True)
    first = [f"2025-08-{d:02d}" for d in range(1, 9)]
    second = [f"2025-09-{d:02d}" for d in range(1, 9)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home), *keys], env=env, cwd=tmp_path, stderr=subprocess.PIPE
        )
        for keys in (first, second)
    ]
    with open_instance(home) as reader:
        while any(w.poll() is None for w in writers):
            reader.get_materialized_partitions(dg.AssetKey("prices"))
            for run in reader.get_runs(limit=3):
                list(reader.all_logs(run.run_id))
        for w in writers:
            assert w.wait() == 0, w.stderr.read().decode()[-3000:]
        stored = what_is_stored(reader)
    assert stored["partitions"] == sorted(first + second)
    assert len(stored["logs"]) == 16
    assert all(log[-1][0] == RUN_SUCCESS for log in stored["logs"].values())


def open_db_files() -> int:
    return sum(
        1 for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}").endswith(".db")
    )


def test_a_process_reading_many_runs_keeps_a_bounded_number_of_files_open(tmp_path):
    home = home_with(tmp_path, "home", pooled=True)
    keys = [f"2025-07-{d:02d}" for d in range(1, MAX_OPEN_SHARDS + 8)]
    before = open_db_files()
    with open_instance(home) as instance:
        for key in keys:
            materialize(instance, key)
        logs = {run.run_id: list(instance.all_logs(run.run_id)) for run in instance.get_runs()}
        assert len(logs) == len(keys) and all(
            log[-1].dagster_event_type.value == RUN_SUCCESS for log in logs.values()
        )
        # Each kept file holds at most its pooled connection; never one per run read.
        assert open_db_files() - before <= MAX_OPEN_SHARDS
        # A run whose file was closed (the least recently used) reads again, complete.
        first_run = instance.get_runs()[-1].run_id
        assert list(instance.all_logs(first_run)) == logs[first_run]
    assert open_db_files() == before  # disposing the instance closed them all


def test_a_finished_runs_file_is_closed_and_reads_again(tmp_path):
    """A run writes nothing to its own file after its last event, so the file is closed then: a
    long backfill's runs no longer stay open (each with its page cache) until MAX_OPEN_SHARDS
    pushes them out. Reading the run afterwards opens it again."""
    home = home_with(tmp_path, "home", pooled=True)
    before = open_db_files()
    with open_instance(home) as instance:
        materialize(instance, "2025-07-01")
        index_only = open_db_files() - before
        for key in ["2025-07-02", "2025-07-03", "2025-07-04"]:
            materialize(instance, key)
        # Four finished runs: still only the index (and the run storage) open, no run file.
        assert open_db_files() - before == index_only
        run_files = {
            run.run_id: tmp_path / "home" / "history" / "runs" / f"{run.run_id}.db"
            for run in instance.get_runs()
        }
        assert all(path.is_file() for path in run_files.values())
        logs = {run_id: list(instance.all_logs(run_id)) for run_id in run_files}
        assert all(log[-1].dagster_event_type.value == RUN_SUCCESS for log in logs.values())
        assert open_db_files() - before == index_only + len(run_files)  # read: open again


def _child_stores(instance: dg.DagsterInstance, conn) -> None:
    """In a forked child: store an event through the parent's instance object (fork hands it over
    as it is, kept engines included)."""
    try:
        instance.report_runless_asset_event(dg.AssetMaterialization("forked", metadata={"by": "child"}))
        conn.send("ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(repr(exc))


def test_a_forked_child_opens_its_own_connections(tmp_path):
    home = home_with(tmp_path, "home", pooled=True)
    with open_instance(home) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("forked", metadata={"by": "parent"}))
        parent_end, child_end = multiprocessing.Pipe()
        child = multiprocessing.get_context("fork").Process(target=_child_stores, args=(instance, child_end))
        child.start()
        child.join(60)
        assert parent_end.recv() == "ok"
        # The parent's kept connection still works after the child used (and dropped) its copy.
        instance.report_runless_asset_event(
            dg.AssetMaterialization("forked", metadata={"by": "parent again"})
        )
        records = instance.fetch_materializations(dg.AssetKey("forked"), limit=10).records
    assert sorted(r.asset_materialization.metadata["by"].value for r in records) == [
        "child",
        "parent",
        "parent again",
    ]


def test_wipe_then_write_again(tmp_path):
    home = home_with(tmp_path, "home", pooled=True)
    with open_instance(home) as instance:
        materialize(instance, KEYS[0])
        instance.wipe()
        assert instance.get_materialized_partitions(dg.AssetKey("prices")) == set()
        materialize(instance, KEYS[1])
        assert instance.get_materialized_partitions(dg.AssetKey("prices")) == {KEYS[1]}
    with open_instance(home_with(tmp_path, "home", pooled=False)) as stock:
        assert stock.get_materialized_partitions(dg.AssetKey("prices")) == {KEYS[1]}


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    home, count = sys.argv[1], int(sys.argv[2])
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        for i in range(count):
            instance.report_runless_asset_event(dg.AssetMaterialization("killed", metadata={"i": i}))
        print("stored", flush=True)
        sys.stdin.read()  # wait to be killed, connections open, nothing checkpointed at close
    """
)


def test_a_killed_process_loses_no_event_it_committed(tmp_path):
    """Commits do not wait for the disk (synchronous=NORMAL in WAL mode): what a process committed
    survives the process being killed with its connections open (only a power cut could roll the
    newest events back), and the files open cleanly afterwards, through either class."""
    home = home_with(tmp_path, "home", pooled=True)
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(home), "40"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout.readline().decode().strip() == "stored", writer.stderr.read().decode()[-3000:]
    assert list((home / "history" / "runs").glob("index.db-wal")), "the writer's log is still open"
    writer.kill()
    writer.wait()
    for pooled in (False, True):
        with open_instance(home_with(tmp_path, "home", pooled=pooled)) as instance:
            records = instance.fetch_materializations(dg.AssetKey("killed"), limit=100).records
            assert sorted(r.asset_materialization.metadata["i"].value for r in records) == list(range(40))


RELEASE = threading.Event()
STARTED = threading.Event()


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def slow(context: dg.AssetExecutionContext) -> None:
    STARTED.set()
    assert RELEASE.wait(300)
    if "2025-07-03" in context.partition_keys:
        raise RuntimeError("fails on purpose")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[slow])
def after_slow() -> None:
    pass


def statuses_during_and_after(home: Path, first: str, last: str) -> tuple[dict, dict]:
    """Each date's status for both assets while a range run of them is running, and after."""
    STARTED.clear()
    RELEASE.clear()
    keys = DAYS.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    with open_instance(home) as instance:

        def statuses() -> dict:
            return {
                name: {
                    k: (v.value if v else None)
                    for k, v in instance.get_status_by_partition(dg.AssetKey(name), keys, DAYS).items()
                }
                for name in ("slow", "after_slow")
            }

        job = dg.Definitions(assets=[slow, after_slow]).resolve_implicit_global_asset_job_def()
        runner = threading.Thread(
            target=lambda: job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
        )
        runner.start()
        # Generous waits: on a loaded machine a run's start can take many seconds, and reading the
        # statuses "after" while the run still went on would see it in progress, not done.
        assert STARTED.wait(300)
        during = statuses()
        RELEASE.set()
        runner.join(300)
        assert not runner.is_alive(), "the run did not finish"
        return during, statuses()


def test_a_running_range_shows_its_dates_in_progress_and_a_failed_one_failed(tmp_path):
    """What automation (`in_progress()`) and the UI read while a range runs, and after it fails:
    the same as with Dagster's class, from one planned event per asset in the run's log."""
    seen = {}
    for pooled in (True, False):
        home = home_with(tmp_path, f"home-{pooled}", pooled=pooled)
        seen[pooled] = (
            statuses_during_and_after(home, "2025-07-07", "2025-07-08"),  # succeeds
            statuses_during_and_after(home, "2025-07-01", "2025-07-04"),  # fails
        )
        with open_instance(home) as instance:
            planned = [
                r.event_log_entry.dagster_event.event_specific_data
                for run in instance.get_runs()
                for r in instance.event_log_storage.get_records_for_run(
                    run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
                ).records
            ]
        if pooled:  # one event per asset and run in the runs' logs, each naming its dates
            assert len(planned) == 4 and all(p.partitions_subset is not None for p in planned)
        else:
            assert len(planned) == 2 * (2 + 4) and all(p.partition for p in planned)
    assert seen[True] == seen[False]
    (ok_during, ok_after), (bad_during, bad_after) = seen[True]
    assert ok_during == {
        name: dict.fromkeys(["2025-07-07", "2025-07-08"], "IN_PROGRESS") for name in ("slow", "after_slow")
    }
    assert ok_after == {
        name: dict.fromkeys(["2025-07-07", "2025-07-08"], "MATERIALIZED") for name in ("slow", "after_slow")
    }
    four = ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-04"]
    assert bad_during == {name: dict.fromkeys(four, "IN_PROGRESS") for name in ("slow", "after_slow")}
    assert bad_after == {name: dict.fromkeys(four, "FAILED") for name in ("slow", "after_slow")}


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def never_built(context: dg.AssetExecutionContext) -> None:
    raise RuntimeError("fails before its check runs")


@dg.asset_check(asset=never_built, partitions_def=DAYS)
def never_judged(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_a_ranges_planned_check_rows_are_dagsters(tmp_path):
    """One planned check row per date, as with Dagster's class, each naming its date in its own
    column; the event it holds names the check but not the range's dates (Dagster's holds the
    whole range, ~11 KB per row)."""
    rows = {}
    for pooled in (True, False):
        with open_instance(home_with(tmp_path, f"home-{pooled}", pooled=pooled)) as instance:
            job = dg.Definitions(
                assets=[never_built], asset_checks=[never_judged]
            ).resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={
                    "dagster/asset_partition_range_start": "2025-07-01",
                    "dagster/asset_partition_range_end": "2025-07-07",
                },
            )
            assert not result.success
            records = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey("never_built"), "never_judged"), limit=100
            )
            rows[pooled] = sorted(
                (r.partition, r.status.value, r.event.dagster_event.event_specific_data) for r in records
            )
    assert [row[:2] for row in rows[True]] == [row[:2] for row in rows[False]]
    assert [row[:2] for row in rows[True]] == [(f"2025-07-0{d}", "PLANNED") for d in range(1, 8)]
    for (_, _, ours), (_, _, dagsters) in zip(rows[True], rows[False], strict=True):
        assert ours.asset_check_key == dagsters.asset_check_key
        assert dagsters.partitions_subset.get_partition_keys() == [f"2025-07-0{d}" for d in range(1, 8)]
        assert ours.partitions_subset is None


def test_an_assets_last_materialization_is_the_record_dagster_would_store(tmp_path):
    """The asset's row keeps its last materialization as the record Dagster serializes, though the
    class builds its text from the event's own (`_get_asset_entry_values`): the same text
    `serialize_value` gives, and the same record read back, as Dagster's class stores and reads."""
    from dagster._core.storage.event_log.base import EventLogRecord
    from dagster._serdes import serialize_value

    pooled, stock = (
        open_instance(home_with(tmp_path, "pooled", True)),
        open_instance(home_with(tmp_path, "stock", False)),
    )
    try:
        for instance in (pooled, stock):
            for key in KEYS[:2]:
                materialize(instance, key)
        storage = pooled.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        latest = storage.get_asset_records([dg.AssetKey("prices")])[0].asset_entry.last_materialization_record
        assert latest is not None and latest.partition_key == KEYS[1]
        # The text stored is exactly what Dagster's serializer writes for that record.
        with storage.index_connection() as conn:
            (stored,) = conn.execute(
                db.select(AssetKeyTable.c.last_materialization).where(
                    AssetKeyTable.c.asset_key == dg.AssetKey("prices").to_string()
                )
            ).fetchone()
        record = EventLogRecord(storage_id=latest.storage_id, event_log_entry=latest.event_log_entry)
        assert stored == serialize_value(record)
        # And what the two classes hold for the asset reads the same, but for ids and times.
        stock_latest = stock.event_log_storage.get_asset_records([dg.AssetKey("prices")])[0].asset_entry
        assert stock_latest.last_materialization_record.partition_key == KEYS[1]
        assert (
            stock_latest.last_materialization_record.asset_materialization.metadata
            == latest.asset_materialization.metadata
        )
    finally:
        pooled.dispose()
        stock.dispose()


def file_layout(path: Path) -> dict:
    """What a set-up database file holds: its schema, its alembic stamp, its journal mode."""
    con = sqlite3.connect(path)
    try:
        return {
            "schema": sorted(con.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str),
            "stamp": con.execute("SELECT version_num FROM alembic_version").fetchall(),
            "journal": con.execute("PRAGMA journal_mode").fetchone()[0],
        }
    finally:
        con.close()


def test_a_new_file_is_set_up_as_dagsters_own_initdb_sets_it_up(tmp_path):
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    PooledSqliteEventLogStorage._initdb(None, db.create_engine(f"sqlite:///{ours}"))
    SqliteEventLogStorage._initdb(None, db.create_engine(f"sqlite:///{theirs}"))
    made = file_layout(ours)
    assert made == file_layout(theirs)
    assert made["stamp"] and made["journal"] == "wal"


def test_the_migration_scripts_are_read_once_per_process(tmp_path, monkeypatch):
    reads = []
    original = ScriptDirectory.from_config
    monkeypatch.setattr(ScriptDirectory, "from_config", lambda config: reads.append(1) or original(config))
    sqlite_storage._migration_scripts.cache_clear()
    try:
        for name in ("a.db", "b.db", "c.db"):
            PooledSqliteEventLogStorage._initdb(None, db.create_engine(f"sqlite:///{tmp_path / name}"))
        assert len(reads) == 1
        # A file already stamped is left as it is, reading nothing.
        before = file_layout(tmp_path / "a.db")
        PooledSqliteEventLogStorage._initdb(None, db.create_engine(f"sqlite:///{tmp_path / 'a.db'}"))
        assert len(reads) == 1 and file_layout(tmp_path / "a.db") == before
    finally:
        sqlite_storage._migration_scripts.cache_clear()


def test_a_file_with_tables_but_no_stamp_is_left_to_dagsters_initdb(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE event_logs (id INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    handed = []
    monkeypatch.setattr(
        SqliteEventLogStorage,
        "_initdb",
        lambda self, engine, for_index_shard=False: handed.append(for_index_shard),
    )
    PooledSqliteEventLogStorage._initdb(None, db.create_engine(f"sqlite:///{path}"), for_index_shard=True)
    assert handed == [True]
