"""A tiny history for the compressed event log's tests, and everything Dagster reads of it.

This module never imports b3_platform.sqlite_storage: a process that runs it as a script (it prints
`reads(home)` as JSON) reads the instance through Dagster's own sqlite class only, as a user's would
once `event_log_storage` is removed from dagster.yaml. The webserver loads `defs` from it too.

The graph: a partitioned asset with a blocking check, and an asset with a check that fails on one
date of a single-run range (so its dates read FAILED and its planned check rows are never judged).
"""

import json
import sys
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import serialize_value

REPO = Path(__file__).resolve().parent.parent
DAYS = dg.DailyPartitionsDefinition(start_date="2025-07-01")
KEYS = ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-04", "2025-07-05"]
FAILING_DATE = "2025-07-04"


@dg.asset(partitions_def=DAYS)
def prices(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": int(context.partition_key[-2:]), "source": "replay"})


@dg.asset_check(asset=prices, blocking=True, partitions_def=DAYS)
def prices_rules(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"judged": True})


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def fragile(context: dg.AssetExecutionContext) -> None:
    if FAILING_DATE in context.partition_keys:
        raise RuntimeError(f"fails on {FAILING_DATE} on purpose")


@dg.asset_check(asset=fragile, partitions_def=DAYS)
def fragile_rules(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


defs = dg.Definitions(assets=[prices, fragile], asset_checks=[prices_rules, fragile_rules])
CHECKS = {"prices": "prices_rules", "fragile": "fragile_rules"}


def configure(home: Path, pooled: bool) -> Path:
    """`home` (made if missing) with the repo's dagster.yaml (pooled: the compressed event log) or
    the same file without its event_log_storage entry (Dagster's own class)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    if not pooled:
        config.pop("event_log_storage")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def open_instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def materialize_prices(home: Path, key: str) -> None:
    with open_instance(home) as instance:
        assert dg.materialize([prices, prices_rules], partition_key=key, instance=instance).success


def fail_a_range(home: Path, first: str, last: str) -> None:
    """One single run of `fragile` over first…last, failing (FAILING_DATE is inside)."""
    job = dg.Definitions(
        assets=[fragile], asset_checks=[fragile_rules]
    ).resolve_implicit_global_asset_job_def()
    with open_instance(home) as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )
        assert not result.success


def reads(home: Path) -> dict:
    """Every read Dagster makes of the event log for this graph, each object in its serialized form
    (equal forms: equal objects): run logs, materializations, asset records and latest
    materializations, partition statuses, check executions (history, latest, per partition)."""
    found: dict = {}
    with open_instance(home) as instance:
        storage = instance.event_log_storage
        for run in sorted(instance.get_runs(), key=lambda r: r.run_id):
            found[f"log {run.run_id}"] = [serialize_value(e) for e in instance.all_logs(run.run_id)]
        for name, check_name in CHECKS.items():
            key = dg.AssetKey(name)
            check_key = dg.AssetCheckKey(key, check_name)
            found[name] = {
                "materializations": [
                    serialize_value(r) for r in instance.fetch_materializations(key, limit=100).records
                ],
                "asset records": [
                    serialize_value(r.asset_entry.last_materialization_record)
                    for r in instance.get_asset_records([key])
                ],
                "latest": serialize_value(instance.get_latest_materialization_events([key]).get(key)),
                "materialized": sorted(instance.get_materialized_partitions(key)),
                "statuses": {
                    k: (v.value if v else None)
                    for k, v in instance.get_status_by_partition(key, KEYS, DAYS).items()
                },
                "check history": [
                    [r.id, r.run_id, r.status.value, r.partition, serialize_value(r.event)]
                    for r in storage.get_asset_check_execution_history(check_key, limit=100)
                ],
                "latest check": [
                    [r.id, r.status.value, r.partition, serialize_value(r.event)]
                    for r in storage.get_latest_asset_check_execution_by_key([check_key]).values()
                ],
                "check per partition": sorted(
                    repr(info) for info in storage.get_asset_check_partition_info([check_key])
                ),
            }
    return found


if __name__ == "__main__":
    print(json.dumps(reads(Path(sys.argv[1]))))
    # What this process read, it read through Dagster's own code alone.
    assert "b3_platform.sqlite_storage" not in sys.modules, "the compressed storage was imported"
