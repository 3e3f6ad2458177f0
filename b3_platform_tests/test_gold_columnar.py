"""gold.composition and gold.changes work by Arrow when the days come from one silver table per
date, and their tables are then the row-by-row references' exactly (`composition_by_row`,
`changes_by_row`): on the real samples, on the hand-built days of test_gold, on random dates full
of ties, nulls, entries and exits, and where they step aside."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pyarrow.compute as pc
import pytest

from b3_platform.b3.contract import decode_portfolio_json
from b3_platform.lake.tables import to_parquet_bytes
from b3_platform.transforms import gold
from b3_platform.transforms.bronze import bronze_table
from b3_platform.transforms.silver import silver_tables
from b3_platform_tests.replay import SAMPLES, with_header_date
from b3_platform_tests.test_gold import BEFORE, DAY, IBOV_BEFORE, IBOV_TODAY, SMLL_TODAY, component, silver


def _same_as_by_row(days: dict[str, gold.IndexDay], *, by_arrow: bool = True) -> None:
    assert (gold._composition_by_arrow(days) is not None) is by_arrow
    _same(gold.composition(days), gold.composition_by_row(days))


def _same_changes_as_by_row(days, previous, *, by_arrow: bool = True, by_runs: bool | None = None) -> None:
    reference = gold.changes_by_row(days, previous, BEFORE)
    assert (gold._changes_by_arrow(days, previous, BEFORE) is not None) is by_arrow
    runs = gold._changes_by_runs(days, previous, BEFORE)
    assert (runs is not None) is (by_arrow if by_runs is None else by_runs)
    if runs is not None:
        _same(runs, reference)
    _same(gold.changes(days, previous, BEFORE), reference)


def _same(got, expected) -> None:
    assert got.to_pylist() == expected.to_pylist()
    assert to_parquet_bytes(got) == to_parquet_bytes(expected)


def test_the_hand_built_days_of_test_gold():
    assets, head = silver(DAY, {"IBOV": (IBOV_TODAY, "1.5", True), "SMLL": (SMLL_TODAY, "1.0", False)})
    today = gold.index_days(assets, head)
    _same_as_by_row(today)
    before = gold.index_days(*silver(BEFORE, {"IBOV": (IBOV_BEFORE, "1.4", True)}))
    _same_changes_as_by_row(today, before)
    _same_changes_as_by_row(today, {}, by_arrow=False)  # nothing compared: no rows either way


def test_the_real_samples_with_and_without_sectors():
    items = []
    for n, path in enumerate(sorted((SAMPLES / "GetPortfolioDay" / "IBOV").glob("*.json"))):
        body = with_header_date(path.read_bytes(), "10/07/25")  # each on one date
        portfolio = decode_portfolio_json(body, index=None)
        items.append((f"IX{n:02d}", f"20250710T13000{n}000000Z-" + "0" * 64, portfolio))
    assert any(p.has_sector for _, _, p in items) and not all(p.has_sector for _, _, p in items)
    header, assets = silver_tables(bronze_table(items), dt.date(2025, 7, 10))
    _same_as_by_row(gold.index_days(assets, header))


def _random_portfolios(rng: random.Random, indices: int) -> dict[str, tuple[list[dict], str, bool]]:
    """Indices of random components with many equal weights, companies with several tickers, and
    null listing segments and sectors, some captured without sectors."""
    portfolios = {}
    sectors = ["Financeiro", "Petróleo", "Utilidade Pública", "Saúde", None]
    for i in range(indices):
        rows = []
        for t in range(rng.randint(1, 40)):
            rows.append(
                component(
                    f"T{i:02d}{t:02d}3",
                    rng.choice(["ALPHA", "BETA", "ÇETA", "delta", f"SOLO{t}"]),
                    rng.choice(["ON", "PN", "UNT"]),
                    rng.choice(["NM", "N1", "N2", None]),
                    rng.choice(sectors),
                    rng.choice(
                        [
                            "1.000",
                            "2.500",
                            "0.125",
                            "2.500",
                            "10.000",
                            f"{rng.randint(0, 20)}.{rng.randint(0, 999):03d}",
                        ]
                    ),
                    rng.randint(1, 10_000),
                )
            )
        portfolios[f"I{rng.randint(0, 999):03d}{i}"] = (rows, "1.0", rng.random() < 0.7)
    return portfolios


def _the_day_before(rng: random.Random, portfolios: dict) -> dict:
    """The same indices the trading day before (some missing): tickers exited and entered, weights,
    quantities and reductors changed, or not."""
    before = {}
    for index, (rows, reductor, has_sector) in portfolios.items():
        if rng.random() < 0.2:
            continue  # not in the lake that day
        kept = [
            {
                **r,
                "weight": rng.choice([r["weight"], r["weight"] + 1]),
                "theoretical_quantity": rng.choice([r["theoretical_quantity"], 7]),
            }
            for r in rows
            if rng.random() < 0.8
        ]
        exited = [
            component(f"X{index}{n}3", "GONE", "ON", "NM", None, "0.500", 5) for n in range(rng.randint(0, 3))
        ]
        before[index] = (kept + exited, rng.choice([reductor, "2.0"]), has_sector)
    return before


def _random_date(rng: random.Random, indices: int) -> dict[str, gold.IndexDay]:
    return gold.index_days(*silver(DAY, _random_portfolios(rng, indices)))


@pytest.mark.parametrize("seed", range(8))
def test_random_dates_full_of_ties_and_nulls(seed):
    days = _random_date(random.Random(seed), indices=12)
    _same_as_by_row(days)
    # Some indices of the date only, in another order: the rows of those, in that order.
    rng = random.Random(seed)
    some = rng.sample(list(days), k=5)
    _same_as_by_row({index: days[index] for index in some})


@pytest.mark.parametrize("seed", range(8))
def test_random_changes_full_of_entries_exits_and_ties(seed):
    rng = random.Random(seed)
    portfolios = _random_portfolios(rng, indices=12)
    today = gold.index_days(*silver(DAY, portfolios))
    before = gold.index_days(*silver(BEFORE, _the_day_before(rng, portfolios)))
    _same_changes_as_by_row(today, before)
    some = rng.sample(list(today), k=5)
    _same_changes_as_by_row({index: today[index] for index in some}, before)


def test_it_steps_aside_where_the_two_could_differ():
    assets, head = silver(DAY, {"IBOV": (IBOV_TODAY, "1.5", True), "SMLL": (SMLL_TODAY, "1.0", False)})
    days = gold.index_days(assets, head)
    # A group named "" ties with the null group in the reference's order.
    blank = [{**c, "listing_segment": ""} if c["ticker"] == "VALE3" else c for c in IBOV_TODAY]
    assets_blank, head_blank = silver(DAY, {"IBOV": (blank, "1.5", True)})
    _same_as_by_row(gold.index_days(assets_blank, head_blank), by_arrow=False)
    # A ticker twice in an index: the reference keeps its last row.
    twice = [*IBOV_TODAY, component("VALE3", "VALE", "PN", "N1", "Financeiro", "1.000", 10)]
    assets_twice, head_twice = silver(DAY, {"IBOV": (twice, "1.5", True)})
    _same_as_by_row(gold.index_days(assets_twice, head_twice), by_arrow=False)
    # Days not read from one table (built by hand, or from two dates).
    _same_as_by_row({i: dataclasses.replace(d, assets=None) for i, d in days.items()}, by_arrow=False)
    other = gold.index_days(*silver(DAY, {"IBXX": (IBOV_TODAY, "1.5", True)}))
    _same_as_by_row({**days, **other}, by_arrow=False)


def test_changes_step_aside_where_the_two_could_differ():
    before = gold.index_days(*silver(BEFORE, {"IBOV": (IBOV_BEFORE, "1.4", True)}))
    twice = [*IBOV_TODAY, component("VALE3", "VALE", "PN", "N1", "Financeiro", "1.000", 10)]
    today_twice = gold.index_days(*silver(DAY, {"IBOV": (twice, "1.5", True)}))
    _same_changes_as_by_row(today_twice, before, by_arrow=False)
    _same_changes_as_by_row(before, today_twice, by_arrow=False)
    today = gold.index_days(*silver(DAY, {"IBOV": (IBOV_TODAY, "1.5", True)}))
    by_hand = {i: dataclasses.replace(d, assets=None) for i, d in before.items()}
    # Their components are still index_days': paired by row numbers, not joined.
    _same_changes_as_by_row(today, by_hand, by_arrow=False, by_runs=True)
    # Components built by hand (plain dicts): the row path.
    by_rows = gold.index_days_by_row(*silver(BEFORE, {"IBOV": (IBOV_BEFORE, "1.4", True)}))
    _same_changes_as_by_row(today, by_rows, by_arrow=True, by_runs=False)


# --- index_days' components made on demand, and the summary from their columns ------------------


def _same_days(assets, header) -> dict[str, gold.IndexDay]:
    """index_days equals the reference's: the same indices, tickers in the same order, the same rows."""
    days, reference = gold.index_days(assets, header), gold.index_days_by_row(assets, header)
    assert list(days) == list(reference)
    for index, day in days.items():
        assert list(day.components) == list(reference[index].components)
        assert len(day.components) == len(reference[index].components)
        assert dict(day.components.items()) == reference[index].components
    assert days == reference
    return days


def _same_summary(today, before, reference_today, reference_before, *, by_columns: bool = True) -> None:
    taken = [gold._summary_columns(day, before.get(index)) is not None for index, day in today.items()]
    assert all(taken) if by_columns else not all(taken)
    # The whole date at once exactly when every index can be read by columns.
    whole = gold._summary_by_arrow(today, before)
    assert (whole is not None) is by_columns
    if whole is not None:
        assert whole == {index: gold._summary_columns(day, before.get(index)) for index, day in today.items()}
    _same(
        gold.index_summary(today, before, BEFORE),
        gold.index_summary(reference_today, reference_before, BEFORE),
    )


@pytest.mark.parametrize("seed", range(8))
def test_index_days_and_the_summary_by_columns_give_the_references_on_random_dates(seed):
    rng = random.Random(seed)
    portfolios = _random_portfolios(rng, indices=12)
    now, then = silver(DAY, portfolios), silver(BEFORE, _the_day_before(rng, portfolios))
    today, before = _same_days(*now), _same_days(*then)
    # The reference days hold plain dicts: the summary takes the row path for them.
    reference_today, reference_before = gold.index_days_by_row(*now), gold.index_days_by_row(*then)
    assert gold._summary_columns(next(iter(reference_today.values())), None) is None
    _same_summary(today, before, reference_today, reference_before)
    _same_summary(today, {}, reference_today, {})
    # The rows of the indices interleaved (silver writes them together, a table need not).
    assets, header = now
    shuffled = assets.take(rng.sample(range(assets.num_rows), assets.num_rows))
    _same_days(shuffled, header)
    _same_summary(gold.index_days(shuffled, header), before, reference_today, reference_before)


def test_a_ticker_twice_keeps_its_last_row_and_the_summary_reads_rows():
    twice = [*IBOV_TODAY, component("VALE3", "VALE", "PN", "N1", "Financeiro", "1.000", 10)]
    now = silver(DAY, {"IBOV": (twice, "1.5", True), "SMLL": (SMLL_TODAY, "1.0", False)})
    then = silver(BEFORE, {"IBOV": (IBOV_BEFORE, "1.4", True)})
    today, before = _same_days(*now), _same_days(*then)
    assert not today["IBOV"].components.unique and today["SMLL"].components.unique
    assert today["IBOV"].components["VALE3"]["theoretical_quantity"] == 10
    with pytest.raises(ValueError, match="appears twice"):
        today["IBOV"].components.column("weight")
    reference = (gold.index_days_by_row(*now), gold.index_days_by_row(*then))
    _same_summary(today, before, *reference, by_columns=False)
    _same_summary(before, today, reference[1], reference[0], by_columns=False)


def test_the_summary_takes_the_columns_without_making_a_row_dict():
    now = silver(DAY, {"IBOV": (IBOV_TODAY, "1.5", True), "SMLL": (SMLL_TODAY, "1.0", False)})
    today = gold.index_days(*now)
    before = gold.index_days(*silver(BEFORE, {"IBOV": (IBOV_BEFORE, "1.4", True)}))
    gold.index_summary(today, before, BEFORE)
    gold.composition(today), gold.changes(today, before, BEFORE)
    assert [list(d.components) for d in today.values()] == [
        [c["ticker"] for c in rows] for rows in (IBOV_TODAY, SMLL_TODAY)
    ]
    assert all(d.components._by_ticker is None for d in (*today.values(), *before.values()))


@pytest.mark.parametrize("seed", range(6))
def test_composition_groups_by_sorted_runs_as_the_rows_do_with_signed_and_extreme_weights(seed):
    # Groups are runs of the rows sorted by (index, dimension, name, weight descending, ticker),
    # summed as integers of thousandths: weights below zero, zero and near 100, many ties, and
    # one name shared by every dimension of an index must give the reference's groups.
    rng = random.Random(seed)
    portfolios = {}
    for i in range(rng.randint(1, 6)):
        rows = [
            component(
                f"W{i}{t:03d}3",
                rng.choice(["SAME", "ALPHA", f"SOLO{t}"]),
                rng.choice(["ON", "PN"]),
                rng.choice(["NM", None]),
                rng.choice(["SAME", "Saúde", None]),
                rng.choice(["-0.500", "0.000", "99.999", "0.001", "-12.345", "1.000"]),
                rng.randint(1, 9),
            )
            for t in range(rng.randint(1, 60))
        ]
        portfolios[f"J{i}"] = (rows, "1.0", rng.random() < 0.6)
    days = gold.index_days(*silver(DAY, portfolios))
    _same_as_by_row(days)
    table = gold.composition(days)
    assert table.num_rows == gold.composition_by_row(days).num_rows > 0


def test_composition_of_a_date_whose_sectors_and_segments_are_all_null():
    # No name at all in a dimension (no capture with sectors, as the synthetic archive): every
    # group of it is the null one, by Arrow as by the rows.
    blank = {"sector": None, "listing_segment": None}
    ibov, smll = [{**c, **blank} for c in IBOV_TODAY], [{**c, **blank} for c in SMLL_TODAY]
    days = gold.index_days(*silver(DAY, {"IBOV": (ibov, "1.5", True), "SMLL": (smll, "1.0", False)}))
    _same_as_by_row(days)


def test_an_index_without_a_header_row_is_left_out_by_every_path():
    # Its rows come first in the grouped rows (first in the table): the whole-date paths skip
    # them as the references do.
    def without_aaaa(assets, header):
        return assets, header.filter(pc.not_equal(header.column("index"), "AAAA"))

    now = without_aaaa(*silver(DAY, {"AAAA": (SMLL_TODAY, "1.0", False), "IBOV": (IBOV_TODAY, "1.5", True)}))
    then = without_aaaa(
        *silver(BEFORE, {"AAAA": (SMLL_TODAY, "1.0", False), "IBOV": (IBOV_BEFORE, "1.4", True)})
    )
    today, before = _same_days(*now), _same_days(*then)
    assert list(today) == ["IBOV"]
    _same_summary(today, before, gold.index_days_by_row(*now), gold.index_days_by_row(*then))
    _same_as_by_row(today)
    _same_changes_as_by_row(today, before)
