"""silver_header and silver_assets: bronze typed by the parse rules, one row per (date, index) and
per (date, index, ticker). Built together because both come from one parse of the same bronze file."""

from decimal import Decimal

import dagster as dg
import pyarrow as pa

from b3_platform.assets.bronze import bronze_portfolio
from b3_platform.assets.common import (
    PARTITIONED,
    CheckBook,
    check_specs,
    log_progress,
    table_metadata,
)
from b3_platform.lake.schemas import BRONZE_PORTFOLIO, SILVER_ASSETS, SILVER_HEADER
from b3_platform.lake.tables import delete_partition, read_partition, write_partition
from b3_platform.partitions import partition_days
from b3_platform.quality import SILVER_ASSET_RULES
from b3_platform.resources import LakeResource
from b3_platform.transforms.silver import silver_tables

SPECS = check_specs(SILVER_ASSET_RULES, "silver_assets")
TOP_N = 10


def top_weights_markdown(assets: pa.Table) -> str:
    lines = ["| index | ticker | company | weight % |", "|---|---|---|---|"]
    rows = sorted(
        assets.select(["index", "ticker", "company", "weight"]).to_pylist(),
        key=lambda r: (r["index"], -r["weight"]),
    )
    shown: dict[str, int] = {}
    for r in rows:
        if shown.get(r["index"], 0) < TOP_N:
            shown[r["index"]] = shown.get(r["index"], 0) + 1
            lines.append(f"| {r['index']} | {r['ticker']} | {r['company']} | {r['weight']} |")
    return "\n".join(lines)


def per_index_metadata(assets: pa.Table) -> dict[str, float | int]:
    """Numeric per-index metadata (`rows_IBOV`, `weight_sum_IBOV`), so the UI plots it over dates."""
    rows: dict[str, int] = {}
    sums: dict[str, Decimal] = {}
    for index, weight in zip(assets.column("index").to_pylist(), assets.column("weight").to_pylist()):
        rows[index] = rows.get(index, 0) + 1
        sums[index] = sums.get(index, Decimal(0)) + weight
    return {
        **{f"rows_{i}": n for i, n in rows.items()},
        **{f"weight_sum_{i}": float(v) for i, v in sums.items()},
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            table_def.name,
            deps=[bronze_portfolio],
            group_name="silver",
            kinds={"parquet"},
            description=table_def.description,
            metadata=table_metadata(table_def),
        )
        for table_def in (SILVER_HEADER, SILVER_ASSETS)
    ],
    check_specs=SPECS,
    **PARTITIONED,
)
def silver(context: dg.AssetExecutionContext, lake: LakeResource):
    storage = lake.storage()
    book = CheckBook(SPECS, context)
    days = partition_days(context)
    built = 0
    for done, day in enumerate(days, start=1):
        log_progress(context, done, len(days), "silver")
        key = day.isoformat()
        bronze = read_partition(storage, BRONZE_PORTFOLIO, day)
        if bronze is None:
            for table_def in (SILVER_HEADER, SILVER_ASSETS):
                delete_partition(storage, table_def, day)
            context.log.warning(f"{day}: no bronze partition; nothing to type")
            for asset_key in ("silver_header", "silver_assets"):
                context.add_asset_metadata(
                    {"dagster/row_count": 0, "status": "no bronze partition"},
                    asset_key=asset_key,
                    partition_key=key,
                )
            continue
        header, assets = silver_tables(bronze, day)
        for rule in SILVER_ASSET_RULES:
            extra = {"header": header} if rule.name == "quantities_sum_to_header_total" else {}
            book.record(rule.name, day, rule.fn(assets, day, **extra))
        header_key = write_partition(storage, SILVER_HEADER, day, header)
        assets_key = write_partition(storage, SILVER_ASSETS, day, assets)
        built += 1
        context.add_asset_metadata(
            {
                "dagster/row_count": header.num_rows,
                "dagster/uri": storage.uri(header_key),
                "reductor_notes": ", ".join(n for n in header.column("reductor_note").to_pylist() if n)
                or "none",
            },
            asset_key="silver_header",
            partition_key=key,
        )
        context.add_asset_metadata(
            {
                "dagster/row_count": assets.num_rows,
                "dagster/uri": storage.uri(assets_key),
                **per_index_metadata(assets),
                "top_weights": dg.MetadataValue.md(top_weights_markdown(assets)),
            },
            asset_key="silver_assets",
            partition_key=key,
        )
    if not built:
        raise dg.Failure(
            f"silver: no bronze partition for {', '.join(map(str, days[:10]))}; "
            "materialize bronze_portfolio first"
        )
    yield dg.MaterializeResult(asset_key="silver_header")
    yield dg.MaterializeResult(asset_key="silver_assets", check_results=book.results())
