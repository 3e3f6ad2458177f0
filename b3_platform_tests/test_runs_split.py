"""A long block of dates runs as consecutive single runs of at most `max_run_dates` dates
(runs.materialize_days): every date is still built once, each run carries its range's tags, the lake
holds the same bytes as one run over the whole block, and a failed run stops the rest of its block
(saying which dates were not run) and the catalog run.

The lake: the eight real IBOV day portfolios of demo_data (2025-06-30 … 2025-07-10, eight
consecutive trading days), imported into raw.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.cli import _print_failures
from b3_platform.runs import RANGE_END, RANGE_START, archive_selection, materialize_days, run_ranges
from b3_platform_tests.conftest import ENV_VARS
from b3_platform_tests.test_catalog import JSON_DIR, import_days, platform_resources

DAYS = sorted(dt.date.fromisoformat(p.stem) for p in JSON_DIR.glob("????-??-??.json"))
#: 2025-06-30 … 2025-07-08: seven consecutive trading days (2025-07-09, a trading day, is not in
#: demo_data, so 2025-07-10 is a block of its own).
BLOCK = DAYS[:7]
LAYERS = ("bronze", "silver", "gold")


@pytest.fixture(scope="module")
def raw_lake(tmp_path_factory) -> Path:
    """The eight days imported once: every lake below is a copy (the same capture ids)."""
    root = tmp_path_factory.mktemp("raw") / "lake"
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV_VARS:
            mp.delenv(var, raising=False)
        import_days(root, *DAYS)
    return root


def build(raw_lake: Path, root: Path, days, max_run_dates: int, instance: dg.DagsterInstance):
    """A copy of `raw_lake`, then every layer and the catalog (not the dashboard) for `days`."""
    shutil.copytree(raw_lake, root)
    defs = dg.Definitions(assets=ALL_ASSETS, resources=platform_resources(root))
    selection = [k for k in archive_selection(defs.resolve_asset_graph()) if k != "dashboard"]
    return defs, materialize_days(
        defs, days, instance=instance, selection=selection, quiet=True, max_run_dates=max_run_dates
    )


def lake_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for layer in LAYERS
        for p in sorted((root / layer).rglob("*"))
        if p.is_file()
    }


def materialized_dates(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, list[str]]:
    """Every partitioned asset's materialized partitions, one entry per materialization."""
    graph = defs.resolve_asset_graph()
    found = {}
    for key in graph.get_all_asset_keys():
        if not graph.get(key).is_partitioned:
            continue
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1000).records
        if records:
            found[key.to_user_string()] = sorted(r.partition_key for r in records)
    return found


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_run_ranges_cut_a_block_into_consecutive_runs_of_at_most_n_trading_days():
    assert len(DAYS) == 8 and BLOCK == DAYS[:7]
    assert run_ranges(BLOCK[0], BLOCK[-1], 3) == [
        (BLOCK[0], BLOCK[2]),
        (BLOCK[3], BLOCK[5]),
        (BLOCK[6], BLOCK[6]),
    ]
    assert run_ranges(BLOCK[0], BLOCK[-1], 7) == [(BLOCK[0], BLOCK[-1])]
    friday, monday = dt.date(2025, 7, 4), dt.date(2025, 7, 7)  # the weekend is no trading day
    assert run_ranges(friday, monday, 1) == [(friday, friday), (monday, monday)]
    with pytest.raises(ValueError, match="at least one date"):
        run_ranges(BLOCK[0], BLOCK[-1], 0)


def test_a_block_split_into_runs_builds_every_date_once_with_the_range_tags_and_the_same_bytes(
    raw_lake, tmp_path
):
    split_instance = dg.DagsterInstance.ephemeral()
    defs, outcomes = build(raw_lake, tmp_path / "split", DAYS, 3, split_instance)

    assert [o.success for o in outcomes] == [True] * 5, [o.failures for o in outcomes]
    ranges = [(o.first, o.last) for o in outcomes]
    assert ranges == [
        (DAYS[0], DAYS[2]),
        (DAYS[3], DAYS[5]),
        (DAYS[6], DAYS[6]),
        (DAYS[7], DAYS[7]),
        (None, None),
    ]
    for outcome in outcomes[:4]:
        tags = split_instance.get_run_by_id(outcome.run_id).tags
        assert (tags[RANGE_START], tags[RANGE_END]) == (outcome.first.isoformat(), outcome.last.isoformat())
    catalog_run = split_instance.get_run_by_id(outcomes[-1].run_id)
    assert RANGE_START not in catalog_run.tags
    assert catalog_run.asset_selection == {dg.AssetKey("athena_tables")}
    # Every partitioned asset: each date materialized exactly once.
    every_date = sorted(d.isoformat() for d in DAYS)
    by_asset = materialized_dates(split_instance, defs)
    assert set(by_asset) >= {"raw_portfolio", "bronze_portfolio", "silver_assets", "gold_index_summary"}
    assert by_asset == {name: every_date for name in by_asset}

    # A later run's first date carries time in index on from the previous run's last gold (one
    # file), as a date inside a run does: it does not walk back over the history.
    for first, previous in ((DAYS[3], DAYS[2]), (DAYS[6], DAYS[5])):
        (record,) = split_instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("gold_time_in_index"), asset_partitions=[first.isoformat()]
            ),
            limit=1,
        ).records
        how = record.asset_materialization.metadata["time_in_index_from"].value
        assert how == f"carried from gold of {previous}: IBOV", how

    # One run over the whole block writes the same files, byte for byte.
    _, whole = build(raw_lake, tmp_path / "whole", DAYS, 250, dg.DagsterInstance.ephemeral())
    assert [(o.first, o.last) for o in whole] == [(DAYS[0], DAYS[6]), (DAYS[7], DAYS[7]), (None, None)]
    split_lake, whole_lake = lake_bytes(tmp_path / "split"), lake_bytes(tmp_path / "whole")
    assert len(split_lake) > 3 * len(DAYS)
    assert split_lake == whole_lake


def test_a_failed_run_stops_the_rest_of_its_block_and_the_catalog_and_says_which_dates(
    raw_lake, tmp_path, capsys
):
    root = tmp_path / "lake"
    shutil.copytree(raw_lake, root)
    # Silver cannot store 2025-07-04 (the second run's range): a file stands where its folder goes.
    blocker = root / "silver" / "assets" / "date=2025-07-04"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=ALL_ASSETS, resources=platform_resources(root))
    selection = [k for k in archive_selection(defs.resolve_asset_graph()) if k != "dashboard"]
    outcomes = materialize_days(
        defs, DAYS, instance=instance, selection=selection, quiet=True, max_run_dates=3
    )

    assert [(o.first, o.last, o.success) for o in outcomes] == [
        (DAYS[0], DAYS[2], True),
        (DAYS[3], DAYS[5], False),
        (DAYS[7], DAYS[7], True),  # another block: it does not start from the failed one's dates
    ]  # 2025-07-08's run and the catalog's never started
    failed = outcomes[1]
    assert failed.not_run == (DAYS[6], DAYS[6])
    assert failed.failures[0].startswith(
        'Execution of step "silver" failed: silver 2025-07-04: [Errno 17] File exists: '
    ), failed.failures
    assert failed.failures[-1] == (
        "the run of 2025-07-03…2025-07-07 failed, so 2025-07-08 was not run (each date of gold is "
        "carried from the one before): fix the cause and run them again"
    )
    assert instance.get_run_by_id(failed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert len(instance.get_runs()) == 3
    built = materialized_dates(instance, defs)
    assert "2025-07-08" not in built["raw_portfolio"]
    assert "2025-07-10" in built["gold_index_summary"]

    # What the demo prints for it (cli._print_failures, on stderr): the cause, then the dates left.
    capsys.readouterr()  # the runs' own log lines
    _print_failures([o for o in outcomes if not o.success])
    printed = capsys.readouterr().err.splitlines()
    assert printed[0].startswith(
        '    FAILED: Execution of step "silver" failed: silver 2025-07-04: [Errno 17]'
    )
    assert printed[-1] == f"    FAILED: {failed.failures[-1]}"
