"""silver_header and silver_assets: bronze typed by the parse rules, one row per (date, index) and
per (date, index, ticker). Built together because both come from one parse of the same bronze file."""

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from b3_platform.assets.bronze import bronze_portfolio
from b3_platform.assets.common import PARTITIONED, CheckBook, check_specs, rules_of, table_metadata
from b3_platform.assets.subset import selected_checks, selected_tables
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, DateReader, DateStream, DateTables, NoInput
from b3_platform.lake.schemas import SILVER_ASSETS, SILVER_HEADER
from b3_platform.quality import SILVER_ASSET_RULES
from b3_platform.transforms.silver import silver_tables

SILVER_TABLES = (SILVER_HEADER, SILVER_ASSETS)
SPECS = check_specs(SILVER_ASSET_RULES, "silver_assets")
TOP_N = 10


def top_weights_markdown(assets: pa.Table) -> str:
    """Each index's TOP_N heaviest components (ties in row order), indices in alphabetical order."""
    lines = ["| index | ticker | company | weight % |", "|---|---|---|---|"]
    # A stable sort, as Python's sorted: only the rows shown are turned into Python values.
    order = pc.sort_indices(assets, sort_keys=[("index", "ascending"), ("weight", "descending")])
    indices = assets.column("index").take(order).to_pylist()
    shown_rows = []
    for position, (row, index) in enumerate(zip(order.to_pylist(), indices)):
        if position < TOP_N or indices[position - TOP_N] != index:
            shown_rows.append(row)
    shown = assets.select(["index", "ticker", "company", "weight"]).take(pa.array(shown_rows, pa.int64()))
    for r in shown.to_pylist():
        lines.append(f"| {r['index']} | {r['ticker']} | {r['company']} | {r['weight']} |")
    return "\n".join(lines)


def per_index_metadata(assets: pa.Table) -> dict[str, float | int]:
    """Numeric per-index metadata (`rows_IBOV`, `weight_sum_IBOV`), so the UI plots it over dates."""
    per_index = assets.group_by("index", use_threads=False).aggregate([("weight", "sum"), ([], "count_all")])
    # Indices in the order they first appear, as the rows hold them.
    at = {index: i for i, index in enumerate(per_index.column("index").to_pylist())}
    order = [at[index] for index in pc.unique(assets.column("index")).to_pylist()]
    rows = per_index.column("count_all").take(order).to_pylist()
    sums = per_index.column("weight_sum").take(order).to_pylist()
    names = [per_index.column("index")[i].as_py() for i in order]
    return {
        **{f"rows_{i}": n for i, n in zip(names, rows)},
        **{f"weight_sum_{i}": float(v) for i, v in zip(names, sums)},
    }


def reductor_notes(header: pa.Table) -> str:
    """B3's notes on the day's reductor, comma-separated ("" when it wrote none)."""
    return ", ".join(n for n in header.column("reductor_note").to_pylist() if n)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            table_def.name,
            deps=[bronze_portfolio],
            group_name="silver",
            kinds={"parquet"},
            description=table_def.description,
            metadata=table_metadata(table_def),
        ).with_io_manager_key(LAKE_IO_MANAGER)
        for table_def in SILVER_TABLES
    ],
    ins={"bronze": dg.AssetIn(bronze_portfolio.key, input_manager_key=LAKE_IO_MANAGER)},
    check_specs=SPECS,
    # One table (or check) can be selected alone: the other table of the date stays as published.
    can_subset=True,
    **PARTITIONED,
)
def silver(context: dg.AssetExecutionContext, bronze: DateReader):
    checks = selected_checks(context, SPECS)
    book = CheckBook(checks, context)
    checked = {rule for spec in checks for rule in rules_of(spec)}  # the rules they report
    newest = max(bronze.days, default=None)

    def build(day: dt.date) -> DateTables | NoInput:
        table = bronze.read(day)
        if table is None:
            return NoInput("no bronze partition")
        header, assets = silver_tables(table, day)
        tables = {SILVER_HEADER.name: header, SILVER_ASSETS.name: assets}
        problems = {rule.name: rule.evaluate(tables, day) for rule in SILVER_ASSET_RULES}
        for name, found in problems.items():
            if name in checked:
                book.record(name, day, found)
        # Kept verbatim and only reported: a descriptive field never stops a date.
        unrecognised = problems["type_codes_recognised"]
        if unrecognised:
            context.log.warning(f"{day}: type codes no rule recognises: {'; '.join(unrecognised)}")
        return DateTables(
            tables,
            metadata={
                # Only when B3 wrote one: a "none" on every date is stored twice per date for nothing.
                SILVER_HEADER.name: {"reductor_notes": notes} if (notes := reductor_notes(header)) else {},
                SILVER_ASSETS.name: {
                    # Which capture each index's rows come from (silver_header holds it as a column).
                    "capture_ids": dg.MetadataValue.json(
                        dict(zip(header.column("index").to_pylist(), header.column("capture_id").to_pylist()))
                    ),
                    **per_index_metadata(assets),
                    # A table for reading, not plotting: drawn for the newest date a run builds only
                    # (at 34 indices it is ~12 KB, which a range run would store again for every date).
                    **(
                        {"top_weights": dg.MetadataValue.md(top_weights_markdown(assets))}
                        if day == newest
                        else {}
                    ),
                    **(
                        {
                            "unrecognised_type_codes": dg.MetadataValue.md(
                                "\n".join(f"- {p}" for p in unrecognised)
                            )
                        }
                        if unrecognised
                        else {}
                    ),
                },
            },
        )

    stream = DateStream(
        context,
        selected_tables(context, SILVER_TABLES),
        bronze.days,
        build,
        name="silver",
        nothing_built_hint="materialize bronze_portfolio first",
    )
    # One stream for the selected outputs: the first writes the selected tables of each date together.
    yield from stream.outputs()
    yield from book.results()
