"""The catalog (athena_tables) refreshes after every layer that follows an update, not alongside
them: silver of a date rebuilt → the first tick requests gold and not the catalog; the catalog is
requested once gold's run has stored it. Evaluated as the `follow_upstream` sensor does, with
Dagster's `evaluate_automation_conditions` over successive ticks on a real instance and lake."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from b3_platform_tests.test_automation import Daemon, defs, import_days, instance, latest  # noqa: F401

DAY = dt.date(2025, 7, 1)
GOLD = {"gold_composition", "gold_changes", "gold_index_summary", "gold_time_in_index"}


def built_day(defs, instance, lake_root) -> Daemon:  # noqa: F811
    daemon = Daemon(defs, instance)
    daemon.tick()
    import_days(lake_root, instance, DAY)
    ticks = daemon.settle()
    assert any("athena_tables" in t for t in ticks)
    return daemon


def rebuild(daemon: Daemon, *keys: str) -> None:
    result = daemon.job.execute_in_process(
        instance=daemon.instance,
        asset_selection=[dg.AssetKey(k) for k in keys],
        partition_key=DAY.isoformat(),
    )
    assert result.success


def test_silver_rebuilt_requests_gold_first_then_the_catalog(defs, instance, lake_root):  # noqa: F811
    daemon = built_day(defs, instance, lake_root)
    rebuild(daemon, "silver_header", "silver_assets")

    first = daemon.tick()
    assert first == {k: {DAY.isoformat()} for k in GOLD}  # gold, and not the catalog
    daemon.run(first)

    second = daemon.tick()
    assert second == {"athena_tables": {None}, "dashboard": {None}}
    daemon.run(second)
    assert daemon.tick() == {}
    catalog = instance.get_latest_materialization_event(dg.AssetKey("athena_tables"))
    for k in GOLD:
        assert latest(instance, k, DAY.isoformat()).timestamp < catalog.timestamp


def test_one_silver_table_rebuilt_alone_is_followed_the_same_way(defs, instance, lake_root):  # noqa: F811
    """A run of silver_assets alone (the multi-asset subset) sets off the same order."""
    daemon = built_day(defs, instance, lake_root)
    rebuild(daemon, "silver_assets")
    first = daemon.tick()
    assert "athena_tables" not in first and set(first) == GOLD
    daemon.run(first)
    assert daemon.tick() == {"athena_tables": {None}, "dashboard": {None}}


def test_the_catalog_waits_while_gold_runs(defs, instance, lake_root):  # noqa: F811
    daemon = built_day(defs, instance, lake_root)
    rebuild(daemon, "silver_header", "silver_assets")
    first = daemon.tick()
    assert set(first) == GOLD
    # The run the sensor requested is launched and still running on the next ticks.
    run = instance.create_run_for_job(
        job_def=daemon.job,
        asset_selection=frozenset(dg.AssetKey(k) for k in GOLD),
        tags={"dagster/partition": DAY.isoformat()},
        status=dg.DagsterRunStatus.STARTED,
    )
    assert daemon.tick() == {}
    assert daemon.tick() == {}
    instance.report_run_canceled(run)  # as if it stopped; gold is then built by the next run
    daemon.run(first)
    assert daemon.tick() == {"athena_tables": {None}, "dashboard": {None}}


def test_an_import_still_refreshes_the_catalog_on_the_tick_after_its_run(defs, instance, lake_root):  # noqa: F811
    """Raw is not a table the catalog covers: an import builds every layer in one run on the first
    tick, and the next tick refreshes the catalog (no tick is lost waiting)."""
    daemon = Daemon(defs, instance)
    daemon.tick()
    import_days(lake_root, instance, DAY)
    first = daemon.tick()
    assert "athena_tables" not in first and GOLD <= set(first)
    daemon.run(first)
    assert daemon.tick() == {"athena_tables": {None}, "dashboard": {None}}
