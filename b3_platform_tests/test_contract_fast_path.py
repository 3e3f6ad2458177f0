"""The contract's two ways of validating a body give the same answer.

`decode_portfolio_json` first validates the bytes directly with pydantic's JSON parser and steps
aside to Python's `json` and the step-by-step checks for anything that path refuses. These tests
decode good, odd and bad bodies from demo_data both ways (the direct path switched off for the
reference) and require the same portfolio, or the same error type, message, index and date."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from b3_platform.b3 import contract
from b3_platform.b3.contract import ContractError, WrongDateError, decode_portfolio_json
from b3_platform.transforms.bronze import bronze_table
from b3_platform_tests.conftest import SAMPLE_DAY, SAMPLE_JSON
from b3_platform_tests.replay import (
    HTML_PAGE,
    SAMPLES,
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

SAMPLE = sample_bytes(SAMPLE_JSON)
DAY_SAMPLES = sorted((SAMPLES / "GetPortfolioDay" / "IBOV").glob("2025-*.json"))


def _with_top_level_prefix(body: bytes, prefix: bytes) -> bytes:
    """The body with `prefix` (key/value pairs and a comma) inserted first in its top-level object."""
    start = body.index(b"{") + 1
    return body[:start] + prefix + body[start:]


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


def _decode(body: bytes, kwargs: dict):
    """What a caller sees: ("ok", portfolio, each row's set fields) or ("error", type, message, ...)."""
    try:
        portfolio = decode_portfolio_json(body, **kwargs)
    except ContractError as exc:
        return ("error", type(exc), str(exc), exc.reason, exc.index, exc.requested_date)
    fields_set = [row.model_fields_set for row in portfolio.results]
    return ("ok", portfolio, portfolio.header.model_fields_set, fields_set)


def _both_ways(monkeypatch, body: bytes, **kwargs):
    """(direct path on, direct path off): the same call decoded both ways."""
    kwargs.setdefault("index", "IBOV")
    direct = _decode(body, kwargs)
    with monkeypatch.context() as patched:
        patched.setattr(contract, "_validated_directly", lambda body: None)
        stepwise = _decode(body, kwargs)
    return direct, stepwise


# --- bodies the direct path accepts: the same portfolio as the stepwise path ----------------------

GOOD = {
    **{
        f"sample {p.name}": (p.read_bytes(), {"requested_date": dt.date.fromisoformat(p.stem)})
        for p in DAY_SAMPLES
    },
    "en-us": (to_en_us(SAMPLE), {"requested_date": SAMPLE_DAY}),
    "no requested date": (SAMPLE, {}),
    "next day accepted": (SAMPLE, {"requested_date": dt.date(2025, 7, 9), "also_accepted": [SAMPLE_DAY]}),
    "a page of a paged response": (
        split_into_pages(SAMPLE, 30)[2],
        {"requested_date": SAMPLE_DAY, "check_total_records": False},
    ),
    "unknown fields B3 may add": (
        with_changes(
            SAMPLE,
            lambda d: (
                d.__setitem__("extra", {"nested": [1, 2.5, None, True]}),
                d["header"].__setitem__("newLabel", "x"),
                d["results"][0].__setitem__("isin", "BRALOSACNOR5"),
            ),
        ),
        {"requested_date": SAMPLE_DAY},
    ),
    "nulls where the contract allows them": (
        with_changes(
            SAMPLE,
            lambda d: (
                d["page"].__setitem__("totalPages", None),
                d["header"].__setitem__("partAcum", None),
                d["results"][3].__setitem__("segment", None),
                d["results"][4].__setitem__("partAcum", None),
            ),
        ),
        {"requested_date": SAMPLE_DAY},
    ),
    "every non-ASCII character escaped": (
        json.dumps(json.loads(SAMPLE)).encode("ascii"),
        {"requested_date": SAMPLE_DAY},
    ),
    "escaped surrogate pairs, solidus and line separators": (
        with_changes(SAMPLE, lambda d: d["results"][0].__setitem__("asset", "A\U0001f600/\u2028B")),
        {"requested_date": SAMPLE_DAY},
    ),
    "a repeated key: the last one counts": (
        _with_top_level_prefix(SAMPLE, b'"results": null, "header": 1, '),
        {"requested_date": SAMPLE_DAY},
    ),
    "the 2022 segment-2 sample (sectors, B3's replacement characters)": (
        sample_bytes("GetPortfolioDay/IBOV/2022-12-08_segment2_pt-br_vcr.json"),
        {"requested_date": dt.date(2022, 12, 8)},
    ),
    "a number of unknown fields as NaN and Infinity": (
        _with_top_level_prefix(SAMPLE, b'"x": NaN, "y": -Infinity, '),
        {"requested_date": SAMPLE_DAY},
    ),
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_a_body_the_direct_path_accepts_decodes_to_the_same_portfolio(monkeypatch, case):
    body, kwargs = GOOD[case]
    assert contract._validated_directly(body) is not None  # the direct path is the one taken
    direct, stepwise = _both_ways(monkeypatch, body, **kwargs)
    assert direct[0] == "ok", direct
    assert direct == stepwise
    assert [type(row) for row in direct[1].results] == [type(row) for row in stepwise[1].results]


# --- bodies only the stepwise path accepts: it still decodes them, as before -----------------------

ODD = {
    "a UTF-8 byte order mark": b"\xef\xbb\xbf" + SAMPLE,
    "the JSON document inside a JSON string": json_in_a_string(SAMPLE),
    "an unknown field nested 300 levels deep": with_changes(
        SAMPLE, lambda d: d.__setitem__("deep", _nested(300))
    ),
    "a lone surrogate in an unknown field": _with_top_level_prefix(SAMPLE, b'"note": "\\ud800", '),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_a_body_only_the_stepwise_path_accepts_still_decodes_the_same(monkeypatch, case):
    body = ODD[case]
    assert contract._validated_directly(body) is None  # stepped aside...
    direct, stepwise = _both_ways(monkeypatch, body, requested_date=SAMPLE_DAY)
    assert direct[0] == "ok", direct  # ...and decoded all the same
    assert direct == stepwise
    assert len(direct[1].results) == 84


# --- bad bodies: the same error, word for word ------------------------------------------------------

#: case: (body, the error's type, a fragment of its message naming the step that refused it)
BAD = {
    "html": (HTML_PAGE, ContractError, "got HTML instead of JSON"),
    "truncated": (truncated(SAMPLE), ContractError, "invalid or truncated JSON"),
    "results null": (results_null(SAMPLE), ContractError, '"results" is null'),
    "results empty": (empty_results(SAMPLE), ContractError, '"results" is empty'),
    "a repeated key, the last one null": (
        SAMPLE[:-1] + b', "results": null}',
        ContractError,
        '"results" is null',
    ),
    "empty body": (b"", ContractError, "empty body"),
    "blank body": (b" \n\t", ContractError, "empty body"),
    "missing row field": (without_field(SAMPLE, 3, "cod"), ContractError, "results.3.cod: field required"),
    "missing header field": (
        with_changes(SAMPLE, lambda d: d["header"].pop("reductor")),
        ContractError,
        "header.reductor: field required",
    ),
    "header without date": (
        with_changes(SAMPLE, lambda d: d["header"].pop("date")),
        ContractError,
        "header has no date",
    ),
    "number not a string": (
        with_changes(SAMPLE, lambda d: d["results"][0].__setitem__("part", 0.49)),
        ContractError,
        "results.0.part: input should be a valid string",
    ),
    "page number as a float": (
        with_changes(SAMPLE, lambda d: d["page"].__setitem__("pageNumber", 1.0)),
        ContractError,
        "page.pageNumber: input should be a valid integer",
    ),
    "total records as a boolean": (
        with_changes(SAMPLE, lambda d: d["page"].__setitem__("totalRecords", True)),
        ContractError,
        "page.totalRecords: input should be a valid integer",
    ),
    "results not a list": (
        with_changes(SAMPLE, lambda d: d.__setitem__("results", {"a": 1})),
        ContractError,
        "results: input should be a valid list",
    ),
    "another day's portfolio": (
        with_header_date(SAMPLE, "09/07/25"),
        WrongDateError,
        "B3 is serving the portfolio of 2025-07-09, not 2025-07-10",
    ),
    "unparseable date": (with_header_date(SAMPLE, "2025-07-10"), ContractError, "is not a pt-br date"),
    "mixed language labels": (
        with_changes(SAMPLE, lambda d: d["header"].__setitem__("textReductor", "Reductor")),
        ContractError,
        "cannot tell whether the response is pt-br or en-us",
    ),
    "total records mismatch": (
        with_changes(SAMPLE, lambda d: d["page"].__setitem__("totalRecords", 85)),
        ContractError,
        "page.totalRecords is 85 but the body holds 84 rows",
    ),
    "json array": (b"[]", ContractError, "expected a JSON object, got list"),
    "json string holding garbage": (
        json.dumps("{not json").encode(),
        ContractError,
        "JSON string that does not hold",
    ),
    "not UTF-8": (SAMPLE.decode("utf-8").encode("latin-1"), ContractError, "body is not UTF-8"),
    "nested too deeply for Python": (
        _with_top_level_prefix(SAMPLE, b'"deep": ' + b"[" * 5000 + b"]" * 5000 + b", "),
        ContractError,
        "JSON nested too deeply to parse",
    ),
    **{
        f"other method {p.relative_to(SAMPLES)}": (
            p.read_bytes(),
            ContractError,
            "not a GetPortfolioDay response",
        )
        for folder in ("GetTheoricalPortfolio", "GetStockIndex", "indexStatistics_GetPortfolioDay")
        for p in sorted((SAMPLES / folder).rglob("*.json"))
    },
}


@pytest.mark.parametrize("quote_body", [True, False], ids=["quoting the body", "quoting nothing"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_body_gets_the_same_error_either_way(monkeypatch, case, quote_body):
    body, error, fragment = BAD[case]
    direct, stepwise = _both_ways(monkeypatch, body, requested_date=SAMPLE_DAY, quote_body=quote_body)
    assert direct[0] == "error", direct
    assert direct[1] is error
    assert fragment in direct[2]
    assert direct[2].startswith("B3 response for IBOV 2025-07-10: ")
    assert direct == stepwise


# --- the direct path's rows: dicts until read, the same `Component`s when read ----------------------


def _decoded_both_ways(monkeypatch, body: bytes, **kwargs):
    kwargs.setdefault("index", "IBOV")
    direct = decode_portfolio_json(body, **kwargs)
    with monkeypatch.context() as patched:
        patched.setattr(contract, "_validated_directly", lambda body: None)
        stepwise = decode_portfolio_json(body, **kwargs)
    return direct, stepwise


def test_the_direct_paths_rows_read_as_the_stepwise_paths_component_list(monkeypatch):
    body = with_changes(
        SAMPLE,
        lambda d: (d["results"][3].__setitem__("segment", None), d["results"][0].__setitem__("isin", "X")),
    )
    direct, stepwise = _decoded_both_ways(monkeypatch, body, requested_date=SAMPLE_DAY)
    assert isinstance(direct.results, contract.Components)
    assert isinstance(stepwise.results, list)
    # Bronze reads the dicts without a model being made, and they are the models' own fields.
    assert direct.results._models is None
    assert contract.component_rows(direct.results) == [vars(row) for row in stepwise.results]
    assert direct.results._models is None
    assert bronze_table([("IBOV", "c", direct)]).equals(bronze_table([("IBOV", "c", stepwise)]))
    # Read as a list is read: items, negative positions, slices, length, repr, equality.
    assert len(direct.results) == len(stepwise.results) == 84
    assert direct.results[0] == stepwise.results[0] and type(direct.results[0]) is contract.Component
    assert direct.results[-1] == stepwise.results[-1]
    assert direct.results[2:5] == stepwise.results[2:5] and isinstance(direct.results[2:5], list)
    assert repr(direct.results) == repr(stepwise.results)
    assert direct.results == stepwise.results and stepwise.results == direct.results
    assert direct.results != tuple(stepwise.results)  # as a list is not equal to a tuple
    assert direct.results != stepwise.results[:-1]
    assert direct.has_sector == stepwise.has_sector
    with pytest.raises(IndexError):
        direct.results[84]
    with pytest.raises(TypeError):
        hash(direct.results)
    # A model a reader changed is what bronze reads from then on, as it would from a list.
    direct.results[0].cod = "ZZZZ3"
    assert contract.component_rows(direct.results)[0]["cod"] == "ZZZZ3"
    assert direct.results != stepwise.results
    assert bronze_table([("IBOV", "c", direct)]).column("cod")[0].as_py() == "ZZZZ3"


def test_a_paged_response_merged_from_direct_pages_is_the_same_portfolio(monkeypatch):
    pages = list(split_into_pages(SAMPLE, 30).values())
    assert len(pages) == 3
    decoded = [
        _decoded_both_ways(monkeypatch, page, requested_date=SAMPLE_DAY, check_total_records=False)
        for page in pages
    ]
    direct = contract.merge_pages([d for d, _ in decoded], index="IBOV", requested_date=SAMPLE_DAY)
    stepwise = contract.merge_pages([s for _, s in decoded], index="IBOV", requested_date=SAMPLE_DAY)
    assert isinstance(direct.results, contract.Components)
    assert direct.results._models is None  # merged without making a model
    assert direct == stepwise
    assert bronze_table([("IBOV", "c", direct)]).equals(bronze_table([("IBOV", "c", stepwise)]))
    # A page decoded either way merges with the other kind all the same.
    mixed = contract.merge_pages(
        [decoded[0][0], *[s for _, s in decoded[1:]]], index="IBOV", requested_date=SAMPLE_DAY
    )
    assert mixed == stepwise
