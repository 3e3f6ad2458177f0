"""A day of 34 indices from the replay server: the daily_capture job asks B3 for the real listing,
then every listed index, one after the other. One index answers 520 until the retries run out and
one answers an HTML page: the other 32 are stored, the step fails naming the two, and the layers
below follow by themselves (the automation conditions) for the 32."""

from __future__ import annotations

import json
import re

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b3_platform.definitions import build_defs
from b3_platform.lake.schemas import GOLD_TABLES, SILVER_HEADER
from b3_platform.resources import B3ApiResource
from b3_platform_tests.conftest import SAMPLE_DAY
from b3_platform_tests.replay import HTML_PAGE, STOCK_INDEX, STOCK_INDEX_SAMPLE, Reply, sample_bytes
from b3_platform_tests.test_discovery import PORTFOLIO, THE_34

BROKEN = {"IFIX": "gave up after 2 attempts; last: HTTP 520", "IMAT": "got HTML instead of JSON"}


@pytest.fixture
def defs(lake_root, b3_server, monkeypatch):
    """The platform's own definitions (assets with their automation conditions) on a temp lake,
    with a b3 resource on the replay server: discovered list, fast retries, no pause."""
    monkeypatch.setenv("B3_PLATFORM_DATA_DIR", str(lake_root))
    base = build_defs()
    b3 = B3ApiResource(
        base_url=b3_server.base_url,
        lake=base.resources["lake"],
        timeout_seconds=1.0,
        connect_timeout_seconds=1.0,
        backoff_seconds=0.01,
        max_attempts=2,
        pause_seconds=0.0,
    )
    return dg.Definitions(assets=base.assets, jobs=base.jobs, resources={**base.resources, "b3": b3})


def run_log(instance, result) -> list[str]:
    return [r.user_message for r in instance.all_logs(result.run_id)]


def test_34_indices_two_failing_keep_the_other_32_and_fail_naming_the_two(defs, b3_server, today, lake_root):
    day = today()
    b3_server.serve(STOCK_INDEX, sample_bytes(STOCK_INDEX_SAMPLE))
    for code in THE_34:
        b3_server.serve(code, PORTFOLIO)
    b3_server.script("IFIX", Reply(520, b""), Reply(520, b""))
    b3_server.script("IMAT", Reply(body=HTML_PAGE, content_type="text/html"))

    with dg.instance_for_test() as instance:
        # The follow_upstream sensor's first tick (nothing new yet): its cursor is where it starts.
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        job = defs.resolve_job_def("daily_capture")
        result = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False
        )
        assert not result.success

        # The step failed naming exactly the two, each with what went wrong.
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "raw_portfolio"
        description = failure.step_failure_data.user_failure_data.description
        assert description.startswith("raw_portfolio: 2 problem(s): ")
        for code, reason in BROKEN.items():
            assert f"{code} {day}: " in description and reason in description
        assert all(f"{c} {day}:" not in description for c in THE_34 if c not in BROKEN)
        assert len(b3_server.requests_for("IFIX")) == 2 and len(b3_server.requests_for("IMAT")) == 1

        # The other 32 are in raw, each exactly as served.
        stored = sorted(
            p.name.removeprefix("index=") for p in (lake_root / f"raw/GetPortfolioDay/date={day}").iterdir()
        )
        assert stored == sorted(set(THE_34) - set(BROKEN))
        assert len(stored) == 32
        # Progress in the run log, one line per index in order: "n/34 CODE stored".
        log = run_log(instance, result)
        # (The announced portfolios' steps log theirs as "n/34 GetQuartelyPreview CODE …".)
        progress = [m for m in log if re.match(r"^\d+/34 [A-Z0-9]{4} ", m)]
        assert len(progress) == 34
        assert progress[0].startswith("1/34 AGFS stored: ")
        assert any(
            m.startswith("21/34 IFIX failed: GetPortfolioDay IFIX for 2025-07-10: gave up") for m in progress
        )
        assert any(m.startswith("22/34 IFNC stored: ") for m in progress)
        # raw is reported for the day (so the layers below can follow) and its check names the two.
        [mat] = result.asset_materializations_for_node("raw_portfolio")
        assert mat.partition == day.isoformat() and mat.metadata["index_count"].value == 32
        [evaluation] = [
            e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["raw_portfolio"]
        ]
        assert not evaluation.passed
        assert evaluation.description == (
            f"{day}: not captured: IFIX, IMAT (expected 34 indices listed by GetStockIndex on {day})"
        )

        # The layers below follow by themselves: what the follow_upstream sensor requests next.
        evaluated = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        requested = {
            key.to_user_string(): set(evaluated.get_requested_partitions(key))
            for key in defs.resolve_asset_graph().get_all_asset_keys()
            if evaluated.get_num_requested(key)
        }
        below = {"bronze_portfolio", "silver_header", "silver_assets", *(t.name for t in GOLD_TABLES)}
        assert {k: v for k, v in requested.items() if k in below} == {k: {day.isoformat()} for k in below}
        built = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            partition_key=day.isoformat(),
            asset_selection=[dg.AssetKey(k) for k in sorted(below)],
        )
        assert built.success

    header = pq.read_table(lake_root / SILVER_HEADER.location / f"date={day}" / "data.parquet")
    assert sorted(header.column("index").to_pylist()) == stored
    for table_def in GOLD_TABLES:
        table = pq.read_table(lake_root / table_def.location / f"date={day}" / "data.parquet")
        if table_def.name != "gold_changes":  # no previous day in the lake: nothing compared
            assert sorted(set(table.column("index").to_pylist())) == stored, table_def.name
    assert day == SAMPLE_DAY and json.loads(PORTFOLIO)["header"]["date"] == "10/07/25"
