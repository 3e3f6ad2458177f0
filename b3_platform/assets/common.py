"""What every layer's asset shares: check bookkeeping across a date range, schema metadata."""

import datetime as dt
from collections.abc import Iterable, Sequence

import dagster as dg

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
    """Collects each check's problems date by date, then reports one result per check for the run.

    A single-partition run's result is that partition's evaluation. In a range run the run-level
    result covers every date and gates the layers below; a date that fails a check also gets its
    own evaluation, so the UI shows a backfill's bad days. Passing dates get none: at ~2 ms per
    event, eight checks would cost more than building the date itself."""

    def __init__(self, specs: Sequence[dg.AssetCheckSpec], context: dg.AssetExecutionContext) -> None:
        self._context = context
        self._per_partition = len(context.partition_keys) > 1
        self._specs = {s.name: s for s in specs}
        self._problems: dict[str, list[str]] = {name: [] for name in self._specs}
        self._dates: dict[str, list[str]] = {name: [] for name in self._specs}
        self.evaluated: dict[str, int] = {name: 0 for name in self._specs}

    def record(self, name: str, day: dt.date, problems: list[str]) -> None:
        self.evaluated[name] += 1
        if problems:
            self._dates[name].append(day.isoformat())
            self._problems[name].extend(f"{day}: {p}" for p in problems)
        if problems and self._per_partition:
            spec = self._specs[name]
            self._context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=spec.asset_key,
                    check_name=name,
                    passed=not problems,
                    partition=day.isoformat(),
                    severity=_severity(spec),
                    blocking=spec.blocking,
                    description="; ".join(problems)[:1000] or None,
                    metadata={
                        "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")
                    },
                )
            )

    def results(self) -> list[dg.AssetCheckResult]:
        results = []
        for name, spec in self._specs.items():
            problems = self._problems[name]
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
                        else None
                    ),
                    metadata={
                        "dates_checked": self.evaluated[name],
                        "dates_failed": len(self._dates[name]),
                        "failed_dates": ", ".join(self._dates[name][:50]) or "none",
                        "problems": dg.MetadataValue.md(
                            "\n".join(f"- {p}" for p in problems[:100]) or "none"
                        ),
                    },
                )
            )
        return results
