"""The asset graph materialized in-process: raw → bronze → silver → gold → catalog for one date, for
ranges (one run, one step per asset), over a day with no capture, and when things go wrong (failed
writes, values that do not parse, blocking checks). Every lake is seeded from the real samples in
demo_data/. What gold computes is tested in test_gold.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import types

import dagster as dg
import pyarrow.parquet as pq
import pytest

import b3_platform.lake.storage as storage_module
from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.announced import ANNOUNCED_ASSETS
from b3_platform.importer import import_paths
from b3_platform.lake.paths import (
    CHANGES_ROOT,
    RAW_INVENTORY_ROOT,
    RAW_PENDING_DIR,
    raw_inventory_prefix,
    year_file,
)
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import (
    BRONZE_PORTFOLIO,
    CATALOG_TABLES,
    GOLD_TABLES,
    GOLD_TIME_IN_INDEX,
    SILVER_ASSETS,
    SILVER_HEADER,
    TableDef,
)
from b3_platform.lake.schemas import DAY_PORTFOLIO_TABLES as TABLES
from b3_platform.lake.storage import TEMP_PREFIX, LocalStorage
from b3_platform.runs import RANGE_END, RANGE_START, range_tags
from b3_platform.trading_calendar import today_sao_paulo
from b3_platform_tests.conftest import REPO, duckdb_catalog
from b3_platform_tests.replay import sample_bytes, with_changes

JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: The consecutive IBOV samples (B3 trading days; 2025-07-09 has no sample).
JSON_DAYS = [
    dt.date(2025, 6, 30),
    dt.date(2025, 7, 1),
    dt.date(2025, 7, 2),
    dt.date(2025, 7, 3),
    dt.date(2025, 7, 4),
    dt.date(2025, 7, 7),
    dt.date(2025, 7, 8),
    dt.date(2025, 7, 10),
]
D = dt.date(2025, 7, 10)
# TABLES: the day portfolio's tables, bronze to gold (one Parquet file per table per date).
# index_members comes from B3's GetStockIndex listing (test_discovery.py) and the announced
# portfolios from their own methods (test_announced.py); neither is captured here.
#: The day portfolio's assets: the graph without the listing's and the announced portfolios'.
PORTFOLIO_ASSETS = [
    a
    for a in ALL_ASSETS
    if a not in ANNOUNCED_ASSETS
    and not {k.to_user_string() for k in a.keys} & {"raw_stock_index", "index_members"}
]
#: What the runs here build (with the catalog).
DAY_PORTFOLIO_GRAPH = [key for a in PORTFOLIO_ASSETS for key in a.keys]
TABLE_DEFS = tuple(TABLES.values())
SILVER_DEFS = (BRONZE_PORTFOLIO, SILVER_HEADER, SILVER_ASSETS)
GOLD_NAMES = [t.name for t in GOLD_TABLES]
#: The steps of a run of the whole graph: silver and gold are one multi-asset each.
ALL_STEPS = ["raw_portfolio", "bronze_portfolio", "silver", "gold_tables", "athena_tables", "dashboard"]
CATALOG_FILE = "warehouse.duckdb"
#: An asset's rules are one check; its metadata gives each rule's result, its severity whether a
#: blocking rule failed.
BRONZE_CHECKS = {"bronze_portfolio_rules"}
SILVER_CHECKS = {"silver_assets_rules"}
GOLD_CHECKS = {
    "composition_covers_every_component",
    "previous_trading_day_in_lake",
    "concentration_within_bounds",
    "time_in_index_consistent",
}

#: The coverage table's files the catalog asset writes (b3_platform.coverage): a year each, from the
#: first capture's (D's) to today's.
COVERAGE_KEYS = [f"catalog/coverage/{year_file(y)}" for y in range(D.year, today_sao_paulo().year + 1)]


# ------------------------------------------------------------------------------------------ helpers


def seed(lake_root, *days: dt.date) -> None:
    """Import the IBOV JSON samples of these dates, as a user would."""
    results = import_paths(RawStore(LocalStorage(lake_root)), [JSON_DIR / f"{d}.json" for d in days])
    assert [r.status for r in results] == ["imported"] * len(days), [r.reason for r in results]


def store_json(lake_root, day: dt.date, change, *, index: str = "IBOV") -> str:
    """Store a capture of the day's sample with `change` applied, as the newest capture; its id."""
    body = with_changes(sample_bytes(f"GetPortfolioDay/IBOV/{day}.json"), change)
    capture, new = RawStore(LocalStorage(lake_root)).store(
        day,
        index,
        [body],
        fetched_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5),
        source_format="json",
        meta={"source": "test"},
    )
    assert new
    return capture.capture_id


def run(
    resources,
    *,
    day: dt.date | None = None,
    first: dt.date | None = None,
    last: dt.date | None = None,
    selection=None,
    instance=None,
) -> dg.ExecuteInProcessResult:
    """One run of the graph for one date, or for the range first..last through the range tags."""
    kwargs = {"partition_key": day.isoformat()} if day else {"tags": range_tags(first, last)}
    return dg.materialize(
        PORTFOLIO_ASSETS,
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        selection=selection or DAY_PORTFOLIO_GRAPH,
        **kwargs,
    )


def run_log(instance: dg.DagsterInstance, result) -> str:
    """Every message of the run's log, as the UI's run page lists them."""
    return "\n".join(e.user_message for e in instance.all_logs(result.run_id))


def path_of(lake_root, table_def: TableDef, day: dt.date):
    return lake_root / table_def.location / f"date={day}" / "data.parquet"


def materializations(result) -> dict[tuple[str, str], dict]:
    """{(asset, partition): metadata values} of the run's materializations."""
    found = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        key = (mat.asset_key.to_user_string(), mat.partition)
        assert key not in found, f"{key} materialized twice in one run"
        found[key] = {k: v.value for k, v in mat.metadata.items()}
    return found


def check_evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    """The run-level evaluation of each check: a single-partition run's (its partition's), a range
    run's summary (partition None; a failing date's own evaluation is logged beside it), or the
    unpartitioned catalog check's."""
    by_name: dict[str, list[dg.AssetCheckEvaluation]] = {}
    for evaluation in result.get_asset_check_evaluations():
        by_name.setdefault(evaluation.check_name, []).append(evaluation)
    found = {}
    for name, evaluations in by_name.items():
        summaries = [e for e in evaluations if e.partition is None] or evaluations
        assert len(summaries) == 1, (name, summaries)
        found[name] = summaries[0]
    return found


def partition_evaluations(result, check_name: str) -> dict[str, bool]:
    return {
        e.partition: e.passed
        for e in result.get_asset_check_evaluations()
        if e.check_name == check_name and e.partition is not None
    }


def steps(result, event_type: str) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == event_type]


def failure_text(result, step: str) -> str:
    """The failure of a step with the exceptions that caused it."""
    errors = [e.event_specific_data.error for e in result.get_step_failure_events() if e.step_key == step]
    assert errors, f"step {step} did not fail; failed: {steps(result, 'STEP_FAILURE')}"
    texts = []
    error = errors[0]
    while error is not None:
        texts.append(error.message)
        error = error.cause
    return "\n".join(texts)


def lake_files(lake_root) -> dict[str, bytes]:
    """Every file of the lake but the DuckDB catalog, whose bytes DuckDB rewrites on every sync
    (views and comments are what it holds: tested through queries, not bytes), the dashboard
    page, which states when it was built (its data is tested against the catalog in
    test_dashboard.py), and the change journal, whose markers say when each date was written
    (every write adds one, same bytes or not: test_catalog_journal)."""
    return {
        p.relative_to(lake_root).as_posix(): p.read_bytes()
        for p in sorted(lake_root.rglob("*"))
        if p.is_file()
        and p.name != CATALOG_FILE
        and not p.relative_to(lake_root).as_posix().startswith(("dashboard/", CHANGES_ROOT))
    }


def layer_files(lake_root) -> dict[str, bytes]:
    """lake_files but raw and raw's inventory (catalog/_raw_inventory/: its state is replaced and
    its markers come and go whenever raw gains a capture; assert_inventory_counts_raw checks it):
    what a run that publishes nothing new must leave byte-identical."""
    return {k: v for k, v in lake_files(lake_root).items() if not k.startswith(("raw/", RAW_INVENTORY_ROOT))}


def assert_inventory_counts_raw(lake_root) -> None:
    """After a catalog refresh, raw's inventory is one state whose year files count every capture
    sidecar in raw (walked here by glob, independently of lake.raw_inventory), with no marker left
    pending (and, of year files, only the ones the state names or the state before it named)."""
    folder = lake_root / raw_inventory_prefix()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    [state] = [f for f in files if not f.startswith("years/")]
    assert state.startswith("state-"), files
    assert not (folder / RAW_PENDING_DIR).exists() or not any((folder / RAW_PENDING_DIR).iterdir())
    expected: dict[str, dict[str, int]] = {}
    for sidecar in (lake_root / "raw" / "GetPortfolioDay").glob("date=*/index=*/*.meta.json"):
        day, index = sidecar.parent.parent.name[len("date=") :], sidecar.parent.name[len("index=") :]
        expected.setdefault(day, {}).setdefault(index, 0)
        expected[day][index] += 1
    counted: dict[str, dict[str, int]] = {}
    years = json.loads((folder / state).read_bytes())["years"]
    for year, summary in years.items():
        counted.update(json.loads((folder / f"years/{year}-{summary['digest']}.json").read_bytes())["dates"])
    assert counted == expected
    assert len(files) <= 1 + 2 * len(years), files


def temp_files(lake_root) -> list[str]:
    return [p.name for p in lake_root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


# ------------------------------------------------------------------------------------ one partition


def test_one_partition_builds_every_layer_with_declared_schemas(lake_root, resources, b3_server):
    seed(lake_root, D)
    result = run(resources, day=D)
    assert result.success
    assert steps(result, "STEP_SUCCESS") == ALL_STEPS
    assert b3_server.requests == []  # a past date is never fetched from B3

    for table_def in TABLE_DEFS:
        path = path_of(lake_root, table_def, D)
        assert path.is_file(), path
        schema = pq.read_schema(path)
        assert schema.equals(table_def.schema, check_metadata=False), (table_def.name, schema)
    bronze = pq.read_table(path_of(lake_root, BRONZE_PORTFOLIO, D))
    header = pq.read_table(path_of(lake_root, SILVER_HEADER, D))
    assets = pq.read_table(path_of(lake_root, SILVER_ASSETS, D))
    assert (bronze.num_rows, header.num_rows, assets.num_rows) == (84, 1, 84)
    assert header.column("reference_date").to_pylist() == [D]
    assert set(assets.column("index").to_pylist()) == {"IBOV"}

    mats = materializations(result)
    assert set(mats) == {(a, "2025-07-10") for a in ("raw_portfolio", *TABLES)} | {
        ("athena_tables", None),
        ("dashboard", None),
    }
    capture_id = RawStore(LocalStorage(lake_root)).latest_by_index(D)["IBOV"].capture_id
    assert mats["raw_portfolio", "2025-07-10"]["indices"] == "IBOV"
    assert mats["raw_portfolio", "2025-07-10"]["latest_captures"]["IBOV"]["capture_id"] == capture_id
    b = mats["bronze_portfolio", "2025-07-10"]
    assert b["dagster/row_count"] == 84
    assert "rows_IBOV" not in b  # rows per index are silver_assets' (below), not repeated on bronze
    assert b["capture_ids"] == {"IBOV": capture_id}
    assert b["dagster/uri"] == str(path_of(lake_root, BRONZE_PORTFOLIO, D).resolve())
    assert mats["silver_header", "2025-07-10"]["dagster/row_count"] == 1
    assert "reductor_notes" not in mats["silver_header", "2025-07-10"]  # B3 wrote none that day
    s = mats["silver_assets", "2025-07-10"]
    assert (s["dagster/row_count"], s["rows_IBOV"]) == (84, 84)
    assert s["weight_sum_IBOV"] == pytest.approx(float(sum(assets.column("weight").to_pylist())))
    assert abs(s["weight_sum_IBOV"] - 100) <= 84 * 0.0005
    lines = s["top_weights"].splitlines()
    assert lines[0] == "| index | ticker | company | weight % |"
    assert len(lines) == 2 + 10
    heaviest = max(assets.to_pylist(), key=lambda r: r["weight"])
    assert lines[2] == f"| IBOV | {heaviest['ticker']} | {heaviest['company']} | {heaviest['weight']} |"

    # Gold: 2025-07-09, the previous trading day, is not in the lake: nothing compared, and said so
    # on gold_changes (the comparison); how time in index was computed, on gold_time_in_index.
    for name in GOLD_NAMES:
        g = mats[name, "2025-07-10"]
        assert g["dagster/row_count"] == pq.read_metadata(path_of(lake_root, TABLES[name], D)).num_rows
        if name == "gold_changes":
            assert (g["previous_date"], g["not_compared"]) == ("2025-07-09", "IBOV")
        else:
            assert "previous_date" not in g and "not_compared" not in g
        assert ("time_in_index_from" in g) == (name == "gold_time_in_index")
        assert ("top10_weight_IBOV" in g) == (name == "gold_index_summary") and "entries_IBOV" not in g
    assert mats["gold_changes", "2025-07-10"]["dagster/row_count"] == 0
    assert mats["gold_time_in_index", "2025-07-10"]["dagster/row_count"] == 84
    catalog = mats["athena_tables", None]
    assert catalog["tables"] == len(CATALOG_TABLES)
    assert {catalog[f"rows_{t.name}"] for t in (BRONZE_PORTFOLIO, SILVER_ASSETS, GOLD_TIME_IN_INDEX)} == {84}
    assert catalog["last_date"] == "2025-07-10"

    checks = check_evaluations(result)
    assert set(checks) == {"all_configured_indices_captured", "tables_match_schemas"} | (
        BRONZE_CHECKS | SILVER_CHECKS | GOLD_CHECKS
    )
    # Imported history only: the previous day's absence is not judged (live_capture), and says so.
    assert [name for name, e in checks.items() if not e.passed] == []
    assert checks["previous_trading_day_in_lake"].description.startswith(
        "not judged: no capture from B3's API on or before 2025-07-09"
    )


# ------------------------------------------------------------------------------------------- ranges


def test_range_is_one_run_with_one_step_per_asset_and_metadata_per_date(lake_root, resources):
    seed(lake_root, *JSON_DAYS)
    first, last = dt.date(2025, 6, 30), dt.date(2025, 7, 8)
    days = [d for d in JSON_DAYS if first <= d <= last]  # 7 trading days: the weekend is no partition
    instance = dg.DagsterInstance.ephemeral()
    result = run(resources, first=first, last=last, instance=instance)
    assert result.success
    assert instance.get_runs_count() == 1
    assert result.dagster_run.tags[RANGE_START] == "2025-06-30"
    assert result.dagster_run.tags[RANGE_END] == "2025-07-08"
    assert steps(result, "STEP_START") == ALL_STEPS

    mats = materializations(result)
    for asset in ("raw_portfolio", *TABLES):
        assert sorted(p for a, p in mats if a == asset) == [d.isoformat() for d in days], asset
    assert [p for a, p in mats if a == "athena_tables"] == [None]  # once, after every date

    store = RawStore(LocalStorage(lake_root))
    capture_ids = set()
    for day in days:
        key = day.isoformat()
        capture_id = store.latest_by_index(day)["IBOV"].capture_id
        capture_ids.add(capture_id)
        assert mats["bronze_portfolio", key]["capture_ids"] == {"IBOV": capture_id}
        assert mats["bronze_portfolio", key]["dagster/uri"].endswith(f"date={key}/data.parquet")
        assert mats["silver_assets", key]["rows_IBOV"] == 84
        assert mats["silver_assets", key]["dagster/uri"] == str(
            path_of(lake_root, SILVER_ASSETS, day).resolve()
        )
        header = pq.read_table(path_of(lake_root, SILVER_HEADER, day))
        assert header.column("reference_date").to_pylist() == [day]
        assert header.column("capture_id").to_pylist() == [capture_id]
        assets = pq.read_table(path_of(lake_root, SILVER_ASSETS, day))
        assert mats["silver_assets", key]["weight_sum_IBOV"] == pytest.approx(
            float(sum(assets.column("weight").to_pylist()))
        )
    assert len(capture_ids) == len(days)
    # The schema is the definition's (the asset page shows it), never repeated on each date.
    specs = {spec.key.to_user_string(): spec for a in ALL_ASSETS for spec in a.specs}
    for (asset, key), values in mats.items():
        assert "dagster/column_schema" not in values, (asset, key)
        if asset in TABLES:
            assert specs[asset].metadata["dagster/column_schema"].columns
    # Every date passed every check: each date's evaluation says Passed and carries no metadata
    # (the run-level result beside them holds the counts and each rule's result).
    per_date = [e for e in result.get_asset_check_evaluations() if e.partition is not None]
    assert {e.partition for e in per_date} == {d.isoformat() for d in days}
    not_judged = {"all_configured_indices_captured", "previous_trading_day_in_lake"}
    for evaluation in per_date:
        assert evaluation.passed
        if evaluation.check_name in not_judged:  # imported history: why it was not judged stays
            assert evaluation.metadata["judged"].value is False
            assert evaluation.description.startswith("not judged: ")
        else:
            assert dict(evaluation.metadata) == {} and evaluation.description is None, evaluation
    summary = check_evaluations(result)["silver_assets_rules"]
    assert summary.metadata["dates_checked"].value == len(days)
    assert summary.metadata["weights_sum_to_100"].value == "passed"
    # The header total changes on 2025-07-03 (demo_data/PROVENANCE.md): the per-date files really differ.
    totals = {
        d: pq.read_table(path_of(lake_root, SILVER_HEADER, d)).column("theoretical_quantity_total")[0].as_py()
        for d in days
    }
    assert totals[dt.date(2025, 7, 2)] == 91_922_324_686
    assert totals[dt.date(2025, 7, 3)] == 91_922_324_640

    for day in days:
        for table_def in GOLD_TABLES:
            schema = pq.read_schema(path_of(lake_root, table_def, day))
            assert schema.equals(table_def.schema, check_metadata=False), (table_def.name, day)
    assert mats["gold_changes", "2025-07-02"]["entries_IBOV"] == 1  # NTCO3 → NATU3 (test_gold.py)

    assert not path_of(lake_root, BRONZE_PORTFOLIO, D).exists()  # 07-10 is outside the range
    # 2025-06-27, the trading day before the range, was never captured: the first date of the range
    # is not compared, which an imported archive is not held to (not judged); every check passes.
    evaluations = result.get_asset_check_evaluations()
    assert [(e.check_name, e.partition) for e in evaluations if not e.passed] == []
    [first] = [
        e
        for e in evaluations
        if e.check_name == "previous_trading_day_in_lake" and e.partition == "2025-06-30"
    ]
    assert first.description.startswith("not judged: no capture from B3's API on or before 2025-06-27")


def test_range_over_a_day_without_capture(lake_root, resources):
    """2025-07-09 is a trading day with no sample. What the code does, by design:
    raw_portfolio fails a past date with nothing captured, naming it and how to import, so a full
    graph run over the gap fails before writing anything; bronze+silver alone build the dates that
    are there and report the gap through the non-blocking `raw_capture_present` rule of bronze's
    check: that date fails with severity WARN, which blocks nothing."""
    seed(lake_root, *JSON_DAYS)
    first, last = dt.date(2025, 7, 8), dt.date(2025, 7, 10)

    full = run(resources, first=first, last=last)
    assert not full.success
    message = failure_text(full, "raw_portfolio")
    assert "2025-07-09: nothing captured" in message and "import" in message
    assert "2025-07-08" not in message and "2025-07-10" not in message
    assert steps(full, "STEP_START") == ["raw_portfolio"]
    for layer in ("bronze", "silver", "gold", CATALOG_FILE):
        assert not (lake_root / layer).exists(), layer

    result = run(
        resources, first=first, last=last, selection=["bronze_portfolio", "silver_header", "silver_assets"]
    )
    assert result.success
    assert steps(result, "STEP_SUCCESS") == ["bronze_portfolio", "silver"]
    for table_def in SILVER_DEFS:
        assert path_of(lake_root, table_def, dt.date(2025, 7, 8)).is_file()
        assert path_of(lake_root, table_def, D).is_file()
        assert not path_of(lake_root, table_def, dt.date(2025, 7, 9)).parent.exists()

    checks = check_evaluations(result)
    # Every date has its own evaluation, so the UI shows the gap on 2025-07-09 itself and the
    # dates that passed as passed; a rule with nothing to judge on the gap is not evaluated there.
    assert partition_evaluations(result, "bronze_portfolio_rules") == {
        "2025-07-08": True,
        "2025-07-09": False,
        "2025-07-10": True,
    }
    assert partition_evaluations(result, "silver_assets_rules") == {"2025-07-08": True, "2025-07-10": True}
    # The gap's own evaluation names the rule that failed and gives every rule's result.
    (gap_day,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "bronze_portfolio_rules" and e.partition == "2025-07-09"
    ]
    assert gap_day.description == "raw_capture_present: no raw capture"
    assert gap_day.blocking and gap_day.severity == dg.AssetCheckSeverity.WARN
    assert gap_day.metadata["failed_rules"].value == "raw_capture_present"
    assert "warned_rules" not in gap_day.metadata
    assert gap_day.metadata["raw_capture_present"].value == "failed: no raw capture"
    assert "captures_pass_audit" not in gap_day.metadata  # nothing to audit on the gap
    gap = checks["bronze_portfolio_rules"]
    assert not gap.passed
    assert gap.severity == dg.AssetCheckSeverity.WARN
    assert gap.description == "2025-07-09: raw_capture_present: no raw capture"
    assert gap.metadata["dates_checked"].value == 3
    assert gap.metadata["failed_dates"].value == "2025-07-09"
    assert gap.metadata["failed_rules"].value == "raw_capture_present"
    assert gap.metadata["raw_capture_present"].value == "failed on 1 date(s)"
    assert gap.metadata["captures_pass_audit"].value == "passed"
    assert gap.metadata["row_count_matches_total_records"].value == "passed"
    assert [name for name, e in checks.items() if not e.passed] == ["bronze_portfolio_rules"]

    mats = materializations(result)
    assert mats["bronze_portfolio", "2025-07-09"] == {"dagster/row_count": 0, "status": "no raw capture"}
    assert mats["silver_assets", "2025-07-09"]["dagster/row_count"] == 0
    assert mats["silver_assets", "2025-07-08"]["dagster/row_count"] == 84
    assert mats["silver_assets", "2025-07-10"]["dagster/row_count"] == 84


def test_ticker_change_ntco3_to_natu3(lake_root, resources):
    seed(lake_root, dt.date(2025, 7, 1), dt.date(2025, 7, 2))
    assert run(resources, first=dt.date(2025, 7, 1), last=dt.date(2025, 7, 2)).success

    def rows(day):
        table = pq.read_table(path_of(lake_root, SILVER_ASSETS, day))
        return {r["ticker"]: r for r in table.to_pylist()}

    before, after = rows(dt.date(2025, 7, 1)), rows(dt.date(2025, 7, 2))
    assert "NTCO3" in before and "NATU3" not in before
    assert "NATU3" in after and "NTCO3" not in after
    assert before["NTCO3"]["theoretical_quantity"] == after["NATU3"]["theoretical_quantity"] == 845_713_747
    assert (before["NTCO3"]["company"], after["NATU3"]["company"]) == ("GRUPO NATURA", "NATURA")
    assert set(before) - {"NTCO3"} == set(after) - {"NATU3"}


# ----------------------------------------------------------------------------------- idempotency


def test_rematerializing_a_partition_writes_identical_bytes(lake_root, resources):
    seed(lake_root, D)
    assert run(resources, day=D).success
    first = lake_files(lake_root)
    assert sorted(k for k in first if k.endswith(".parquet")) == sorted(
        [*(f"{t.location}date={D}/data.parquet" for t in TABLE_DEFS), *COVERAGE_KEYS]
    )
    catalog = duckdb_catalog(lake_root)
    sql = 'SELECT count(*), min("date") FROM gold_time_in_index'
    assert catalog.query(sql).rows == [(84, D)]
    assert run(resources, day=D).success
    assert lake_files(lake_root) == first  # same keys (raw not added to), same bytes, gold included
    assert catalog.query(sql).rows == [(84, D)]


def test_rematerializing_a_range_replaces_exactly_those_dates(lake_root, resources):
    seed(lake_root, *JSON_DAYS)
    assert run(resources, first=dt.date(2025, 6, 30), last=dt.date(2025, 7, 8)).success
    assert run(resources, day=D).success
    old = 946_684_800  # 2000-01-01: a rewritten file cannot keep this mtime
    coverage_files = [lake_root / k for k in COVERAGE_KEYS]
    files = sorted(p for p in lake_root.rglob("*.parquet") if p not in coverage_files)
    assert len(files) == len(TABLE_DEFS) * len(JSON_DAYS)
    for path in coverage_files:
        os.utime(path, (old, old))
    before = {}
    for path in files:
        os.utime(path, (old, old))
        before[path] = path.read_bytes()

    redone = {dt.date(2025, 7, 2), dt.date(2025, 7, 3), dt.date(2025, 7, 4)}
    result = run(resources, first=dt.date(2025, 7, 2), last=dt.date(2025, 7, 4))
    assert result.success
    # Gold of 07-02 compares with 07-01 and its stays walk back over older silver: both untouched,
    # so gold is rebuilt byte for byte like every other layer.
    assert {p for _, p in materializations(result)} == {d.isoformat() for d in redone} | {None}
    assert sorted(p for p in lake_root.rglob("*.parquet") if p not in coverage_files) == files
    # The catalog's coverage table is rewritten only when raw changed: not here (no year's file).
    assert [p.stat().st_mtime for p in coverage_files] == [old] * len(coverage_files)
    for path in files:
        day = dt.date.fromisoformat(path.parent.name.removeprefix("date="))
        assert path.read_bytes() == before[path], path
        if day in redone:
            assert path.stat().st_mtime != old, f"{path} was not rewritten"
        else:
            assert path.stat().st_mtime == old, f"{path} was touched"


# ------------------------------------------------------------------------------------ atomicity


def _fail_replace(monkeypatch, lake_root, record):
    """os.replace, as the storage module sees it, fails for the lake's Parquet files."""
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(".parquet"):
            record.append((src, os.path.getsize(src)))
            raise OSError("injected: disk full while replacing")
        return real(src, dst)

    proxy = types.SimpleNamespace(**{n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
    proxy.replace = replace
    monkeypatch.setattr(storage_module, "os", proxy)


def _fail_mid_write(monkeypatch, lake_root, record):
    """The temp file of a Parquet file gets half its bytes, then the write raises."""
    real_open = open

    class HalfWriter:
        def __init__(self, fh, path):
            self.fh, self.path = fh, path

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            record.append((str(self.path), os.path.getsize(self.path)))
            raise OSError("injected: disk full while writing")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def fake_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        if "w" in mode and ".parquet" in str(path):  # the temp file (or the file itself)
            return HalfWriter(fh, path)
        return fh

    monkeypatch.setattr(storage_module, "open", fake_open, raising=False)


@pytest.mark.parametrize("inject", [_fail_replace, _fail_mid_write], ids=["replace", "mid-write"])
def test_failed_write_leaves_previous_version_and_no_temp_file(lake_root, resources, monkeypatch, inject):
    seed(lake_root, D)
    assert run(resources, day=D).success
    bronze_path = path_of(lake_root, BRONZE_PORTFOLIO, D)
    previous = lake_files(lake_root)
    # A newer capture of the same day (B3's CSV download), so a rebuild would change bronze.
    imported = import_paths(RawStore(LocalStorage(lake_root)), [REPO / "demo_data/csv/IBOV_2025-07-10.csv"])
    assert [r.status for r in imported] == ["imported"]

    record: list = []
    with monkeypatch.context() as patched:
        inject(patched, lake_root, record)
        result = run(resources, day=D)
    assert not result.success
    assert "injected" in failure_text(result, "bronze_portfolio")
    assert "silver" not in steps(result, "STEP_START")
    assert record and record[0][1] > 0  # the temp file had been (partly) written...
    assert not os.path.exists(record[0][0])  # ...and is gone
    assert temp_files(lake_root) == []
    for key, data in previous.items():
        assert (lake_root / key).read_bytes() == data, key
    assert pq.read_table(bronze_path).num_rows == 84
    assert set(pq.read_table(bronze_path).column("source_format").to_pylist()) == {"json"}

    # The same run without the fault does replace the file.
    assert run(resources, day=D).success
    assert bronze_path.read_bytes() != previous[bronze_path.relative_to(lake_root).as_posix()]
    assert set(pq.read_table(bronze_path).column("source_format").to_pylist()) == {"csv"}


def test_value_that_does_not_parse_is_refused_by_the_audit_and_keeps_every_file(lake_root, resources):
    """A newer capture with a weight no rule reads is refused before bronze takes it: the older
    capture stays published, every layer byte-identical, and the refusal is named."""
    seed(lake_root, D)
    assert run(resources, day=D).success
    previous = layer_files(lake_root)

    def bad_weight(data):
        assert data["results"][3]["cod"] == "AURE3"
        data["results"][3]["part"] = "1,2,3"

    bad_id = store_json(lake_root, D, bad_weight)
    result = run(resources, day=D)
    assert result.success
    audit = check_evaluations(result)["bronze_portfolio_rules"]
    assert not audit.passed and audit.severity == dg.AssetCheckSeverity.WARN
    assert audit.metadata["failed_rules"].value == "captures_pass_audit"
    assert audit.description.startswith("2025-07-10: captures_pass_audit: ")
    for part in (bad_id, "'part'", "'1,2,3'", "IBOV 2025-07-10 row 4 (AURE3)", "published the older capture"):
        assert part in audit.description, (part, audit.description)
    assert bad_id in materializations(result)["bronze_portfolio", D.isoformat()]["refused_captures"]
    assert layer_files(lake_root) == previous
    assert_inventory_counts_raw(lake_root)  # the refused capture is counted in raw all the same
    assert temp_files(lake_root) == []


# ------------------------------------------------------------------------------- blocking checks
# The publish audit runs these rules before bronze takes a capture (test_write_audit_publish.py), so
# the checks on the written tables can only fail on a bug: the audit's rules are switched off here to
# prove the checks still stop the layers below.


@pytest.fixture
def audit_without_rules(monkeypatch):
    """The audit keeps the contract and the parse rules but not the blocking rules."""
    import b3_platform.audit as audit_module

    monkeypatch.setattr(audit_module, "PUBLISH_RULES", ())


def test_weights_not_summing_to_100_fail_a_blocking_check(lake_root, resources, audit_without_rules):
    def heavier(data):
        assert data["results"][0]["part"] == "0,493"
        data["results"][0]["part"] = "5,493"

    store_json(lake_root, D, heavier)
    instance = dg.DagsterInstance.ephemeral()
    result = run(resources, day=D, instance=instance)
    assert not result.success
    checks = check_evaluations(result)
    weights = checks["silver_assets_rules"]
    assert not weights.passed
    assert weights.severity == dg.AssetCheckSeverity.ERROR
    assert weights.asset_key == dg.AssetKey("silver_assets")
    assert "2025-07-10: weights_sum_to_100: IBOV: weights sum to 105.000" in weights.description
    assert weights.metadata["failed_rules"].value == "weights_sum_to_100"
    assert weights.metadata["unique_tickers"].value == "passed"
    assert [n for n, e in checks.items() if not e.passed] == ["silver_assets_rules"]
    assert "silver_assets_rules" in failure_text(result, "silver")
    # The run log names the rule next to Dagster's failure, which names the check.
    assert "silver_assets.silver_assets_rules failed: weights_sum_to_100; first: 2025-07-10" in run_log(
        instance, result
    )
    # Blocking: gold and the catalog do not run on bad silver.
    assert steps(result, "STEP_START") == ["raw_portfolio", "bronze_portfolio", "silver"]
    assert not (lake_root / "gold").exists()
    # A check runs after the write: the files are there, and the run says they are bad.
    assert path_of(lake_root, SILVER_ASSETS, D).is_file()
    assert materializations(result)["silver_assets", "2025-07-10"]["weight_sum_IBOV"] == pytest.approx(105.0)


def test_duplicate_ticker_fails_unique_tickers(lake_root, resources, audit_without_rules):
    def duplicate(data):
        data["results"][1]["cod"] = data["results"][0]["cod"]

    store_json(lake_root, D, duplicate)
    instance = dg.DagsterInstance.ephemeral()
    result = run(resources, day=D, instance=instance)
    assert not result.success
    checks = check_evaluations(result)
    rules = checks["silver_assets_rules"]
    assert not rules.passed
    assert rules.severity == dg.AssetCheckSeverity.ERROR
    assert rules.description == "2025-07-10: unique_tickers: IBOV: tickers listed more than once: ALOS3"
    assert rules.metadata["failed_rules"].value == "unique_tickers"
    assert [n for n, e in checks.items() if not e.passed] == ["silver_assets_rules"]
    assert "silver_assets.silver_assets_rules failed: unique_tickers" in run_log(instance, result)
    assert "gold_tables" not in steps(result, "STEP_START")


#: Three consecutive trading days with samples, for ranges where some dates fail a rule.
RANGE = [dt.date(2025, 7, 3), dt.date(2025, 7, 4), dt.date(2025, 7, 7)]
ODD_TYPE = "ON  QQ  NM"  # an event flag no rule knows: type_codes_recognised warns


def odd_type_code(found: list[str]):
    """A change giving the sixth row a type code no rule recognises; the ticker goes to `found`."""

    def change(data):
        data["results"][5]["type"] = ODD_TYPE
        found.append(data["results"][5]["cod"])

    return change


def test_a_date_failing_only_a_warning_rule_blocks_nothing_in_a_range(lake_root, resources):
    """silver_assets' one check holds its blocking rules and the warning rule type_codes_recognised.
    A range where one date fails only the warning: that date's evaluation fails with severity WARN,
    the step succeeds and gold and the catalog are built for every date."""
    seed(lake_root, *RANGE)
    ticker: list[str] = []
    store_json(lake_root, RANGE[1], odd_type_code(ticker))
    instance = dg.DagsterInstance.ephemeral()
    result = run(resources, first=RANGE[0], last=RANGE[-1], instance=instance)
    assert result.success
    assert steps(result, "STEP_SUCCESS") == ALL_STEPS
    for day in RANGE:
        for table_def in GOLD_TABLES:
            assert path_of(lake_root, table_def, day).is_file(), (table_def.name, day)

    assert partition_evaluations(result, "silver_assets_rules") == {
        "2025-07-03": True,
        "2025-07-04": False,
        "2025-07-07": True,
    }
    (warned,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "silver_assets_rules" and e.partition == "2025-07-04"
    ]
    expected = f"IBOV: type code '{ODD_TYPE}' (unknown event flag 'QQ') of {ticker[0]}"
    assert warned.blocking and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.description == f"type_codes_recognised: {expected}"
    assert warned.metadata["failed_rules"].value == "type_codes_recognised"
    assert warned.metadata["type_codes_recognised"].value == f"failed: {expected}"
    assert warned.metadata["weights_sum_to_100"].value == "passed"

    run_level = check_evaluations(result)["silver_assets_rules"]
    assert not run_level.passed and run_level.severity == dg.AssetCheckSeverity.WARN
    assert run_level.description == f"2025-07-04: type_codes_recognised: {expected}"
    assert run_level.metadata["failed_rules"].value == "type_codes_recognised"
    assert run_level.metadata["type_codes_recognised"].value == "failed on 1 date(s)"
    assert "warned_rules" not in run_level.metadata
    log = run_log(instance, result)
    assert (
        "silver_assets.silver_assets_rules failed with warnings only (not blocking): type_codes_recognised; "
        f"first: 2025-07-04: type_codes_recognised: {expected}"
    ) in log
    assert "blocking asset check" not in log


def test_a_blocking_rule_failing_on_one_date_stops_the_range_whatever_warned_elsewhere(
    lake_root, resources, audit_without_rules
):
    """The same range with 2025-07-07's weights made not to sum to 100 as well as its type code
    odd, and 2025-07-04's type code odd: 07-07 fails with severity ERROR (the blocking rule), 07-04
    with WARN; the run-level result is an ERROR naming the blocking rule first, and gold does not
    run on the bad silver."""
    seed(lake_root, *RANGE)
    ticker: list[str] = []
    store_json(lake_root, RANGE[1], odd_type_code(ticker))

    def heavier_and_odd(data):
        data["results"][0]["part"] = "25,000"
        odd_type_code(ticker)(data)

    store_json(lake_root, RANGE[2], heavier_and_odd)
    instance = dg.DagsterInstance.ephemeral()
    result = run(resources, first=RANGE[0], last=RANGE[-1], instance=instance)
    assert not result.success
    assert "gold_tables" not in steps(result, "STEP_START")
    assert not (lake_root / "gold").exists()
    assert "blocking asset check failed with ERROR severity" in failure_text(result, "silver")
    assert "silver_assets: silver_assets_rules" in failure_text(result, "silver")

    per_date = {
        e.partition: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "silver_assets_rules" and e.partition is not None
    }
    assert {k: (e.passed, e.severity) for k, e in per_date.items()} == {
        "2025-07-03": (True, dg.AssetCheckSeverity.ERROR),  # a pass carries the check's own severity
        "2025-07-04": (False, dg.AssetCheckSeverity.WARN),
        "2025-07-07": (False, dg.AssetCheckSeverity.ERROR),
    }
    bad = per_date["2025-07-07"]
    assert bad.metadata["failed_rules"].value == "weights_sum_to_100"
    assert bad.metadata["warned_rules"].value == "type_codes_recognised"
    assert bad.description.startswith("weights_sum_to_100: IBOV: weights sum to ")
    assert "; type_codes_recognised: IBOV: type code" in bad.description
    assert per_date["2025-07-04"].metadata["failed_rules"].value == "type_codes_recognised"

    run_level = check_evaluations(result)["silver_assets_rules"]
    assert not run_level.passed and run_level.severity == dg.AssetCheckSeverity.ERROR
    # The first problem named is the blocking one, though a warning came on an earlier date.
    assert run_level.description.startswith("3 problems, first: 2025-07-07: weights_sum_to_100: IBOV: ")
    assert run_level.metadata["failed_rules"].value == "weights_sum_to_100"
    assert run_level.metadata["warned_rules"].value == "type_codes_recognised"
    assert run_level.metadata["failed_dates"].value == "2025-07-04, 2025-07-07"
    assert (
        "silver_assets.silver_assets_rules failed: weights_sum_to_100 (warned: type_codes_recognised); "
        "first: 2025-07-07: weights_sum_to_100: IBOV: weights sum to "
    ) in run_log(instance, result)


def test_newer_capture_failing_the_contract_is_skipped_for_the_older_valid_one(lake_root, resources):
    """totalRecords 85 over 84 rows in the newest capture: bronze uses the latest *valid* capture
    and names the skipped one; raw keeps both."""
    seed(lake_root, D)
    assert run(resources, day=D).success
    previous = layer_files(lake_root)
    raw = {k: v for k, v in lake_files(lake_root).items() if k.startswith("raw/")}
    bad_id = store_json(lake_root, D, lambda d: d["page"].__setitem__("totalRecords", 85))

    result = run(resources, day=D)
    assert result.success
    meta = materializations(result)[("bronze_portfolio", D.isoformat())]
    assert meta["capture_ids"]["IBOV"] != bad_id
    assert meta["captures_available"] == 2
    assert bad_id in meta["refused_captures"]
    assert "page.totalRecords is 85 but the body holds 84 rows" in meta["refused_captures"]
    assert layer_files(lake_root) == previous  # same capture chosen: every layer byte-identical, gold too
    now_raw = {k: v for k, v in lake_files(lake_root).items() if k.startswith("raw/")}
    # raw keeps every file, and gains the bad capture's body and sidecar
    assert now_raw.items() >= raw.items() and len(now_raw) == len(raw) + 2
    assert_inventory_counts_raw(lake_root)


def test_date_whose_only_capture_fails_the_contract_is_refused_before_bronze_writes(lake_root, resources):
    """With no valid capture left, the clear error is the contract's, and nothing is written."""
    bad_id = store_json(lake_root, D, lambda d: d["page"].__setitem__("totalRecords", 85))

    result = run(resources, day=D, selection=["bronze_portfolio", "silver_header", "silver_assets"])
    assert not result.success
    message = failure_text(result, "bronze_portfolio")
    assert "bronze_portfolio: no capture passes the audit (IBOV: left out of the date" in message
    assert f"capture {bad_id}: B3 response for IBOV 2025-07-10: page.totalRecords is 85" in message
    assert not check_evaluations(result)["bronze_portfolio_rules"].passed
    assert "silver" not in steps(result, "STEP_START")
    assert not (lake_root / "bronze").exists() and not (lake_root / "silver").exists()


def test_failed_blocking_bronze_check_stops_silver(lake_root, resources, monkeypatch, audit_without_rules):
    """Should a capture get past the contract and the audit with totalRecords ≠ rows, the blocking
    bronze check fails and silver does not run (both are bypassed here to reach the check)."""
    import b3_platform.audit as audit_module

    real = audit_module.decode_capture

    def decode_past_contract(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), total_records=85)

    monkeypatch.setattr(audit_module, "decode_capture", decode_past_contract)
    seed(lake_root, D)
    instance = dg.DagsterInstance.ephemeral()
    result = run(resources, day=D, instance=instance)
    assert not result.success
    checks = check_evaluations(result)
    rows = checks["bronze_portfolio_rules"]
    assert not rows.passed and rows.severity == dg.AssetCheckSeverity.ERROR
    assert (
        rows.description
        == "2025-07-10: row_count_matches_total_records: IBOV: 84 rows but page.totalRecords = 85"
    )
    assert rows.metadata["header_date_matches_partition"].value == "passed"
    assert "bronze_portfolio_rules" in failure_text(result, "bronze_portfolio")
    assert "bronze_portfolio.bronze_portfolio_rules failed: row_count_matches_total_records" in run_log(
        instance, result
    )
    assert steps(result, "STEP_START") == ["raw_portfolio", "bronze_portfolio"]
    assert not (lake_root / "silver").exists() and not (lake_root / "gold").exists()
    assert not [n for n in checks if n in SILVER_CHECKS | GOLD_CHECKS]


# ------------------------------------------------------------------------------------------- demo


def test_demo_builds_every_layer_and_can_run_again(tmp_path, capsys):
    import b3_platform.definitions  # noqa: F401  (module-level defs point at another lake)
    from b3_platform import cli

    lake = tmp_path / "demo-lake"
    assert cli.main(["--data-dir", str(lake), "demo"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "lake").exists()  # B3_PLATFORM_DATA_DIR of the test: not used

    storage = LocalStorage(lake)
    days = RawStore(storage).dates()
    assert days[0] == dt.date(2021, 3, 26) and days[-1] == dt.date(2025, 10, 3)
    assert f"dates   : {len(days)} (2021-03-26 … 2025-10-03)" in out
    assert "indices : IBOV, IBRA, IBXX" in out
    rows = {t.name: sum(pq.read_table(path_of(lake, t, d)).num_rows for d in days) for t in TABLE_DEFS}
    assert rows["silver_header"] == rows["gold_index_summary"] == len(days)  # one index per sample date
    assert rows["bronze_portfolio"] == rows["silver_assets"] == rows["gold_time_in_index"] > 80 * len(days)
    assert 0 < rows["gold_changes"] < rows["silver_assets"]  # only dates whose previous day is there
    for name, n in rows.items():
        assert f"{name:<19}: {n} rows" in out
    assert f"lake    : {lake.resolve()}" in out
    assert f"catalog : {(lake / CATALOG_FILE).resolve()}" in out
    # B3's GetStockIndex listing of 2025-04-07, typed: one row per (index, ticker) membership.
    listed = json.loads((REPO / "demo_data/GetStockIndex/2025-04-07_vcr.json").read_bytes())["results"]
    memberships = sum(len(r["indexes"].split(",")) for r in listed)
    assert f"{'index_members':<19}: {memberships} rows" in out
    # The listing's day, 11 blocks of consecutive trading days, then the catalog once.
    assert "runs    : 13 (12 single-run backfills + the catalog), 0 failed;" in out
    assert " 0 rejected" in out and "0 already there" in out
    # The example query runs on the catalog and shows the real NTCO3 → NATU3 swap of 2025-07-02.
    query = out[out.index("4/4 Example query") :]
    assert "2025-07-02  IBOV   entered     NATU3" in query
    assert "2025-07-02  IBOV   exited      NTCO3" in query
    assert "(2 rows)" in query

    before = {k: v for k, v in lake_files(lake).items() if k.endswith(".parquet")}
    assert cli.main(["--data-dir", str(lake), "demo"]) == 0
    again = capsys.readouterr().out
    assert "    0 imported," in again and " 0 rejected" in again
    assert f"dates   : {len(days)} (2021-03-26 … 2025-10-03)" in again
    assert {k: v for k, v in lake_files(lake).items() if k.endswith(".parquet")} == before
