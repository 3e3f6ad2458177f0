"""Selecting one table of a multi-asset (silver: header + assets; gold: four tables) materializes
only that table: its file is rewritten, its siblings' files are not touched, and the date's
manifest still publishes every table it published (lake.tables: a subset carries the others over).

Real graphs on a real lake and instance: in-process runs, the `dagster` CLI in a subprocess, and
the webserver's GraphQL field the UI's Materialize dialog reads ("Additional assets will be
materialized")."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from b3_platform.definitions import build_defs
from b3_platform.lake.paths import table_partition_key
from b3_platform.lake.schemas import GOLD_TABLES, SILVER_ASSETS, SILVER_HEADER, TableDef
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import PublishedReader, UnreadableFile, manifest_key, write_date
from b3_platform.runs import range_tags
from b3_platform_tests.conftest import REPO, dagster_home_and_lake
from b3_platform_tests.test_webserver import graphql, running_webserver

DAGSTER = str(Path(sys.executable).with_name("dagster"))
JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
DAYS = [dt.date(2025, 7, 7), dt.date(2025, 7, 8), dt.date(2025, 7, 10)]
FIRST, LAST = DAYS[0], DAYS[-1]
DAY = dt.date(2025, 7, 10)
SILVER = (SILVER_HEADER, SILVER_ASSETS)
ADDITIONAL_KEYS = (
    "query ($keys: [AssetKeyInput!]!) { assetNodeAdditionalRequiredKeys(assetKeys: $keys) { path } }"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A DAGSTER_HOME and a lake holding bronze → gold for DAYS, built whole by one range run."""
    env, home, lake = dagster_home_and_lake(
        tmp_path_factory.mktemp("subset"), [JSON_DIR / f"{d}.json" for d in DAYS]
    )
    defs = build_defs(env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            layers = [
                k
                for k in defs.resolve_asset_graph().get_all_asset_keys()
                if k.path[0] not in ("raw_portfolio", "athena_tables", "dashboard")
            ]
            job = defs.resolve_implicit_global_asset_job_def()
            assert job.execute_in_process(
                instance=instance, asset_selection=layers, tags=range_tags(FIRST, LAST)
            ).success
    return env, home, lake


@pytest.fixture
def lake_copy(built, tmp_path):
    """A private copy of the built lake and instance, so each test changes its own."""
    env, home, lake = built
    new_home, new_lake = tmp_path / "home", tmp_path / "lake"
    shutil.copytree(home, new_home)
    shutil.copytree(lake, new_lake)
    return {**env, "DAGSTER_HOME": str(new_home), "B3_PLATFORM_DATA_DIR": str(new_lake)}, new_home, new_lake


def file_of(lake: Path, table_def: TableDef, day: dt.date) -> Path:
    return lake / table_partition_key(table_def.location, day)


def snapshot(lake: Path, tables, day: dt.date) -> dict[str, tuple[int, int, bytes]]:
    """Each table file's (inode, mtime_ns, bytes): a rewrite (temp file + rename) changes the inode
    even when it writes the same bytes."""
    out = {}
    for t in tables:
        p = file_of(lake, t, day)
        st = p.stat()
        out[t.name] = (st.st_ino, st.st_mtime_ns, p.read_bytes())
    return out


def manifest(lake: Path, unit: str, day: dt.date) -> list[str]:
    return json.loads((lake / manifest_key(unit, day)).read_text())["tables"]


def run(env, home, selection: list[str], **kwargs) -> dg.ExecuteInProcessResult:
    defs = build_defs(env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            job = defs.resolve_implicit_global_asset_job_def()
            return job.execute_in_process(
                instance=instance,
                asset_selection=[dg.AssetKey(s) for s in selection],
                raise_on_error=False,
                **kwargs,
            )


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def checked(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        e.event_specific_data.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def test_silver_assets_alone_rewrites_only_its_file(lake_copy):
    env, home, lake = lake_copy
    before = snapshot(lake, SILVER, DAY)
    result = run(env, home, ["silver_assets"], partition_key=DAY.isoformat())
    assert result.success
    assert materialized(result) == {"silver_assets"}
    assert checked(result) == {"silver_assets"}  # silver's checks are all on silver_assets
    after = snapshot(lake, SILVER, DAY)
    assert after["silver_header"] == before["silver_header"]  # not rewritten at all
    assert after["silver_assets"][0] != before["silver_assets"][0]  # rewritten...
    assert after["silver_assets"][2] == before["silver_assets"][2]  # ...with what a whole build wrote
    assert manifest(lake, "silver", DAY) == ["silver_assets", "silver_header"]
    storage = LocalStorage(lake)
    for t in SILVER:
        table = PublishedReader(storage, t).read(DAY)
        assert table is not None and table.num_rows > 0


def test_gold_table_alone_keeps_its_siblings_and_previous_day(lake_copy):
    env, home, lake = lake_copy
    before = snapshot(lake, GOLD_TABLES, DAY)
    for name in ("gold_changes", "gold_time_in_index"):
        result = run(env, home, [name], partition_key=DAY.isoformat())
        assert result.success
        assert materialized(result) == {name}
        # Only the selected table's checks ran; the other gold tables' checks are not planned.
        assert checked(result) <= {name}
    after = snapshot(lake, GOLD_TABLES, DAY)
    for t in GOLD_TABLES:
        if t.name in ("gold_changes", "gold_time_in_index"):
            # Rebuilt alone, yet byte for byte what the whole build wrote: the previous trading
            # day's comparison and the stays' walk back over earlier dates still happened.
            assert after[t.name][0] != before[t.name][0]
            assert after[t.name][2] == before[t.name][2]
        else:
            assert after[t.name] == before[t.name]
    assert manifest(lake, "gold", DAY) == sorted(t.name for t in GOLD_TABLES)


def test_range_of_one_table_records_each_dates_checks(lake_copy):
    env, home, lake = lake_copy
    header_before = {d: snapshot(lake, [SILVER_HEADER], d) for d in DAYS}
    result = run(env, home, ["silver_assets"], tags=range_tags(FIRST, LAST))
    assert result.success
    assert materialized(result) == {"silver_assets"}
    partitions = {e.partition for e in result.get_asset_materialization_events()}
    # 2025-07-09 is a trading day without a sample: materialized with 0 rows, as a whole build does.
    assert partitions == {d.isoformat() for d in DAYS} | {"2025-07-09"}
    per_date = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.partition is not None
    ]
    assert {ev.partition for ev in per_date} == {d.isoformat() for d in DAYS}
    for d in DAYS:
        assert snapshot(lake, [SILVER_HEADER], d) == header_before[d]
        assert manifest(lake, "silver", d) == ["silver_assets", "silver_header"]


def test_a_table_never_published_for_the_date_stays_absent(lake_copy):
    """A date whose silver was never published (a killed first build left a header file behind):
    building silver_assets alone publishes silver_assets only; the leftover is removed, never shown."""
    env, home, lake = lake_copy
    (lake / manifest_key("silver", DAY)).unlink()
    leftover = file_of(lake, SILVER_HEADER, DAY)
    leftover.write_bytes(b"half-written by a killed run")
    result = run(env, home, ["silver_assets"], partition_key=DAY.isoformat())
    assert result.success
    assert manifest(lake, "silver", DAY) == ["silver_assets"]
    assert not leftover.exists()
    storage = LocalStorage(lake)
    assert PublishedReader(storage, SILVER_HEADER).read(DAY) is None
    assert PublishedReader(storage, SILVER_ASSETS).read(DAY).num_rows > 0
    # Selecting the other table later completes the date.
    assert run(env, home, ["silver_header"], partition_key=DAY.isoformat()).success
    assert manifest(lake, "silver", DAY) == ["silver_assets", "silver_header"]
    assert PublishedReader(storage, SILVER_HEADER).read(DAY).num_rows > 0


def dagster(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("selection", ["silver_assets", "*silver_assets"])
def test_cli_materializes_silver_assets_alone(lake_copy, selection):
    env, home, lake = lake_copy
    before = snapshot(lake, SILVER, DAY)
    proc = dagster(
        env,
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        selection,
        "--partition",
        str(DAY),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DagsterInvalidSubsetError" not in proc.stderr
    assert "RUN_SUCCESS" in proc.stderr
    after = snapshot(lake, SILVER, DAY)
    assert after["silver_header"] == before["silver_header"]
    assert after["silver_assets"][0] != before["silver_assets"][0]
    assert manifest(lake, "silver", DAY) == ["silver_assets", "silver_header"]


def test_ui_adds_no_sibling_to_a_selection(built):
    """The Materialize dialog asks `assetNodeAdditionalRequiredKeys` and warns "Additional assets
    will be materialized" for whatever it returns: nothing, for one table of silver or gold."""
    env, _, _ = built
    with running_webserver(["-m", "b3_platform.definitions"], env) as url:
        for selection in (["silver_assets"], ["silver_header"], ["gold_changes"], ["gold_time_in_index"]):
            keys = [{"path": [s]} for s in selection]
            data = graphql(url, ADDITIONAL_KEYS, keys=keys)
            assert data["assetNodeAdditionalRequiredKeys"] == [], selection


class FailingWrites(LocalStorage):
    """A local lake whose writes of one key fail (a full disk, S3 refusing a PUT)."""

    def __init__(self, root: Path, failing: str) -> None:
        super().__init__(root)
        self.failing = failing

    def write_bytes(self, key: str, data: bytes) -> None:
        if key == self.failing:
            raise OSError(28, "No space left on device")
        super().write_bytes(key, data)


def test_a_failed_write_of_one_table_leaves_the_date_published_as_before(lake_copy):
    """The selected table's write fails: its old file is intact, so the date is published again as
    it was (both tables), and nothing else changed."""
    _, _, lake = lake_copy
    before = snapshot(lake, SILVER, DAY)
    manifest_before = (lake / manifest_key("silver", DAY)).read_bytes()
    table = PublishedReader(LocalStorage(lake), SILVER_ASSETS).read(DAY)
    storage = FailingWrites(lake, table_partition_key(SILVER_ASSETS.location, DAY))
    with pytest.raises(OSError, match="No space left"):
        write_date(storage, {SILVER_ASSETS.name: SILVER_ASSETS}, DAY, {SILVER_ASSETS.name: table})
    assert snapshot(lake, SILVER, DAY) == before
    assert (lake / manifest_key("silver", DAY)).read_bytes() == manifest_before


def test_a_subset_refuses_a_damaged_manifest_and_changes_nothing(lake_copy):
    """Taking an unreadable manifest as "nothing published" would delete the sibling's file."""
    _, _, lake = lake_copy
    (lake / manifest_key("silver", DAY)).write_text("{not json")
    before = snapshot(lake, SILVER, DAY)
    table = PublishedReader(LocalStorage(lake), SILVER_ASSETS).read(DAY)
    with pytest.raises(UnreadableFile, match="not a readable manifest"):
        write_date(LocalStorage(lake), {SILVER_ASSETS.name: SILVER_ASSETS}, DAY, {SILVER_ASSETS.name: table})
    assert snapshot(lake, SILVER, DAY) == before
    assert (lake / manifest_key("silver", DAY)).read_text() == "{not json"


def test_a_check_run_alone_builds_nothing_and_reports_the_date(lake_copy):
    """The UI's *Execute* on one check of silver_assets runs the multi-asset for that check only:
    the date is built for the check, no table is written, and the other check does not run. The
    check runs every rule it reports (its metadata gives each one's result)."""
    env, home, lake = lake_copy
    before = snapshot(lake, SILVER, DAY)
    manifest_before = (lake / manifest_key("silver", DAY)).read_bytes()
    defs = build_defs(env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            job = defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection=set(),
                asset_check_selection={dg.AssetCheckKey(dg.AssetKey("silver_assets"), "silver_assets_rules")},
            )
            result = job.execute_in_process(
                instance=instance, partition_key=DAY.isoformat(), raise_on_error=False
            )
    assert result.success
    assert materialized(result) == set()
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    assert [(ev.check_name, ev.passed) for ev in evaluations] == [("silver_assets_rules", True)]
    (evaluation,) = evaluations
    assert evaluation.metadata["dates_checked"].value == 1
    assert evaluation.metadata["unique_tickers"].value == "passed"
    assert evaluation.metadata["quantities_sum_to_header_total"].value == "passed"
    assert snapshot(lake, SILVER, DAY) == before
    assert (lake / manifest_key("silver", DAY)).read_bytes() == manifest_before
