"""B3's timing: it publishes the next session's portfolio before that session opens. A live capture
dated the next trading day is filed under that date and reported as that partition's
materialization; two trading days ahead, or a past day, is refused with the usual message; and a
day already captured survives B3 failing later that day."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from b3_platform import trading_calendar
from b3_platform.assets import raw_portfolio
from b3_platform_tests.conftest import SAMPLE_JSON, replay_b3_resource
from b3_platform_tests.replay import Reply, sample_bytes, with_header_date

SAMPLE = sample_bytes(SAMPLE_JSON)  # IBOV, header date 10/07/25 (a Thursday)
THURSDAY, FRIDAY, MONDAY = dt.date(2025, 7, 10), dt.date(2025, 7, 11), dt.date(2025, 7, 14)


def raw_dir(lake_root: Path, day: dt.date, index: str = "IBOV") -> Path:
    return lake_root / f"raw/GetPortfolioDay/date={day}/index={index}"


def bodies(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".meta.json"))


def run(resources, day: dt.date, instance=None, expect_success: bool = True):
    result = dg.materialize(
        [raw_portfolio],
        resources=resources,
        partition_key=day.isoformat(),
        raise_on_error=False,
        instance=instance,
    )
    assert result.success is expect_success
    return result


def failure(result) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.user_failure_data.description


def test_the_calendar_knows_the_next_trading_day():
    assert trading_calendar.next_trading_day(THURSDAY) == FRIDAY
    assert trading_calendar.next_trading_day(FRIDAY) == MONDAY  # over the weekend
    # Over a holiday: Consciência Negra, Thursday 2025-11-20.
    assert trading_calendar.next_trading_day(dt.date(2025, 11, 19)) == dt.date(2025, 11, 21)
    # A Saturday's next trading day is Monday (B3 titles Saturday downloads with Monday's date).
    assert trading_calendar.next_trading_day(dt.date(2025, 7, 12)) == MONDAY


def test_an_evening_capture_of_the_next_trading_day_is_filed_under_it(resources, b3_server, today, lake_root):
    """Friday's portfolio served on Thursday evening, with Thursday captured in the morning."""
    today(THURSDAY)
    run(resources, THURSDAY)  # the morning: Thursday's own portfolio
    friday_body = with_header_date(SAMPLE, "11/07/25")
    b3_server.serve("IBOV", friday_body)
    with dg.instance_for_test() as instance:
        result = run(resources, THURSDAY, instance)  # the evening attempt
        [stored] = bodies(raw_dir(lake_root, FRIDAY))
        assert stored.read_bytes() == friday_body
        meta = json.loads(stored.with_name(stored.name.replace(".json", ".meta.json")).read_bytes())
        assert meta["date"] == "2025-07-11" and meta["header_date"] == "11/07/25"
        assert [p.read_bytes() for p in bodies(raw_dir(lake_root, THURSDAY))] == [SAMPLE]  # untouched
        # Reported under Friday's partition as well as the run's own (Thursday's).
        partitions = sorted(m.partition for m in result.asset_materializations_for_node("raw_portfolio"))
        assert partitions == ["2025-07-10", "2025-07-11"]
        assert instance.get_materialized_partitions(dg.AssetKey("raw_portfolio")) == {
            "2025-07-10",
            "2025-07-11",
        }
        [ahead] = [
            m for m in result.asset_materializations_for_node("raw_portfolio") if m.partition == "2025-07-11"
        ]
        assert ahead.metadata["captured_ahead_on"].value == "2025-07-10"
        assert ahead.metadata["indices"].value == "IBOV"


def test_friday_evening_sees_monday_and_monday_then_succeeds_even_if_b3_fails(
    resources, b3_server, today, lake_root
):
    """The weekend: Monday's portfolio captured on Friday evening is Monday's partition; Monday's run
    keeps it when B3 fails that morning, so the layers below are built for Monday."""
    today(FRIDAY)
    b3_server.serve("IBOV", with_header_date(SAMPLE, "11/07/25"))
    run(resources, FRIDAY)
    b3_server.serve("IBOV", with_header_date(SAMPLE, "14/07/25"))
    run(resources, FRIDAY)  # Friday evening: Monday's portfolio, filed under Monday
    assert len(bodies(raw_dir(lake_root, MONDAY))) == 1

    today(MONDAY)
    b3_server.script("IBOV", *[Reply(520, b"")] * 3)
    result = run(resources, MONDAY)  # B3 down on Monday morning: Monday is already in raw
    [mat] = result.asset_materializations_for_node("raw_portfolio")
    assert mat.partition == "2025-07-14"
    assert mat.metadata["captured_this_run"].value == "none (already stored)"
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed


def test_b3_already_on_the_next_day_when_today_was_never_captured_fails_naming_it(
    resources, b3_server, today, lake_root
):
    """A failed morning and an early switch: Friday is filed, Thursday is lost and said so."""
    today(THURSDAY)
    b3_server.serve("IBOV", with_header_date(SAMPLE, "11/07/25"))
    result = run(resources, THURSDAY, expect_success=False)
    assert len(bodies(raw_dir(lake_root, FRIDAY))) == 1
    assert not raw_dir(lake_root, THURSDAY).exists()
    assert failure(result).startswith(
        "raw_portfolio: 1 problem(s): IBOV 2025-07-10: B3 already serves the portfolio of 2025-07-11, "
        "and 2025-07-10 was not captured before."
    )
    # Friday is still reported: the UI shows it captured.
    assert [m.partition for m in result.asset_materializations_for_node("raw_portfolio")] == ["2025-07-11"]


@pytest.mark.parametrize(
    "header, served",
    [("14/07/25", "2025-07-14"), ("15/07/25", "2025-07-15"), ("09/07/25", "2025-07-09")],
    ids=["two_trading_days_ahead", "three_ahead", "previous_day"],
)
def test_any_other_date_is_still_refused_with_the_usual_message(
    resources, b3_server, today, lake_root, header, served
):
    today(THURSDAY)
    b3_server.serve("IBOV", with_header_date(SAMPLE, header))
    result = run(resources, THURSDAY, expect_success=False)
    assert failure(result) == (
        f"raw_portfolio: 1 problem(s): IBOV 2025-07-10: B3 response for IBOV 2025-07-10: "
        f"B3 is serving the portfolio of {served}, not 2025-07-10"
    )
    assert not (lake_root / "raw").exists()
    assert result.asset_materializations_for_node("raw_portfolio") == []


def test_a_pause_separates_the_calls_of_a_day(resources, b3_server, today, lake_root):
    """Politeness: one call at a time, `pause_seconds` apart."""
    today(THURSDAY)
    for code in ("IBXX", "SMLL"):
        b3_server.serve(code, SAMPLE)
    b3 = replay_b3_resource(b3_server, indices=["IBOV", "IBXX", "SMLL"], pause_seconds=0.3)
    started = dt.datetime.now()
    run({**resources, "b3": b3}, THURSDAY)
    assert (dt.datetime.now() - started).total_seconds() >= 0.6
    assert [r.params["index"] for r in b3_server.requests] == ["IBOV", "IBXX", "SMLL"]


def test_the_capture_budget_stops_new_attempts_and_names_what_was_left(
    resources, b3_server, today, lake_root
):
    today(THURSDAY)
    b3_server.script("IBOV", Reply(body=SAMPLE, delay=0.5))
    b3_server.serve("IBXX", SAMPLE)
    b3 = replay_b3_resource(b3_server, indices=["IBOV", "IBXX", "SMLL"], capture_budget_seconds=0.2)
    result = run({**resources, "b3": b3}, THURSDAY, expect_success=False)
    assert [r.params["index"] for r in b3_server.requests] == ["IBOV"]
    assert len(bodies(raw_dir(lake_root, THURSDAY))) == 1
    description = failure(result)
    assert description.startswith("raw_portfolio: 2 problem(s): ")
    for code in ("IBXX", "SMLL"):
        assert f"{code} 2025-07-10: not attempted: the capture budget of 0.2 s was used up" in description


def test_b3_down_for_a_whole_day_of_34_indices_names_every_one(resources, b3_server, today, lake_root):
    from b3_platform.b3.indices import BUILTIN_INDICES

    today(THURSDAY)
    b3_server.reset()  # nothing served: every index answers `results: null`
    b3 = replay_b3_resource(b3_server, indices=list(BUILTIN_INDICES))
    description = failure(run({**resources, "b3": b3}, THURSDAY, expect_success=False))
    assert description.startswith("raw_portfolio: 34 problem(s): AGFS 2025-07-10: ")
    for code in BUILTIN_INDICES:
        assert f"{code} 2025-07-10" in description
