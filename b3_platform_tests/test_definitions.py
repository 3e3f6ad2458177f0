"""The code location as `dagster dev` loads it, snapshotted (the asset graph, checks, job, schedule,
automation), plus the pieces it is assembled from: per-environment resources and the two YAML files
at the repo root. The lake's storage and raw store have their own modules (test_storage.py,
test_raw_store.py)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from b3_platform import automation, partitions, resources, trading_calendar
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.definitions import defs
from b3_platform.lake import schemas
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import B3ApiResource, LakeResource, build_resources
from b3_platform.settings_errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
B3_URL = "https://sistemaswebb3-listados.b3.com.br/indexProxy/indexCall"
GOLD = ["gold_changes", "gold_composition", "gold_index_summary", "gold_time_in_index"]
#: The announced portfolios (theoretical and preview): their raw assets and their lake tables.
ANNOUNCED_RAW = ["raw_theoretical_portfolio", "raw_preview_portfolio"]
ANNOUNCED_SILVER = ["silver_theoretical", "silver_preview"]
ANNOUNCED_GOLD = ["announced_changes", "announced_accuracy"]
TABLES = [
    "bronze_portfolio",
    "silver_header",
    "silver_assets",
    *GOLD,
    *ANNOUNCED_SILVER,
    *ANNOUNCED_GOLD,
    "index_members",
]
ASSETS = sorted(["raw_stock_index", "raw_portfolio", *ANNOUNCED_RAW, *TABLES, "athena_tables", "dashboard"])
#: Every asset but the catalog and the dashboard is partitioned by trading day.
PARTITIONED = [a for a in ASSETS if a not in ("athena_tables", "dashboard")]

#: The asset graph in one literal: change it on purpose, or not at all.
_GOLD_SPEC = {"group": "gold", "deps": ["silver_assets", "silver_header"], "kinds": {"parquet"}}
EXPECTED_SPECS = {
    "raw_stock_index": {"group": "raw", "deps": [], "kinds": {"json"}},
    "raw_portfolio": {"group": "raw", "deps": ["raw_stock_index"], "kinds": {"json"}},
    "index_members": {"group": "silver", "deps": ["raw_stock_index"], "kinds": {"parquet"}},
    "bronze_portfolio": {"group": "bronze", "deps": ["raw_portfolio"], "kinds": {"parquet"}},
    "silver_header": {"group": "silver", "deps": ["bronze_portfolio"], "kinds": {"parquet"}},
    "silver_assets": {"group": "silver", "deps": ["bronze_portfolio"], "kinds": {"parquet"}},
    **{name: _GOLD_SPEC for name in GOLD},
    "athena_tables": {"group": "catalog", "deps": sorted(TABLES), "kinds": {"duckdb"}},
    **{name: {"group": "raw", "deps": [], "kinds": {"json"}} for name in ANNOUNCED_RAW},
    "silver_theoretical": {"group": "silver", "deps": ["raw_theoretical_portfolio"], "kinds": {"parquet"}},
    "silver_preview": {"group": "silver", "deps": ["raw_preview_portfolio"], "kinds": {"parquet"}},
    "announced_changes": {"group": "gold", "deps": ANNOUNCED_SILVER[::-1], "kinds": {"parquet"}},
    "announced_accuracy": {
        "group": "gold",
        "deps": ["silver_assets", "silver_preview"],
        "kinds": {"parquet"},
    },
    "dashboard": {"group": "dashboard", "deps": ["athena_tables"], "kinds": {"html", "vega"}},
}

#: Check name -> (asset, blocking). Blocking ones fail the run and stop downstream assets. An asset's
#: rules are one check (`<asset>_rules`, blocking when any rule blocks; each evaluation's severity
#: says whether a blocking rule failed); an asset with one rule has a check named for it.
EXPECTED_CHECKS = {
    "all_configured_indices_captured": ("raw_portfolio", False),
    "bronze_portfolio_rules": ("bronze_portfolio", True),
    "silver_assets_rules": ("silver_assets", True),
    "composition_covers_every_component": ("gold_composition", True),
    "previous_trading_day_in_lake": ("gold_changes", False),
    "concentration_within_bounds": ("gold_index_summary", True),
    "time_in_index_consistent": ("gold_time_in_index", True),
    "tables_match_schemas": ("athena_tables", True),
}

#: The rules each grouped check reports, in the order its metadata lists them (blocking ones first),
#: and which of them only warn.
EXPECTED_RULES = {
    "bronze_portfolio_rules": (
        "header_date_matches_partition, row_count_matches_total_records, raw_capture_present, "
        "captures_pass_audit"
    ),
    "silver_assets_rules": (
        "unique_tickers, ticker_format, weights_sum_to_100, quantities_positive, "
        "quantities_sum_to_header_total, type_codes_recognised"
    ),
}
EXPECTED_WARNING_RULES = {
    "bronze_portfolio_rules": "raw_capture_present, captures_pass_audit",
    "silver_assets_rules": "type_codes_recognised",
}

#: The announced portfolios' checks, (asset, check) -> blocking: their silver tables run the day
#: portfolio's own blocking rules as one check, silver_preview's with its warning rule.
_SILVER_RULES = (
    "unique_tickers, ticker_format, weights_sum_to_100, quantities_positive, quantities_sum_to_header_total"
)
EXPECTED_ANNOUNCED_CHECKS = {
    **{(name, "all_configured_indices_captured"): False for name in ANNOUNCED_RAW},
    **{(name, f"{name}_rules"): True for name in ANNOUNCED_SILVER},
    ("announced_changes", "theoretical_and_preview_captured"): False,
}


def _specs() -> dict[str, dg.AssetSpec]:
    return {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}


# --- loading like `dagster dev` -------------------------------------------------------------------


def test_workspace_module_loads_one_definitions_object():
    """What the code server does with workspace.yaml's python_module: import it, find the
    Definitions, turn them into a repository and load every definition."""
    from dagster._core.definitions.reconstruct import repository_def_from_target_def
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

    targets = loadable_targets_from_python_module("b3_platform.definitions", str(REPO))
    assert [t.attribute for t in targets] == ["defs"]
    repo = repository_def_from_target_def(targets[0].target_definition)
    repo.load_all_definitions()
    assert {j.name for j in repo.get_all_jobs()} >= {"daily_capture"}
    assert [s.name for s in repo.schedule_defs] == ["daily_capture_schedule"]
    assert sorted(s.name for s in repo.sensor_defs) == [
        "follow_upstream",
        "landing_sensor",
        "missed_capture_alert",
        "run_failure_alert",
    ]
    assert sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()) == ASSETS


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)
    assert sorted(defs.resources) == ["alerts", "b3", "catalog", "lake", "lake_io_manager", "landing"]
    assert isinstance(defs.resources["lake"], LakeResource)
    assert isinstance(defs.resources["b3"], B3ApiResource)
    assert isinstance(defs.resources["catalog"], DuckDBCatalogResource)


# --- asset graph snapshot -------------------------------------------------------------------------


def test_asset_graph_is_exactly_the_layers_and_the_catalog():
    keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    assert keys == ASSETS


def test_asset_specs_snapshot():
    snapshot = {
        name: {
            "group": spec.group_name,
            "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
            "kinds": set(spec.kinds),
        }
        for name, spec in _specs().items()
    }
    assert snapshot == EXPECTED_SPECS


def test_the_parquet_layers_are_stored_by_the_lake_io_manager():
    """Bronze, silver and gold under one IO manager key; raw (append-only, written by import and
    the landing sensor) and the catalog store nothing through an IO manager."""
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string(): graph.get(k).io_manager_key for k in graph.get_all_asset_keys()}
    assert {name for name, key in keys.items() if key == "lake_io_manager"} == {
        "bronze_portfolio",
        "silver_header",
        "silver_assets",
        *GOLD,
        *ANNOUNCED_SILVER,
        *ANNOUNCED_GOLD,
        "index_members",
    }
    assert keys["raw_portfolio"] == keys["raw_stock_index"] == keys["athena_tables"] == "io_manager"
    assert keys["dashboard"] == "io_manager"
    # The IO manager stands on the very lake the other assets and the CLI use.
    assert defs.resources["lake_io_manager"].lake == defs.resources["lake"]


def test_asset_graph_lineage():
    graph = defs.resolve_asset_graph()
    down = {
        k.to_user_string(): sorted(c.to_user_string() for c in graph.get(k).child_keys)
        for k in graph.get_all_asset_keys()
    }
    assert down == {
        "raw_stock_index": ["index_members", "raw_portfolio"],
        "index_members": ["athena_tables"],
        "raw_portfolio": ["bronze_portfolio"],
        "bronze_portfolio": ["athena_tables", "silver_assets", "silver_header"],
        "silver_header": ["athena_tables", *GOLD],
        "silver_assets": ["announced_accuracy", "athena_tables", *GOLD],
        **{name: ["athena_tables"] for name in GOLD},
        "athena_tables": ["dashboard"],
        "dashboard": [],
        "raw_theoretical_portfolio": ["silver_theoretical"],
        "raw_preview_portfolio": ["silver_preview"],
        "silver_theoretical": ["announced_changes", "athena_tables"],
        "silver_preview": ["announced_accuracy", "announced_changes", "athena_tables"],
        **{name: ["athena_tables"] for name in ANNOUNCED_GOLD},
    }


def test_gold_reads_silver_of_the_day_and_of_the_previous_trading_day():
    """Gold of D compares with silver_assets of the previous *trading* day, and says so to Dagster:
    the partition mapping skips weekends and holidays exactly like trading_calendar.previous_trading_day."""
    graph = defs.resolve_asset_graph()
    for name in GOLD:
        mappings = {d.asset_key.to_user_string(): d.partition_mapping for d in _specs()[name].deps}
        assert mappings["silver_header"] is None  # same day only
        assert mappings["silver_assets"] == dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)

    def parents(day: str, parent: str) -> list[str]:
        result = graph.get_parent_partition_keys_for_child(
            day, dg.AssetKey(parent), dg.AssetKey("gold_changes")
        )
        return result.partitions_subset.get_partition_keys()

    # Monday after a weekend; the day after Consciência Negra (2025-11-20, a Thursday holiday).
    for day, before in [
        ("2025-07-07", "2025-07-04"),
        ("2025-11-21", "2025-11-19"),
        ("2025-07-10", "2025-07-09"),
    ]:
        assert trading_calendar.previous_trading_day(dt.date.fromisoformat(day)).isoformat() == before
        assert parents(day, "silver_assets") == [before, day]
        assert parents(day, "silver_header") == [day]
    # The first partition has no previous one: it depends on its own day only.
    assert parents("2015-01-02", "silver_assets") == ["2015-01-02"]


def test_every_layer_is_trading_day_partitioned_with_single_run_backfills():
    graph = defs.resolve_asset_graph()
    for name in PARTITIONED:
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def is partitions.trading_days, name
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), name
        assert _specs()[name].partitions_def is partitions.trading_days, name
    # The catalog covers every date at once: one unpartitioned asset. Its single-run policy changes
    # nothing for it but lets `dagster asset materialize --partition-range` take 'raw_portfolio*'.
    catalog = graph.get(dg.AssetKey("athena_tables"))
    assert catalog.partitions_def is None and not catalog.is_partitioned
    assert catalog.backfill_policy == dg.BackfillPolicy.single_run()
    assert _specs()["athena_tables"].partitions_def is None


@pytest.mark.parametrize("name", TABLES)
def test_column_schema_metadata_is_the_lake_schema(name):
    spec = _specs()[name]
    table_def = schemas.TABLES[name]
    column_schema = spec.metadata["dagster/column_schema"]
    assert isinstance(column_schema, dg.TableSchema)
    assert [c.name for c in column_schema.columns] == table_def.schema.names
    # Nullability and descriptions come from the same pyarrow fields.
    for column, field in zip(column_schema.columns, table_def.schema):
        assert column.constraints.nullable == field.nullable, column.name
        assert column.description == field.metadata[b"description"].decode(), column.name
    assert spec.metadata["dagster/table_name"] == name


def test_column_schema_types():
    columns = {c.name: c.type for c in _specs()["silver_assets"].metadata["dagster/column_schema"].columns}
    assert columns["weight"] == "decimal(7,3)"
    assert columns["theoretical_quantity"] == "bigint"
    assert columns["row_number"] == "int"
    header = {c.name: c.type for c in _specs()["silver_header"].metadata["dagster/column_schema"].columns}
    assert header["reference_date"] == "date"
    assert header["fetched_at"] == "timestamp"
    assert header["has_sector"] == "boolean"


def test_raw_has_no_table_schema():
    assert "dagster/column_schema" not in _specs()["raw_portfolio"].metadata


def test_gold_column_types():
    changes = {c.name: c.type for c in _specs()["gold_changes"].metadata["dagster/column_schema"].columns}
    assert changes["weight_change_pp"] == "decimal(8,3)"
    assert changes["previous_date"] == "date"
    assert changes["quantity_changed"] == "boolean"
    summary = {
        c.name: c.type for c in _specs()["gold_index_summary"].metadata["dagster/column_schema"].columns
    }
    assert summary["hhi"] == "decimal(12,6)"
    assert summary["top10_weight"] == "decimal(7,3)"
    assert summary["entries"] == "int"


def test_catalog_has_no_table_schema():
    assert "dagster/column_schema" not in _specs()["athena_tables"].metadata


def test_check_specs_and_blocking():
    checks = {}
    announced = {}
    rules = {}
    warnings = {}
    for assets_def in defs.assets:
        for spec in assets_def.check_specs:
            if "rules" in spec.metadata:
                rules[spec.name] = spec.metadata["rules"]
            if "warning_rules" in spec.metadata:
                warnings[spec.name] = spec.metadata["warning_rules"]
                # A check holding warning rules says which in its description too.
                assert "Warning rules (" in spec.description and "never blocking" in spec.description
            if spec.asset_key.to_user_string() in ANNOUNCED_RAW + ANNOUNCED_SILVER + ANNOUNCED_GOLD:
                announced[(spec.asset_key.to_user_string(), spec.name)] = spec.blocking
                assert spec.partitions_def is partitions.trading_days, spec.name
                continue
            assert spec.name not in checks, f"duplicate check {spec.name}"
            checks[spec.name] = (spec.asset_key.to_user_string(), spec.blocking)
            # Checks are partitioned like their asset (the catalog's is not partitioned).
            expected = None if spec.asset_key.to_user_string() == "athena_tables" else partitions.trading_days
            assert spec.partitions_def is expected, spec.name
    assert checks == EXPECTED_CHECKS
    assert announced == EXPECTED_ANNOUNCED_CHECKS
    assert rules == {
        **EXPECTED_RULES,
        "silver_theoretical_rules": _SILVER_RULES,
        "silver_preview_rules": f"{_SILVER_RULES}, preview_published",
    }
    assert warnings == {**EXPECTED_WARNING_RULES, "silver_preview_rules": "preview_published"}
    assert {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys} == {
        *((asset, name) for name, (asset, _) in EXPECTED_CHECKS.items()),
        *EXPECTED_ANNOUNCED_CHECKS,
    }


# --- automation, freshness, pools -----------------------------------------------------------------


def test_every_asset_below_raw_follows_upstream_and_raw_does_not():
    conditions = {name: spec.automation_condition for name, spec in _specs().items()}
    # Raw comes from the capture schedule and from imports, never from a condition.
    assert conditions.pop("raw_portfolio") is None
    assert [conditions.pop(name) for name in ANNOUNCED_RAW] == [None, None]
    assert conditions.pop("raw_stock_index") is None
    assert all(c is not None for c in conditions.values()), conditions
    assert conditions == {
        "index_members": automation.FOLLOWS_UPSTREAM,
        "bronze_portfolio": automation.FOLLOWS_UPSTREAM,
        "silver_header": automation.FOLLOWS_UPSTREAM,
        "silver_assets": automation.FOLLOWS_UPSTREAM,
        **{name: automation.GOLD_FOLLOWS_UPSTREAM for name in GOLD},
        "athena_tables": automation.CATALOG_FOLLOWS_UPSTREAM,
        **{name: automation.FOLLOWS_UPSTREAM for name in ANNOUNCED_SILVER},
        **{name: automation.GOLD_FOLLOWS_UPSTREAM for name in ANNOUNCED_GOLD},
        "dashboard": automation.DASHBOARD_FOLLOWS_CATALOG,
    }


def test_follow_upstream_sensor_is_on_by_default_over_every_asset():
    sensor = defs.resolve_sensor_def("follow_upstream")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert sorted(k.to_user_string() for k in targeted) == ASSETS
    assert sorted(s.name for s in defs.sensors) == [
        "follow_upstream",
        "landing_sensor",
        "missed_capture_alert",
        "run_failure_alert",
    ]


def test_landing_sensor_is_on_by_default_and_targets_no_job():
    sensor = defs.resolve_sensor_def("landing_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    assert not sensor.targets  # it reports raw materializations; automation takes it from there
    assert sorted(sensor.required_resource_keys) == ["lake", "landing"]


def test_gold_assets_carry_a_freshness_policy_and_nothing_else_does():
    for name, spec in _specs().items():
        policy = spec.freshness_policy
        if name not in GOLD:
            assert policy is None, name
            continue
        assert isinstance(policy, dg.FreshnessPolicy), name
        assert policy.deadline_cron == "0 21 * * 1-5"  # 21:00 São Paulo, after the 20:00 attempt
        assert policy.timezone == "America/Sao_Paulo"
        assert policy.lower_bound_delta == dt.timedelta(hours=13)


def test_only_the_catalog_runs_in_the_duckdb_pool():
    graph = defs.resolve_asset_graph()
    pools = {name: graph.get(dg.AssetKey(name)).pools for name in ASSETS}
    assert pools.pop("athena_tables") == {"duckdb"}
    # The dashboard only reads the DuckDB file, but a writer holding it would refuse the read: it queues too.
    assert pools.pop("dashboard") == {"duckdb"}
    assert all(not p for p in pools.values()), pools
    assert defs.get_assets_def("athena_tables").op.pool == "duckdb"


# --- job and schedule -----------------------------------------------------------------------------


def test_daily_capture_job_and_schedule():
    job = defs.resolve_job_def("daily_capture")
    assert job.partitions_def is partitions.trading_days
    # Raw and everything downstream: every layer of the day, then the catalog (unpartitioned); the
    # dashboard is redrawn after it by automation.
    assert sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys) == [
        a for a in ASSETS if a != "dashboard"
    ]

    schedule = defs.resolve_schedule_def("daily_capture_schedule")
    assert schedule.job_name == "daily_capture"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "America/Sao_Paulo"
    assert schedule.cron_schedule == "0 9,13,20 * * 1-5"
    assert set(schedule.required_resource_keys) == {"lake", "b3"}


# --- resources per environment --------------------------------------------------------------------


def test_build_resources_default_env(monkeypatch):
    for var in (
        resources.ENV_VAR,
        resources.DATA_DIR_VAR,
        resources.B3_URL_VAR,
        resources.DUCKDB_VAR,
        "B3_PLATFORM_INDICES",
    ):
        monkeypatch.delenv(var, raising=False)
    for built in (build_resources(), build_resources({})):
        assert sorted(built) == ["b3", "catalog", "lake", "lake_io_manager", "landing"]
        assert built["lake"].root == "data"
        assert built["b3"].base_url == B3_URL
        assert built["b3"].indices is None  # every index B3 lists (discovered)
        assert built["b3"].lake == built["lake"]  # where the discovered listings are read
        assert isinstance(built["catalog"], DuckDBCatalogResource)
        assert built["catalog"].duckdb.database == "data/warehouse.duckdb"  # in the lake root


def test_build_resources_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("B3_PLATFORM_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("B3_PLATFORM_B3_URL", "http://127.0.0.1:1/indexProxy/indexCall")
    monkeypatch.setenv("B3_PLATFORM_INDICES", "ibov,smll")
    monkeypatch.setenv("B3_PLATFORM_ENV", " Local ")
    built = build_resources()
    assert built["lake"].root == str(tmp_path / "elsewhere")
    assert built["b3"].base_url == "http://127.0.0.1:1/indexProxy/indexCall"
    assert built["b3"].capture_list() == ["IBOV", "SMLL"]
    assert built["catalog"].duckdb.database == f"{tmp_path}/elsewhere/warehouse.duckdb"
    # An explicit mapping wins over os.environ.
    explicit = build_resources({"B3_PLATFORM_DATA_DIR": "lake2/"})
    assert explicit["lake"].root == "lake2/"
    assert explicit["catalog"].duckdb.database == "lake2/warehouse.duckdb"
    assert explicit["b3"].base_url == B3_URL
    # The catalog file can live elsewhere.
    moved = build_resources({"B3_PLATFORM_DUCKDB": str(tmp_path / "w.duckdb")})
    assert moved["catalog"].duckdb.database == str(tmp_path / "w.duckdb")
    assert moved["catalog"].location == str((tmp_path / "w.duckdb").resolve())


@pytest.mark.parametrize("mode", ["gcp", "bogus"])
def test_unknown_environment_is_a_config_error(monkeypatch, mode):
    monkeypatch.setenv("B3_PLATFORM_ENV", mode)
    with pytest.raises(ConfigError, match=f"B3_PLATFORM_ENV={mode!r}"):
        build_resources()
    with pytest.raises(ConfigError, match="B3_PLATFORM_ENV"):
        build_resources({"B3_PLATFORM_ENV": mode})


def test_lake_resource_opens_local_storage(tmp_path):
    lake = LakeResource(root=str(tmp_path / "lake"))
    assert isinstance(lake.storage(), LocalStorage)
    assert lake.storage().uri() == str((tmp_path / "lake").resolve())
    assert lake.raw().storage.uri() == lake.storage().uri()


# --- repo-root YAML -------------------------------------------------------------------------------


def test_workspace_yaml_loads_the_definitions_module():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace == {
        "load_from": [{"python_module": {"module_name": "b3_platform.definitions", "working_directory": "."}}]
    }


def test_dagster_yaml_has_no_telemetry_and_the_default_storage():
    """No `storage:` section and no folder named: Dagster's default keeps the sqlite files under the
    instance folder (asserted below), and a throw-away instance made from this file needs no
    DAGSTER_HOME. The event log is Dagster's sqlite one through the pooled class, configured with
    nothing but its name."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["telemetry"] == {"enabled": False}
    assert "storage" not in config and "run_storage" not in config and "schedule_storage" not in config
    assert config["event_log_storage"] == {
        "module": "b3_platform.sqlite_storage",
        "class": "PooledSqliteEventLogStorage",
    }


def test_dagster_yaml_gives_each_pool_one_slot():
    """One DuckDB writer at a time: the `duckdb` pool (athena_tables) gets the default limit of 1."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"] == {"default_limit": 1}
    assert config["concurrency"]["runs"] == {"max_concurrent_runs": 4}
    assert "run_queue" not in config  # superseded by concurrency.runs (a field set in both is an error)


def test_dagster_yaml_makes_a_working_instance(tmp_path, monkeypatch):
    """The real instance config: valid for Dagster 1.13, with every sqlite file under DAGSTER_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((REPO / "dagster.yaml").read_bytes())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    try:
        assert instance.root_directory == str(home)
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"
        assert instance.event_log_storage._base_dir == str(home / "history" / "runs")
        assert type(instance.schedule_storage).__name__ == "SqliteScheduleStorage"
        assert instance.run_storage._conn_string.startswith(f"sqlite:///{home}/")
        assert instance.get_settings("telemetry") == {"enabled": False}
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
    assert {"history", "schedules"} <= set(os.listdir(home))
