"""B3Client and the GetPortfolioDay contract, over real sockets to the replay server."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from b3_platform.b3.client import (
    DEFAULT_PAGE_SIZE,
    B3Client,
    B3RequestError,
    build_url,
    encode_params,
    portfolio_day_params,
)
from b3_platform.b3.contract import ContractError, WrongDateError, decode_portfolio_json
from b3_platform.transforms.bronze import bronze_table
from b3_platform.transforms.silver import silver_tables
from b3_platform_tests.conftest import SAMPLE_DAY, SAMPLE_JSON, unused_port
from b3_platform_tests.replay import (
    HTML_PAGE,
    SAMPLES,
    Reply,
    empty_results,
    json_in_a_string,
    results_null,
    sample_bytes,
    split_into_pages,
    to_en_us,
    truncated,
    with_changes,
    with_header_date,
    without_field,
)

CANONICAL_TOKEN = "eyJsYW5ndWFnZSI6InB0LWJyIiwicGFnZU51bWJlciI6MSwicGFnZVNpemUiOjEyMCwiaW5kZXgiOiJJQk9WIiwic2VnbWVudCI6IjEifQ=="
SAMPLE = sample_bytes(SAMPLE_JSON)
CAPTURE_ID = "20250710T130000000000Z-" + "0" * 64


class Sleeps(list):
    """A `sleep` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(server, **kwargs) -> B3Client:
    kwargs.setdefault("backoff_seconds", 0)
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("connect_timeout", 2.0)
    return B3Client(server.base_url, **kwargs)


# --- URL building ---------------------------------------------------------------------------------


def test_build_url_is_base_method_and_standard_base64_of_the_json_params():
    params = portfolio_day_params("IBOV")
    url = build_url("http://host/indexProxy/indexCall/", "GetPortfolioDay", params)
    prefix = "http://host/indexProxy/indexCall/GetPortfolioDay/"
    assert url.startswith(prefix)
    token = url[len(prefix) :]
    assert token == base64.b64encode(json.dumps(params).encode("utf-8")).decode("ascii")
    assert json.loads(base64.b64decode(token, validate=True)) == params
    assert encode_params(params) == token


def test_canonical_ibov_token_decodes_to_the_same_params():
    decoded = json.loads(base64.b64decode(CANONICAL_TOKEN, validate=True))
    assert decoded == portfolio_day_params("IBOV", page_size=120, segment="1")
    assert decoded == {"language": "pt-br", "pageNumber": 1, "pageSize": 120, "index": "IBOV", "segment": "1"}


def test_encoding_uses_the_standard_alphabet_with_padding():
    # These params encode to bytes that need '/' and '+' (URL-safe base64 would write '_' and '-')
    # and to a length that needs '=' padding.
    assert encode_params({"index": "?>>"}) == "eyJpbmRleCI6ICI/Pj4ifQ=="
    assert encode_params({"index": ">?"}) == "eyJpbmRleCI6ICI+PyJ9"


@pytest.mark.parametrize("segment", ["3", "0", 2, "", None])
def test_invalid_segment_raises_value_error(segment):
    with pytest.raises(ValueError, match="segment"):
        portfolio_day_params("IBOV", segment=segment)


def test_invalid_segment_is_refused_before_any_request(b3_server):
    with pytest.raises(ValueError, match="segment"):
        client_for(b3_server).fetch_portfolio_day("IBOV", segment="3")
    assert b3_server.requests == []


def test_default_request_carries_pt_br_large_page_size_segment_2_and_our_user_agent(b3_server):
    client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    [request] = b3_server.requests_for("IBOV")
    assert request.method == "GET"
    assert request.path.startswith("/indexProxy/indexCall/GetPortfolioDay/")
    assert request.params == {
        "language": "pt-br",
        "pageNumber": 1,
        "pageSize": DEFAULT_PAGE_SIZE,
        "index": "IBOV",
        "segment": "2",
    }
    assert request.params["pageSize"] >= 1000
    assert "b3_platform" in request.headers["User-Agent"]
    assert "json" in request.headers["Accept"]


def test_segment_1_is_sent_when_asked(b3_server):
    client_for(b3_server).fetch_portfolio_day("IBOV", segment="1")
    [request] = b3_server.requests_for("IBOV")
    assert request.params["segment"] == "1"


def test_capture_keeps_url_params_status_and_body_verbatim(b3_server):
    capture = client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    [page] = capture.pages
    assert page.body == SAMPLE
    assert page.status == 200
    assert page.params == b3_server.requests_for("IBOV")[0].params
    assert (
        page.url
        == b3_server.base_url + b3_server.requests_for("IBOV")[0].path[len("/indexProxy/indexCall") :]
    )
    assert page.fetched_at.tzinfo is not None and page.fetched_at.utcoffset() == dt.timedelta(0)
    assert capture.index == "IBOV"
    assert len(capture.portfolio.results) == 84
    assert capture.portfolio.reference_date == SAMPLE_DAY


# --- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 520])
def test_5xx_then_ok_succeeds_on_the_second_request(b3_server, status):
    sleeps = Sleeps()
    b3_server.script("IBOV", Reply(status, b"<html>oops</html>", "text/html"))
    capture = client_for(b3_server, max_attempts=4, backoff_seconds=0.5, sleep=sleeps).fetch_portfolio_day(
        "IBOV", requested_date=SAMPLE_DAY
    )
    assert len(capture.portfolio.results) == 84
    assert len(b3_server.requests_for("IBOV")) == 2
    assert sleeps == [0.5]


@pytest.mark.parametrize("attempts", [1, 3, 4])
def test_always_500_gives_up_after_n_attempts_with_exponential_backoff(b3_server, attempts):
    sleeps = Sleeps()
    b3_server.script("IBOV", *[Reply(500, b"boom")] * 10)
    client = client_for(b3_server, max_attempts=attempts, backoff_seconds=0.25, sleep=sleeps)
    with pytest.raises(B3RequestError, match=f"gave up after {attempts} attempts") as info:
        client.fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert "HTTP 500" in str(info.value)
    assert len(b3_server.requests_for("IBOV")) == attempts
    assert sleeps == [0.25 * 2**i for i in range(attempts - 1)]  # 0.25, 0.5, 1.0 ...


def test_always_520_gives_up(b3_server):
    b3_server.script("IBOV", *[Reply(520)] * 5)
    with pytest.raises(B3RequestError, match="gave up after 3 attempts.*HTTP 520"):
        client_for(b3_server, max_attempts=3, sleep=Sleeps()).fetch_portfolio_day("IBOV")
    assert len(b3_server.requests_for("IBOV")) == 3


def test_max_attempts_must_be_positive():
    with pytest.raises(ValueError, match="max_attempts"):
        B3Client("http://127.0.0.1:1", max_attempts=0)


def test_hang_longer_than_the_timeout_is_retried_then_succeeds(b3_server):
    sleeps = Sleeps()
    b3_server.script("IBOV", Reply(body=SAMPLE, delay=1.0))
    capture = client_for(
        b3_server, timeout=0.2, max_attempts=3, backoff_seconds=0.1, sleep=sleeps
    ).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert len(capture.portfolio.results) == 84
    assert len(b3_server.requests_for("IBOV")) == 2
    assert sleeps == [0.1]


def test_hang_every_time_gives_up_mentioning_a_timeout(b3_server):
    sleeps = Sleeps()
    b3_server.script("IBOV", Reply(body=SAMPLE, delay=1.0), Reply(body=SAMPLE, delay=1.0))
    client = client_for(b3_server, timeout=0.2, max_attempts=2, sleep=sleeps)
    with pytest.raises(B3RequestError, match="gave up after 2 attempts") as info:
        client.fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert "timeout" in str(info.value).lower() or "timed out" in str(info.value).lower()
    assert "IBOV" in str(info.value) and "2025-07-10" in str(info.value)
    assert len(b3_server.requests_for("IBOV")) == 2
    assert len(sleeps) == 1


def test_connection_refused_is_retried_then_reported():
    sleeps = Sleeps()
    client = B3Client(
        f"http://127.0.0.1:{unused_port()}/indexProxy/indexCall",
        max_attempts=3,
        backoff_seconds=1.5,
        connect_timeout=1.0,
        timeout=1.0,
        sleep=sleeps,
    )
    with pytest.raises(B3RequestError, match="gave up after 3 attempts") as info:
        client.fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert "ConnectionError" in str(info.value)
    assert "GetPortfolioDay IBOV for 2025-07-10" in str(info.value)
    assert sleeps == [1.5, 3.0]


@pytest.mark.parametrize("status", [400, 403, 404, 429])
def test_4xx_is_not_retried(b3_server, status):
    sleeps = Sleeps()
    b3_server.script(
        "IBOV", Reply(status, b"<html>Request Rejected</html>", "text/html"), *[Reply(body=SAMPLE)] * 3
    )
    client = client_for(b3_server, max_attempts=4, sleep=sleeps)
    with pytest.raises(B3RequestError, match=f"HTTP {status}") as info:
        client.fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    message = str(info.value)
    assert "not retried" in message
    assert "Request Rejected" in message  # shows what B3 said
    assert "IBOV" in message and "2025-07-10" in message
    assert len(b3_server.requests_for("IBOV")) == 1
    assert sleeps == []


# --- invalid bodies: ContractError, one request, a clear message -----------------------------------

INVALID_BODIES = {
    "html": (HTML_PAGE, ContractError, ["HTML", "<!DOCTYPE html><html><head><title>Request Rejected"]),
    "truncated": (truncated(SAMPLE), ContractError, ["truncated"]),
    "results_null": (results_null(SAMPLE), ContractError, ['"results" is null']),
    "empty_results": (empty_results(SAMPLE), ContractError, ['"results" is empty']),
    "empty_body": (b"", ContractError, ["empty body"]),
    "missing_field": (without_field(SAMPLE, 3, "cod"), ContractError, ["results.3.cod"]),
    "missing_header_field": (
        with_changes(SAMPLE, lambda d: d["header"].pop("reductor")),
        ContractError,
        ["header.reductor"],
    ),
    "number_not_string": (
        with_changes(SAMPLE, lambda d: d["results"][0].__setitem__("part", 0.49)),
        ContractError,
        ["results.0.part"],
    ),
    "wrong_header_date": (
        with_header_date(SAMPLE, "09/07/25"),
        WrongDateError,
        ["B3 is serving the portfolio of 2025-07-09, not 2025-07-10"],
    ),
    "unparseable_date": (with_header_date(SAMPLE, "2025-07-10"), ContractError, ["header.date"]),
    "json_array": (b"[]", ContractError, ["expected a JSON object"]),
    "not_utf8": (SAMPLE.decode("utf-8").encode("latin-1"), ContractError, ["not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(INVALID_BODIES))
def test_invalid_body_is_a_contract_error_after_exactly_one_request(b3_server, case):
    body, error, fragments = INVALID_BODIES[case]
    sleeps = Sleeps()
    b3_server.script("IBOV", Reply(body=body))  # a retry would get the valid default sample
    client = client_for(b3_server, max_attempts=4, sleep=sleeps)
    with pytest.raises(error) as info:
        client.fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert message.startswith("B3 response for IBOV 2025-07-10: ")
    assert info.value.index == "IBOV" and info.value.requested_date == SAMPLE_DAY
    assert len(b3_server.requests_for("IBOV")) == 1
    assert sleeps == []


def test_sample_served_for_the_next_day_is_a_wrong_date_error(b3_server):
    with pytest.raises(WrongDateError) as info:
        client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=dt.date(2025, 7, 11))
    assert "B3 is serving the portfolio of 2025-07-10, not 2025-07-11" in str(info.value)
    assert "IBOV" in str(info.value)
    assert len(b3_server.requests_for("IBOV")) == 1


def test_html_error_shows_the_first_bytes_only():
    page = b"<html>" + b"x" * 5000 + b"</html>"
    with pytest.raises(ContractError, match="HTML") as info:
        decode_portfolio_json(b"  \n" + page, index="IBOV", requested_date=SAMPLE_DAY)
    assert "<html>xxx" in str(info.value)
    assert len(str(info.value)) < 400


def test_json_in_a_string_is_unwrapped(b3_server):
    body = json_in_a_string(SAMPLE)
    assert json.loads(body).startswith("{")  # really a JSON string
    b3_server.serve("IBOV", body)
    capture = client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert len(capture.portfolio.results) == 84
    assert capture.portfolio.results[0].cod == "ALOS3"
    assert capture.pages[0].body == body  # kept as received, not as unwrapped


def test_json_string_holding_garbage_is_a_contract_error():
    with pytest.raises(ContractError, match="JSON string"):
        decode_portfolio_json(json.dumps("{not json").encode(), index="IBOV")


def test_total_records_mismatch_on_a_single_page_is_refused_by_the_decoder():
    body = with_changes(SAMPLE, lambda d: d["page"].__setitem__("totalRecords", 85))
    with pytest.raises(ContractError, match="totalRecords is 85 but the body holds 84 rows"):
        decode_portfolio_json(body, index="IBOV", requested_date=SAMPLE_DAY)


def test_total_records_mismatch_fails_the_fetch(b3_server):
    b3_server.serve("IBOV", with_changes(SAMPLE, lambda d: d["page"].__setitem__("totalRecords", 85)))
    with pytest.raises(ContractError, match="totalRecords is 85 but 1 page"):
        client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)


def test_unknown_index_default_reply_is_results_null(b3_server):
    with pytest.raises(ContractError, match='"results" is null') as info:
        client_for(b3_server).fetch_portfolio_day("ZZZZ", requested_date=SAMPLE_DAY)
    assert "ZZZZ" in str(info.value)


# --- en-us ----------------------------------------------------------------------------------------


def _silver(portfolio):
    return silver_tables(bronze_table([("IBOV", CAPTURE_ID, portfolio)]), SAMPLE_DAY)


def test_en_us_response_parses_to_the_same_silver_rows_as_pt_br(b3_server):
    english = to_en_us(SAMPLE)
    assert b'"07/10/25"' in english  # MM/DD/YY
    pt = client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    b3_server.reset()
    b3_server.serve("IBOV", english)
    en = client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY, language="en-us")
    assert b3_server.requests_for("IBOV")[0].params["language"] == "en-us"
    assert en.portfolio.language == "en-us" and pt.portfolio.language == "pt-br"
    assert en.portfolio.reference_date == SAMPLE_DAY
    assert (
        en.portfolio.results[0].part != pt.portfolio.results[0].part
        or en.portfolio.results[0].theoricalQty != pt.portfolio.results[0].theoricalQty
    )

    pt_header, pt_assets = _silver(pt.portfolio)
    en_header, en_assets = _silver(en.portfolio)
    assert en_assets.num_rows == pt_assets.num_rows == 84
    assert en_assets.to_pylist() == pt_assets.to_pylist()
    by_ticker = {r["ticker"]: r for r in en_assets.to_pylist()}
    assert str(by_ticker["ALOS3"]["weight"]) == "0.493"
    assert by_ticker["ALOS3"]["theoretical_quantity"] == 476_976_044
    drop_language = lambda t: t.drop_columns(["language"]).to_pylist()  # noqa: E731
    assert drop_language(en_header) == drop_language(pt_header)
    assert en_header.column("language").to_pylist() == ["en-us"]


def test_en_us_date_is_read_month_first():
    # 10/07/25 means 10 July in pt-br but 7 October in en-us: the labels decide, not the digits.
    body = with_header_date(to_en_us(SAMPLE), "10/07/25")
    with pytest.raises(WrongDateError, match="portfolio of 2025-10-07, not 2025-07-10"):
        decode_portfolio_json(body, index="IBOV", requested_date=SAMPLE_DAY)


def test_mixed_language_labels_are_refused():
    body = with_changes(SAMPLE, lambda d: d["header"].__setitem__("textReductor", "Reductor"))
    with pytest.raises(ContractError, match="pt-br or en-us"):
        decode_portfolio_json(body, index="IBOV")


# --- paging ---------------------------------------------------------------------------------------


def test_paged_response_is_fetched_page_by_page_and_merged(b3_server):
    pages = split_into_pages(SAMPLE, 30)
    assert len(pages) == 3
    b3_server.serve_pages("IBOV", pages)
    capture = client_for(b3_server, page_size=30).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    requests = b3_server.requests_for("IBOV")
    assert [r.params["pageNumber"] for r in requests] == [1, 2, 3]
    assert {r.params["pageSize"] for r in requests} == {30}
    assert [p.body for p in capture.pages] == [pages[1], pages[2], pages[3]]
    assert [p.params["pageNumber"] for p in capture.pages] == [1, 2, 3]
    assert len(capture.portfolio.results) == 84 == capture.portfolio.total_records
    expected = [r["cod"] for r in json.loads(SAMPLE)["results"]]
    assert [r.cod for r in capture.portfolio.results] == expected


def test_a_server_repeating_a_page_is_refused(b3_server):
    pages = split_into_pages(SAMPLE, 30)
    pages[3] = pages[2]  # page 3 answered with page 2 again (pageNumber ignored by the server)
    b3_server.serve_pages("IBOV", pages)
    with pytest.raises(ContractError, match="asked for page 3, got page.pageNumber 2") as info:
        client_for(b3_server, page_size=30).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert "IBOV" in str(info.value) and "2025-07-10" in str(info.value)


def test_pages_that_do_not_add_up_to_total_records_are_refused(b3_server):
    pages = split_into_pages(SAMPLE, 30)
    extra = json.loads(pages[2])["results"][:6]
    pages[3] = with_changes(pages[3], lambda d: d["results"].extend(extra))  # 90 rows for 84
    b3_server.serve_pages("IBOV", pages)
    with pytest.raises(ContractError, match="totalRecords is 84 but 3 page\\(s\\) hold 90 rows") as info:
        client_for(b3_server, page_size=30).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert "IBOV" in str(info.value) and "2025-07-10" in str(info.value)


def test_pages_with_a_short_last_page_are_refused(b3_server):
    pages = split_into_pages(SAMPLE, 30)
    pages[3] = with_changes(pages[3], lambda d: d["results"].pop())
    b3_server.serve_pages("IBOV", pages)
    with pytest.raises(ContractError, match="hold 83 rows"):
        client_for(b3_server, page_size=30).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)


def test_pages_disagreeing_on_the_date_are_refused(b3_server):
    pages = split_into_pages(SAMPLE, 30)
    pages[2] = with_header_date(pages[2], "11/07/25")
    b3_server.serve_pages("IBOV", pages)
    # without a requested date the per-page date check cannot catch it: merge must
    with pytest.raises(ContractError, match="disagree"):
        client_for(b3_server, page_size=30).fetch_portfolio_day("IBOV")


def test_absurd_total_pages_is_refused_after_one_request(b3_server):
    b3_server.serve("IBOV", with_changes(SAMPLE, lambda d: d["page"].__setitem__("totalPages", 5000)))
    with pytest.raises(ContractError, match="totalPages is 5000"):
        client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert len(b3_server.requests_for("IBOV")) == 1


def test_null_total_pages_means_one_page(b3_server):
    b3_server.serve("IBOV", with_changes(SAMPLE, lambda d: d["page"].__setitem__("totalPages", None)))
    capture = client_for(b3_server).fetch_portfolio_day("IBOV", requested_date=SAMPLE_DAY)
    assert len(capture.pages) == 1 and len(capture.portfolio.results) == 84
    assert len(b3_server.requests_for("IBOV")) == 1


# --- other payloads from demo_data ----------------------------------------------------------------

NOT_PORTFOLIO_DAY = sorted(
    str(p.relative_to(SAMPLES))
    for folder in ("GetTheoricalPortfolio", "GetStockIndex", "indexStatistics_GetPortfolioDay")
    for p in (SAMPLES / folder).rglob("*.json")
)


def test_there_are_non_portfolio_samples():
    assert len(NOT_PORTFOLIO_DAY) >= 5


@pytest.mark.parametrize("relative", NOT_PORTFOLIO_DAY)
def test_other_methods_responses_are_not_a_portfolio_day(relative):
    body = sample_bytes(relative)
    with pytest.raises(ContractError) as info:
        decode_portfolio_json(body, index="IBOV")
    message = str(info.value)
    assert "not a GetPortfolioDay response" in message
    if "/" in relative and relative.split("/")[0] in ("GetTheoricalPortfolio", "GetStockIndex"):
        assert "header has no date" in message
    else:
        assert "no page, header" in message and "top-level keys: max, min, results" in message


@pytest.mark.parametrize(
    "path", sorted((SAMPLES / "GetPortfolioDay" / "IBOV").glob("2025-*.json")), ids=lambda p: p.name
)
def test_portfolio_day_samples_satisfy_the_contract_for_their_own_date(path: Path):
    day = dt.date.fromisoformat(path.stem)
    portfolio = decode_portfolio_json(path.read_bytes(), index="IBOV", requested_date=day)
    assert portfolio.reference_date == day
    assert portfolio.language == "pt-br"
    assert len(portfolio.results) == portfolio.total_records
