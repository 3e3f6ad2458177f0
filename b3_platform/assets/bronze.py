"""bronze_portfolio: the latest valid raw capture of each index, as one table per date, still in
B3's strings. Every capture was valid when it arrived; should a newer one fail today's contract, the
next older one is used and the skipped one is named in the metadata."""

import datetime as dt

import dagster as dg

from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec, check_specs, table_metadata
from b3_platform.assets.raw import IMPORT_HINT, raw_portfolio
from b3_platform.b3.contract import ContractError, Portfolio
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, DateStream, DateTables, NoInput
from b3_platform.lake.raw_store import RawCapture, RawStore
from b3_platform.lake.schemas import BRONZE_PORTFOLIO
from b3_platform.partitions import partition_days
from b3_platform.quality import BRONZE_RULES
from b3_platform.resources import LakeResource
from b3_platform.transforms.bronze import bronze_table, decode_capture

RAW_PRESENT = check_spec(
    "raw_capture_present",
    "bronze_portfolio",
    blocking=False,
    description="Every date of the run had a raw capture to build from (warns on gaps in a range).",
)
SPECS = check_specs(BRONZE_RULES, "bronze_portfolio", [RAW_PRESENT])


def choose_captures(
    store: RawStore, day: dt.date, captures: dict[str, list[RawCapture]]
) -> tuple[list[tuple[str, str, Portfolio]], list[str]]:
    """For each index the newest capture that decodes; returns (items, notes on skipped ones)."""
    items, skipped = [], []
    for index, candidates in captures.items():
        problems = []
        for capture in candidates:
            try:
                portfolio = decode_capture(
                    store.read_bodies(capture), source_format=capture.source_format, index=index, day=day
                )
            except ContractError as exc:
                problems.append(f"{index} capture {capture.capture_id}: {exc}")
                continue
            items.append((index, capture.capture_id, portfolio))
            break
        else:
            raise ContractError(
                f"no valid capture among {len(candidates)}: " + " | ".join(problems),
                index=index,
                requested_date=day,
            )
        skipped.extend(problems)
    return items, skipped


@dg.asset(
    deps=[raw_portfolio],
    group_name="bronze",
    kinds={"parquet"},
    check_specs=SPECS,
    description=__doc__,
    metadata=table_metadata(BRONZE_PORTFOLIO),
    io_manager_key=LAKE_IO_MANAGER,
    **PARTITIONED,
)
def bronze_portfolio(context: dg.AssetExecutionContext, lake: LakeResource):
    store = lake.raw()
    book = CheckBook(SPECS, context)

    def build(day: dt.date) -> DateTables | NoInput:
        captures = store.by_index(day)
        book.record(RAW_PRESENT.name, day, [] if captures else ["no raw capture"])
        if not captures:
            return NoInput("no raw capture")
        items, skipped = choose_captures(store, day, captures)
        for note in skipped:
            context.log.warning(f"{day}: skipped {note}")
        table = bronze_table(items)
        for rule in BRONZE_RULES:
            book.record(rule.name, day, rule.fn(table, day))
        return DateTables(
            {BRONZE_PORTFOLIO.name: table},
            shared={
                **{f"rows_{index}": len(p.results) for index, _, p in items},
                "capture_ids": dg.MetadataValue.json({index: cid for index, cid, _ in items}),
                "captures_available": sum(len(c) for c in captures.values()),
                **(
                    {"skipped_captures": dg.MetadataValue.md("\n".join(f"- {n}" for n in skipped))}
                    if skipped
                    else {}
                ),
            },
        )

    stream = DateStream(
        context,
        [BRONZE_PORTFOLIO],
        partition_days(context),
        build,
        name="bronze_portfolio",
        nothing_built_hint=IMPORT_HINT,
    )
    yield dg.Output(stream)
    stream.finish()
    yield from book.results()
