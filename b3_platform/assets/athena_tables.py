"""athena_tables: every lake table registered in the active catalog, so the same SQL runs on it.

Locally that is a DuckDB file of tables kept in step with the Parquet files; in the AWS mode the same asset
registers Glue tables behind the same `catalog` resource key (every Parquet table: raw_captures stays
local, see catalog.glue_athena). Each refresh first rewrites the `coverage` table (per index, which
trading days raw holds) into the lake, when it changed, so it is registered like the others. It runs after the tables it covers (automation) and in the `duckdb`
pool, so two runs never write the DuckDB file (or race on Glue partitions) at once.
"""

import dagster as dg
import pyarrow as pa

from b3_platform.assets.common import SINGLE_RUN
from b3_platform.catalog.base import PARTITION_COLUMN, CatalogResource, RegisteredTable
from b3_platform.coverage import write_coverage
from b3_platform.lake.raw_inventory import inventory
from b3_platform.lake.schemas import CATALOG_TABLES, TABLES, TableDef
from b3_platform.lake.storage import Storage
from b3_platform.lake.tables import file_schema_problems
from b3_platform.resources import B3ApiResource, LakeResource
from b3_platform.runs import PARTITION_TAG
from b3_platform.trading_calendar import today_sao_paulo

TABLES_REGISTERED = dg.AssetCheckSpec(
    "tables_match_schemas",
    asset="athena_tables",
    blocking=True,
    description=(
        "Every table is registered with exactly its declared columns and types, plus `date`, and "
        "its oldest and newest files have the declared schema."
    ),
)


def _file_problems(storage: Storage, tables: list[TableDef], registered: list[RegisteredTable]) -> list[str]:
    """The oldest and newest file of each table against the declared schema.

    Every write checks the schema, so a mismatch means a file written by an older release (a schema
    change not yet backfilled) or by hand; the catalog's types come from one file, so such a file
    would break queries. The two ends are where either shows first; reading every footer would
    cost a second per thousand dates on each refresh. The ends are the registered (published)
    dates the sync just reported, so this lists nothing again."""
    spans = {t.name: t for t in registered}
    problems = []
    for table_def in tables:
        span = spans.get(table_def.name)
        if table_def.file_format != "parquet" or not table_def.partitioned or span is None or not span.dates:
            continue
        for day in sorted({span.first_date, span.last_date}):
            problems += file_schema_problems(storage, table_def, day)
    return problems


def _schema_problems(catalog: CatalogResource, tables: list[TableDef]) -> list[str]:
    problems = []
    described = catalog.describe_all([t.name for t in tables])
    for table_def in tables:
        expected = [(f.name, catalog.expected_type(f.type)) for f in table_def.schema]
        if table_def.partitioned:
            expected.append((PARTITION_COLUMN, catalog.expected_type(pa.date32())))
        got = described[table_def.name]
        if isinstance(got, Exception):
            problems.append(f"{table_def.name}: cannot be described: {got}")
            continue
        names = [c for c, _ in got]
        if names != [c for c, _ in expected]:
            problems.append(f"{table_def.name}: columns {names} differ from the declared ones")
            continue
        for (name, want), (_, have) in zip(expected, got):
            if want != have:
                problems.append(f"{table_def.name}.{name}: type {have}, declared {want}")
    return problems


@dg.asset(
    # raw_captures reads raw's sidecars at query time; raw is left out of the deps so that an import
    # (raw, then every layer below it) refreshes the catalog once, after the layers, not twice.
    deps=list(TABLES),
    group_name="catalog",
    # The catalog is DuckDB locally and Glue + Athena on AWS: one asset, whichever is active; the
    # definitions set its kinds to the active catalog's (definitions.with_catalog_kinds).
    pool="duckdb",
    # Unpartitioned, so a policy changes nothing for it; declared so that `dagster asset materialize
    # --partition-range` accepts a selection reaching the catalog (it requires single_run on all).
    backfill_policy=SINGLE_RUN,
    check_specs=[TABLES_REGISTERED],
    description=__doc__,
)
def athena_tables(
    context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource, b3: B3ApiResource
):
    storage = lake.storage()
    # Raw's inventory is brought up to date once (its state written forward), for coverage and for
    # raw_captures' counts. The coverage table is written into the lake first, so both catalogs
    # register it like any other table: locally loaded, on AWS read by Athena from S3.
    raw = inventory(storage, update=True, whole=False)
    write_coverage(storage, b3.capture_list(), today_sao_paulo(), raw=raw)
    tables = [t for t in CATALOG_TABLES.values() if catalog.covers(t)]
    # A run for one date (the daily run, a per-date backfill's run) changed a few dates, which the
    # lake's change journal names: the local catalog looks at those only. Any other refresh (the
    # catalog on its own, a range backfill) lists every table, so it also sees files changed by
    # hand (lake.changes).
    one_date = context.run.tags.get(PARTITION_TAG) is not None
    registered = catalog.sync(storage, tables, raw=raw, journal=one_date, say=context.log.info)
    for table in registered:
        span = f"{table.first_date} … {table.last_date}" if table.dates else "no dates yet"
        rows = "rows not counted" if table.rows is None else f"{table.rows} rows"
        context.log.info(f"{table.name}: {rows} over {table.dates} date(s) ({span})")
    problems = _file_problems(storage, tables, registered) + _schema_problems(catalog, tables)
    # The lake's dates: coverage's `date` column counts trading days, captured or not.
    dated = [t for t in registered if CATALOG_TABLES[t.name].partitioned]
    return dg.MaterializeResult(
        metadata={
            "catalog": catalog.location,
            "tables": len(registered),
            **{f"rows_{t.name}": t.rows for t in registered if t.rows is not None},
            "dates": max((t.dates for t in dated), default=0),
            "last_date": str(max((t.last_date for t in dated if t.last_date), default="none")),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=TABLES_REGISTERED.name,
                passed=not problems,
                description="; ".join(problems)[:1000] or None,
                metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")},
            )
        ],
    )
