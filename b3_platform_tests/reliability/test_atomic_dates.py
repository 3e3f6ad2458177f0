"""A date of a layer is visible whole or not at all (the "publish together" promise of lake.tables).

The reproduction: `dagster asset materialize --partition-range` rebuilding gold over dates that
already hold an older gold, killed with SIGKILL while it writes. To make the kill land inside a
date (after its 1st, 2nd or 3rd of four files) every time, the subprocess pauses after each gold
file it writes (a `sitecustomize` hook that only sleeps; the real CLI and IO manager run
unchanged), and the test kills it during the pause after the k-th new file. Then, through the IO
manager's loads and through the DuckDB views, every date shows either its old four tables or its
new four tables, never a mix; the date cut short is absent; every Parquet file is readable; and a
re-run completes, byte for byte what an uninterrupted run writes. On S3 (moto behind a proxy that
fails one PUT) the same holds through the loads and the Glue partitions.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.definitions import build_defs
from b3_platform.lake.schemas import GOLD_COMPOSITION, GOLD_TABLES, SILVER_ASSETS, SILVER_HEADER, TABLES
from b3_platform.lake.storage import TEMP_PREFIX, LocalStorage
from b3_platform.lake.tables import manifest_key
from b3_platform.runs import range_tags
from b3_platform_tests.conftest import REPO
from b3_platform_tests.reliability.lakes import (
    GOLD,
    SILVER_STEP,
    build,
    cli_env,
    copy_lake,
    dagster_home,
    file_of,
    fill,
    gold_files,
    import_archive,
    local_lake,
    materialize_args,
    redated_archive,
    resources,
    run_cli,
    small_tmpfs,
    sync_catalog,
    trading_days,
)
from b3_platform_tests.s3_proxy import S3FaultProxy

DAYS = trading_days(8)
#: Sleeps after every gold file the IO manager writes, so a SIGKILL can be aimed inside a date.
PAUSE_HOOK = """
import os, time
from b3_platform.lake import storage

_write = storage.LocalStorage.write_bytes
_pause = float(os.environ["RELIABILITY_PAUSE_AFTER_GOLD_FILE"])

def write_bytes(self, key, data):
    _write(self, key, data)
    if key.startswith("gold/") and key.endswith("/data.parquet"):
        time.sleep(_pause)

storage.LocalStorage.write_bytes = write_bytes
"""


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, Path]:
    """v1: every layer built with IBOV only. v2_silver: v1 plus the same portfolios filed as IBXX,
    bronze and silver rebuilt, gold still v1's. v2: v2_silver with gold rebuilt (the reference)."""
    base = tmp_path_factory.mktemp("atomic")
    v1 = base / "v1"
    import_archive(local_lake(v1), redated_archive(base / "ibov", DAYS, ("IBOV",)))
    assert build(local_lake(v1), DAYS, [*SILVER_STEP, *GOLD]).success
    v2_silver = copy_lake(v1, base / "v2_silver")
    import_archive(local_lake(v2_silver), redated_archive(base / "ibxx", DAYS, ("IBXX",)))
    assert build(local_lake(v2_silver), DAYS, SILVER_STEP).success
    v2 = copy_lake(v2_silver, base / "v2")
    assert build(local_lake(v2), DAYS, GOLD).success
    return {"v1": v1, "v2_silver": v2_silver, "v2": v2, "base": base}


def gold_version(root: Path, day: dt.date) -> dict[str, bytes]:
    return {t.name: file_of(root, t, day).read_bytes() for t in GOLD_TABLES}


def new_gold_files(root: Path, since_ns: int) -> int:
    return sum(1 for p in (root / "gold").glob("*/date=*/data.parquet") if p.stat().st_mtime_ns > since_ns)


def kill_after_new_gold_files(lake: Path, env: dict[str, str], k: int) -> None:
    """Run the gold range in a `dagster` subprocess and SIGKILL it once k gold files are new."""
    started = time.time_ns()
    proc = subprocess.Popen(
        materialize_args(GOLD, DAYS[0], DAYS[-1]),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while new_gold_files(lake, started) < k:
            assert proc.poll() is None, f"the run ended before {k} gold files: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the run wrote too slowly"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def loaded_versions(lake: Path, v1: Path, v2: Path) -> dict[dt.date, str | None]:
    """Per date, the version ("v1", "v2") the IO manager's loads give for ALL four gold tables, or
    None when none of them loads; fails on any mix. (A table both versions hold alike, such as the
    first date's empty gold_changes, fits either.)"""
    defs = build_defs({"B3_PLATFORM_DATA_DIR": str(lake)})
    found: dict[dt.date, str | None] = {}
    for day in DAYS:
        fits: list[set[str] | None] = []
        for table_def in GOLD_TABLES:
            try:
                table = defs.load_asset_value(
                    table_def.name, partition_key=day.isoformat(), python_type=pa.Table
                )
            except dg.Failure as exc:
                assert f"{table_def.name} has no partition {day}" in str(exc)
                fits.append(None)
                continue
            fits.append(
                {
                    n
                    for n, root in (("v1", v1), ("v2", v2))
                    if table.equals(pq.read_table(file_of(root, table_def, day)))
                }
            )
        if all(f is None for f in fits):
            found[day] = None
            continue
        assert None not in fits, f"{day} is partly visible: {fits}"
        common = set.intersection(*fits)
        assert len(common) == 1, f"{day} mixes versions: {fits}"
        found[day] = common.pop()
    return found


def catalog_counts(catalog) -> dict[str, dict[dt.date, int]]:
    return {
        t.name: dict(catalog.query(f'SELECT "date", count(*) FROM {t.name} GROUP BY 1').rows)
        for t in GOLD_TABLES
    }


def file_counts(root: Path, day: dt.date) -> tuple[int, ...]:
    return tuple(pq.read_metadata(file_of(root, t, day)).num_rows for t in GOLD_TABLES)


def test_a_range_killed_mid_date_leaves_every_date_whole_or_absent_and_a_rerun_completes(lakes, tmp_path):
    v1, v2 = lakes["v1"], lakes["v2"]
    home = dagster_home(tmp_path)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    env = cli_env(home, tmp_path, PYTHONPATH=str(hook), RELIABILITY_PAUSE_AFTER_GOLD_FILE="0.4")
    lake = None
    # After the 1st, 2nd and 3rd file of the 1st, 2nd and 3rd date: every partial state of a date.
    for attempt, k in enumerate((1, 6, 11)):
        lake = copy_lake(lakes["v2_silver"], tmp_path / f"lake{attempt}")
        catalog = sync_catalog(lake)  # the tables a user queries, as synced before the run
        kill_after_new_gold_files(lake, {**env, "B3_PLATFORM_DATA_DIR": str(lake)}, k)
        cut = DAYS[k // 4]

        # The defect's condition is on disk: the cut date holds k % 4 new files beside old ones ...
        on_disk = gold_version(lake, cut)
        for position, table_def in enumerate(GOLD_TABLES):  # written in this order
            version = v2 if position < k % 4 else v1
            assert on_disk[table_def.name] == gold_version(version, cut)[table_def.name], (k, table_def.name)
        assert on_disk != gold_version(v1, cut) and on_disk != gold_version(v2, cut)
        assert not (lake / manifest_key("gold", cut)).exists()
        # ... and no reader sees it: the loads give each date whole, old or new, the cut one not at all.
        expected = {d: "v2" if d < cut else None if d == cut else "v1" for d in DAYS}
        assert loaded_versions(lake, v1, v2) == expected
        with build_defs({"B3_PLATFORM_DATA_DIR": str(lake)}).get_asset_value_loader() as loader:
            for table_def in GOLD_TABLES:
                window = dg.PartitionKeyRange(DAYS[0].isoformat(), DAYS[-1].isoformat())
                table = loader.load_asset_value(
                    table_def.name, partition_key_range=window, python_type=pa.Table
                )
                assert cut not in set(table.column("date").to_pylist()), table_def.name
        # The DuckDB catalog, not synced since, still holds every date as it was then (v1, whole) ...
        counts = catalog_counts(catalog)
        for day in DAYS:
            assert tuple(counts[t.name].get(day, 0) for t in GOLD_TABLES) == file_counts(v1, day), day
        # ... and a sync after the kill (the next run's catalog step) has each date whole or not at all.
        counts = catalog_counts(sync_catalog(lake))
        for day in DAYS:
            seen = tuple(counts[t.name].get(day, 0) for t in GOLD_TABLES)
            want = (0, 0, 0, 0) if day == cut else file_counts(v2 if day < cut else v1, day)
            assert seen == want, (day, seen, want)
        for path in lake.rglob("*.parquet"):
            pq.read_table(path)  # every Parquet file is whole
        assert not [k for k in LocalStorage(lake).list_keys("") if TEMP_PREFIX in k]

    # A re-run (no pause) completes and writes exactly what an uninterrupted run writes.
    proc = run_cli(
        materialize_args(GOLD, DAYS[0], DAYS[-1]),
        {**env, "PYTHONPATH": "", "B3_PLATFORM_DATA_DIR": str(lake)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert gold_files(lake) == gold_files(v2)
    assert not [p for p in lake.rglob(f"{TEMP_PREFIX}*")]
    counts = catalog_counts(sync_catalog(lake))
    for day in DAYS:
        assert tuple(counts[t.name].get(day, 0) for t in GOLD_TABLES) == file_counts(v2, day)


def test_temp_files_are_never_read_and_a_dead_writers_are_cleaned_by_the_next_write(lakes, tmp_path):
    lake = copy_lake(lakes["v2"], tmp_path / "lake")
    day = DAYS[3]
    folder = file_of(lake, GOLD_COMPOSITION, day).parent
    dead = _dead_pid()
    host = os.uname().nodename
    garbage = b"PAR1 half a file"
    names = {
        "dead writer": f"{TEMP_PREFIX}{dead}@{host}-{'a' * 32}-data.parquet.partial",
        "live writer": f"{TEMP_PREFIX}{os.getpid()}@{host}-{'b' * 32}-data.parquet.partial",
        "old, no owner": f"{TEMP_PREFIX}{'c' * 32}-data.parquet.partial",
        "recent, no owner": f"{TEMP_PREFIX}{'d' * 32}-data.parquet.partial",
    }
    for name in names.values():
        (folder / name).write_bytes(garbage)
    two_hours_ago = time.time() - 7200
    os.utime(folder / names["old, no owner"], (two_hours_ago, two_hours_ago))

    # Never read: not listed, not matched by the views' globs, not loaded.
    assert not [k for k in LocalStorage(lake).list_keys("gold/") if TEMP_PREFIX in k]
    catalog = sync_catalog(lake)
    assert catalog_counts(catalog)["gold_composition"][day] == file_counts(lakes["v2"], day)[0]
    defs = build_defs({"B3_PLATFORM_DATA_DIR": str(lake)})
    loaded = defs.load_asset_value("gold_composition", partition_key=day.isoformat(), python_type=pa.Table)
    assert loaded.equals(pq.read_table(file_of(lakes["v2"], GOLD_COMPOSITION, day)))

    # The next write into the folder removes what no live writer owns, and only that.
    result = dg.materialize(
        ALL_ASSETS,
        selection=GOLD,
        resources=resources(local_lake(lake)),
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=day.isoformat(),
    )
    assert result.success
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))
    assert left == sorted([names["live writer"], names["recent, no owner"]])
    assert gold_version(lake, day) == gold_version(lakes["v2"], day)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def old_paths(lake: Path, day: dt.date) -> list[Path]:
    return [file_of(lake, t, day) for t in (SILVER_HEADER, SILVER_ASSETS)]


def test_a_disk_filling_up_between_silvers_two_tables_leaves_the_date_unpublished(lakes, tmp_path):
    """Silver writes its header, then its assets. The lake sits on a tmpfs with room for the new
    header only: the assets write fails with ENOSPC, so the date holds a new header beside the old
    assets. Nobody sees it so; once there is room a re-run completes."""
    day = DAYS[4]
    new_header = file_of(lakes["v2"], SILVER_HEADER, day).read_bytes()
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        lake = copy_lake(lakes["v2_silver"], disk / "lake")
        # v1's silver of the date, with v2's bronze under it: the rebuild replaces both tables.
        for table_def in (SILVER_HEADER, SILVER_ASSETS):
            shutil.copy(file_of(lakes["v1"], table_def, day), file_of(lake, table_def, day))
        catalog = sync_catalog(lake)
        old = {t.name: file_of(lake, t, day).read_bytes() for t in (SILVER_HEADER, SILVER_ASSETS)}
        # Pinned by a second name, the old files' pages stay in use when the rebuild replaces them,
        # so the free space is exactly the reserve: the new header's pages.
        pinned = disk / "pinned"
        pinned.mkdir()
        for number, path in enumerate([*old_paths(lake, day), lake / manifest_key("silver", day)]):
            os.link(path, pinned / str(number))
        reserve = disk / "reserve"
        reserve.write_bytes(b"\0" * (-(-len(new_header) // 4096) * 4096))
        filler = fill(disk)
        reserve.unlink()
        env = cli_env(dagster_home(tmp_path), lake)
        args = [*materialize_args(SILVER_STEP[1:], day, day)]
        proc = run_cli(args, env)
        assert proc.returncode == 1
        assert "No space left on device" in proc.stderr
        assert file_of(lake, SILVER_HEADER, day).read_bytes() == new_header  # half written ...
        assert file_of(lake, SILVER_ASSETS, day).read_bytes() == old["silver_assets"]
        assert not (lake / manifest_key("silver", day)).exists()
        # ... and invisible: the loads leave the date out, all of it; the catalog (synced before the
        # run) still holds the old version of the date, whole.
        defs = build_defs({"B3_PLATFORM_DATA_DIR": str(lake)})
        for table_def in (SILVER_HEADER, SILVER_ASSETS):
            with pytest.raises(dg.Failure, match=f"{table_def.name} has no partition {day}"):
                defs.load_asset_value(table_def.name, partition_key=day.isoformat(), python_type=pa.Table)
        old_rows = (pq.read_metadata(pinned / "0").num_rows, pq.read_metadata(pinned / "1").num_rows)
        assert (
            tuple(
                catalog.query(f"SELECT count(*) FROM {t.name} WHERE \"date\" = DATE '{day}'").rows[0][0]
                for t in (SILVER_HEADER, SILVER_ASSETS)
            )
            == old_rows
        )
        for path in lake.rglob("*.parquet"):
            pq.read_table(path)
        filler.unlink()
        shutil.rmtree(pinned)
        # A sync now (room again; the catalog file is on the same disk) leaves the date out, all of it.
        catalog = sync_catalog(lake)
        for table_def in (SILVER_HEADER, SILVER_ASSETS):
            dates = [d for (d,) in catalog.query(f'SELECT DISTINCT "date" FROM {table_def.name}').rows]
            assert sorted(dates) == [d for d in DAYS if d != day], table_def.name
        proc = run_cli(args, env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for table_def in (SILVER_HEADER, SILVER_ASSETS):
            assert (
                file_of(lake, table_def, day).read_bytes()
                == file_of(lakes["v2"], table_def, day).read_bytes()
            )
        assert (lake / manifest_key("silver", day)).read_bytes() == (
            lakes["v2"] / manifest_key("silver", day)
        ).read_bytes()
        assert not list(lake.rglob(f"{TEMP_PREFIX}*"))


# ------------------------------------------------------------------------------------------ on S3


@pytest.fixture
def proxy(moto_server):
    proxy = S3FaultProxy(moto_server.endpoint).start()
    yield proxy
    proxy.stop()


def test_on_s3_a_put_failing_mid_date_leaves_the_date_unpublished_for_loads_and_glue(
    lakes, aws_target, proxy, tmp_path
):
    target = aws_target
    lake = target.lake(proxy.endpoint)
    import_archive(lake, redated_archive(tmp_path / "ibov", DAYS, ("IBOV",)))
    everything = [*SILVER_STEP, *GOLD]
    assert build_on_s3(lake, target, everything).success
    import_archive(lake, redated_archive(tmp_path / "ibxx", DAYS, ("IBXX",)))
    assert build_on_s3(lake, target, SILVER_STEP).success
    s3 = target.client("s3")

    def objects() -> dict[str, bytes]:
        return {
            k: s3.get_object(Bucket=target.bucket, Key=f"{target.prefix}/{k}")["Body"].read()
            for k in target.keys()
        }

    before = objects()
    cut = DAYS[2]
    proxy.reset_counts()
    proxy.fail("PUT", f"/gold/index_summary/date={cut}/", status=500)  # the 3rd of 4 tables of the 3rd date
    result = build_on_s3(lake, target, GOLD)
    assert not result.success
    after = objects()
    # Two rebuilt dates cost 4 PUTs and a manifest DELETE and PUT each (plus one listing per run).
    puts = [p for kind, p in proxy.log if kind == "PUT" and "/gold/" in p]
    deletes = [p for kind, p in proxy.log if kind == "DELETE" and "/gold/" in p]
    assert len(deletes) == 3  # the two dates before the cut, and the cut date's unpublishing
    assert len([p for p in puts if "manifest.json" in p]) == 2
    error = result.get_step_failure_events()[0].event_specific_data.error
    assert error.message.startswith(f"dagster._core.definitions.events.Failure: gold {cut}: cannot write ")
    assert (
        f"cannot write {target.root}/gold/index_summary/date={cut}/data.parquet: InternalError"
        in error.message
    )
    # The cut date: two tables new, two old, and unpublished.
    cut_keys = [f"{t.location}date={cut}/data.parquet" for t in GOLD_TABLES]
    assert [after[k] == before[k] for k in cut_keys] == [False, False, True, True]
    assert manifest_key("gold", cut) not in after
    for key, body in after.items():
        if key.endswith(".parquet"):
            pq.read_table(pa.BufferReader(body))
    proxy.heal()
    defs = build_defs(target.env())
    for table_def in GOLD_TABLES:
        for day in DAYS:
            if day == cut:
                with pytest.raises(dg.Failure, match=f"{table_def.name} has no partition {cut}"):
                    defs.load_asset_value(table_def.name, partition_key=cut.isoformat(), python_type=pa.Table)
            else:
                loaded = defs.load_asset_value(
                    table_def.name, partition_key=day.isoformat(), python_type=pa.Table
                )
                version = lakes["v2"] if day < cut else lakes["v1"]
                assert loaded.equals(pq.read_table(file_of(version, table_def, day))), (table_def.name, day)
    # Glue registers the published dates only.
    catalog = target.catalog()
    registered = {t.name: t for t in catalog.sync(target.lake().storage(), [TABLES[n] for n in GOLD])}
    glue = target.client("glue")
    for name in GOLD:
        values = sorted(
            p["Values"][0]
            for p in glue.get_partitions(DatabaseName=target.database, TableName=name)["Partitions"]
        )
        assert values == [d.isoformat() for d in DAYS if d != cut], name
        assert registered[name].dates == len(DAYS) - 1
    # A re-run completes: the S3 gold is byte for byte the local uninterrupted run's.
    assert build_on_s3(lake, target, GOLD).success
    final = objects()
    gold = {k: v for k, v in final.items() if k.startswith("gold/")}
    assert gold == gold_files(lakes["v2"])
    assert {k: v for k, v in final.items() if not k.startswith("gold/")} == {
        k: v for k, v in before.items() if not k.startswith("gold/")
    }


def build_on_s3(lake, target, selection):
    return dg.materialize(
        ALL_ASSETS,
        selection=selection,
        resources=resources(lake, target.catalog()),
        instance=dg.DagsterInstance.ephemeral(),
        tags=range_tags(DAYS[0], DAYS[-1]),
        raise_on_error=False,
    )
