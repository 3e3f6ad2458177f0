"""The daily capture schedule: two ticks per weekday in São Paulo, skipped on B3 holidays, and the
evening one skipped once every configured index is in the lake.

Ticks are evaluated the way the daemon does (`evaluate_tick` with the repository, so the requested
partition is validated against the job's partitions) and, once, by calling the schedule directly.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b3_platform import partitions
from b3_platform.automation import daily_capture_job, daily_capture_schedule
from b3_platform.definitions import defs
from b3_platform.importer import import_paths
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import GOLD_TABLES, TABLES
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import B3ApiResource, LakeResource

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
REPO = Path(__file__).resolve().parent.parent
IBOV_2025_07_10 = REPO / "demo_data" / "GetPortfolioDay" / "IBOV" / "2025-07-10.json"

#: The announced portfolios are captured in the same job, each method its own raw asset.
ANNOUNCED_RAW = ("raw_theoretical_portfolio", "raw_preview_portfolio")


def sp(year: int, month: int, day: int, hour: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=SAO_PAULO)


@pytest.fixture
def lake_dir(tmp_path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def captured_ibov(lake_dir) -> Path:
    """The lake holding the real 2025-07-10 IBOV capture (imported like a user would)."""
    results = import_paths(RawStore(LocalStorage(lake_dir)), [IBOV_2025_07_10])
    assert [(r.status, r.day, r.index) for r in results] == [("imported", dt.date(2025, 7, 10), "IBOV")]
    return lake_dir


@pytest.fixture
def tick(lake_dir):
    """Evaluate one tick at a São Paulo time; returns the ScheduleExecutionData."""

    def run(when: dt.datetime, indices=("IBOV",)):
        lake = LakeResource(root=str(lake_dir))
        # `b3` stands on `lake` (where discovered listings are read): a nested resource, so the
        # context is opened as a context manager, as the daemon does.
        with dg.build_schedule_context(
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
            resources={
                "lake": lake,
                "b3": B3ApiResource(indices=list(indices) if indices else None, lake=lake),
            },
        ) as context:
            return daily_capture_schedule.evaluate_tick(context)

    return run


def only_request(result) -> dg.RunRequest:
    assert result.skip_message is None
    assert len(result.run_requests) == 1
    return result.run_requests[0]


# --- the schedule's shape -------------------------------------------------------------------------


def test_cron_is_weekdays_morning_midday_and_evening_in_sao_paulo():
    assert daily_capture_schedule.cron_schedule == "0 9,13,20 * * 1-5"
    assert daily_capture_schedule.execution_timezone == "America/Sao_Paulo"
    assert daily_capture_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert daily_capture_schedule.job_name == "daily_capture"


def test_job_selects_raw_and_everything_downstream():
    job = defs.resolve_job_def("daily_capture")
    assert job.partitions_def is partitions.trading_days
    selected = daily_capture_job.selection.resolve(defs.resolve_asset_graph())
    # Raw and everything downstream: bronze, silver, the four gold tables, then the catalog; not the
    # dashboard (it draws every date of the history; automation redraws it after the catalog).
    expected = {"raw_stock_index", "raw_portfolio", *ANNOUNCED_RAW, *TABLES, "athena_tables"}
    assert {t.name for t in GOLD_TABLES} <= expected
    assert {k.to_user_string() for k in selected} == expected
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == expected


# --- morning --------------------------------------------------------------------------------------


def test_trading_day_morning_requests_the_day(tick):
    request = only_request(tick(sp(2025, 7, 10, 9)))
    assert request.partition_key == "2025-07-10"
    assert request.run_key == "2025-07-10-morning"
    assert request.tags["b3_platform/attempt"] == "morning"
    assert request.tags["dagster/partition"] == "2025-07-10"


def test_morning_runs_even_when_already_captured(tick, captured_ibov):
    # Only the evening tick looks at the lake: the morning capture is always attempted.
    request = only_request(tick(sp(2025, 7, 10, 9)))
    assert request.run_key == "2025-07-10-morning"


def test_utc_scheduled_time_is_read_on_sao_paulo_clock(tick):
    # 2025-07-11 00:30 UTC is still Thursday 2025-07-10 21:30 in São Paulo: the evening tick.
    request = only_request(tick(dt.datetime(2025, 7, 11, 0, 30, tzinfo=dt.timezone.utc)))
    assert request.partition_key == "2025-07-10"
    assert request.run_key == "2025-07-10-evening"
    request = only_request(tick(dt.datetime(2025, 7, 10, 12, tzinfo=dt.timezone.utc)))
    assert request.run_key == "2025-07-10-morning"


def test_direct_call_with_resources():
    with dg.build_schedule_context(
        scheduled_execution_time=sp(2025, 7, 10, 9),
        resources={"lake": LakeResource(root="unused"), "b3": B3ApiResource(indices=["IBOV"])},
    ) as context:
        request = daily_capture_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert (request.partition_key, request.run_key) == ("2025-07-10", "2025-07-10-morning")


# --- skipped days ---------------------------------------------------------------------------------


@pytest.mark.parametrize("when", [sp(2025, 7, 12, 9), sp(2025, 7, 12, 20), sp(2025, 7, 13, 9)], ids=str)
def test_weekend_is_skipped(tick, when):
    result = tick(when)
    assert result.run_requests == []
    assert "not a B3 trading day" in result.skip_message
    assert when.date().isoformat() in result.skip_message


@pytest.mark.parametrize(
    "when", [sp(2025, 11, 20, 9), sp(2025, 11, 20, 20), sp(2025, 3, 3, 9), sp(2025, 12, 31, 20)], ids=str
)
def test_holiday_is_skipped(tick, when):
    result = tick(when)
    assert result.run_requests == []
    assert result.skip_message == f"{when.date()} is not a B3 trading day"


# --- evening retry --------------------------------------------------------------------------------


def test_evening_with_nothing_captured_retries(tick):
    request = only_request(tick(sp(2025, 7, 10, 20)))
    assert request.partition_key == "2025-07-10"
    assert request.run_key == "2025-07-10-evening"
    assert request.tags["b3_platform/attempt"] == "evening"


def test_midday_skipped_when_every_index_was_captured(tick, captured_ibov):
    result = tick(sp(2025, 7, 10, 13), indices=["IBOV"])
    assert result.run_requests == []
    assert "already captured" in result.skip_message
    assert "2025-07-10" in result.skip_message


def test_midday_retries_when_an_index_is_missing(tick, captured_ibov):
    request = only_request(tick(sp(2025, 7, 10, 13), indices=["IBOV", "SMLL"]))
    assert (request.partition_key, request.run_key) == ("2025-07-10", "2025-07-10-midday")
    assert request.asset_selection is None  # the whole job: the missing index and every layer
    assert request.tags["b3_platform/attempt"] == "midday"


def test_evening_of_a_complete_day_captures_raw_only_looking_ahead(tick, captured_ibov):
    """Complete by 20:00: raw only, so a next-trading-day portfolio B3 already serves is filed early
    (and nothing below raw is rebuilt by this run)."""
    request = only_request(tick(sp(2025, 7, 10, 20), indices=["IBOV"]))
    assert (request.partition_key, request.run_key) == ("2025-07-10", "2025-07-10-evening")
    assert {k.to_user_string() for k in request.asset_selection} == {"raw_stock_index", "raw_portfolio"}


def test_discovered_list_decides_what_is_missing(tick, lake_dir, captured_ibov):
    """Without B3_PLATFORM_INDICES the midday tick expects the indices of the newest listing."""
    from b3_platform.b3.client import FetchedPage, StockIndexCapture
    from b3_platform.b3.stock_index import decode_stock_index_json
    from b3_platform.discovery import listing_store, store_listing
    from b3_platform_tests.replay import STOCK_INDEX_SAMPLE, listing_with_indices, sample_bytes

    store = listing_store(RawStore(LocalStorage(lake_dir)))
    # Every listed stock in IBOV only: the day's list is just IBOV, which is captured.
    body = sample_bytes(STOCK_INDEX_SAMPLE)
    import json

    only_ibov = listing_with_indices(body, {r["code"]: ["IBOV"] for r in json.loads(body)["results"]})
    page = FetchedPage("u", {}, 200, only_ibov, dt.datetime(2025, 7, 10, 12, tzinfo=dt.timezone.utc))
    store_listing(store, dt.date(2025, 7, 10), StockIndexCapture(page, decode_stock_index_json(only_ibov)))
    assert "already captured" in tick(sp(2025, 7, 10, 13), indices=None).skip_message
    # The real listing of 34 indices: 33 are missing.
    page = FetchedPage("u", {}, 200, body, dt.datetime(2025, 7, 10, 12, 1, tzinfo=dt.timezone.utc))
    store_listing(store, dt.date(2025, 7, 10), StockIndexCapture(page, decode_stock_index_json(body)))
    request = only_request(tick(sp(2025, 7, 10, 13), indices=None))
    assert request.run_key == "2025-07-10-midday"


def test_evening_retries_when_an_index_is_missing(tick, captured_ibov):
    request = only_request(tick(sp(2025, 7, 10, 20), indices=["IBOV", "SMLL"]))
    assert request.run_key == "2025-07-10-evening"
    assert request.partition_key == "2025-07-10"


def test_evening_only_counts_captures_of_that_day(tick, captured_ibov):
    # IBOV is captured for 2025-07-10, not for the next trading day.
    request = only_request(tick(sp(2025, 7, 11, 20), indices=["IBOV"]))
    assert (request.partition_key, request.run_key) == ("2025-07-11", "2025-07-11-evening")


def test_the_scheduled_job_captures_the_day_and_builds_every_layer(resources, b3_server, today, lake_root):
    """What a morning tick launches: the daily_capture job for the day's partition fetches the
    day's portfolio from B3 (the replay server) and builds bronze, silver and gold from it, then
    the catalog; the evening tick then has nothing left to do."""
    day = today()
    from b3_platform_tests.replay import STOCK_INDEX, STOCK_INDEX_SAMPLE, sample_bytes

    b3_server.serve(STOCK_INDEX, sample_bytes(STOCK_INDEX_SAMPLE))
    local_defs = dg.Definitions(
        assets=defs.assets, jobs=[daily_capture_job], schedules=[daily_capture_schedule], resources=resources
    )
    # The catalog's DuckDB resource is a context manager: so is the schedule context holding it.
    with dg.build_schedule_context(
        scheduled_execution_time=sp(2025, 7, 10, 9),
        resources=resources,
        repository_def=local_defs.get_repository_def(),
    ) as context:
        [request] = daily_capture_schedule.evaluate_tick(context).run_requests
    job = local_defs.resolve_job_def("daily_capture")
    result = job.execute_in_process(
        partition_key=request.partition_key, tags=request.tags, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    assert len(b3_server.requests_for("IBOV")) == 1
    assert len(b3_server.requests_for_method(STOCK_INDEX)) == 1
    materialized = sorted(
        (e.asset_key.to_user_string(), e.partition) for e in result.get_asset_materialization_events()
    )
    assert materialized == sorted(
        [(name, day.isoformat()) for name in ("raw_stock_index", "raw_portfolio", *ANNOUNCED_RAW, *TABLES)]
        + [("athena_tables", None)]
    )
    for table_def in TABLES.values():
        path = lake_root / table_def.location / f"date={day}" / "data.parquet"
        if table_def.name == "announced_accuracy":  # 2025-07-10 is not a rebalance date: no file
            assert not path.exists()
            continue
        assert pq.read_schema(path).equals(table_def.schema, check_metadata=False), table_def.name
    # The day before (2025-07-09) was never captured: gold is not compared. This is the lake's first
    # live capture, so 07-09 was no day the platform captured: not judged, and every check passes.
    evaluations = result.get_asset_check_evaluations()
    assert [e.check_name for e in evaluations if not e.passed] == []
    previous = [e for e in evaluations if e.check_name == "previous_trading_day_in_lake"]
    assert previous and all(
        e.description.startswith("not judged: no capture from B3's API on or before 2025-07-09")
        for e in previous
    )
    # The catalog answers for the day.
    rows = resources["catalog"].query(
        f"SELECT count(*) FROM gold_time_in_index WHERE \"date\" = DATE '{day}'"
    )
    assert rows.rows == [(84,)]

    with dg.build_schedule_context(
        scheduled_execution_time=sp(2025, 7, 10, 13), resources=resources
    ) as midday:
        assert isinstance(daily_capture_schedule(midday), dg.SkipReason)
