"""The completeness checks tell the truth: on the demo (imported history only) every check is green
and the two that could not be met by an archive say "not judged"; on a lake the platform captured
live, a missed index and a missed previous day still warn.

`all_configured_indices_captured` and `previous_trading_day_in_lake` judge a day only from the lake's
first capture taken from B3's API on (b3_platform.live_capture)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import dagster as dg
import pytest

from b3_platform import cli
from b3_platform.definitions import build_defs
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.runs import RANGE_END, RANGE_START, materialize_days
from b3_platform_tests.conftest import REPO

SAMPLES = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
LISTING_ASSETS = ("raw_stock_index", "index_members")
NOT_JUDGED = "not judged: no capture from B3's API on or before"


@dataclass(frozen=True)
class Evaluation:
    asset: str
    check_name: str
    partition: str | None  # the date; None for a range run's summary of its dates
    passed: bool
    description: str


def check_evaluations(instance: dg.DagsterInstance) -> list[Evaluation]:
    """Every check evaluation the instance recorded; a single-date run's is that date's."""
    records = [
        record
        for run in instance.get_runs()
        for record in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
        ).records
    ]
    found = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        partition = evaluation.partition
        if partition is None:  # a one-date run (materialize_days tags it as a range of one)
            tags = instance.get_run_by_id(record.run_id).tags
            if tags.get(RANGE_START) == tags.get(RANGE_END):
                partition = tags.get(RANGE_START)
        found.append(
            Evaluation(
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                partition,
                evaluation.passed,
                evaluation.description or "",
            )
        )
    return found


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_the_demo_shows_every_check_green(tmp_path, dagster_home, capsys):
    import b3_platform.definitions  # noqa: F401  (module-level defs point at another lake)

    assert cli.main(["--data-dir", str(tmp_path / "demo-lake"), "demo"]) == 0
    capsys.readouterr()

    with dg.DagsterInstance.get() as instance:
        evaluations = check_evaluations(instance)
    assert evaluations
    failed = sorted({(e.asset, e.check_name) for e in evaluations if not e.passed})
    assert failed == []
    # The two checks an archive cannot meet were not judged on its dates, and say so.
    for name in ("all_configured_indices_captured", "previous_trading_day_in_lake"):
        own = [e for e in evaluations if e.check_name == name]
        assert own and all(NOT_JUDGED in e.description for e in own), name


def live_lake_defs(lake_root) -> dg.Definitions:
    return build_defs(
        {
            **{k: v for k, v in os.environ.items() if not k.startswith("B3_PLATFORM_")},
            "B3_PLATFORM_DATA_DIR": str(lake_root),
            "B3_PLATFORM_INDICES": "IBOV,SMLL",
            "B3_PLATFORM_B3_URL": "http://127.0.0.1:9",  # past dates: B3 is never called
        }
    )


def test_a_lake_captured_live_still_warns_on_a_missed_index_and_day(tmp_path):
    lake_root = tmp_path / "lake"
    store = RawStore(LocalStorage(lake_root))
    before_live, first_live, after_gap = dt.date(2025, 7, 4), dt.date(2025, 7, 7), dt.date(2025, 7, 10)
    # 07-04: imported history; 07-07: the platform's first live capture (IBOV only, SMLL missed);
    # 07-08 and 07-09 missed entirely; 07-10: IBOV imported later.
    for day, source in ((before_live, "import"), (first_live, "api"), (after_gap, "import")):
        store.store(
            day,
            "IBOV",
            [(SAMPLES / f"{day}.json").read_bytes()],
            fetched_at=dt.datetime(2025, 7, 11, 12, tzinfo=dt.timezone.utc),
            source_format="json",
            meta={"source": source, "language": "pt-br", "http_status": 200 if source == "api" else None},
        )
    defs = live_lake_defs(lake_root)
    graph = defs.resolve_asset_graph()
    selection = [
        k.to_user_string() for k in graph.get_all_asset_keys() if k.to_user_string() not in LISTING_ASSETS
    ]

    with dg.instance_for_test() as instance:
        runs = materialize_days(
            defs, [before_live, first_live, after_gap], instance=instance, selection=selection, quiet=True
        )
        assert all(r.success for r in runs)
        evaluations = check_evaluations(instance)

    def per_date(asset: str, name: str) -> dict[str, tuple[bool, str]]:
        return {
            e.partition: (e.passed, e.description)
            for e in evaluations
            if (e.asset, e.check_name) == (asset, name) and e.partition
        }

    indices = per_date("raw_portfolio", "all_configured_indices_captured")
    assert indices[str(before_live)][0] and NOT_JUDGED in indices[str(before_live)][1]
    for day in (first_live, after_gap):
        passed, description = indices[str(day)]
        assert not passed and "not captured: SMLL (expected 2 indices configured" in description
    previous = per_date("gold_changes", "previous_trading_day_in_lake")
    # 07-07's previous day, 07-04, is before the first live capture: not judged (it is there anyway).
    assert previous[str(first_live)][0]
    # 07-10's previous day, 07-09, was a live-capture day that nothing reached: warns.
    passed, description = previous[str(after_gap)]
    assert not passed and "IBOV: the previous trading day 2025-07-09 is not in the lake" in description
    # The announced portfolios, never captured, are judged the same way: a miss from 07-07 on.
    announced = per_date("raw_theoretical_portfolio", "all_configured_indices_captured")
    assert announced[str(before_live)][0] and NOT_JUDGED in announced[str(before_live)][1]
    assert announced[str(first_live)] == (False, "not captured: IBOV, SMLL")
