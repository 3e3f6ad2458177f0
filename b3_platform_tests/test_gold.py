"""Gold: the pure functions of b3_platform/gold.py on small hand-built silver tables (every figure
worked out by hand below), its quality rules on good and broken tables, and the gold_tables
multi-asset materialized in-process over the real samples (NTCO3 → NATU3 on 2025-07-02, the gap of
2025-07-09)."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.gold import gold_tables as gold_asset
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import (
    GOLD_CHANGES,
    GOLD_COMPOSITION,
    GOLD_INDEX_SUMMARY,
    GOLD_TABLES,
    GOLD_TIME_IN_INDEX,
    SILVER_ASSETS,
    SILVER_HEADER,
    TABLES,
)
from b3_platform.lake.storage import LocalStorage
from b3_platform.quality import GOLD_RULES
from b3_platform.resources import B3ApiResource, LakeResource, lake_resources
from b3_platform.runs import QUIET, range_tags
from b3_platform.trading_calendar import previous_trading_day, trading_days_between, trading_days_held
from b3_platform.transforms import gold
from b3_platform_tests.conftest import duckdb_catalog
from b3_platform_tests.test_pipeline import (
    JSON_DAYS,
    check_evaluations,
    materializations,
    partition_evaluations,
    path_of,
    run,
    seed,
    steps,
)

DAY = dt.date(2025, 7, 10)
BEFORE = previous_trading_day(DAY)  # 2025-07-09
GOLD = [t.name for t in GOLD_TABLES]
W = Decimal  # weights are Decimal(7,3) all the way


# ------------------------------------------------------------------------- hand-built silver tables


def component(ticker, company, share_class, segment, sector, weight, quantity, *, index="IBOV"):
    return {
        "index": index,
        "ticker": ticker,
        "company": company,
        "share_class": share_class,
        "event_flag": None,
        "listing_segment": segment,
        "sector": sector,
        "sector_weight": None,
        "weight": W(weight),
        "theoretical_quantity": quantity,
        "type_code": f"{share_class} {segment or ''}".strip(),
        "row_number": 0,
        "capture_id": "test",
    }


def header(index, day, reductor, rows, *, has_sector):
    return {
        "index": index,
        "reference_date": day,
        "theoretical_quantity_total": sum(r["theoretical_quantity"] for r in rows),
        "part_total": W("100.000"),
        "reductor": Decimal(reductor),
        "reductor_note": None,
        "row_count": len(rows),
        "total_records": len(rows),
        "has_sector": has_sector,
        "language": "pt-br",
        "source_format": "json",
        "capture_id": "test",
        "fetched_at": dt.datetime(2025, 7, 10, 12, tzinfo=dt.timezone.utc),
    }


def silver(day, portfolios: dict[str, tuple[list[dict], str, bool]]) -> tuple[pa.Table, pa.Table]:
    """silver_assets and silver_header of one date: {index: (components, reductor, has_sector)}."""
    assets, headers = [], []
    for index, (rows, reductor, has_sector) in portfolios.items():
        rows = [{**r, "index": index, "row_number": n} for n, r in enumerate(rows, start=1)]
        assets += rows
        headers.append(header(index, day, reductor, rows, has_sector=has_sector))
    return (
        pa.Table.from_pylist(assets, schema=SILVER_ASSETS.schema),
        pa.Table.from_pylist(headers, schema=SILVER_HEADER.schema),
    )


#: IBOV today: 12 components summing to 100.000; two share classes of PETROBRAS; CSNA3's sector
#: missing from an otherwise segment-2 capture; ABEV3 and CSNA3 without a listing segment.
IBOV_TODAY = [
    component("VALE3", "VALE", "ON", "NM", "Materiais Básicos", "20.500", 4_000),
    component("PETR4", "PETROBRAS", "PN", "N2", "Petróleo", "15.250", 2_000),
    component("PETR3", "PETROBRAS", "ON", "N2", "Petróleo", "10.125", 1_500),
    component("ITUB4", "ITAUUNIBANCO", "PN", "N1", "Financeiro", "9.000", 1_200),
    component("BBDC4", "BRADESCO", "PN", "N1", "Financeiro", "8.000", 3_000),
    component("ABEV3", "AMBEV S/A", "ON", None, "Consumo não Cíclico", "7.000", 2_500),
    component("WEGE3", "WEG", "ON", "NM", "Bens Industriais", "6.000", 600),
    component("B3SA3", "B3", "ON", "NM", "Financeiro", "5.500", 2_200),
    component("BBAS3", "BRASIL", "ON", "NM", "Financeiro", "5.000", 1_100),
    component("RENT3", "LOCALIZA", "ON", "NM", "Consumo Cíclico", "4.625", 800),
    component("SUZB3", "SUZANO S.A.", "ON", "NM", "Materiais Básicos", "4.500", 500),
    component("CSNA3", "SID NACIONAL", "ON", None, None, "4.500", 900),
]
#: IBOV the trading day before: GOLL4 instead of CSNA3; PETR4's quantity and weight and VALE3's
#: weight differ; another reductor.
IBOV_BEFORE = [
    component("VALE3", "VALE", "ON", "NM", "Materiais Básicos", "21.000", 4_000),
    component("PETR4", "PETROBRAS", "PN", "N2", "Petróleo", "15.000", 1_999),
    *[c for c in IBOV_TODAY if c["ticker"] not in {"VALE3", "PETR4", "CSNA3"}],
    component("GOLL4", "GOL", "PN", "N2", "Consumo Cíclico", "4.500", 700),
]
#: SMLL, captured without segment 2 (no sectors at all); not in the lake the day before.
SMLL_TODAY = [
    component("CVCB3", "CVC BRASIL", "ON", "NM", None, "60.000", 100, index="SMLL"),
    component("POMO4", "MARCOPOLO", "PN", "N2", None, "40.000", 200, index="SMLL"),
]
REDUCTOR_TODAY = "15440487.14969838"
REDUCTOR_BEFORE = "15438607.05630450"


@pytest.fixture
def today() -> dict[str, gold.IndexDay]:
    assets, head = silver(
        DAY, {"IBOV": (IBOV_TODAY, REDUCTOR_TODAY, True), "SMLL": (SMLL_TODAY, "1.00000000", False)}
    )
    return gold.index_days(assets, head)


@pytest.fixture
def before() -> dict[str, gold.IndexDay]:
    assets, head = silver(BEFORE, {"IBOV": (IBOV_BEFORE, REDUCTOR_BEFORE, True)})
    return gold.index_days(assets, head)


def rows_by(table: pa.Table, *key: str) -> dict:
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in table.to_pylist()}


# ------------------------------------------------------------------------------------- index_days


def test_index_days_splits_a_date_by_index(today):
    assert list(today) == ["IBOV", "SMLL"]
    ibov = today["IBOV"]
    assert (ibov.reductor, ibov.has_sector) == (Decimal(REDUCTOR_TODAY), True)
    assert list(ibov.components) == [c["ticker"] for c in IBOV_TODAY]
    assert ibov.components["PETR3"]["weight"] == W("10.125")
    assert today["SMLL"].has_sector is False


# ------------------------------------------------------------------------------------ composition


def test_composition_by_every_dimension(today):
    table = gold.composition(today)
    assert table.schema.equals(GOLD_COMPOSITION.schema)
    ibov = [r for r in table.to_pylist() if r["index"] == "IBOV"]
    groups = {
        dimension: [
            (r["group_name"], r["weight"], r["components"]) for r in ibov if r["dimension"] == dimension
        ]
        for dimension in gold.DIMENSIONS
    }
    # Heaviest group first; each dimension covers the 12 components and 100 % exactly.
    assert groups["sector"] == [
        ("Financeiro", W("27.500"), 4),  # ITUB4 9 + BBDC4 8 + B3SA3 5.5 + BBAS3 5
        ("Petróleo", W("25.375"), 2),  # PETR4 15.25 + PETR3 10.125
        ("Materiais Básicos", W("25.000"), 2),  # VALE3 20.5 + SUZB3 4.5
        ("Consumo não Cíclico", W("7.000"), 1),
        ("Bens Industriais", W("6.000"), 1),
        ("Consumo Cíclico", W("4.625"), 1),
        (None, W("4.500"), 1),  # CSNA3: sector missing from a segment-2 capture
    ]
    assert groups["share_class"] == [("ON", W("67.750"), 9), ("PN", W("32.250"), 3)]
    assert groups["listing_segment"] == [
        ("NM", W("46.125"), 6),
        ("N2", W("25.375"), 2),
        ("N1", W("17.000"), 2),
        (None, W("11.500"), 2),  # ABEV3 7 + CSNA3 4.5
    ]
    assert groups["company"][:2] == [("PETROBRAS", W("25.375"), 2), ("VALE", W("20.500"), 1)]
    assert len(groups["company"]) == 11  # 12 tickers, PETR3 and PETR4 one company
    for dimension, rows in groups.items():
        assert sum(w for _, w, _ in rows) == 100, dimension
        assert sum(n for _, _, n in rows) == 12, dimension


def test_composition_sums_share_classes_of_one_company_and_lists_tickers_heaviest_first(today):
    rows = rows_by(gold.composition(today), "index", "dimension", "group_name")
    petrobras = rows["IBOV", "company", "PETROBRAS"]
    assert (petrobras["weight"], petrobras["components"], petrobras["tickers"]) == (
        W("25.375"),
        2,
        "PETR4,PETR3",
    )
    assert petrobras["note"] is None
    # Equal weights (SUZB3, CSNA3: 4.500) are listed by ticker.
    assert (
        rows["IBOV", "share_class", "ON"]["tickers"]
        == "VALE3,PETR3,ABEV3,WEGE3,B3SA3,BBAS3,RENT3,CSNA3,SUZB3"
    )


def test_unknown_groups_are_null_and_say_why(today):
    rows = rows_by(gold.composition(today), "index", "dimension", "group_name")
    assert rows["IBOV", "sector", None]["note"] == gold.NOTES["sector"]
    assert rows["IBOV", "sector", None]["tickers"] == "CSNA3"
    assert rows["IBOV", "listing_segment", None]["note"] == gold.NOTES["listing_segment"]
    assert rows["IBOV", "listing_segment", None]["tickers"] == "ABEV3,CSNA3"
    # SMLL was captured without segment 2: one null sector group for the whole index, never guessed,
    # although its components happen to carry no sector anyway.
    smll_sector = [r for (i, d, _), r in rows.items() if (i, d) == ("SMLL", "sector")]
    assert len(smll_sector) == 1
    assert smll_sector[0]["group_name"] is None
    assert smll_sector[0]["note"] == gold.NO_SECTOR
    assert (smll_sector[0]["weight"], smll_sector[0]["components"]) == (W("100.000"), 2)
    assert rows["SMLL", "listing_segment", "NM"]["weight"] == W("60.000")


def test_sector_is_ignored_when_the_header_says_it_was_not_captured():
    rows = [{**c, "sector": "Financeiro"} for c in SMLL_TODAY]
    assets, head = silver(DAY, {"SMLL": (rows, "1", False)})
    sector = [
        r for r in gold.composition(gold.index_days(assets, head)).to_pylist() if r["dimension"] == "sector"
    ]
    assert [(r["group_name"], r["note"]) for r in sector] == [(None, gold.NO_SECTOR)]


# ---------------------------------------------------------------------------------------- changes


def test_changes_entered_exited_held(today, before):
    table = gold.changes(today, before, BEFORE)
    assert table.schema.equals(GOLD_CHANGES.schema)
    rows = rows_by(table, "ticker")
    assert {r["index"] for r in rows.values()} == {"IBOV"}  # SMLL: not in the lake the day before
    assert len(rows) == 13  # 12 today + GOLL4
    assert {t: r["membership"] for t, r in rows.items() if r["membership"] != "held"} == {
        "CSNA3": "entered",
        "GOLL4": "exited",
    }
    assert {r["previous_date"] for r in rows.values()} == {BEFORE}
    assert {r["reductor_changed"] for r in rows.values()} == {True}

    entered = rows["CSNA3"]
    assert (entered["weight"], entered["previous_weight"], entered["weight_change_pp"]) == (
        W("4.500"),
        None,
        W("4.500"),
    )
    assert (entered["theoretical_quantity"], entered["previous_quantity"], entered["quantity_change"]) == (
        900,
        None,
        900,
    )
    assert entered["quantity_changed"] is False  # only a held ticker's quantity "changes"
    exited = rows["GOLL4"]
    assert exited["company"] == "GOL"  # the previous day's
    assert (exited["weight"], exited["previous_weight"], exited["weight_change_pp"]) == (
        None,
        W("4.500"),
        W("-4.500"),
    )
    assert (exited["theoretical_quantity"], exited["previous_quantity"], exited["quantity_change"]) == (
        None,
        700,
        -700,
    )
    assert exited["quantity_changed"] is False


def test_changes_of_held_tickers(today, before):
    rows = rows_by(gold.changes(today, before, BEFORE), "ticker")
    petr4, vale3, petr3 = rows["PETR4"], rows["VALE3"], rows["PETR3"]
    assert (petr4["weight_change_pp"], petr4["quantity_change"], petr4["quantity_changed"]) == (
        W("0.250"),
        1,
        True,
    )
    assert (vale3["weight_change_pp"], vale3["quantity_change"], vale3["quantity_changed"]) == (
        W("-0.500"),
        0,
        False,
    )
    assert (petr3["weight_change_pp"], petr3["quantity_changed"]) == (W("0.000"), False)
    assert [t for t, r in rows.items() if r["quantity_changed"]] == ["PETR4"]


def test_reductor_unchanged(today):
    assets, head = silver(BEFORE, {"IBOV": (IBOV_TODAY, REDUCTOR_TODAY, True)})
    same = gold.index_days(assets, head)
    table = gold.changes({"IBOV": today["IBOV"]}, same, BEFORE)
    assert set(table.column("reductor_changed").to_pylist()) == {False}
    assert set(table.column("membership").to_pylist()) == {"held"}
    assert set(table.column("weight_change_pp").to_pylist()) == {W("0.000")}


def test_nothing_for_an_index_absent_from_previous(today):
    table = gold.changes(today, {}, BEFORE)
    assert table.num_rows == 0
    assert table.schema.equals(GOLD_CHANGES.schema)


# ---------------------------------------------------------------------------------- index_summary


def test_index_summary_concentration_and_comparison(today, before):
    table = gold.index_summary(today, before, BEFORE)
    assert table.schema.equals(GOLD_INDEX_SUMMARY.schema)
    ibov, smll = rows_by(table, "index")["IBOV"], rows_by(table, "index")["SMLL"]
    assert ibov["components"] == 12
    assert ibov["top5_weight"] == W("62.875")  # 20.5 + 15.25 + 10.125 + 9 + 8
    assert ibov["top10_weight"] == W("91.000")  # the 12 minus SUZB3 and CSNA3 (4.5 each)
    # HHI = Σ w²: 420.25 + 232.5625 + 102.515625 + 81 + 64 + 49 + 36 + 30.25 + 25 + 21.390625
    #              + 20.25 + 20.25
    assert ibov["hhi"] == Decimal("1102.468750")
    assert (ibov["reductor"], ibov["has_sector"]) == (Decimal(REDUCTOR_TODAY), True)
    assert (ibov["previous_date"], ibov["previous_in_lake"]) == (BEFORE, True)
    assert (ibov["entries"], ibov["exits"], ibov["quantity_changes"], ibov["reductor_changed"]) == (
        1,
        1,
        1,
        True,
    )

    # SMLL has no previous day: not compared, and null rather than 0.
    assert (smll["components"], smll["top5_weight"], smll["top10_weight"]) == (2, W("100.000"), W("100.000"))
    assert smll["hhi"] == Decimal("5200.000000")  # 60² + 40²
    assert smll["has_sector"] is False
    assert (smll["previous_date"], smll["previous_in_lake"]) == (BEFORE, False)
    assert (smll["entries"], smll["exits"], smll["quantity_changes"], smll["reductor_changed"]) == (None,) * 4


def test_concentration_of_a_single_component():
    assets, head = silver(
        DAY, {"ONE": ([component("VALE3", "VALE", "ON", "NM", None, "100.000", 1)], "1", False)}
    )
    c = gold.concentration(gold.index_days(assets, head)["ONE"])
    assert (c.components, c.top5_weight, c.top10_weight, c.hhi) == (
        1,
        W("100.000"),
        W("100.000"),
        Decimal(10_000),
    )


# ----------------------------------------------------------------------------------- StayTracker

#: Real B3 trading days around Consciência Negra (Thursday 2025-11-20, closed).
SESSIONS = trading_days_between(dt.date(2025, 11, 13), dt.date(2025, 11, 27))
#: What the lake holds per date: {index: tickers}. 2025-11-19 is a trading day missing from the lake
#: (a gap, not an exit); SMLL appears on 11-25 and is missing from the lake on 11-26.
LAKE = {
    dt.date(2025, 11, 13): {"IBOV": ["A", "B", "C"]},
    dt.date(2025, 11, 14): {"IBOV": ["A", "B", "C"]},
    dt.date(2025, 11, 17): {"IBOV": ["A", "B", "D"]},  # C exits, D enters
    dt.date(2025, 11, 18): {"IBOV": ["A", "B", "C", "D"]},  # C re-enters
    dt.date(2025, 11, 21): {"IBOV": ["A", "C", "D"]},  # B exits (after the gap and the holiday)
    dt.date(2025, 11, 24): {"IBOV": ["A", "B", "C", "D"]},  # B re-enters
    dt.date(2025, 11, 25): {"IBOV": ["A", "C", "D"], "SMLL": ["X", "Y"]},
    dt.date(2025, 11, 26): {"IBOV": ["A", "B", "C", "D"]},
    dt.date(2025, 11, 27): {"IBOV": ["A", "C", "D"], "SMLL": ["X", "Z"]},
}
LAKE_DATES = sorted(LAKE)


def tracker(dates=LAKE_DATES):
    loads: list[dt.date] = []

    def load(day):
        loads.append(day)
        return LAKE[day]

    t = gold.StayTracker(dates, load)
    t.loads = loads
    return t


def stays(table: pa.Table) -> dict[tuple[str, str], tuple]:
    return {
        (r["index"], r["ticker"]): (
            r["first_seen"],
            r["trading_days_held"],
            r["calendar_days_since_entry"],
            r["observed_days"],
            r["first_seen_is_history_start"],
        )
        for r in table.to_pylist()
    }


def test_the_lake_sample_is_what_it_says():
    assert dt.date(2025, 11, 19) in SESSIONS and dt.date(2025, 11, 19) not in LAKE
    assert dt.date(2025, 11, 20) not in SESSIONS  # holiday
    assert set(LAKE) < set(SESSIONS)


def test_stays_through_entries_exits_reentries_and_a_gap():
    last = dt.date(2025, 11, 27)
    table = tracker().advance(last, LAKE[last])
    assert table.schema.equals(GOLD_TIME_IN_INDEX.schema)
    assert stays(table) == {
        # In every lake date since the first: the gap of 11-19 does not break the stay, and shows
        # as one trading day more than observed.
        ("IBOV", "A"): (dt.date(2025, 11, 13), 10, 14, 9, True),
        # Re-entered on 11-18: 18, 19, 21, 24, 25, 26, 27 held; 19 not observed.
        ("IBOV", "C"): (dt.date(2025, 11, 18), 7, 9, 6, False),
        # Entered on 11-17 and never left.
        ("IBOV", "D"): (dt.date(2025, 11, 17), 8, 10, 7, False),
        # SMLL's first date in the lake; 11-26 lacks SMLL (not an exit): held 3, observed 2.
        ("SMLL", "X"): (dt.date(2025, 11, 25), 3, 2, 2, True),
        ("SMLL", "Z"): (dt.date(2025, 11, 27), 1, 0, 1, False),
    }
    assert trading_days_held(dt.date(2025, 11, 13), last) == 10
    # B is not in the portfolio on 11-27: no row.


def test_a_ticker_in_since_the_first_date_is_flagged_history_start():
    first = LAKE_DATES[0]
    table = tracker().advance(first, LAKE[first])
    assert stays(table) == {("IBOV", t): (first, 1, 0, 1, True) for t in "ABC"}
    # B, in since the first date, left on 11-21 and came back on 11-24: a new stay, which is not
    # the start of history; it left again on 11-25 and came back on 11-26.
    for day, since in [
        (dt.date(2025, 11, 24), dt.date(2025, 11, 24)),
        (dt.date(2025, 11, 26), dt.date(2025, 11, 26)),
    ]:
        assert stays(tracker().advance(day, LAKE[day]))["IBOV", "B"] == (since, 1, 0, 1, False)
    day = dt.date(2025, 11, 18)
    assert stays(tracker().advance(day, LAKE[day]))["IBOV", "B"] == (LAKE_DATES[0], 4, 5, 4, True)


@pytest.mark.parametrize("start", range(len(LAKE_DATES)), ids=[str(d) for d in LAKE_DATES])
def test_advancing_date_by_date_equals_walking_back_from_each_date(start):
    """A range run starting at any date (walk back once, then advance) gives, date by date, the
    same table as a one-date run (a fresh tracker walking back from that date)."""
    ranged = tracker()
    for day in LAKE_DATES[start:]:
        advanced = ranged.advance(day, LAKE[day])
        fresh = tracker().advance(day, LAKE[day])
        assert advanced.equals(fresh), day
        assert stays(advanced) == stays(fresh), day


def test_a_range_from_the_start_reads_back_only_for_new_indices():
    t = tracker()
    for day in LAKE_DATES:
        t.advance(day, LAKE[day])
    # IBOV: nothing before the first date. SMLL, new on 11-25: the 6 dates before it, once.
    assert t.loads == list(reversed(LAKE_DATES[:6]))
    assert t.dates_read == 6


def test_walking_back_stops_once_every_stay_has_begun():
    e = trading_days_between(dt.date(2025, 7, 1), dt.date(2025, 7, 8))  # 6 sessions
    lake = {e[0]: {"IBOV": ["P", "Q"]}, e[1]: {"IBOV": ["P", "Q"]}, e[2]: {"IBOV": ["P", "Q"]}}
    lake |= {e[3]: {"IBOV": ["R", "S"]}, e[4]: {"IBOV": ["R", "S"]}, e[5]: {"IBOV": ["R", "T"]}}
    read = []
    t = gold.StayTracker(list(lake), lambda d: read.append(d) or lake[d])
    table = t.advance(e[5], lake[e[5]])
    assert read == [e[4], e[3], e[2]]  # e[2] has neither R nor S: no need to read further
    assert stays(table) == {
        ("IBOV", "R"): (e[3], 3, (e[5] - e[3]).days, 3, False),
        ("IBOV", "T"): (e[5], 1, 0, 1, False),
    }


def test_an_index_new_to_the_lake_starts_its_history():
    day = LAKE_DATES[0]
    t = gold.StayTracker([], lambda d: pytest.fail("nothing to read"))
    assert stays(t.advance(day, {"IDIV": ["K"]})) == {("IDIV", "K"): (day, 1, 0, 1, True)}


def test_tickers_by_index():
    assets, _ = silver(DAY, {"IBOV": (IBOV_TODAY[:2], "1", True), "SMLL": (SMLL_TODAY, "1", False)})
    assert gold.tickers_by_index(assets) == {"IBOV": ["VALE3", "PETR4"], "SMLL": ["CVCB3", "POMO4"]}


# ---------------------------------------------------------------------------------- quality rules


@pytest.fixture
def good_tables(today, before) -> dict[str, pa.Table]:
    """One date's gold tables as gold.py builds them from the hand-built silver above."""
    return {
        "gold_composition": gold.composition(today),
        "gold_changes": gold.changes(today, before, BEFORE),
        "gold_index_summary": gold.index_summary({"IBOV": today["IBOV"]}, before, BEFORE),
        "gold_time_in_index": tracker().advance(LAKE_DATES[-1], LAKE[LAKE_DATES[-1]]),
    }


def _set(table: pa.Table, row: int, **values) -> pa.Table:
    rows = table.to_pylist()
    rows[row] = {**rows[row], **values}
    return pa.Table.from_pylist(rows, schema=table.schema)


def _drop(table: pa.Table, row: int) -> pa.Table:
    return pa.concat_tables([table.slice(0, row), table.slice(row + 1)])


#: rule -> (how to break its table, a problem the rule must then report)
BREAKS = {
    "composition_covers_every_component": [
        # Row 0 is IBOV's heaviest sector, Financeiro (27.500, 4 components): 8 components remain,
        # so B3's rounding allows 8 × 0.0005.
        (lambda t: _drop(t, 0), "IBOV by sector: weights sum to 72.500, not 100 ± 0.0040"),
        (lambda t: _drop(t, 0), "IBOV: dimensions count different components: [8, 12]"),
        (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "IBOV by sector: weights sum to 127.500"),
    ],
    "concentration_within_bounds": [
        (lambda t: _set(t, 0, top5_weight=W("95.000")), "IBOV: top-5 95.000 / top-10 91.000 out of order"),
        (
            lambda t: _set(t, 0, top10_weight=W("100.500")),
            "IBOV: top-5 62.875 / top-10 100.500 out of order or above 100",
        ),
        # The floor is 10,000 / 12 less the rounding slack: 833.333 − 2 × 100 × 12 × 0.0005.
        (lambda t: _set(t, 0, hhi=Decimal("800")), "IBOV: HHI 800.000000 outside [832.133, 10000] for 12"),
        (lambda t: _set(t, 0, hhi=Decimal("10002")), "IBOV: HHI 10002.000000 outside"),
        (lambda t: _set(t, 0, components=0), "IBOV: no components"),
    ],
    "time_in_index_consistent": [
        (
            lambda t: _set(t, 0, first_seen=dt.date(2025, 11, 28)),
            "IBOV A: first seen 2025-11-28 after the date",
        ),
        (lambda t: _set(t, 0, observed_days=11), "IBOV A: observed on 11 dates of 10 trading days"),
        (lambda t: _set(t, 0, observed_days=0), "IBOV A: observed on 0 dates of 10 trading days"),
        (
            lambda t: _set(t, 0, calendar_days_since_entry=13),
            "IBOV A: calendar days 13 do not match first_seen",
        ),
    ],
    "previous_trading_day_in_lake": [
        (
            lambda t: _set(t, 0, previous_in_lake=False, entries=None, exits=None),
            "IBOV: the previous trading day 2025-07-09 is not in the lake; not compared",
        ),
    ],
}


def test_every_gold_rule_has_breaks():
    assert set(BREAKS) == {r.name for r in GOLD_RULES}
    assert {r.name: (r.table, r.source, r.blocking) for r in GOLD_RULES} == {
        "previous_trading_day_in_lake": ("gold_changes", "gold_index_summary", False),
        "composition_covers_every_component": ("gold_composition", "gold_composition", True),
        "concentration_within_bounds": ("gold_index_summary", "gold_index_summary", True),
        "time_in_index_consistent": ("gold_time_in_index", "gold_time_in_index", True),
    }


@pytest.mark.parametrize("rule", GOLD_RULES, ids=lambda r: r.name)
def test_gold_rule_passes_good_tables_and_catches_its_problem(rule, good_tables):
    day = LAKE_DATES[-1] if rule.source == "gold_time_in_index" else DAY
    good = good_tables[rule.source]
    assert rule.fn(good, day) == [], rule.name
    for breaking, expected in BREAKS[rule.name]:
        problems = rule.fn(breaking(good), day)
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_composition_rule_allows_b3_rounding(today):
    """B3 rounds each weight: 12 weights may miss 100 by 12 × 0.0005 and still pass."""
    table = gold.composition(today)
    rule = next(r for r in GOLD_RULES if r.name == "composition_covers_every_component")
    first = table.to_pylist()[0]
    assert rule.fn(_set(table, 0, weight=first["weight"] + W("0.006")), DAY) == []
    assert rule.fn(_set(table, 0, weight=first["weight"] + W("0.007")), DAY) != []


# ------------------------------------------------------------------- materialized over the samples


@pytest.fixture(scope="module")
def silver_lake(tmp_path_factory):
    """Raw, bronze and silver of the IBOV samples (2025-06-30 … 07-10; 07-09 missing), built once."""
    root = tmp_path_factory.mktemp("gold") / "lake"
    seed(root, *JSON_DAYS)
    result = run(
        _resources(root),
        first=JSON_DAYS[0],
        last=JSON_DAYS[-1],
        selection=["bronze_portfolio", "silver_header", "silver_assets"],
    )
    assert result.success
    assert not (root / "gold").exists()
    return root


def _resources(root):
    return {
        **lake_resources(LakeResource(root=str(root))),
        "catalog": duckdb_catalog(root),
        # raw is never selected here; were anything to call B3 it would fail at once
        "b3": B3ApiResource(base_url="http://127.0.0.1:9/indexProxy/indexCall", indices=["IBOV"]),
    }


@pytest.fixture
def lake(silver_lake, lake_root):
    shutil.copytree(silver_lake, lake_root)
    return lake_root


def run_gold(lake, *, day=None, first=None, last=None, instance=None) -> dg.ExecuteInProcessResult:
    """One run of the gold multi-asset alone (silver is its input, already in the lake)."""
    return dg.materialize(
        ALL_ASSETS,
        selection=[*gold_asset.keys],
        resources=_resources(lake),
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config=QUIET,  # console logs at WARNING: the per-date runs are many
        **({"partition_key": day.isoformat()} if day else {"tags": range_tags(first, last)}),
    )


def gold_files(lake) -> dict[str, bytes]:
    return {
        p.relative_to(lake).as_posix(): p.read_bytes() for p in sorted((lake / "gold").rglob("*.parquet"))
    }


def read(lake, table_def, day) -> pa.Table:
    return pq.read_table(path_of(lake, table_def, day))


def test_a_range_builds_every_gold_table_per_date_with_partition_metadata(lake):
    first, last = dt.date(2025, 6, 30), dt.date(2025, 7, 8)
    days = [d for d in JSON_DAYS if first <= d <= last]
    instance = dg.DagsterInstance.ephemeral()
    result = run_gold(lake, first=first, last=last, instance=instance)
    assert result.success
    assert steps(result, "STEP_SUCCESS") == ["gold_tables"]  # one step, one run, every date

    for day in days:
        for table_def in GOLD_TABLES:
            schema = pq.read_schema(path_of(lake, table_def, day))
            assert schema.equals(table_def.schema, check_metadata=False), (table_def.name, day)
        silver_rows = pq.read_metadata(path_of(lake, SILVER_ASSETS, day)).num_rows
        assert read(lake, GOLD_TIME_IN_INDEX, day).num_rows == silver_rows == 84
        assert read(lake, GOLD_INDEX_SUMMARY, day).num_rows == 1

    # The real rebalance of 2025-07-02: NATU3 in, NTCO3 out, same theoretical quantity.
    swap = [r for r in read(lake, GOLD_CHANGES, dt.date(2025, 7, 2)).to_pylist() if r["membership"] != "held"]
    assert [(r["index"], r["ticker"], r["membership"]) for r in swap] == [
        ("IBOV", "NATU3", "entered"),
        ("IBOV", "NTCO3", "exited"),
    ]
    assert [(r["weight"], r["previous_weight"]) for r in swap] == [(W("0.424"), None), (None, W("0.436"))]
    assert {r["theoretical_quantity"] or r["previous_quantity"] for r in swap} == {845_713_747}
    assert read(lake, GOLD_CHANGES, dt.date(2025, 7, 2)).num_rows == 85  # 83 held + 1 in + 1 out
    summary = read(lake, GOLD_INDEX_SUMMARY, dt.date(2025, 7, 2)).to_pylist()[0]
    assert (summary["previous_date"], summary["previous_in_lake"]) == (dt.date(2025, 7, 1), True)
    assert (summary["entries"], summary["exits"]) == (1, 1)
    # No other date of the range has an entry or exit.
    for day in days[1:]:
        s = read(lake, GOLD_INDEX_SUMMARY, day).to_pylist()[0]
        assert (s["entries"], s["exits"]) == ((1, 1) if day == dt.date(2025, 7, 2) else (0, 0)), day

    # Time in index on the last date: NATU3's stay began on 07-02; VALE3 has been in since the lake began.
    tii = rows_by(read(lake, GOLD_TIME_IN_INDEX, last), "ticker")
    assert stays(pa.Table.from_pylist([tii["NATU3"], tii["VALE3"]], schema=GOLD_TIME_IN_INDEX.schema)) == {
        ("IBOV", "NATU3"): (dt.date(2025, 7, 2), 5, 6, 5, False),
        ("IBOV", "VALE3"): (dt.date(2025, 6, 30), 7, 8, 7, True),
    }
    assert "NTCO3" not in tii

    # Composition agrees with silver: every dimension sums to silver's weight total.
    assets = pq.read_table(path_of(lake, SILVER_ASSETS, last))
    total = sum(assets.column("weight").to_pylist())
    for dimension in gold.DIMENSIONS:
        rows = [r for r in read(lake, GOLD_COMPOSITION, last).to_pylist() if r["dimension"] == dimension]
        assert sum(r["weight"] for r in rows) == total, dimension
    assert (
        rows_by(read(lake, GOLD_COMPOSITION, last), "dimension", "group_name")["company", "PETROBRAS"][
            "tickers"
        ]
        == "PETR4,PETR3"
    )

    # Numeric metadata per partition, stored on the instance (what the UI plots over dates).
    for day in days:
        summary = read(lake, GOLD_INDEX_SUMMARY, day).to_pylist()[0]
        for table_def in GOLD_TABLES:
            [record] = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey(table_def.name), asset_partitions=[day.isoformat()]
                ),
                limit=10,
            ).records
            metadata = record.asset_materialization.metadata
            values = {k: v.value for k, v in metadata.items()}
            assert isinstance(metadata["dagster/row_count"], dg.IntMetadataValue)
            assert values["dagster/row_count"] == read(lake, table_def, day).num_rows
            # Each number on the table that holds it: concentration on the summary, entries and
            # exits on the changes.
            if table_def is GOLD_INDEX_SUMMARY:
                assert isinstance(metadata["top10_weight_IBOV"], dg.FloatMetadataValue)
                assert values["top10_weight_IBOV"] == float(summary["top10_weight"])
                assert values["hhi_IBOV"] == float(summary["hhi"])
            else:
                assert "top10_weight_IBOV" not in values and "hhi_IBOV" not in values
            if day == first:  # 2025-06-27 is not in the lake: no entries/exits to plot
                assert "entries_IBOV" not in values and "exits_IBOV" not in values
            elif table_def is not GOLD_CHANGES:
                assert "entries_IBOV" not in values and "exits_IBOV" not in values
            else:
                assert isinstance(metadata["entries_IBOV"], dg.IntMetadataValue)
                assert (values["entries_IBOV"], values["exits_IBOV"]) == (
                    summary["entries"],
                    summary["exits"],
                )
            # The comparison with the previous trading day is said once, on the changes.
            if table_def is GOLD_CHANGES:
                assert values["not_compared"] == ("IBOV" if day == first else "none")
                assert values["previous_date"] == previous_trading_day(day).isoformat()
            else:
                assert "not_compared" not in values and "previous_date" not in values


def test_a_missing_previous_trading_day_is_never_compared_with_an_older_one(lake):
    """2025-07-09 has no sample. In a range 07-08 … 07-10 the run holds 07-08 in memory, yet 07-10 is
    not compared with it: no changes rows, null counts, and a warning check; the run succeeds.
    07-09 itself has no silver: its stale gold files are removed and its metadata says 0 rows.
    The platform captured 07-08 live (a capture from B3's API), so 07-09 was a day it should have
    captured: the check judges it (before a lake's first live capture it would read "not judged")."""
    gap = dt.date(2025, 7, 9)
    RawStore(LocalStorage(lake)).store(
        dt.date(2025, 7, 8),
        "IBOV",
        [b'{"live": "a capture from the API"}'],
        fetched_at=dt.datetime(2025, 7, 8, 12, tzinfo=dt.timezone.utc),
        source_format="json",
        meta={"source": "api", "http_status": 200},
    )
    for table_def in GOLD_TABLES:  # gold of 07-09 left over from some earlier state of the lake
        stale = path_of(lake, table_def, gap)
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"stale")

    result = run_gold(lake, first=dt.date(2025, 7, 8), last=DAY)
    assert result.success

    assert read(lake, GOLD_CHANGES, DAY).num_rows == 0
    [summary] = read(lake, GOLD_INDEX_SUMMARY, DAY).to_pylist()
    assert (summary["previous_date"], summary["previous_in_lake"]) == (gap, False)
    assert (
        summary["entries"],
        summary["exits"],
        summary["quantity_changes"],
        summary["reductor_changed"],
    ) == (
        None,
        None,
        None,
        None,
    )
    assert summary["components"] == 84 and summary["top10_weight"] is not None
    # 07-08 was compared with 07-07 as usual.
    assert read(lake, GOLD_INDEX_SUMMARY, dt.date(2025, 7, 8)).to_pylist()[0]["previous_in_lake"] is True
    assert read(lake, GOLD_CHANGES, dt.date(2025, 7, 8)).num_rows == 84
    # The gap does not break a stay: VALE3 was held on 9 trading days since 06-30, 8 of them observed.
    vale = rows_by(read(lake, GOLD_TIME_IN_INDEX, DAY), "ticker")["VALE3"]
    assert (vale["first_seen"], vale["trading_days_held"], vale["observed_days"]) == (
        dt.date(2025, 6, 30),
        9,
        8,
    )

    checks = check_evaluations(result)
    previous = checks["previous_trading_day_in_lake"]
    assert not previous.passed and previous.severity == dg.AssetCheckSeverity.WARN and not previous.blocking
    assert (
        previous.description
        == "2025-07-10: IBOV: the previous trading day 2025-07-09 is not in the lake; not compared"
    )
    assert partition_evaluations(result, "previous_trading_day_in_lake") == {
        "2025-07-08": True,
        "2025-07-10": False,
    }
    assert [n for n, e in checks.items() if not e.passed] == ["previous_trading_day_in_lake"]

    mats = materializations(result)
    for name in GOLD:
        assert mats[name, "2025-07-09"] == {"dagster/row_count": 0, "status": "no silver partition"}
        assert not path_of(lake, TABLES[name], gap).exists(), name
        assert mats[name, "2025-07-10"].get("not_compared") == ("IBOV" if name == "gold_changes" else None)
        assert "entries_IBOV" not in mats[name, "2025-07-10"]
    assert mats["gold_changes", "2025-07-10"]["dagster/row_count"] == 0


def test_a_date_without_silver_alone_fails_and_leaves_no_stale_gold(lake):
    gap = dt.date(2025, 7, 9)
    stale = path_of(lake, GOLD_COMPOSITION, gap)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    result = run_gold(lake, day=gap)
    assert not result.success
    errors = [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    assert any("gold: no silver partition for 2025-07-09; materialize silver first" in m for m in errors), (
        errors
    )
    assert not stale.exists()


def test_range_and_per_date_runs_give_identical_bytes_in_any_order(lake, silver_lake, tmp_path):
    """Gold of a date depends only on silver: one range run, per-date runs in date order, and
    per-date runs newest first (time in index then walks back over silver every time) write the
    same bytes."""
    days = JSON_DAYS  # 06-30 … 07-10, 07-09 missing
    assert run_gold(lake, first=days[0], last=days[-1]).success
    ranged = gold_files(lake)
    assert len(ranged) == len(GOLD_TABLES) * len(days)

    instance = dg.DagsterInstance.ephemeral()
    backwards = tmp_path / "backwards"
    shutil.copytree(silver_lake, backwards)
    for day in reversed(days):
        assert run_gold(backwards, day=day, instance=instance).success, day
    assert gold_files(backwards) == ranged

    for day in days:  # over the range run's own files
        assert run_gold(lake, day=day, instance=instance).success, day
    assert gold_files(lake) == ranged


def test_the_walk_backs_read_ahead_returns_each_dates_own_tickers_and_reads_little_extra():
    import threading

    from b3_platform.assets.gold import READ_AHEAD, _ReadAhead

    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    loaded: list[dt.date] = []
    lock = threading.Lock()

    def load(day: dt.date) -> dict[str, list[str]]:
        with lock:
            loaded.append(day)
        return {"IBOV": [day.isoformat()]}

    read = _ReadAhead(load, dates)
    walked = sorted(dates, reverse=True)[:20]  # a walk back that stops after 20 dates
    assert [read(d) for d in walked] == [{"IBOV": [d.isoformat()]} for d in walked]
    assert set(walked) <= set(loaded)
    assert len(loaded) == len(set(loaded)) <= len(walked) + READ_AHEAD
    assert read(dt.date(2030, 1, 1)) == {"IBOV": ["2030-01-01"]}  # a date outside the list: read directly
