"""Time in index carried on from the previous trading day's gold: the pure side (transforms/gold.py).

Over the hand-built lake of test_gold (entries, exits and re-entries of IBOV tickers, a trading day
missing from the lake, SMLL appearing late and missing on one date), gold of each date built by
carrying on from the previous day's carried gold gives, date by date, the same table as walking
back over silver from that date; a previous gold that does not hold silver's tickers is not trusted.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from b3_platform.trading_calendar import previous_trading_day
from b3_platform.transforms import gold
from b3_platform_tests.test_gold import LAKE, LAKE_DATES, stays


def walked(day: dt.date) -> pa.Table:
    """Gold of `day` as a walk back over the whole lake builds it (a fresh tracker)."""
    return gold.StayTracker(LAKE_DATES, lambda d: LAKE[d]).advance(day, LAKE[day])


def carrying_tracker(reads: list[dt.date]) -> gold.StayTracker:
    """A tracker whose silver listing and reads are recorded (the listing as a read of None)."""

    def listing() -> list[dt.date]:
        reads.append(None)
        return LAKE_DATES

    return gold.StayTracker(listing, lambda d: reads.append(d) or LAKE[d])


def test_every_date_built_by_carrying_on_equals_walking_back():
    """Induction over the lake: each date carries on from the table the previous trading day's
    own carry produced (never from a walk), and every table equals the walk back's."""
    built: dict[dt.date, pa.Table] = {}
    carried_dates = []
    for day in LAKE_DATES:
        before = previous_trading_day(day)
        reads: list[dt.date] = []
        tracker = carrying_tracker(reads)
        table = tracker.advance(
            day, LAKE[day], lambda: gold.carried_stays(built.get(before), LAKE.get(before, {}))
        )
        assert table.equals(walked(day)), day
        assert stays(table) == stays(walked(day)), day
        built[day] = table
        expected_carried = sorted(i for i in LAKE[day] if i in LAKE.get(before, {}))
        assert sorted(tracker.carried) == expected_carried, day
        assert sorted(tracker.walked) == sorted(set(LAKE[day]) - set(expected_carried)), day
        if not tracker.walked:
            assert reads == [], day  # carried whole: no silver listed, no earlier date read
            carried_dates.append(day)
    # The lake's shape exercises both paths: the first date, the date after the gap (11-19 missing)
    # and SMLL's dates walk back; the others carry on.
    assert dt.date(2025, 11, 21) not in carried_dates and LAKE_DATES[0] not in carried_dates
    assert dt.date(2025, 11, 24) in carried_dates and dt.date(2025, 11, 26) in carried_dates


def test_a_new_index_is_walked_back_while_the_others_carry_on():
    day, before = dt.date(2025, 11, 27), dt.date(2025, 11, 26)  # SMLL is missing on 11-26
    reads: list[dt.date] = []
    tracker = carrying_tracker(reads)
    table = tracker.advance(day, LAKE[day], lambda: gold.carried_stays(walked(before), LAKE[before]))
    assert tracker.carried == ["IBOV"] and tracker.walked == ["SMLL"]
    assert table.equals(walked(day))
    # SMLL's walk: the listing, then 11-26 (no SMLL: not an exit) and 11-25 (SMLL's first date),
    # then on to the lake's first date to learn that 11-25 began SMLL's history.
    assert reads[0] is None and reads[1:3] == [before, dt.date(2025, 11, 25)]


def _with(table: pa.Table, ticker: str) -> pa.Table:
    rows = table.to_pylist()
    return pa.Table.from_pylist([*rows, {**rows[0], "ticker": ticker}], schema=table.schema)


def _without(table: pa.Table, ticker: str) -> pa.Table:
    return table.filter(pa.compute.not_equal(table["ticker"], ticker))


@pytest.mark.parametrize(
    "stale",
    [
        pytest.param(lambda t: _without(t, "A"), id="a ticker fewer than silver"),
        pytest.param(lambda t: _with(t, "Z"), id="a ticker silver lacks"),
        pytest.param(lambda t: t.slice(0, 0), id="no rows for the index"),
        pytest.param(lambda t: None, id="no gold"),
    ],
)
def test_a_previous_gold_that_does_not_match_its_silver_is_not_carried(stale):
    """Silver of the previous day rebuilt after its gold (or gold missing): walk back instead."""
    day, before = dt.date(2025, 11, 24), dt.date(2025, 11, 21)
    previous = stale(walked(before))
    assert gold.carried_stays(previous, LAKE[before]) == {}
    reads: list[dt.date] = []
    tracker = carrying_tracker(reads)
    table = tracker.advance(day, LAKE[day], lambda: gold.carried_stays(previous, LAKE[before]))
    assert tracker.walked == ["IBOV"] and tracker.carried == []
    assert table.equals(walked(day))
    assert reads[:2] == [None, before]


def test_carried_stays_are_the_rows_of_the_previous_gold():
    before = dt.date(2025, 11, 18)
    carried = gold.carried_stays(walked(before), LAKE[before])
    assert carried == {
        "IBOV": {
            "A": gold.Stay(dt.date(2025, 11, 13), 4, True),
            "B": gold.Stay(dt.date(2025, 11, 13), 4, True),
            "C": gold.Stay(dt.date(2025, 11, 18), 1, False),
            "D": gold.Stay(dt.date(2025, 11, 17), 2, False),
        }
    }


def test_the_carry_is_asked_only_for_indices_new_to_the_run():
    """A range run carries (or walks) once, at its first date; later dates advance in memory."""
    asked = []
    tracker = gold.StayTracker(LAKE_DATES, lambda d: LAKE[d])
    for day in LAKE_DATES[1:5]:  # IBOV only
        before = previous_trading_day(day)
        tracker.advance(
            day, LAKE[day], lambda b=before: asked.append(b) or gold.carried_stays(walked(b), LAKE.get(b, {}))
        )
    assert asked == [LAKE_DATES[0]]
    assert tracker.carried == ["IBOV"] and tracker.dates_read == 0
