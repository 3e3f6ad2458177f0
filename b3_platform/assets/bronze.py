"""bronze_portfolio: for each index, the newest raw capture that passes the publish audit (contract,
parse rules, the blocking rules of bronze and silver; `b3_platform.audit`), as one table per date,
still in B3's strings. A refused capture is skipped for the next older one; an index none of whose
captures pass is left out of the date while the other indices build. Either way the capture is
named in the run log, the partition metadata and the `captures_pass_audit` rule of bronze's check."""

import datetime as dt

import dagster as dg

from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec, check_specs, table_metadata
from b3_platform.assets.raw import IMPORT_HINT, raw_portfolio
from b3_platform.audit import choose_captures
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, DateStream, DateTables, NoInput
from b3_platform.lake.schemas import BRONZE_PORTFOLIO
from b3_platform.partitions import partition_days
from b3_platform.quality import BRONZE_RULES
from b3_platform.resources import LakeResource

AUDIT = check_spec(
    "captures_pass_audit",
    "bronze_portfolio",
    blocking=False,
    description=(
        "The newest capture of every index passed the publish audit (contract, parse rules, the "
        "blocking rules of bronze and silver). Fails naming each refused capture and why, and "
        "whether an older capture was published instead or the index was left out of the date. "
        "Not blocking: the indices that pass still reach silver and gold."
    ),
)
RAW_PRESENT = check_spec(
    "raw_capture_present",
    "bronze_portfolio",
    blocking=False,
    description="Every date of the run had a raw capture to build from (warns on gaps in a range).",
)
SPECS = check_specs(BRONZE_RULES, "bronze_portfolio", [RAW_PRESENT, AUDIT])


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
        choice = choose_captures(store, day, captures)
        book.record(AUDIT.name, day, choice.problems)
        for problem in choice.problems:
            context.log.warning(f"{day}: {problem}")
        if not choice.items:
            return NoInput(f"no capture passes the audit ({'; '.join(choice.problems)})")
        table = choice.bronze()  # the audit's own table when it built the date's whole
        for rule in BRONZE_RULES:
            book.record(rule.name, day, choice.rule_problems(rule, table, day))
        refused = "\n".join(f"- {p}" for p in choice.problems)
        return DateTables(
            {BRONZE_PORTFOLIO.name: table},
            # Rows per index are silver_assets' (`rows_<index>`, the same rows typed), not repeated here.
            shared={
                "capture_ids": dg.MetadataValue.json({index: cid for index, cid, _ in choice.items}),
                "captures_available": sum(len(c) for c in captures.values()),
                **({"refused_captures": dg.MetadataValue.md(refused)} if refused else {}),
                **({"left_out_indices": ", ".join(choice.left_out)} if choice.left_out else {}),
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
    # The checks first: when no date could be built (every capture refused), they say why.
    yield from book.results()
    stream.finish()
