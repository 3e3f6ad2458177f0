"""What every layer's asset shares: check bookkeeping across a date range, schema metadata."""

import datetime as dt
from collections.abc import Iterable, Sequence

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from b3_platform.catalog.types import sql_type
from b3_platform.lake.schemas import TableDef
from b3_platform.partitions import trading_days
from b3_platform.quality import Rule

SINGLE_RUN = dg.BackfillPolicy.single_run()
PARTITIONED = {"partitions_def": trading_days, "backfill_policy": SINGLE_RUN}


def column_schema(table_def: TableDef) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=sql_type(f.type),
                description=(f.metadata or {}).get(b"description", b"").decode(),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in table_def.schema
        ]
    )


def table_metadata(table_def: TableDef) -> dict:
    return {
        "dagster/column_schema": column_schema(table_def),
        "dagster/table_name": table_def.name,
        "table_location": f"<lake root>/{table_def.location}date=YYYY-MM-DD/",
    }


def check_spec(name: str, asset: str, *, blocking: bool, description: str) -> dg.AssetCheckSpec:
    """Checks are partitioned like their asset, so the UI shows each day's check status."""
    return dg.AssetCheckSpec(
        name, asset=asset, blocking=blocking, description=description, partitions_def=trading_days
    )


def check_specs(
    rules: Iterable[Rule], asset: str, extra: Sequence[dg.AssetCheckSpec] = ()
) -> list[dg.AssetCheckSpec]:
    return [
        check_spec(r.name, r.table, blocking=r.blocking, description=r.description)
        for r in rules
        if r.table == asset
    ] + list(extra)


def _severity(spec: dg.AssetCheckSpec) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN


class CheckBook:
    """Collects each check's problems date by date, then reports them when the dates are stored.

    A single-partition run's result is that partition's evaluation. In a range run (a single-run
    backfill) Dagster plans one check row per date, so every date gets its own evaluation — passed
    or failed — or the UI would show the dates that passed as "Skipped". Those evaluations are
    logged by `results()`, which the asset calls after its materializations were recorded: an
    evaluation counts in the UI only when it targets the partition's latest materialization, so
    each one names it. The run-level result, one per check covering every date, is what gates the
    layers below (a failed blocking check stops them)."""

    def __init__(self, specs: Sequence[dg.AssetCheckSpec], context: dg.AssetExecutionContext) -> None:
        self._context = context
        self._per_partition = len(context.partition_keys) > 1
        self._specs = {s.name: s for s in specs}
        self._problems: dict[str, list[str]] = {name: [] for name in self._specs}
        self._dates: dict[str, list[str]] = {name: [] for name in self._specs}
        #: Per check, each evaluated date's problems (range runs only; logged by `results()`).
        self._by_date: dict[str, dict[str, list[str]]] = {name: {} for name in self._specs}
        self.evaluated: dict[str, int] = {name: 0 for name in self._specs}
        #: Per check, the dates it did not judge, with why (they pass, and say so).
        self._not_judged: dict[str, dict[str, str]] = {name: {} for name in self._specs}

    def record(self, name: str, day: dt.date, problems: list[str], not_judged: str | None = None) -> None:
        """A date's problems; or, with `not_judged`, that the rule does not apply to the date (it
        passes, and its evaluation says why instead of a bare "passed")."""
        if not_judged is not None:
            self._not_judged[name][day.isoformat()] = not_judged
        self.evaluated[name] += 1
        if problems:
            self._dates[name].append(day.isoformat())
            self._problems[name].extend(f"{day}: {p}" for p in problems)
        if self._per_partition:
            self._by_date[name][day.isoformat()] = list(problems)

    def _targets(self, asset_key: dg.AssetKey, keys: Sequence[str]) -> dict[str, object]:
        """The latest materialization of each of `keys` (one query per asset), as check targets."""
        records = self._context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(keys)), limit=len(keys)
        ).records
        targets: dict[str, object] = {}
        for record in records:  # newest first: keep each partition's latest
            key = record.partition_key
            if key is not None and key not in targets:
                targets[key] = AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id,
                    run_id=record.run_id,
                    timestamp=record.timestamp,
                )
        return targets

    def _log_per_date(self) -> None:
        keys_by_asset: dict[dg.AssetKey, set[str]] = {}
        for name, spec in self._specs.items():
            keys_by_asset.setdefault(spec.asset_key, set()).update(self._by_date[name])
        targets_by_asset = {
            asset: self._targets(asset, sorted(keys)) for asset, keys in keys_by_asset.items() if keys
        }
        for name, spec in self._specs.items():
            targets = targets_by_asset.get(spec.asset_key, {})
            for key, problems in self._by_date[name].items():
                self._context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=spec.asset_key,
                        check_name=name,
                        passed=not problems,
                        partition=key,
                        severity=_severity(spec),
                        blocking=spec.blocking,
                        target_materialization_data=targets.get(key),
                        description="; ".join(problems)[:1000] or self._not_judged[name].get(key),
                        metadata={
                            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                            **({"judged": False} if key in self._not_judged[name] else {}),
                        },
                    )
                )

    def results(self) -> list[dg.AssetCheckResult]:
        """The run's check results; in a range run, first logs every date's own evaluation. Call
        it after the asset's materializations (after its outputs, or after `MaterializeResult`)."""
        if self._per_partition:
            self._log_per_date()
        results = []
        for name, spec in self._specs.items():
            problems = self._problems[name]
            skipped = self._not_judged[name]
            results.append(
                dg.AssetCheckResult(
                    asset_key=spec.asset_key,
                    check_name=name,
                    passed=not problems,
                    severity=_severity(spec),
                    description=(
                        problems[0]
                        if len(problems) == 1
                        else f"{len(problems)} problems, first: {problems[0]}"
                        if problems
                        else _not_judged_summary(skipped, self.evaluated[name])
                    ),
                    metadata={
                        "dates_checked": self.evaluated[name],
                        **({"dates_not_judged": len(skipped)} if skipped else {}),
                        "dates_failed": len(self._dates[name]),
                        "failed_dates": ", ".join(self._dates[name][:50]) or "none",
                        "problems": dg.MetadataValue.md(
                            "\n".join(f"- {p}" for p in problems[:100]) or "none"
                        ),
                    },
                )
            )
        return results


def _not_judged_summary(not_judged: dict[str, str], evaluated: int) -> str | None:
    """A passed run's description when some dates were not judged: the one date's reason, or how
    many were not and the first one's reason."""
    if not not_judged:
        return None
    first_key, first = next(iter(not_judged.items()))
    if len(not_judged) == 1 and evaluated == 1:
        return first
    return f"{len(not_judged)} of {evaluated} date(s) not judged; {first_key}: {first}"
