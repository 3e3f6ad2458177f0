"""The announced portfolios (GetTheoricalPortfolio, GetQuartelyPreview) over the replay server, the
assets materialized in-process: real samples typed exactly, a synthetic preview's changes, the
accuracy on a (synthetic) rebalance date, and one method failing without costing anything else."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.b3.announced import (
    PREVIEW,
    PREVIEW_METHOD,
    STOCK_INDEX,
    THEORETICAL,
    THEORETICAL_METHOD,
    Quadrimester,
    decode_announced_json,
)
from b3_platform.b3.contract import ContractError
from b3_platform.importer import import_paths
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import (
    ANNOUNCED_ACCURACY,
    ANNOUNCED_CHANGES,
    SILVER_ASSETS,
    SILVER_PREVIEW,
    SILVER_THEORETICAL,
    TableDef,
)
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import LakeResource, lake_resources
from b3_platform.transforms.announced import is_rebalance_date, next_rebalance_date, rebalance_date
from b3_platform_tests.conftest import REPO, SAMPLE_DAY, SAMPLE_JSON, duckdb_catalog, replay_b3_resource
from b3_platform_tests.replay import HTML_PAGE, Reply, as_announced, sample_bytes, with_changes
from b3_platform_tests.test_raw_capture import failure_text

THEORETICAL_DIR = "GetTheoricalPortfolio/IBOV"
STOCK_INDEX_SAMPLE = "GetStockIndex/2025-04-07_vcr.json"
#: Each real sample, the language it was asked in, and the trading day it is captured on here
#: (the responses carry no date; 2022-12-10 was a Saturday, so the Friday before).
SAMPLES = [
    ("2022-05-18_pt-br_extdata.json", "pt-br", dt.date(2022, 5, 18), 92),
    ("2022-12-10_pt-br_vcr.json", "pt-br", dt.date(2022, 12, 9), 92),
    ("2025-04-07_en-us_vcr.json", "en-us", dt.date(2025, 4, 7), 87),
]
ANNOUNCED_RAW = ["raw_theoretical_portfolio", "raw_preview_portfolio"]
ANNOUNCED_SUBGRAPH = [*ANNOUNCED_RAW, "silver_theoretical", "silver_preview", "announced_changes"]


def b3_decimal(text: str, language: str) -> Decimal:
    """B3's string as a number, written out here without the platform's parser."""
    if language == "pt-br":
        return Decimal(text.replace(".", "").replace(",", "."))
    return Decimal(text.replace(",", ""))


def pt_br_int(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def pt_br_weight(w: Decimal) -> str:
    return f"{w:.3f}".replace(".", ",")


def materialize(resources, selection, day: dt.date) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ALL_ASSETS,
        selection=selection,
        resources=resources,
        partition_key=day.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def read(lake_root: Path, table_def: TableDef, day: dt.date) -> list[dict]:
    return pq.read_table(lake_root / table_def.location / f"date={day}" / "data.parquet").to_pylist()


def graph_resources(lake_root: Path, server, **b3):
    return {
        **lake_resources(LakeResource(root=str(lake_root))),
        "catalog": duckdb_catalog(lake_root),
        "b3": replay_b3_resource(server, **b3),
    }


def store_stock_index(lake_root: Path, day: dt.date) -> str:
    stored, _ = RawStore(LocalStorage(lake_root), STOCK_INDEX).store(
        day,
        "ALL",
        [sample_bytes(STOCK_INDEX_SAMPLE)],
        fetched_at=dt.datetime.combine(day, dt.time(12), dt.timezone.utc),
        source_format="json",
        meta={"source": "test"},
    )
    return stored.capture_id


# --- the real samples -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "language", "day", "rows"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_real_theoretical_samples_are_stored_verbatim_and_typed_exactly(
    name, language, day, rows, b3_server, today, lake_root
):
    body = sample_bytes(f"{THEORETICAL_DIR}/{name}")
    today(day)
    b3_server.serve_method(THEORETICAL, "IBOV", body)
    stock_index_id = store_stock_index(lake_root, day) if day == dt.date(2025, 4, 7) else None
    resources = graph_resources(lake_root, b3_server, language=language)
    result = materialize(resources, ["raw_theoretical_portfolio", "silver_theoretical"], day)
    assert result.success

    [request] = b3_server.requests_for("IBOV", THEORETICAL)
    assert request.params == {"pageNumber": 1, "pageSize": 9999, "language": language, "index": "IBOV"}
    folder = lake_root / f"raw/{THEORETICAL}/date={day}/index=IBOV"
    [stored] = [p for p in folder.glob("*.json") if not p.name.endswith(".meta.json")]
    assert stored.read_bytes() == body
    [meta_path] = folder.glob("*.meta.json")
    meta = json.loads(meta_path.read_text())
    assert (meta["method"], meta["language"], meta["published"], meta["date"]) == (
        THEORETICAL,
        language,
        True,
        str(day),
    )

    typed = read(lake_root, SILVER_THEORETICAL, day)
    source = json.loads(body)
    assert len(typed) == len(source["results"]) == rows
    for row, raw in zip(typed, source["results"]):
        assert (
            row["ticker"] == raw["cod"] and row["company"] == raw["asset"] and row["type_code"] == raw["type"]
        )
        assert row["weight"] == b3_decimal(raw["part"], language), raw
        assert row["theoretical_quantity"] == int(b3_decimal(raw["theoricalQty"], language)), raw
        assert row["cont"] == raw["cont"]
        assert row["theoretical_quantity_total"] == int(
            b3_decimal(source["header"]["theoricalQty"], language)
        )
        assert row["reductor"] == b3_decimal(source["header"]["reductor"], language)
        assert row["part_total"] == Decimal(100)
        assert row["language"] == language
    # The header's total is the sum of the rows, and the weights sum to 100 (checks passed).
    assert sum(r["theoretical_quantity"] for r in typed) == typed[0]["theoretical_quantity_total"]
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {name: e.passed for name, e in evaluations.items()} == {
        "all_configured_indices_captured": True,
        "silver_theoretical_rules": True,
    }
    # The day portfolio's blocking rules, each named with its result in the one check's metadata.
    rules = evaluations["silver_theoretical_rules"].metadata
    assert {
        name: rules[name].value
        for name in (
            "unique_tickers",
            "ticker_format",
            "weights_sum_to_100",
            "quantities_positive",
            "quantities_sum_to_header_total",
        )
    } == dict.fromkeys(
        (
            "unique_tickers",
            "ticker_format",
            "weights_sum_to_100",
            "quantities_positive",
            "quantities_sum_to_header_total",
        ),
        "passed",
    )
    assert rules["failed_rules"].value == "none"
    quadrimester = Quadrimester.containing(day)
    assert {(r["period_year"], r["period_start_month"], r["period_end_month"]) for r in typed} == {
        (quadrimester.year, quadrimester.start_month, quadrimester.end_month)
    }
    [source_text] = {r["period_source"] for r in typed}
    if stock_index_id:
        assert source_text == f"stated by GetStockIndex capture {stock_index_id}"
    else:
        assert source_text.startswith(f"derived from the trading date {day}")


def test_pt_br_sample_is_refused_when_en_us_was_asked_and_nothing_is_stored(b3_server, today, lake_root):
    today(dt.date(2022, 5, 18))
    b3_server.serve_method(THEORETICAL, "IBOV", sample_bytes(f"{THEORETICAL_DIR}/{SAMPLES[0][0]}"))
    result = materialize(
        graph_resources(lake_root, b3_server, language="en-us"),
        ["raw_theoretical_portfolio"],
        dt.date(2022, 5, 18),
    )
    assert not result.success
    assert "asked for en-us but the numbers are written in pt-br notation" in failure_text(result)
    assert not (lake_root / "raw" / THEORETICAL).exists()


# --- the contract ---------------------------------------------------------------------------------

REAL = sample_bytes(f"{THEORETICAL_DIR}/2022-12-10_pt-br_vcr.json")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.__setitem__("results", None), '"results" is null'),
        (lambda d: d.__setitem__("results", []), '"results" is empty'),
        (lambda d: d["header"].__setitem__("date", "09/12/22"), "header has a date"),
        (lambda d: d["results"][3].pop("part"), "results.3.part: field required"),
        (lambda d: d["results"][0].pop("cont"), "cont is not an integer"),
        (lambda d: d["header"].__setitem__("part", "99,000"), "header.part"),
        (lambda d: d["page"].__setitem__("totalRecords", 91), "page.totalRecords is 91"),
    ],
)
def test_theoretical_contract_is_strict(change, reason):
    with pytest.raises(ContractError, match=None) as error:
        decode_announced_json(with_changes(REAL, change), THEORETICAL_METHOD, index="IBOV", language="pt-br")
    assert reason in str(error.value) and "GetTheoricalPortfolio" in str(error.value)


def test_preview_contract_keeps_and_reports_what_is_uncertain():
    def odd(d):
        d["header"]["date"] = "09/12/22"
        d["extra"] = 1
        d["results"][0].pop("cont")
        d["results"][1]["cont"] = "2"
        d["results"][2]["sector"] = "x"

    portfolio = decode_announced_json(with_changes(REAL, odd), PREVIEW_METHOD, index="IBOV", language="pt-br")
    assert portfolio.published and len(portfolio.results) == 92
    assert portfolio.cont(portfolio.results[0]) is None and portfolio.cont(portfolio.results[1]) is None
    assert portfolio.notes == (
        "unknown top-level field(s) kept in raw: extra",
        "unknown header field(s) kept in raw: date",
        "unknown result field(s) kept in raw: sector",
        "cont is not an integer for 1 row(s) (e.g. ALPA4); stored null",
        "cont absent in 1 row(s); stored null",
    )
    unpublished = decode_announced_json(
        with_changes(REAL, lambda d: d.__setitem__("results", None)), PREVIEW_METHOD, index="IBOV"
    )
    assert (unpublished.published, unpublished.results, unpublished.notes) == (
        False,
        [],
        ('"results" is null: no preview published for this index',),
    )
    # Still strict where the shape is certain: no weight, nothing to type.
    with pytest.raises(ContractError, match="results.0.part"):
        decode_announced_json(
            with_changes(REAL, lambda d: d["results"][0].pop("part")), PREVIEW_METHOD, index="IBOV"
        )


def test_rebalance_calendar():
    assert rebalance_date(Quadrimester(2023, 1)) == dt.date(2023, 1, 2)
    assert rebalance_date(Quadrimester(2025, 5)) == dt.date(2025, 5, 2)  # May 1st is a holiday
    assert rebalance_date(Quadrimester(2025, 9)) == dt.date(2025, 9, 1)
    assert is_rebalance_date(dt.date(2025, 9, 1)) and not is_rebalance_date(dt.date(2025, 9, 2))
    assert next_rebalance_date(dt.date(2022, 12, 9)) == dt.date(2023, 1, 2)
    assert next_rebalance_date(dt.date(2025, 9, 1)) == dt.date(2026, 1, 2)
    assert Quadrimester(2025, 9).following() == Quadrimester(2026, 1)


# --- what the next rebalance changes --------------------------------------------------------------

DROPPED = ("ALPA4", "AMER3")
ADDED = "NEWX3"


def synthetic_preview(body: bytes) -> bytes:
    """The theoretical portfolio without ALPA4 and AMER3 and with NEWX3 holding their weight and
    quantity; PETR4 gains 0.100 pp that VALE3 loses. Totals stay consistent (checks pass)."""

    def change(d):
        rows = d["results"]
        dropped = [r for r in rows if r["cod"] in DROPPED]
        weight = sum(b3_decimal(r["part"], "pt-br") for r in dropped)
        quantity = sum(int(b3_decimal(r["theoricalQty"], "pt-br")) for r in dropped)
        d["results"] = [r for r in rows if r["cod"] not in DROPPED]
        d["results"].append(
            {
                "cod": ADDED,
                "asset": "NEW CO",
                "type": "ON      NM",
                "theoricalQty": pt_br_int(quantity),
                "part": pt_br_weight(weight),
                "cont": 99,
            }
        )
        for r in d["results"]:
            if r["cod"] in ("PETR4", "VALE3"):
                delta = Decimal("0.100") if r["cod"] == "PETR4" else Decimal("-0.100")
                r["part"] = pt_br_weight(b3_decimal(r["part"], "pt-br") + delta)
        d["page"]["totalRecords"] = len(d["results"])

    return with_changes(body, change)


def test_a_preview_that_drops_two_and_adds_one_gives_those_three_changes(b3_server, today, lake_root):
    day = today(dt.date(2022, 12, 9))
    b3_server.serve_method(THEORETICAL, "IBOV", REAL)
    b3_server.serve_method(PREVIEW, "IBOV", synthetic_preview(REAL))
    result = materialize(graph_resources(lake_root, b3_server), ANNOUNCED_SUBGRAPH, day)
    assert result.success, failure_text(result)

    preview = read(lake_root, SILVER_PREVIEW, day)
    assert {(r["period_year"], r["period_start_month"]) for r in preview} == {(2023, 1)}
    changes = read(lake_root, ANNOUNCED_CHANGES, day)
    theoretical = {r["ticker"]: r for r in read(lake_root, SILVER_THEORETICAL, day)}
    moved = [(r["change"], r["ticker"]) for r in changes if r["change"] != "staying"]
    assert moved == [("entering", ADDED), ("leaving", "ALPA4"), ("leaving", "AMER3")]
    by_ticker = {r["ticker"]: r for r in changes}
    assert len(changes) == len(theoretical) + 1 == 93
    entering = by_ticker[ADDED]
    assert entering["current_weight"] is None and entering["current_quantity"] is None
    assert entering["preview_weight"] == theoretical["ALPA4"]["weight"] + theoretical["AMER3"]["weight"]
    for ticker in DROPPED:
        leaving = by_ticker[ticker]
        assert (
            leaving["preview_weight"] is None and leaving["current_weight"] == theoretical[ticker]["weight"]
        )
        assert leaving["weight_change_pp"] == -theoretical[ticker]["weight"]
        assert leaving["quantity_change"] == -theoretical[ticker]["theoretical_quantity"]
    assert by_ticker["PETR4"]["weight_change_pp"] == Decimal("0.100")
    assert by_ticker["VALE3"]["weight_change_pp"] == Decimal("-0.100")
    unchanged = [r for r in changes if r["change"] == "staying" and r["ticker"] not in ("PETR4", "VALE3")]
    assert unchanged and all(r["weight_change_pp"] == 0 and r["quantity_change"] == 0 for r in unchanged)
    assert {r["rebalance_date"] for r in changes} == {dt.date(2023, 1, 2)}
    [mat] = [m for m in result.asset_materializations_for_node("announced_changes")]
    assert (mat.metadata["entering_IBOV"].value, mat.metadata["leaving_IBOV"].value) == (1, 2)


def test_an_unpublished_preview_is_kept_and_reported(b3_server, today, lake_root):
    day = today(dt.date(2022, 12, 9))
    b3_server.serve_method(THEORETICAL, "IBOV", REAL)
    b3_server.serve_method(PREVIEW, "IBOV", with_changes(REAL, lambda d: d.__setitem__("results", None)))
    result = materialize(graph_resources(lake_root, b3_server), ANNOUNCED_SUBGRAPH, day)
    assert result.success, failure_text(result)
    [meta] = (lake_root / f"raw/{PREVIEW}/date={day}/index=IBOV").glob("*.meta.json")
    assert json.loads(meta.read_text())["published"] is False
    assert read(lake_root, SILVER_PREVIEW, day) == [] and read(lake_root, ANNOUNCED_CHANGES, day) == []
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # A warning rule of silver_preview's one (blocking) check: severity WARN, nothing blocked.
    preview = checks["silver_preview_rules"]
    assert not preview.passed and preview.blocking and preview.severity == dg.AssetCheckSeverity.WARN
    assert preview.metadata["failed_rules"].value == "preview_published"
    assert preview.description == f"{day}: preview_published: no preview published: IBOV"
    assert not checks["theoretical_and_preview_captured"].passed


# --- how accurate the previews were ---------------------------------------------------------------

REBALANCE = dt.date(2025, 9, 1)
PREVIEW_DAYS = [dt.date(2025, 8, 27), dt.date(2025, 8, 28), dt.date(2025, 8, 29)]


def accuracy_lake(today, lake_root: Path, tmp_path: Path, b3_server, *, also: Sequence[str] = ()) -> dict:
    """A lake with three previews before the (synthetic) 2025-09-01 rebalance — one with a wrong
    ticker, one with a wrong quantity, one exact — and the day portfolio of 2025-09-01 (the real
    2025-07-10 one) with announced_accuracy built (and the assets `also` names); its resources."""
    day_body = with_changes(sample_bytes(SAMPLE_JSON), lambda d: d["header"].__setitem__("date", "01/09/25"))
    saved = tmp_path / "IBOV" / "2025-09-01.json"
    saved.parent.mkdir()
    saved.write_bytes(day_body)
    assert [r.status for r in import_paths(RawStore(LocalStorage(lake_root)), [saved])] == ["imported"]
    exact = as_announced(day_body)

    def wrong_ticker(d):
        d["results"][0]["cod"] = "ZZZZ3"  # rows are sorted by ticker: ABEV3 becomes ZZZZ3

    def wrong_quantity(d):
        qty = int(b3_decimal(d["results"][1]["theoricalQty"], "pt-br"))
        d["results"][1]["theoricalQty"] = pt_br_int(qty + 1000)
        total = int(b3_decimal(d["header"]["theoricalQty"], "pt-br"))
        d["header"]["theoricalQty"] = pt_br_int(total + 1000)

    store = RawStore(LocalStorage(lake_root), PREVIEW)
    for day, body in zip(
        PREVIEW_DAYS, [with_changes(exact, wrong_ticker), with_changes(exact, wrong_quantity), exact]
    ):
        store.store(
            day,
            "IBOV",
            [body],
            fetched_at=dt.datetime.combine(day, dt.time(13), dt.timezone.utc),
            source_format="json",
            meta={"source": "test", "params": {"language": "pt-br"}},
        )
    today(REBALANCE)
    resources = graph_resources(lake_root, b3_server)
    for day in PREVIEW_DAYS:  # past dates: built from raw without calling B3
        result = materialize(resources, ["silver_preview", "announced_accuracy"], day)
        assert result.success, failure_text(result)
        assert not (lake_root / ANNOUNCED_ACCURACY.location / f"date={day}").exists()
        [mat] = result.asset_materializations_for_node("announced_accuracy")
        assert mat.metadata["status"].value.startswith("not a rebalance date")
    assert b3_server.requests == []
    result = materialize(
        resources,
        ["bronze_portfolio", "silver_header", "silver_assets", "announced_accuracy", *also],
        REBALANCE,
    )
    assert result.success, failure_text(result)
    return resources


def test_accuracy_on_a_rebalance_date(today, lake_root, tmp_path, b3_server):
    """Three previews before the (synthetic) 2025-09-01 rebalance: one with a wrong ticker, one with
    a wrong quantity, one exact; the day portfolio of 2025-09-01 is the real 2025-07-10 one."""
    accuracy_lake(today, lake_root, tmp_path, b3_server)
    rows = read(lake_root, ANNOUNCED_ACCURACY, REBALANCE)
    actual = read(lake_root, SILVER_ASSETS, REBALANCE)
    n = len(actual)
    assert [
        (
            r["preview_date"],
            r["trading_days_before"],
            r["tickers_matched"],
            r["missing_tickers"],
            r["unexpected_tickers"],
            r["quantities_equal"],
            r["exact"],
        )
        for r in rows
    ] == [
        (PREVIEW_DAYS[0], 3, n - 1, "ZZZZ3", "ABEV3", n - 1, False),
        (PREVIEW_DAYS[1], 2, n, "", "", n - 1, False),
        (PREVIEW_DAYS[2], 1, n, "", "", n, True),
    ]
    assert {(r["tickers_stable_since"], r["quantities_stable_since"]) for r in rows} == {
        (PREVIEW_DAYS[1], PREVIEW_DAYS[2])
    }
    assert {r["predicted_components"] for r in rows} == {n} and {r["actual_components"] for r in rows} == {n}
    assert {r["weight_max_abs_error_pp"] for r in rows} == {Decimal(0)}


# --- one method failing ---------------------------------------------------------------------------


#: Each method's raw and silver assets, by B3 method.
KIND = {THEORETICAL: "theoretical", PREVIEW: "preview"}


@pytest.mark.parametrize(("failing", "working"), [(PREVIEW, THEORETICAL), (THEORETICAL, PREVIEW)])
def test_one_method_failing_loses_neither_the_other_nor_the_day_portfolio(
    failing, working, b3_server, today, lake_root
):
    """The daily job, in-process, with B3 answering 520 (until retries run out), then HTML, to every
    call of one method; the other method and the day portfolio are served as usual."""
    from b3_platform.automation.schedule import daily_capture_job

    day = today(SAMPLE_DAY)
    b3_server.script_method(
        failing, "IBOV", *[Reply(520, b"")] * 3, Reply(body=HTML_PAGE, content_type="text/html")
    )
    defs = dg.Definitions(
        assets=ALL_ASSETS, jobs=[daily_capture_job], resources=graph_resources(lake_root, b3_server)
    )
    result = defs.resolve_job_def("daily_capture").execute_in_process(
        partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed == {f"raw_{KIND[failing]}_portfolio"}
    assert f"{failing} IBOV for {day}: gave up after 3 attempts; last: HTTP 520" in failure_text(result)
    materialized = {
        m.asset_key.to_user_string()
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }
    day_portfolio = {"raw_portfolio", "bronze_portfolio", "silver_header", "silver_assets", "gold_changes"}
    assert day_portfolio | {f"raw_{KIND[working]}_portfolio", f"silver_{KIND[working]}"} <= materialized
    assert not materialized & {
        f"raw_{KIND[failing]}_portfolio",
        f"silver_{KIND[failing]}",
        "announced_changes",
    }
    working_table = SILVER_THEORETICAL if working == THEORETICAL else SILVER_PREVIEW
    assert len(read(lake_root, SILVER_ASSETS, day)) == len(read(lake_root, working_table, day)) == 84
    assert not (lake_root / "raw" / failing).exists()

    # A later run: the next reply is HTML (a contract error, nothing stored), then B3 answers.
    again = materialize(graph_resources(lake_root, b3_server), [f"raw_{KIND[failing]}_portfolio"], day)
    assert not again.success and "got HTML instead of JSON" in failure_text(again)
    assert not (lake_root / "raw" / failing).exists()
    again = materialize(graph_resources(lake_root, b3_server), ANNOUNCED_SUBGRAPH, day)
    assert again.success, failure_text(again)
    # The working method's capture was not stored twice (identical bytes); both are compared now.
    assert len(list((lake_root / f"raw/{working}/date={day}/index=IBOV").glob("*.meta.json"))) == 1
    assert [r["change"] for r in read(lake_root, ANNOUNCED_CHANGES, day)] == ["staying"] * 84


# --- the example query ----------------------------------------------------------------------------


def test_next_rebalance_query_over_captured_announcements(b3_server, today, lake_root):
    """queries/next_rebalance.sql through the CLI (a subprocess, CSV output) on a lake with two
    capture dates: IBOV's preview unchanged on 2022-12-08 and the synthetic one on 2022-12-09 (the
    latest counts); IBXX captured only on 2022-12-08, with the synthetic preview."""
    import csv
    import io
    import os
    import subprocess
    import sys

    first, second = dt.date(2022, 12, 8), dt.date(2022, 12, 9)
    for index in ("IBOV", "IBXX"):
        b3_server.serve_method(THEORETICAL, index, REAL)
    b3_server.serve_method(PREVIEW, "IBOV", REAL)
    b3_server.serve_method(PREVIEW, "IBXX", synthetic_preview(REAL))
    today(first)
    result = materialize(
        graph_resources(lake_root, b3_server, indices=["IBOV", "IBXX"]), ANNOUNCED_SUBGRAPH, first
    )
    assert result.success, failure_text(result)
    b3_server.serve_method(PREVIEW, "IBOV", synthetic_preview(REAL))
    today(second)
    resources = graph_resources(lake_root, b3_server)
    assert materialize(resources, ANNOUNCED_SUBGRAPH, second).success
    assert dg.materialize(ALL_ASSETS, selection=["athena_tables"], resources=resources).success

    # What the query must say, from the Parquet files.
    expected = []
    for index, day in (("IBOV", second), ("IBXX", first)):
        rows = [r for r in read(lake_root, ANNOUNCED_CHANGES, day) if r["index"] == index]
        entering = [r for r in rows if r["change"] == "entering"]
        leaving = [r for r in rows if r["change"] == "leaving"]
        expected.append(
            [
                index,
                str(day),
                "2023-01-02",
                str((dt.date(2023, 1, 2) - day).days),
                str(len(entering)),
                str(len(leaving)),
                str(sum(r["preview_weight"] for r in entering)),
                str(sum(r["current_weight"] for r in leaving)),
                str(max(abs(r["weight_change_pp"]) for r in rows)),
            ]
        )
    assert [e[4:6] for e in expected] == [["1", "2"], ["1", "2"]]
    assert read(lake_root, ANNOUNCED_CHANGES, first)[0]["index"] == "IBOV"  # IBOV on 12-08: all staying
    assert {r["change"] for r in read(lake_root, ANNOUNCED_CHANGES, first) if r["index"] == "IBOV"} == {
        "staying"
    }

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    query = REPO / "queries" / "next_rebalance.sql"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "b3_platform",
            "--data-dir",
            str(lake_root),
            "query",
            "--file",
            str(query),
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    header, *rows = list(csv.reader(io.StringIO(done.stdout)))
    assert header == [
        "index",
        "captured_on",
        "rebalance_date",
        "days_to_go",
        "entering",
        "leaving",
        "entering_weight",
        "leaving_weight",
        "largest_weight_change_pp",
    ]
    assert rows == expected
