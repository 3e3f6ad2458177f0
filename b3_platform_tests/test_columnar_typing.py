"""The columnar ways (silver typing over whole columns, the rules' all-clear checks, the silver
metadata helpers, the day's audit as one table) give exactly what the row-by-row ways give: the
same tables, the same errors, the same problems and the same choices."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from b3_platform import quality
from b3_platform.assets.silver import TOP_N, per_index_metadata, top_weights_markdown
from b3_platform.audit import choose_capture, choose_captures
from b3_platform.b3.contract import Portfolio, decode_portfolio_json
from b3_platform.b3.csv_reader import read_portfolio_csv
from b3_platform.b3.indices import BUILTIN_INDICES
from b3_platform.b3.parse import ParseError, parse_date
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.quality import BRONZE_RULES, SILVER_ASSET_RULES
from b3_platform.transforms import silver
from b3_platform.transforms.bronze import bronze_table
from b3_platform_tests.replay import to_en_us, with_changes

DEMO = Path(__file__).resolve().parent.parent / "demo_data"
CAPTURE = "20250710T210000000000Z-" + "a" * 64
IBOV_JSON = sorted((DEMO / "GetPortfolioDay" / "IBOV").glob("*.json"))
CSVS = sorted((DEMO / "csv").glob("*.csv"))
DAY = dt.date(2025, 7, 10)
SAMPLE = DEMO / "GetPortfolioDay" / "IBOV" / "2025-07-10.json"


def columnar(bronze: pa.Table, day: dt.date):
    tables = silver._silver_tables_columnar(bronze, day)
    assert tables is not None, "the columnar typing stepped aside on clean input"
    return tables


def assert_same_tables(bronze: pa.Table, day: dt.date) -> None:
    for fast, slow in zip(columnar(bronze, day), silver.silver_tables_by_row(bronze, day)):
        assert fast.schema.equals(slow.schema)
        assert fast.equals(slow)


def json_portfolio(body: bytes, index: str = "IBOV") -> Portfolio:
    return decode_portfolio_json(body, index=index)


def many_indices(body: bytes, count: int = 34) -> pa.Table:
    """One date's bronze of `count` indices holding the same components (~85 each)."""
    portfolio = json_portfolio(body)
    return bronze_table([(code, CAPTURE, portfolio) for code in BUILTIN_INDICES[:count]])


@pytest.mark.parametrize("path", IBOV_JSON, ids=lambda p: p.name)
def test_every_json_sample_types_the_same_both_ways(path):
    portfolio = json_portfolio(path.read_bytes())
    assert_same_tables(bronze_table([("IBOV", CAPTURE, portfolio)]), portfolio.reference_date)


@pytest.mark.parametrize("path", CSVS, ids=lambda p: p.name)
def test_every_csv_download_types_the_same_both_ways(path):
    portfolio = read_portfolio_csv(path.read_bytes())
    assert_same_tables(bronze_table([(portfolio.index, CAPTURE, portfolio)]), portfolio.reference_date)


def test_a_date_of_34_indices_in_both_languages_types_the_same_and_silver_tables_takes_the_columnar_way(
    monkeypatch,
):
    pt = json_portfolio(SAMPLE.read_bytes())
    en = json_portfolio(to_en_us(SAMPLE.read_bytes()))
    assert en.language == "en-us"
    items = [(code, CAPTURE, en if i % 3 == 0 else pt) for i, code in enumerate(BUILTIN_INDICES)]
    bronze = bronze_table(items)
    assert bronze.num_rows >= silver.COLUMNAR_FROM_ROWS
    assert_same_tables(bronze, DAY)
    calls = []
    monkeypatch.setattr(silver, "silver_tables_by_row", lambda *a: calls.append(a))
    header, assets = silver.silver_tables(bronze, DAY)
    assert not calls and header.num_rows == 34 and assets.num_rows == bronze.num_rows


def test_a_date_of_34_indices_all_in_one_language_types_the_same_by_that_locales_rule_alone(monkeypatch):
    # Every capture in en-us (and sector rows, whose partAcum only some rows hold): the columnar
    # typing reads the numbers by the en-us rule alone, and must type what the row typing types.
    def with_sectors(data):
        for row in data["results"][::3]:
            row.update(segment="Energia", partAcum="12,345")

    en = json_portfolio(to_en_us(changed(with_sectors)))
    assert en.language == "en-us"
    bronze = bronze_table([(code, CAPTURE, en) for code in BUILTIN_INDICES])
    both = []
    monkeypatch.setattr(silver, "_numbers", lambda *a, _f=silver._numbers: both.append(a[1]) or _f(*a))
    assert_same_tables(bronze, DAY)
    assert both and all(locale == "en-us" for locale in both)
    assert silver.silver_tables(bronze, DAY)[1].column("sector_weight").null_count < bronze.num_rows


@pytest.mark.parametrize("seed", range(20))
def test_plain_scans_the_data_buffers_as_the_pattern_judges_each_text(seed):
    import random
    import re

    alphabet = ["A", "z", "0", " ", ",", ".", "\t", "\n", "\r", "\x1c", "\x7f", "\xa0", "é", "\u2003", "~"]
    rng = random.Random(seed)
    texts = [
        None
        if rng.random() < 0.1
        else "".join(rng.choices(alphabet, weights=[20] * 10 + [1] * 5, k=rng.randint(0, 6)))
        for _ in range(60)
    ]

    def expected(values) -> bool:
        return not any(t is not None and re.search(silver._NOT_PLAIN, t) for t in values)

    array = pa.array(texts, pa.string())
    start, stop = sorted(rng.sample(range(61), 2))
    chunked = pa.chunked_array([array.slice(0, start), array.slice(start)])
    assert silver._plain(array) == expected(texts)
    assert silver._plain(chunked) == expected(texts)
    # A slice's buffer holds its neighbours' bytes: the scan may only say "not plain" wrongly.
    if silver._plain(array.slice(start, stop - start)):
        assert expected(texts[start:stop])
    assert silver._plain(pa.array(texts[start:stop], pa.string())) == expected(texts[start:stop])


def changed(change) -> bytes:
    return with_changes(SAMPLE.read_bytes(), change)


def set_row(row: int, **values):
    def change(data):
        data["results"][row].update(values)

    return change


@pytest.mark.parametrize(
    "change",
    [
        set_row(3, asset="\xa0PETROBRAS\u2003"),  # blanks only Python's strip knows
        set_row(5, cod=" PETR4\x1c"),
        set_row(7, segment="  Energia  ", partAcum="12,345"),
        set_row(2, part="000,452"),  # leading zeros: the Python rule takes them
        set_row(4, theoricalQty="1234"),  # ungrouped integer
        set_row(9, type="XYZ ABC QQ"),  # a code no rule recognises: kept, split as far as it goes
        set_row(1, part="-0,000"),
        set_row(6, part="\u0661,5"),  # an Arabic-Indic digit: Python's rule reads it as 1.5
    ],
    ids=[
        "unicode-blanks",
        "control-blank",
        "sector",
        "leading-zeros",
        "ungrouped",
        "odd-type",
        "minus-zero",
        "other-script-digit",
    ],
)
def test_unusual_but_valid_values_type_the_same_both_ways(change):
    portfolio = json_portfolio(changed(change))
    bronze = bronze_table([(code, CAPTURE, portfolio) for code in BUILTIN_INDICES[:5]])
    header, assets = silver.silver_tables(bronze, DAY)
    by_row = silver.silver_tables_by_row(bronze, DAY)
    assert header.equals(by_row[0]) and assets.equals(by_row[1])
    fast = silver._silver_tables_columnar(bronze, DAY)
    assert fast is None or (fast[0].equals(by_row[0]) and fast[1].equals(by_row[1]))


def test_sectors_held_by_one_index_or_by_none_type_the_same_and_none_parses_no_sector_weight(monkeypatch):
    plain = json_portfolio(SAMPLE.read_bytes())
    blank = json_portfolio(changed(lambda d: [r.update(segment="", partAcum="") for r in d["results"]]))
    sectors = json_portfolio(changed(lambda d: d["results"][5].update(segment=" Energia ", partAcum="1,5")))
    numbers = []
    monkeypatch.setattr(silver, "_numbers", lambda *a, _f=silver._numbers: numbers.append(a[0]) or _f(*a))
    # One index of 34 holds a sector (and its weight): every other row's sector stays null.
    one = bronze_table(
        [(code, CAPTURE, sectors if i == 7 else plain) for i, code in enumerate(BUILTIN_INDICES)]
    )
    assert_same_tables(one, DAY)
    assert len(numbers) == 3  # sector weights, weights, quantities
    header, assets = columnar(one, DAY)
    assert header.column("has_sector").to_pylist() == [i == 7 for i in range(34)]
    assert assets.column("sector").drop_null().to_pylist() == ["Energia"]
    # None holds one (null or empty texts): the sector columns are nulls, no weight parsed.
    numbers.clear()
    none = bronze_table(
        [(code, CAPTURE, blank if i % 2 else plain) for i, code in enumerate(BUILTIN_INDICES)]
    )
    assert_same_tables(none, DAY)
    assert len(numbers) == 2
    header, assets = columnar(none, DAY)
    assert not any(header.column("has_sector").to_pylist())
    assert assets.column("sector").null_count == assets.column("sector_weight").null_count == none.num_rows


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (set_row(4, part="1.2,3"), "field 'part' = '1.2,3': is not a pt-br decimal number"),
        (set_row(4, part="1,2345"), "does not fit the declared schema"),
        (set_row(4, theoricalQty="12,5"), "field 'theoricalQty' = '12,5': is not a pt-br integer"),
        (set_row(4, partAcum=" "), "field 'partAcum' = ' ': is empty"),
    ],
    ids=["grouping", "too-many-decimals", "decimal-as-int", "blank"],
)
def test_a_bad_number_is_the_row_typings_own_error_naming_the_first_bad_row(change, expected):
    good = json_portfolio(SAMPLE.read_bytes())
    bad = json_portfolio(changed(change))
    # The bad index sits between good ones: the error names it, its row and ticker, or the date.
    bronze = bronze_table([("AGFS", CAPTURE, good), ("IBOV", CAPTURE, bad), ("SMLL", CAPTURE, good)])
    with pytest.raises(ParseError) as columnar_way:
        silver.silver_tables(bronze, DAY)
    with pytest.raises(ParseError) as row_way:
        silver.silver_tables_by_row(bronze, DAY)
    assert str(columnar_way.value) == str(row_way.value)
    assert expected in str(columnar_way.value)


def test_a_header_date_that_is_not_the_partition_is_the_same_error():
    bronze = many_indices(SAMPLE.read_bytes(), 5)
    with pytest.raises(ParseError, match=r"AGFS 2025-07-11: field 'header.date' = '10/07/25': is 2025-07-10"):
        silver.silver_tables(bronze, dt.date(2025, 7, 11))


# --- the rules ------------------------------------------------------------------------------------


def rule_tables(bronze: pa.Table, day: dt.date = DAY) -> dict[str, pa.Table]:
    header, assets = silver.silver_tables_by_row(bronze, day)
    return {"bronze_portfolio": bronze, "silver_header": header, "silver_assets": assets}


def test_every_rule_passes_a_clean_date_of_34_indices():
    tables = rule_tables(many_indices(SAMPLE.read_bytes()))
    assert {r.name: r.evaluate(tables, DAY) for r in (*BRONZE_RULES, *SILVER_ASSET_RULES)} == {
        r.name: [] for r in (*BRONZE_RULES, *SILVER_ASSET_RULES)
    }


def test_each_rule_names_what_breaks_it_in_one_index_of_many():
    def broken(data):
        rows = data["results"]
        rows[1]["cod"] = rows[0]["cod"]  # a ticker twice
        rows[2]["cod"] = "petr4"  # not a ticker
        rows[3]["part"] = "50,000"  # weights no longer sum to 100
        rows[4]["theoricalQty"] = "-5"  # non-positive; the total no longer matches
        rows[5]["type"] = "ON  ZZZ NM"  # an unknown event flag

    good = json_portfolio(SAMPLE.read_bytes())
    # The contract refuses a page whose totalRecords is off on decode; bronze keeps what it is given.
    bad = dataclasses.replace(json_portfolio(changed(broken)), total_records=999)
    bronze = bronze_table([("AGFS", CAPTURE, good), ("IBOV", CAPTURE, bad), ("SMLL", CAPTURE, good)])
    problems = {r.name: r.evaluate(rule_tables(bronze), DAY) for r in (*BRONZE_RULES, *SILVER_ASSET_RULES)}
    ticker = json.loads(SAMPLE.read_bytes())["results"][0]["cod"]
    assert problems["unique_tickers"] == [f"IBOV: tickers listed more than once: {ticker}"]
    assert problems["ticker_format"] == ["IBOV: tickers not like 'PETR4'/'BPAC11': petr4"]
    assert len(problems["weights_sum_to_100"]) == 1 and problems["weights_sum_to_100"][0].startswith("IBOV:")
    assert problems["quantities_positive"][0].startswith("IBOV: non-positive theoretical quantity")
    assert problems["quantities_sum_to_header_total"][0].startswith("IBOV: components sum to")
    assert problems["type_codes_recognised"][0].startswith("IBOV: type code 'ON  ZZZ NM'")
    assert problems["row_count_matches_total_records"][0].startswith("IBOV: ")
    assert problems["header_date_matches_partition"] == []


def test_unique_tickers_by_arrow_tells_pairs_apart_as_python_pairs_do():
    def assets(pairs) -> pa.Table:
        return pa.table({"index": [i for i, _ in pairs], "ticker": [t for _, t in pairs]})

    # The same ticker in two indices is no repeat; within one index it is.
    assert quality.unique_tickers(assets([("IBOV", "PETR4"), ("SMLL", "PETR4")]), DAY) == []
    assert quality.unique_tickers(assets([("IBOV", "PETR4"), ("IBOV", "PETR4")]), DAY) == [
        "IBOV: tickers listed more than once: PETR4"
    ]
    # Two pairs whose joined texts are equal are still two pairs; a null ticker is a value.
    tricky = assets([("A\x00B", "C"), ("A", "B\x00C"), ("IBOV", None), ("SMLL", None)])
    assert quality._pairs_all_distinct(tricky.slice(0, 2), "index", "ticker")
    assert quality.unique_tickers(tricky, DAY) == []
    assert quality.unique_tickers(assets([]), DAY) == []


@pytest.mark.parametrize(
    ("dates", "languages"),
    [
        (["10/07/25"] * 4, ["pt-br"] * 4),
        (["10/07/25", "10/07/25", "07/10/25", "07/10/25"], ["pt-br", "pt-br", "en-us", "en-us"]),
        (["10/07/25", "11/07/25", "10/07/25", "10/07/25"], ["pt-br"] * 4),
        ([None] * 4, ["pt-br"] * 4),
        (["10/07/25"] * 4, ["pt-br", "en-us", "pt-br", "pt-br"]),
    ],
    ids=["one-pair", "two-languages", "another-date", "null", "a-language-off"],
)
def test_header_date_rule_judges_the_distinct_pairs_as_every_row_would(dates, languages):
    bronze = pa.table({"index": ["A", "A", "B", "B"], "header_date": dates, "language": languages})
    assert quality._distinct_pairs(bronze, "header_date", "language") == set(zip(dates, languages))
    expected = []
    for index, rows in {"A": [0, 1], "B": [2, 3]}.items():
        for text, language in sorted({(dates[r], languages[r]) for r in rows}, key=str):
            try:
                parsed = parse_date(text, language, field="header.date")
            except ParseError as exc:
                expected.append(f"{index}: {exc}")
                continue
            if parsed != DAY:
                expected.append(f"{index}: header date {parsed} is not the partition {DAY}")
    assert sorted(quality.header_date_matches_partition(bronze, DAY)) == sorted(expected)


def test_bronze_rules_on_the_audited_table_are_known_to_pass_and_any_other_table_is_judged(tmp_path):
    store = RawStore(LocalStorage(tmp_path / "lake"))
    when = dt.datetime(2025, 7, 10, 21, tzinfo=dt.timezone.utc)
    for code in BUILTIN_INDICES[:4]:
        store.store(DAY, code, [SAMPLE.read_bytes()], fetched_at=when, source_format="json", meta={})
    choice = choose_captures(store, DAY, store.by_index(DAY))
    table = choice.bronze()
    assert table is choice.audited_table
    for rule in BRONZE_RULES:
        assert choice.rule_problems(rule, table, DAY) == rule.fn(table, DAY) == []
    # Another table (not the one the audit judged) is judged by the rule itself.
    other = table.set_column(
        table.schema.get_field_index("header_date"), "header_date", pa.array(["11/07/25"] * table.num_rows)
    )
    found = {rule.name: choice.rule_problems(rule, other, DAY) for rule in BRONZE_RULES}
    assert found["header_date_matches_partition"] == quality.header_date_matches_partition(other, DAY) != []


# --- the silver metadata helpers ------------------------------------------------------------------


def reference_top_weights(assets: pa.Table) -> str:
    """The helper as it was written row by row: the oracle."""
    lines = ["| index | ticker | company | weight % |", "|---|---|---|---|"]
    rows = sorted(
        assets.select(["index", "ticker", "company", "weight"]).to_pylist(),
        key=lambda r: (r["index"], -r["weight"]),
    )
    shown: dict[str, int] = {}
    for r in rows:
        if shown.get(r["index"], 0) < TOP_N:
            shown[r["index"]] = shown.get(r["index"], 0) + 1
            lines.append(f"| {r['index']} | {r['ticker']} | {r['company']} | {r['weight']} |")
    return "\n".join(lines)


def reference_per_index(assets: pa.Table) -> dict:
    rows: dict[str, int] = {}
    sums: dict[str, Decimal] = {}
    for index, weight in zip(assets.column("index").to_pylist(), assets.column("weight").to_pylist()):
        rows[index] = rows.get(index, 0) + 1
        sums[index] = sums.get(index, Decimal(0)) + weight
    return {
        **{f"rows_{i}": n for i, n in rows.items()},
        **{f"weight_sum_{i}": float(v) for i, v in sums.items()},
    }


def test_metadata_helpers_give_what_the_row_by_row_helpers_gave_ties_included():
    def ties(data):
        for row in data["results"][:15]:
            row["part"] = "1,000"  # 15 equal weights: the first 10 in row order are shown

    pt = json_portfolio(changed(ties))
    small = json_portfolio(
        with_changes(
            SAMPLE.read_bytes(),
            lambda d: d.update(results=d["results"][:4], page={**d["page"], "totalRecords": 4}),
        )
    )
    # Indices out of alphabetical order, one with fewer than TOP_N components.
    items = [("SMLL", CAPTURE, pt), ("AGFS", CAPTURE, small), ("IBOV", CAPTURE, pt)]
    assets = silver.silver_tables_by_row(bronze_table(items), DAY)[1]
    assets = pa.concat_tables([assets.slice(len(assets) - 50), assets.slice(0, len(assets) - 50)])
    assert top_weights_markdown(assets) == reference_top_weights(assets)
    assert per_index_metadata(assets) == reference_per_index(assets)
    assert list(per_index_metadata(assets)) == list(reference_per_index(assets))


# --- the audit of a whole date --------------------------------------------------------------------


def test_a_date_audited_as_one_table_chooses_what_index_by_index_chooses(tmp_path):
    store = RawStore(LocalStorage(tmp_path / "lake"))
    good = SAMPLE.read_bytes()
    bad_weight = changed(set_row(3, part="50,000"))
    when = dt.datetime(2025, 7, 10, 21, tzinfo=dt.timezone.utc)
    for i, code in enumerate(BUILTIN_INDICES[:6]):
        store.store(DAY, code, [good], fetched_at=when, source_format="json", meta={})
        if i == 2:  # a newer capture that fails the audit: the older one is published
            store.store(
                DAY,
                code,
                [bad_weight],
                fetched_at=when + dt.timedelta(hours=1),
                source_format="json",
                meta={},
            )
    captures = store.by_index(DAY)
    day_choice = choose_captures(store, DAY, captures)
    one_by_one = tuple(choose_capture(store, DAY, index, found) for index, found in sorted(captures.items()))
    assert day_choice.choices == one_by_one
    assert [c.index for c in day_choice.choices if c.refused] == [BUILTIN_INDICES[2]]
    assert "weights_sum_to_100" in day_choice.problems[0]
    # A refusal means the date was audited index by index: bronze's table is built from the
    # chosen items (the older capture of the refused index), not the refused one.
    assert day_choice.audited_table is None
    assert day_choice.bronze().equals(bronze_table(day_choice.items))
    assert BUILTIN_INDICES[2] in day_choice.bronze().column("index").to_pylist()

    clean = RawStore(LocalStorage(tmp_path / "clean"))
    for code in BUILTIN_INDICES[:6]:
        clean.store(DAY, code, [good], fetched_at=when, source_format="json", meta={})
    captures = clean.by_index(DAY)
    choice = choose_captures(clean, DAY, captures)
    assert choice.choices == tuple(choose_capture(clean, DAY, i, f) for i, f in sorted(captures.items()))
    assert not choice.problems and len(choice.items) == 6
    # Every newest capture passed: bronze publishes the very table the audit judged, which is
    # what building it again from the items would give.
    assert choice.audited_table is not None
    assert choice.bronze() is choice.audited_table
    assert choice.bronze().equals(bronze_table(choice.items))
