"""Downstream layers follow new raw data by themselves: the automation conditions, evaluated with
Dagster's own evaluation helper (what the `follow_upstream` sensor runs on each tick), and the runs
they request executed in-process, tick after tick, until nothing more is asked for."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from b3_platform.cli import _report_imports
from b3_platform.dashboard.site import PAGE_KEY
from b3_platform.definitions import build_defs
from b3_platform.importer import import_paths
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.runs import range_tags
from b3_platform_tests.conftest import REPO, duckdb_catalog

IBOV = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
LAYER_ORDER = [
    "bronze_portfolio",
    "silver_header",
    "silver_assets",
    "gold_composition",
    "gold_changes",
    "gold_index_summary",
    "gold_time_in_index",
    "athena_tables",
    "dashboard",
]
BELOW_RAW = set(LAYER_ORDER) - {"athena_tables", "dashboard"}


@pytest.fixture
def defs(lake_root, monkeypatch):
    monkeypatch.setenv("B3_PLATFORM_DATA_DIR", str(lake_root))
    return build_defs()


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def import_days(lake_root, instance, *days: dt.date) -> None:
    """What `python -m b3_platform import` does: store the files, then report raw materializations."""
    results = import_paths(RawStore(LocalStorage(lake_root)), [IBOV / f"{d}.json" for d in days])
    assert [r.status for r in results] == ["imported"] * len(days)
    _report_imports(results, instance)


class Daemon:
    """Evaluates the conditions like the sensor does (keeping its cursor) and runs what they request."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None
        self.job = defs.resolve_implicit_global_asset_job_def()
        self.ticks: list[dict[str, set[str | None]]] = []

    def tick(self) -> dict[str, set[str | None]]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = {
            key.to_user_string(): set(result.get_requested_partitions(key))
            for key in self.defs.resolve_asset_graph().get_all_asset_keys()
            if result.get_num_requested(key)
        }
        self.ticks.append(requested)
        return requested

    def run(self, requested: dict[str, set[str | None]]) -> None:
        """One run per set of partitions, ranges as single runs (the sensor emits backfills)."""
        by_partitions: dict[tuple, list[str]] = {}
        for key, partitions in requested.items():
            by_partitions.setdefault(tuple(sorted(p for p in partitions if p)), []).append(key)
        # Upstream groups first, as one backfill would run them.
        order = {k: i for i, k in enumerate(LAYER_ORDER)}
        groups = sorted(by_partitions.items(), key=lambda item: min(order[k] for k in item[1]))
        for partitions, keys in groups:
            tags = (
                range_tags(dt.date.fromisoformat(partitions[0]), dt.date.fromisoformat(partitions[-1]))
                if partitions
                else {}
            )
            result = self.job.execute_in_process(
                instance=self.instance, asset_selection=[dg.AssetKey(k) for k in keys], tags=tags
            )
            assert result.success

    def settle(self, max_ticks: int = 8) -> list[dict[str, set[str | None]]]:
        """Tick and run until a tick requests nothing; the requests of each tick."""
        start = len(self.ticks)
        for _ in range(max_ticks):
            requested = self.tick()
            if not requested:
                return self.ticks[start:]
            self.run(requested)
        raise AssertionError(f"automation did not settle: {self.ticks[start:]}")


def latest(instance: dg.DagsterInstance, key: str, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def test_an_import_flows_down_every_layer_to_the_catalog_by_itself(defs, instance, lake_root):
    daemon = Daemon(defs, instance)
    assert daemon.tick() == {}, "nothing new: the first tick requests nothing"

    day = dt.date(2025, 7, 2)
    import_days(lake_root, instance, day)
    ticks = daemon.settle()

    key = day.isoformat()
    # One tick asks for every partitioned layer below raw for that date only (one run, as Dagster
    # counts a parent requested in the same tick as updated); the catalog follows on the next tick.
    assert ticks[0] == {k: {key} for k in BELOW_RAW}
    # The catalog, and the dashboard redrawn from it in the same run.
    assert ticks[1] == {"athena_tables": {None}, "dashboard": {None}}
    assert ticks[2] == {}
    for asset in BELOW_RAW:
        assert latest(instance, asset, key) is not None, asset
    # The catalog now answers for the imported date.
    rows = (
        duckdb_catalog(lake_root)
        .query("SELECT count(*) FROM silver_assets WHERE \"date\" = DATE '2025-07-02'")
        .rows
    )
    assert rows[0][0] > 80


def test_an_import_of_past_dates_requests_exactly_those_dates(defs, instance, lake_root):
    """Not only the latest partition: an archive import of older dates flows down too."""
    daemon = Daemon(defs, instance)
    daemon.tick()
    days = [dt.date(2025, 6, 30), dt.date(2025, 7, 1), dt.date(2025, 7, 3)]
    import_days(lake_root, instance, *days)
    requested = daemon.tick()
    assert requested == {k: {d.isoformat() for d in days} for k in BELOW_RAW}


def dashboard_drawn(instance: dg.DagsterInstance) -> dict | None:
    """The metadata of the dashboard's latest materialization (None: never drawn)."""
    records = instance.fetch_materializations(dg.AssetKey("dashboard"), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()} if records else None


def gold_pictures(instance: dg.DagsterInstance, day: dt.date) -> list[dict]:
    """The metadata of each observation of gold_index_summary at `day` (its pictures), oldest first."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("gold_index_summary"), asset_partitions=[day.isoformat()]
        ),
        limit=10,
        ascending=True,
    ).records
    return [{k: v.value for k, v in r.asset_observation.metadata.items()} for r in records]


def test_a_capture_run_that_built_every_layer_is_not_built_again(defs, instance, lake_root, today, b3_server):
    """The daily job builds raw and everything below, then the catalog, in one run; automation
    redoes none of it, and redraws the dashboard (not in the job: it draws every date of the history)
    from the catalog the job refreshed, on the next tick, with the new date."""
    from b3_platform_tests.conftest import replay_b3_resource

    day = today()
    daemon = Daemon(defs, instance)
    daemon.tick()
    earlier = dt.date(2025, 7, 8)
    import_days(lake_root, instance, earlier)
    daemon.settle()
    assert dashboard_drawn(instance)["last_date"] == earlier.isoformat()

    job = dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        resources={**defs.resources, "b3": replay_b3_resource(b3_server)},
    ).resolve_job_def("daily_capture")
    result = job.execute_in_process(instance=instance, partition_key=day.isoformat())
    assert result.success
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "athena_tables" in built and "dashboard" not in built
    assert dashboard_drawn(instance)["last_date"] == earlier.isoformat()  # not redrawn by the job
    assert day.isoformat() not in (lake_root / PAGE_KEY).read_text(encoding="utf-8")
    # Nor does the job draw gold's picture of the new date: the dashboard's run reports it.
    assert not any(
        k.startswith("picture")
        for k in latest(instance, "gold_index_summary", day.isoformat()).asset_materialization.metadata
    )
    assert gold_pictures(instance, day) == []

    assert daemon.tick() == {"dashboard": {None}}
    daemon.run(daemon.ticks[-1])
    drawn = dashboard_drawn(instance)
    assert (drawn["first_date"], drawn["last_date"]) == (earlier.isoformat(), day.isoformat())
    assert drawn["dates"] == 2
    page = (lake_root / PAGE_KEY).read_text(encoding="utf-8")
    assert day.isoformat() in page
    # Gold's newest partition now shows the picture: an observation, by the dashboard's run...
    (picture,) = gold_pictures(instance, day)
    assert picture["picture_IBOV"].startswith(f"![IBOV, {earlier} to {day}](data:image/png;base64,")
    assert drawn["picture"] == f"picture_IBOV on gold_index_summary {day}"
    # ...which is no update of gold: nothing follows it.
    assert daemon.tick() == {}


def test_rebuilding_silver_by_hand_refreshes_gold_and_the_catalog(defs, instance, lake_root):
    daemon = Daemon(defs, instance)
    daemon.tick()
    day = dt.date(2025, 7, 1)
    import_days(lake_root, instance, day)
    daemon.settle()
    # A user re-materializes silver for the date (e.g. after a fix): gold follows, then the catalog.
    result = daemon.job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("silver_header"), dg.AssetKey("silver_assets")],
        partition_key=day.isoformat(),
    )
    assert result.success
    ticks = daemon.settle(max_ticks=4)
    gold = {k: {day.isoformat()} for k in BELOW_RAW if k.startswith("gold_")}
    assert {k: v for k, v in ticks[0].items() if k not in ("athena_tables", "dashboard")} == gold
    assert any("athena_tables" in t for t in ticks)
    assert any("dashboard" in t for t in ticks)
    assert ticks[-1] == {}


def test_nothing_runs_while_an_upstream_partition_is_in_progress(defs, instance, lake_root):
    daemon = Daemon(defs, instance)
    daemon.tick()
    day = dt.date(2025, 7, 3)
    import_days(lake_root, instance, day)
    # A run of bronze for the date has been launched (in progress): bronze is not requested twice.
    instance.create_run_for_job(
        job_def=daemon.job,
        asset_selection=frozenset({dg.AssetKey("bronze_portfolio")}),
        tags={"dagster/partition": day.isoformat()},
        status=dg.DagsterRunStatus.STARTED,
    )
    assert daemon.tick() == {}


def test_filling_a_gap_rebuilds_the_next_days_gold_which_is_then_compared(defs, instance, lake_root):
    """2025-07-03 built without 07-02 in the lake is not compared; importing 07-02 later rebuilds
    gold of 07-03 too, which now holds the comparison."""
    daemon = Daemon(defs, instance)
    daemon.tick()
    later, gap = dt.date(2025, 7, 3), dt.date(2025, 7, 2)
    import_days(lake_root, instance, later)
    daemon.settle()
    catalog = duckdb_catalog(lake_root)
    sql = "SELECT previous_in_lake FROM gold_index_summary WHERE \"date\" = DATE '2025-07-03'"
    assert catalog.query(sql).rows == [(False,)]

    import_days(lake_root, instance, gap)
    ticks = daemon.settle()
    assert ticks[0]["gold_changes"] == {gap.isoformat(), later.isoformat()}
    assert ticks[0]["bronze_portfolio"] == {gap.isoformat()}
    assert catalog.query(sql).rows == [(True,)]
