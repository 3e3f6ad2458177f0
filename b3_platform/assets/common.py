"""What every layer's asset shares: check bookkeeping across a date range, schema metadata."""

import datetime as dt
from collections.abc import Iterable, Sequence

import dagster as dg
import pyarrow as pa

from b3_platform.lake.schemas import TableDef
from b3_platform.partitions import trading_days
from b3_platform.quality import Rule

SINGLE_RUN = dg.BackfillPolicy.single_run()
PARTITIONED = {"partitions_def": trading_days, "backfill_policy": SINGLE_RUN}

_ARROW_TO_SQL = {
    pa.string(): "string", pa.int32(): "int", pa.int64(): "bigint", pa.bool_(): "boolean",
    pa.date32(): "date",
}

def sql_type(type_: pa.DataType) -> str:
    """The column type as DuckDB/Athena name it."""
    if pa.types.is_decimal(type_):
        return f"decimal({type_.precision},{type_.scale})"
    if pa.types.is_timestamp(type_):
        return "timestamp"
    return _ARROW_TO_SQL[type_]

def column_schema(table_def: TableDef) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(
            name=f.name, type=sql_type(f.type),
            description=(f.metadata or {}).get(b"description", b"").decode(),
            constraints=dg.TableColumnConstraints(nullable=f.nullable),
        )
        for f in table_def.schema
    ])

def table_metadata(table_def: TableDef) -> dict:
    return {
        "dagster/column_schema": column_schema(table_def),
        "dagster/table_name": table_def.name,
        "table_location": f"<lake root>/{table_def.location}date=YYYY-MM-DD/",
    }

def check_specs(rules: Iterable[Rule], asset: str, extra: Sequence[dg.AssetCheckSpec] = ()) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(r.name, asset=r.table, blocking=r.blocking, description=r.description)
            for r in rules if r.table == asset] + list(extra)

class CheckBook:
    """Collects each check's problems date by date, then reports one result per check for the run."""

    def __init__(self, specs: Sequence[dg.AssetCheckSpec]) -> None:
        self._specs = {s.name: s for s in specs}
        self._problems: dict[str, list[str]] = {name: [] for name in self._specs}
        self._dates: dict[str, list[str]] = {name: [] for name in self._specs}
        self.evaluated: dict[str, int] = {name: 0 for name in self._specs}

    def record(self, name: str, day: dt.date, problems: list[str]) -> None:
        self.evaluated[name] += 1
        if problems:
            self._dates[name].append(day.isoformat())
            self._problems[name].extend(f"{day}: {p}" for p in problems)

    def failed(self, name: str) -> bool:
        return bool(self._problems[name])

    def results(self, severity: dict[str, dg.AssetCheckSeverity] | None = None) -> list[dg.AssetCheckResult]:
        severity = severity or {}
        results = []
        for name, spec in self._specs.items():
            problems = self._problems[name]
            results.append(dg.AssetCheckResult(
                asset_key=spec.asset_key, check_name=name, passed=not problems,
                severity=severity.get(name, dg.AssetCheckSeverity.ERROR if spec.blocking
                                      else dg.AssetCheckSeverity.WARN),
                description=(problems[0] if len(problems) == 1 else
                             f"{len(problems)} problems, first: {problems[0]}" if problems else None),
                metadata={
                    "dates_checked": self.evaluated[name],
                    "dates_failed": len(self._dates[name]),
                    "failed_dates": ", ".join(self._dates[name][:50]) or "none",
                    "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:100]) or "none"),
                },
            ))
        return results


def log_progress(context: dg.AssetExecutionContext, done: int, total: int, what: str, every: int = 50) -> None:
    """A log line every `every` dates of a long range, so a backfill shows it is moving."""
    if total > every and (done % every == 0 or done == total):
        context.log.info(f"{what}: {done}/{total} dates")
