"""raw_portfolio materialized in-process against the replay server: what lands in raw, and when not."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from b3_platform.assets import raw_portfolio
from b3_platform.b3.client import DEFAULT_PAGE_SIZE
from b3_platform.importer import import_paths
from b3_platform.lake.paths import RAW_PENDING_DIR, raw_inventory_prefix
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.conftest import SAMPLE_JSON, replay_b3_resource
from b3_platform_tests.replay import (
    HTML_PAGE,
    SAMPLES,
    Reply,
    empty_results,
    results_null,
    sample_bytes,
    split_into_pages,
    truncated,
    with_changes,
    with_header_date,
)

SAMPLE = sample_bytes(SAMPLE_JSON)
TODAY = "2025-07-10"
IBOV_DIR = Path("raw/GetPortfolioDay/date=2025-07-10/index=IBOV")


def run(resources, partition_key: str = TODAY, *, expect_success: bool = True):
    result = dg.materialize(
        [raw_portfolio], resources=resources, partition_key=partition_key, raise_on_error=False
    )
    assert result.success is expect_success, failure_text(result)
    return result


def failure_text(result) -> str:
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None:
                texts.append(data.user_failure_data.description or "")
            if data.error is not None:
                texts.append(data.error.message)
    return "\n".join(texts)


def intentional_failure(result) -> str:
    """The description of the dg.Failure raised by the asset (not an unexpected crash)."""
    [event] = [e for e in result.all_events if e.is_step_failure]
    assert event.step_failure_data.user_failure_data is not None, event.step_failure_data.error.to_string()
    return event.step_failure_data.user_failure_data.description


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def bodies(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".meta.json"))


def metas(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.meta.json"))


def materialization_metadata(result) -> dict:
    [mat] = result.asset_materializations_for_node("raw_portfolio")
    return mat.metadata


def check_evaluation(result):
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "all_configured_indices_captured"
    ]
    return evaluation


# --- today's partition ----------------------------------------------------------------------------


def test_today_capture_is_stored_byte_for_byte_with_its_sidecar(resources, b3_server, today, lake_root):
    today()
    before = dt.datetime.now(dt.timezone.utc)
    result = run(resources)
    after = dt.datetime.now(dt.timezone.utc)

    folder = lake_root / IBOV_DIR
    [body_file] = bodies(folder)
    [meta_file] = metas(folder)
    assert body_file.read_bytes() == SAMPLE
    # Nothing else written but the capture's pending marker for the raw inventory (lake.raw_inventory).
    [marker_file] = files_under(lake_root / raw_inventory_prefix() / RAW_PENDING_DIR)
    assert marker_file.name.startswith("2025-07-10_IBOV_") and marker_file.name.endswith(f"-{body_file.stem}")
    assert marker_file.read_bytes() == b""
    assert files_under(lake_root) == sorted([marker_file, body_file, meta_file])

    meta = json.loads(meta_file.read_bytes())
    sha = hashlib.sha256(SAMPLE).hexdigest()
    assert meta["sha256"] == sha
    assert body_file.name == meta_file.name.replace(".meta.json", ".json")
    assert body_file.stem.endswith(sha)
    [request] = b3_server.requests_for("IBOV")
    assert meta["url"] == b3_server.base_url + request.path[len("/indexProxy/indexCall") :]
    assert (
        meta["params"]
        == request.params
        == {
            "language": "pt-br",
            "pageNumber": 1,
            "pageSize": DEFAULT_PAGE_SIZE,
            "index": "IBOV",
            "segment": "2",
        }
    )
    assert json.loads(base64.b64decode(meta["url"].rsplit("/", 1)[1])) == meta["params"]
    assert meta["http_status"] == 200
    fetched_at = dt.datetime.fromisoformat(meta["fetched_at"])
    assert fetched_at.utcoffset() == dt.timedelta(0)
    assert before <= fetched_at <= after
    assert meta["source"] == "api" and meta["format"] == "json"
    assert meta["index"] == "IBOV" and meta["date"] == TODAY
    assert meta["language"] == "pt-br" and meta["header_date"] == "10/07/25"
    [page] = meta["pages"]
    assert page["sha256"] == sha and page["bytes"] == len(SAMPLE)
    assert (lake_root / page["key"]) == body_file
    assert page["http_status"] == 200

    metadata = materialization_metadata(result)
    assert metadata["indices"].value == "IBOV"
    assert metadata["index_count"].value == 1
    assert metadata["captured_this_run"].value == "IBOV"
    latest = metadata["latest_captures"].value["IBOV"]
    assert latest["capture_id"] == body_file.name[: -len(".json")]
    assert latest["source"] == "api" and latest["url"] == meta["url"]
    assert "file_name" not in latest  # a live capture has none: no null stored per index per date
    evaluation = check_evaluation(result)
    assert evaluation.passed


def test_identical_response_is_not_stored_twice(resources, b3_server, today, lake_root):
    today()
    run(resources)
    first = files_under(lake_root)
    run(resources)
    assert len(b3_server.requests_for("IBOV")) == 2  # it did ask again
    assert files_under(lake_root) == first
    assert len(bodies(lake_root / IBOV_DIR)) == 1


def test_changed_response_is_a_second_capture_and_never_overwrites_the_first(
    resources, b3_server, today, lake_root
):
    today()
    run(resources)
    folder = lake_root / IBOV_DIR
    [first_body] = bodies(folder)
    first_meta_bytes = metas(folder)[0].read_bytes()

    changed = with_changes(SAMPLE, lambda d: d["results"][0].__setitem__("part", "0,494"))
    b3_server.serve("IBOV", changed)
    result = run(resources)

    assert len(bodies(folder)) == 2 and len(metas(folder)) == 2
    assert first_body.read_bytes() == SAMPLE
    assert metas(folder)[0].read_bytes() == first_meta_bytes
    [second_body] = [p for p in bodies(folder) if p != first_body]
    assert second_body.read_bytes() == changed
    assert second_body.name > first_body.name  # stems sort by fetch time
    latest = materialization_metadata(result)["latest_captures"].value["IBOV"]
    assert latest["capture_id"] == second_body.name[: -len(".json")]


def test_paged_capture_stores_every_page(resources, b3_server, today, lake_root):
    today()
    pages = split_into_pages(SAMPLE, 30)
    b3_server.serve_pages("IBOV", pages)
    run({**resources, "b3": replay_b3_resource(b3_server, page_size=30)})
    folder = lake_root / IBOV_DIR
    stored = bodies(folder)
    assert len(stored) == 3
    assert sorted(p.read_bytes() for p in stored) == sorted(pages.values())
    meta = json.loads(metas(folder)[0].read_bytes())
    assert [p["params"]["pageNumber"] for p in meta["pages"]] == [1, 2, 3]
    assert [(lake_root / p["key"]).read_bytes() for p in meta["pages"]] == [pages[1], pages[2], pages[3]]
    assert meta["sha256"] == hashlib.sha256(pages[1] + pages[2] + pages[3]).hexdigest()


# --- misbehaviour: the run fails and raw stays empty ------------------------------------------------

MISBEHAVIOURS = {
    "500_always": ([Reply(500, b"Internal Server Error")] * 3, "gave up after 3 attempts; last: HTTP 500"),
    "520_always": ([Reply(520, b"")] * 3, "gave up after 3 attempts; last: HTTP 520"),
    "403": ([Reply(403, b"<html>Access Denied</html>", "text/html")], "HTTP 403"),
    "timeout": ([Reply(body=SAMPLE, delay=0.8)] * 2, "timed out"),
    "html": ([Reply(body=HTML_PAGE, content_type="text/html")], "got HTML instead of JSON"),
    "truncated": ([Reply(body=truncated(SAMPLE))], "invalid or truncated JSON"),
    "results_null": ([Reply(body=results_null(SAMPLE))], '"results" is null'),
    "empty_results": ([Reply(body=empty_results(SAMPLE))], '"results" is empty'),
    # The next trading day (2025-07-11) is filed under its date (test_capture_timing); two trading
    # days ahead, or a past day, is refused.
    "two_trading_days_ahead": (
        [Reply(body=with_header_date(SAMPLE, "14/07/25"))],
        "B3 is serving the portfolio of 2025-07-14, not 2025-07-10",
    ),
    "previous_day": (
        [Reply(body=with_header_date(SAMPLE, "09/07/25"))],
        "B3 is serving the portfolio of 2025-07-09, not 2025-07-10",
    ),
}


@pytest.mark.parametrize("case", list(MISBEHAVIOURS))
def test_misbehaviour_fails_the_run_and_writes_nothing(resources, b3_server, today, lake_root, case):
    today()
    replies, expected = MISBEHAVIOURS[case]
    # The valid sample stays the default answer: a retry the client should not make would succeed
    # and the test would see it.
    b3_server.script("IBOV", *replies)
    b3 = replay_b3_resource(b3_server, timeout_seconds=0.2, max_attempts=2) if case == "timeout" else None
    result = run({**resources, "b3": b3} if b3 else resources, expect_success=False)

    description = intentional_failure(result)
    assert expected in description
    assert description.startswith("raw_portfolio: 1 problem(s): IBOV 2025-07-10: ")
    assert files_under(lake_root) == []
    assert result.asset_materializations_for_node("raw_portfolio") == []
    attempts = {"500_always": 3, "520_always": 3, "timeout": 2}.get(case, 1)
    assert len(b3_server.requests_for("IBOV")) == attempts


@pytest.mark.parametrize("smll", ["results_null", "500"])
def test_one_index_failing_does_not_lose_the_others(resources, b3_server, today, lake_root, smll):
    today()
    if smll == "500":
        b3_server.script("SMLL", *[Reply(500)] * 3)
    # else: the replay server answers an index it has no sample for with results null
    result = run(
        {**resources, "b3": replay_b3_resource(b3_server, indices=["IBOV", "SMLL"])}, expect_success=False
    )

    description = intentional_failure(result)
    assert description.startswith("raw_portfolio: 1 problem(s): SMLL 2025-07-10: ")
    assert ('"results" is null' if smll == "results_null" else "HTTP 500") in description
    assert "IBOV 2025-07-10:" not in description
    [body_file] = bodies(lake_root / IBOV_DIR)
    assert body_file.read_bytes() == SAMPLE
    assert not (lake_root / "raw/GetPortfolioDay/date=2025-07-10/index=SMLL").exists()
    assert {p.parent.name for p in files_under(lake_root / "raw")} == {"index=IBOV"}
    # The one marker for the raw inventory is IBOV's: a failed index announces no capture.
    [marker] = files_under(lake_root / raw_inventory_prefix() / RAW_PENDING_DIR)
    assert marker.name.startswith("2025-07-10_IBOV_")
    # The step failed, but the completeness check is still reported for the day, naming SMLL.
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "all_configured_indices_captured"
    assert not evaluation.passed
    assert "SMLL" in str(evaluation.metadata["problems"].value)


def test_two_indices_both_served_are_both_stored_and_the_check_passes(resources, b3_server, today, lake_root):
    today()
    b3_server.serve("SMLL", SAMPLE)  # the contract does not name the index: any valid body will do
    result = run({**resources, "b3": replay_b3_resource(b3_server, indices=["IBOV", "SMLL"])})
    assert len(bodies(lake_root / IBOV_DIR)) == 1
    assert len(bodies(lake_root / "raw/GetPortfolioDay/date=2025-07-10/index=SMLL")) == 1
    assert materialization_metadata(result)["indices"].value == "IBOV, SMLL"
    assert check_evaluation(result).passed


# --- other partitions -----------------------------------------------------------------------------


def import_sample(lake_root: Path, relative: str = "GetPortfolioDay/IBOV/2025-07-08.json"):
    [result] = import_paths(RawStore(LocalStorage(lake_root)), [SAMPLES / relative])
    assert result.status == "imported", result.reason
    return result


def test_past_partition_with_nothing_captured_fails_with_the_import_hint(
    resources, b3_server, today, lake_root
):
    today()
    result = run(resources, "2025-07-08", expect_success=False)
    description = intentional_failure(result)
    assert "2025-07-08: nothing captured." in description
    assert (
        "B3 only serves the current portfolio; import saved files with "
        "`python -m b3_platform import PATH... [--index CODE]`"
    ) in description
    assert b3_server.requests == []
    assert files_under(lake_root) == []


def test_future_partition_fails_without_contacting_b3(resources, b3_server, today, lake_root):
    today()
    result = run(resources, "2025-07-11", expect_success=False)
    description = intentional_failure(result)
    assert "2025-07-11 is in the future (today in São Paulo is 2025-07-10)" in description
    assert b3_server.requests == []
    assert files_under(lake_root) == []


def test_past_partition_with_an_imported_capture_succeeds_offline(resources, b3_server, today, lake_root):
    today()
    imported = import_sample(lake_root)
    before = files_under(lake_root)
    result = run(resources, "2025-07-08")
    assert b3_server.requests == []
    assert files_under(lake_root) == before
    metadata = materialization_metadata(result)
    assert metadata["captured_this_run"].value == "none (already stored)"
    latest = metadata["latest_captures"].value["IBOV"]
    assert latest["capture_id"] == imported.capture_id and latest["source"] == "import"
    assert "url" not in latest and latest["file_name"]  # an import has no url, a file name
    evaluation = check_evaluation(result)
    assert evaluation.passed


def test_check_warns_when_a_configured_index_is_missing(resources, b3_server, today, lake_root):
    today()
    import_sample(lake_root)
    b3 = replay_b3_resource(b3_server, indices=["IBOV", "SMLL", "IDIV"])
    # Imported history only: the platform was not capturing then, so the list is not held to it.
    evaluation = check_evaluation(run({**resources, "b3": b3}, "2025-07-08"))
    assert evaluation.passed and evaluation.description.startswith(
        "not judged: no capture from B3's API on or before 2025-07-08"
    )
    # Once the platform captured live (07-07: a capture from B3's API), 07-08's misses count.
    RawStore(LocalStorage(lake_root)).store(
        dt.date(2025, 7, 7),
        "IBOV",
        [(SAMPLES / "GetPortfolioDay/IBOV/2025-07-07.json").read_bytes()],
        fetched_at=dt.datetime(2025, 7, 7, 12, tzinfo=dt.timezone.utc),
        source_format="json",
        meta={"source": "api", "http_status": 200},
    )
    result = run({**resources, "b3": b3}, "2025-07-08")
    assert b3_server.requests == []
    evaluation = check_evaluation(result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == (
        "2025-07-08: not captured: IDIV, SMLL (expected 3 indices configured by B3_PLATFORM_INDICES)"
    )
    assert evaluation.metadata["failed_dates"].value == "2025-07-08"
