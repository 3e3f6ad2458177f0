"""bronze_portfolio: the latest raw capture of each index, as one table per date, still in B3's strings."""

import dagster as dg

from b3_platform.assets.common import (
    PARTITIONED,
    CheckBook,
    check_spec,
    check_specs,
    log_progress,
    table_metadata,
)
from b3_platform.assets.raw import IMPORT_HINT, raw_portfolio
from b3_platform.lake.schemas import BRONZE_PORTFOLIO
from b3_platform.lake.tables import delete_partition, write_partition
from b3_platform.partitions import partition_days
from b3_platform.quality import BRONZE_RULES
from b3_platform.resources import LakeResource
from b3_platform.transform import bronze_table, decode_capture

RAW_PRESENT = check_spec(
    "raw_capture_present",
    "bronze_portfolio",
    blocking=False,
    description="Every date of the run had a raw capture to build from (warns on gaps in a range).",
)
SPECS = check_specs(BRONZE_RULES, "bronze_portfolio", [RAW_PRESENT])


@dg.asset(
    deps=[raw_portfolio],
    group_name="bronze",
    kinds={"parquet"},
    check_specs=SPECS,
    description=__doc__,
    metadata=table_metadata(BRONZE_PORTFOLIO),
    **PARTITIONED,
)
def bronze_portfolio(context: dg.AssetExecutionContext, lake: LakeResource):
    storage, store = lake.storage(), lake.raw()
    book = CheckBook(SPECS, context)
    days = partition_days(context)
    built = 0
    for done, day in enumerate(days, start=1):
        log_progress(context, done, len(days), "bronze_portfolio")
        latest = store.latest_by_index(day)
        book.record(RAW_PRESENT.name, day, [] if latest else ["no raw capture"])
        if not latest:
            removed = delete_partition(storage, BRONZE_PORTFOLIO, day)
            context.log.warning(
                f"{day}: no raw capture{'; removed the stale bronze file' if removed else ''}"
            )
            context.add_asset_metadata(
                {"dagster/row_count": 0, "status": "no raw capture"}, partition_key=day.isoformat()
            )
            continue
        items = [
            (
                index,
                cap.capture_id,
                decode_capture(store.read_bodies(cap), source_format=cap.source_format, index=index, day=day),
            )
            for index, cap in sorted(latest.items())
        ]
        table = bronze_table(items)
        for rule in BRONZE_RULES:
            book.record(rule.name, day, rule.fn(table, day))
        key = write_partition(storage, BRONZE_PORTFOLIO, day, table)
        built += 1
        rows = {index: len(p.results) for index, _, p in items}
        context.add_asset_metadata(
            {
                "dagster/row_count": table.num_rows,
                "dagster/uri": storage.uri(key),
                **{f"rows_{index}": n for index, n in rows.items()},
                "capture_ids": dg.MetadataValue.json({index: cid for index, cid, _ in items}),
            },
            partition_key=day.isoformat(),
        )
    if not built:
        raise dg.Failure(
            f"bronze_portfolio: no raw capture for {', '.join(map(str, days[:10]))}. {IMPORT_HINT}"
        )
    return dg.MaterializeResult(check_results=book.results())
