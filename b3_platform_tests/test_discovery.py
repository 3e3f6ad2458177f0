"""Index discovery: B3's real GetStockIndex listing (replayed on 127.0.0.1) decides which indices are
captured; a later listing that adds or drops an index changes the list; the listing failing falls
back to the last good list (or the built-in one) and says so; B3_PLATFORM_INDICES still overrides."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b3_platform.assets import index_members, raw_portfolio, raw_stock_index
from b3_platform.b3.contract import ContractError
from b3_platform.b3.indices import BUILTIN_INDICES
from b3_platform.b3.stock_index import decode_stock_index_json
from b3_platform.lake.schemas import INDEX_MEMBERS
from b3_platform.resources import B3ApiResource, LakeResource, lake_resources
from b3_platform_tests.conftest import SAMPLE_JSON
from b3_platform_tests.replay import (
    HTML_PAGE,
    STOCK_INDEX,
    STOCK_INDEX_SAMPLE,
    Reply,
    listing_with_indices,
    listing_without_index,
    results_null,
    sample_bytes,
    truncated,
    with_changes,
    with_header_date,
)

LISTING = sample_bytes(STOCK_INDEX_SAMPLE)
LISTED = json.loads(LISTING)["results"]
PORTFOLIO = sample_bytes(SAMPLE_JSON)  # the real IBOV 2025-07-10 portfolio
DAY = dt.date(2025, 7, 10)
NEXT = dt.date(2025, 7, 11)
THE_34 = (
    "AGFS BDRX GPTW IBBR IBEE IBEP IBEW IBHB IBLV IBOV IBRA IBSD IBXL IBXX ICO2 ICON IDIV IDVR IEEX "
    "IFIL IFIX IFNC IGCT IGCX IGNM IMAT IMOB INDX ISEE ITAG IVBX MLCX SMLL UTIL"
).split()


# --- the contract ---------------------------------------------------------------------------------


def test_the_real_listing_names_34_indices_and_types_every_stock():
    listing = decode_stock_index_json(LISTING)
    assert list(listing.index_codes) == THE_34
    assert (listing.update, listing.start_month, listing.end_month, listing.year) == (
        dt.date(2025, 4, 7),
        1,
        4,
        2025,
    )
    assert len(listing.stocks) == 537 == len(LISTED)
    by_ticker = {s.ticker: s for s in listing.stocks}
    petr4 = by_ticker["PETR4"]
    assert (petr4.company, petr4.spotlight) == ("PETROBRAS", "PN   N2")
    assert petr4.indices == tuple(
        "IBBR,IBEE,IBEW,IBLV,IBOV,IBRA,IBSD,IBXL,IBXX,IDIV,IDVR,IGCT,IGCX,ITAG,MLCX".split(",")
    )
    # Member counts per index as the raw JSON states them (IBOV 87, BDRX 152, IBEE 6, ...).
    counts = Counter(c for row in LISTED for c in row["indexes"].split(","))
    assert Counter(c for s in listing.stocks for c in s.indices) == counts
    assert (counts["IBOV"], counts["BDRX"], counts["IBEE"]) == (87, 152, 6)


@pytest.mark.parametrize(
    "body, expected",
    [
        (HTML_PAGE, "got HTML instead of JSON"),
        (truncated(LISTING), "invalid or truncated JSON"),
        (results_null(LISTING), '"results" is null'),
        (with_changes(LISTING, lambda d: d.__setitem__("results", [])), '"results" is empty'),
        (with_changes(LISTING, lambda d: d["header"].__setitem__("update", "07/04/2025")), "header.update"),
        (with_changes(LISTING, lambda d: d["header"].__setitem__("endMonth", 13)), "header.endMonth"),
        (with_changes(LISTING, lambda d: d["header"].pop("year")), "header.year: field required"),
        (with_changes(LISTING, lambda d: d["results"][3].__setitem__("indexes", "IBOV,IBrX")), "IBrX"),
        (with_changes(LISTING, lambda d: d["results"][3].__setitem__("code", "PETR")), "not a B3 ticker"),
        (with_changes(LISTING, lambda d: d["page"].__setitem__("totalRecords", 538)), "totalRecords is 538"),
        (sample_bytes(SAMPLE_JSON), "does not match the GetStockIndex contract"),
    ],
    ids=[
        "html",
        "truncated",
        "results_null",
        "empty",
        "update_not_iso",
        "month_13",
        "no_year",
        "bad_index_code",
        "bad_ticker",
        "total_records",
        "a_day_portfolio",
    ],
)
def test_a_listing_breaking_the_contract_is_refused_saying_why(body, expected):
    with pytest.raises(ContractError, match="GetStockIndex") as caught:
        decode_stock_index_json(body)
    assert expected in str(caught.value)


# --- discovery through the assets -----------------------------------------------------------------


@pytest.fixture
def lake(lake_root) -> LakeResource:
    return LakeResource(root=str(lake_root))


@pytest.fixture
def instance():
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def discover(b3_server, lake, today, instance):
    """Run the day's listing and portfolio capture (raw_stock_index → index_members, raw_portfolio)
    with the capture list unset, i.e. discovered; every index code answers the real IBOV sample."""

    def run(day: dt.date, *, indices: list[str] | None = None, expect_success: bool = True):
        today(day)
        b3 = B3ApiResource(
            base_url=b3_server.base_url,
            indices=indices,
            lake=lake,
            timeout_seconds=1.0,
            connect_timeout_seconds=1.0,
            backoff_seconds=0.01,
            max_attempts=2,
            pause_seconds=0.0,
        )
        result = dg.materialize(
            [raw_stock_index, index_members, raw_portfolio],
            resources={**lake_resources(lake), "b3": b3},
            partition_key=day.isoformat(),
            raise_on_error=False,
            instance=instance,
        )
        assert result.success is expect_success
        return result

    return run


def serve_portfolios(server, codes, day: dt.date = DAY) -> None:
    body = PORTFOLIO if day == DAY else with_header_date(PORTFOLIO, day.strftime("%d/%m/%y"))
    for code in codes:
        server.serve(code, body)


def metadata(result, asset: str) -> dict:
    [mat] = [m for m in result.asset_materializations_for_node(asset)]
    return mat.metadata


def check(result):
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_the_real_listing_is_stored_verbatim_typed_and_decides_the_capture(discover, b3_server, lake_root):
    b3_server.serve(STOCK_INDEX, LISTING)
    serve_portfolios(b3_server, THE_34)
    result = discover(DAY)

    # Raw: the listing byte for byte, in the fixed slot index=ALL, with its sidecar.
    folder = lake_root / f"raw/GetStockIndex/date={DAY}/index=ALL"
    [body] = [p for p in folder.glob("*.json") if not p.name.endswith(".meta.json")]
    [meta_file] = list(folder.glob("*.meta.json"))
    assert body.read_bytes() == LISTING
    meta = json.loads(meta_file.read_bytes())
    assert meta["sha256"] == hashlib.sha256(LISTING).hexdigest()
    assert meta["params"] == {"pageNumber": 1, "pageSize": 9999}
    assert meta["indices"] == THE_34 and meta["update"] == "2025-04-07"
    [request] = b3_server.requests_for_method(STOCK_INDEX)
    assert request.params == {"pageNumber": 1, "pageSize": 9999}

    # index_members: one row per (index, ticker) membership of the listing.
    table = pq.read_table(lake_root / INDEX_MEMBERS.location / f"date={DAY}" / "data.parquet")
    assert table.schema.equals(INDEX_MEMBERS.schema, check_metadata=False)
    rows = table.to_pylist()
    assert len(rows) == sum(len(r["indexes"].split(",")) for r in LISTED)
    petr4 = sorted(r["index"] for r in rows if r["ticker"] == "PETR4")
    assert petr4 == sorted(next(r for r in LISTED if r["code"] == "PETR4")["indexes"].split(","))
    assert {
        (r["update_date"], r["period_year"], r["period_start_month"], r["period_end_month"]) for r in rows
    } == {(dt.date(2025, 4, 7), 2025, 1, 4)}
    assert {r["capture_id"] for r in rows} == {body.name[: -len(".json")]}

    # The capture list is the listing's 34 indices: each was asked for once and stored.
    assert (
        sorted({r.params["index"] for r in b3_server.requests if r.params and "index" in r.params}) == THE_34
    )
    assert sorted(p.name for p in (lake_root / f"raw/GetPortfolioDay/date={DAY}").iterdir()) == [
        f"index={c}" for c in THE_34
    ]
    raw_meta = metadata(result, "raw_portfolio")
    assert raw_meta["capture_list_source"].value == "discovered"
    assert raw_meta["capture_list"].value == f"34 indices listed by GetStockIndex on {DAY}"
    assert raw_meta["index_count"].value == 34
    assert check(result).passed
    listing_meta = metadata(result, "raw_stock_index")
    assert listing_meta["status"].value.startswith("stored capture ")
    assert listing_meta["index_count"].value == 34


def test_an_index_added_or_dropped_by_a_later_listing_changes_the_list(discover, b3_server, lake_root):
    b3_server.serve(STOCK_INDEX, LISTING)
    serve_portfolios(b3_server, THE_34)
    discover(DAY)

    # The next trading day B3 lists a new index (IBNW, on PETR4 and VALE3) and no longer UTIL.
    later = listing_without_index(LISTING, "UTIL")
    later = listing_with_indices(
        later,
        {
            r["code"]: [*r["indexes"].split(","), "IBNW"]
            for r in json.loads(later)["results"]
            if r["code"] in ("PETR4", "VALE3")
        },
    )
    expected = sorted({*THE_34, "IBNW"} - {"UTIL"})
    b3_server.reset()
    b3_server.serve(STOCK_INDEX, later)
    serve_portfolios(b3_server, [*THE_34, "IBNW"], NEXT)
    result = discover(NEXT)

    asked = sorted({r.params["index"] for r in b3_server.requests if r.params and "index" in r.params})
    assert asked == expected  # IBNW captured from the day it appears; UTIL no longer asked for
    assert (lake_root / f"raw/GetPortfolioDay/date={NEXT}/index=IBNW").is_dir()
    assert not (lake_root / f"raw/GetPortfolioDay/date={NEXT}/index=UTIL").exists()
    assert check(result).passed  # UTIL is not expected any more
    assert metadata(result, "raw_portfolio")["capture_list"].value == (
        f"34 indices listed by GetStockIndex on {NEXT}"
    )
    members = pq.read_table(lake_root / INDEX_MEMBERS.location / f"date={NEXT}" / "data.parquet")
    assert sorted(r["ticker"] for r in members.to_pylist() if r["index"] == "IBNW") == ["PETR4", "VALE3"]
    # The earlier date keeps what B3 listed then.
    earlier = pq.read_table(lake_root / INDEX_MEMBERS.location / f"date={DAY}" / "data.parquet")
    assert "UTIL" in set(earlier.column("index").to_pylist())


@pytest.mark.parametrize("failure", ["520", "html"])
def test_the_listing_failing_falls_back_to_the_last_good_list_and_says_so(
    discover, b3_server, lake_root, instance, failure
):
    # Day one: a listing that names only four indices.
    four = listing_with_indices(LISTING, {r["code"]: [] for r in LISTED})
    four = listing_with_indices(
        four, {"PETR4": ["IBOV", "IBXX"], "VALE3": ["IBOV", "SMLL"], "ITUB4": ["IDIV"]}
    )
    b3_server.serve(STOCK_INDEX, four)
    serve_portfolios(b3_server, THE_34)
    discover(DAY)

    # Day two: GetStockIndex fails; the portfolios do not.
    b3_server.reset()
    reply = Reply(520, b"") if failure == "520" else Reply(body=HTML_PAGE, content_type="text/html")
    b3_server.script(STOCK_INDEX, *[reply] * 2)
    serve_portfolios(b3_server, THE_34, NEXT)
    result = discover(NEXT)  # succeeds: the listing is optional for the day's portfolios

    assert len(b3_server.requests_for_method(STOCK_INDEX)) == (2 if failure == "520" else 1)
    assert not (lake_root / f"raw/GetStockIndex/date={NEXT}").exists()
    asked = sorted({r.params["index"] for r in b3_server.requests if r.params and "index" in r.params})
    assert asked == ["IBOV", "IBXX", "IDIV", "SMLL"]  # the last good list
    fallback = f"4 indices of the last good GetStockIndex listing, of {DAY} (none stored for {NEXT})"
    listing_meta = metadata(result, "raw_stock_index")
    assert listing_meta["status"].value.startswith("fetch failed: ")
    assert ("HTTP 520" if failure == "520" else "got HTML") in listing_meta["status"].value
    assert listing_meta["capture_list"].value == fallback
    assert metadata(result, "raw_portfolio")["capture_list"].value == fallback
    log = "\n".join(r.user_message for r in instance.all_logs(result.run_id))
    assert f"GetStockIndex {NEXT}: fetch failed" in log and fallback in log
    # index_members holds nothing for the day, and says why, without failing.
    assert metadata(result, "index_members")["status"].value == "no GetStockIndex capture for the date"


def test_a_lake_that_never_discovered_anything_captures_the_built_in_list(discover, b3_server, lake_root):
    b3_server.script(STOCK_INDEX, Reply(503, b""), Reply(503, b""))
    serve_portfolios(b3_server, THE_34)
    result = discover(DAY)
    asked = sorted({r.params["index"] for r in b3_server.requests if r.params and "index" in r.params})
    assert asked == sorted(BUILTIN_INDICES) == THE_34
    assert metadata(result, "raw_portfolio")["capture_list"].value == (
        f"34 indices of the built-in list (no GetStockIndex listing in the lake on or before {DAY})"
    )


def test_configured_indices_override_the_listing_and_the_check_says_which(discover, b3_server, lake_root):
    b3_server.serve(STOCK_INDEX, LISTING)
    serve_portfolios(b3_server, ["IBOV"])  # SMLL is not served: results null
    result = discover(DAY, indices=["IBOV", "SMLL"], expect_success=False)
    asked = sorted({r.params["index"] for r in b3_server.requests if r.params and "index" in r.params})
    assert asked == ["IBOV", "SMLL"]
    evaluation = check(result)
    assert not evaluation.passed
    assert evaluation.description == (
        f"{DAY}: not captured: SMLL (expected 2 indices configured by B3_PLATFORM_INDICES)"
    )
    # The listing is still captured and typed (it answers "which indices hold PETR4").
    assert (lake_root / INDEX_MEMBERS.location / f"date={DAY}" / "data.parquet").is_file()
