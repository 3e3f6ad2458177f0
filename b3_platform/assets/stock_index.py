"""raw_stock_index: B3's GetStockIndex listing, byte for byte; index_members: it typed, one row per
(date, index, ticker).

The listing is how the daily capture learns which indices B3 publishes, so it is fetched first
(raw_portfolio depends on it). Its failure must not cost the day's portfolios: raw_stock_index then
logs a warning, says in its metadata which listing the capture list falls back to, and succeeds;
raw_portfolio's completeness check says which list it expected. Like the portfolios, only today's
partition is fetched; a past partition holds what was captured on its day.
"""

import datetime as dt

import dagster as dg

from b3_platform import trading_calendar
from b3_platform.assets.common import PARTITIONED, table_metadata
from b3_platform.b3.client import B3RequestError
from b3_platform.b3.contract import ContractError
from b3_platform.b3.stock_index import LISTING_SLOT, decode_stock_index_json
from b3_platform.discovery import listing_store, store_listing
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, DateStream, DateTables, NoInput
from b3_platform.lake.schemas import INDEX_MEMBERS
from b3_platform.partitions import partition_days
from b3_platform.resources import B3ApiResource, LakeResource
from b3_platform.transforms.index_members import index_members_table


@dg.asset(group_name="raw", kinds={"json"}, description=__doc__, **PARTITIONED)
def raw_stock_index(context: dg.AssetExecutionContext, lake: LakeResource, b3: B3ApiResource):
    store = listing_store(lake.raw())
    today = trading_calendar.today_sao_paulo()
    for day in partition_days(context):
        status = None
        if day == today:
            try:
                capture = b3.client().fetch_stock_index()
            except (ContractError, B3RequestError) as exc:
                status = f"fetch failed: {exc}"
            else:
                stored, new = store_listing(store, day, capture)
                status = f"{'stored' if new else 'identical to'} capture {stored.capture_id}"
                context.log.info(
                    f"GetStockIndex {day}: {status}; {len(capture.listing.index_codes)} indices, "
                    f"{len(capture.listing.stocks)} stocks"
                )
        elif day > today:
            status = f"{day} is in the future (today in São Paulo is {today})"
        plan = b3.capture_plan(day)
        listing = store.latest_by_index(day).get(LISTING_SLOT)
        if listing is None:
            # Today's listing failing is news (the capture list falls back); a past day that never
            # had one is not (B3 serves only the current listing).
            log = context.log.warning if day >= today else context.log.info
            status = status or "nothing captured (B3 serves only the current listing)"
            log(f"GetStockIndex {day}: {status}; the capture list is {plan.describe(day)}")
        metadata = {
            "status": status or "already stored",
            "capture_list": plan.describe(day),
            "capture_list_source": plan.source,
            "indices": ", ".join(plan.codes),
            "index_count": len(plan.codes),
        }
        if listing is not None:
            metadata |= {"capture_id": listing.capture_id, "update": str(listing.meta.get("update"))}
        context.add_asset_metadata(metadata, partition_key=day.isoformat())
    return dg.MaterializeResult()


@dg.asset(
    deps=[raw_stock_index],
    group_name="silver",
    kinds={"parquet"},
    description=INDEX_MEMBERS.description,
    metadata=table_metadata(INDEX_MEMBERS),
    io_manager_key=LAKE_IO_MANAGER,
    **PARTITIONED,
)
def index_members(context: dg.AssetExecutionContext, lake: LakeResource) -> DateStream:
    """A date without a listing holds no rows (and says so) instead of failing: the listing is
    optional for the day's portfolios, so a missing one must not stop the catalog after it."""
    store = listing_store(lake.raw())

    def build(day: dt.date) -> DateTables | NoInput:
        capture = store.latest_by_index(day).get(LISTING_SLOT)
        if capture is None:
            return NoInput("no GetStockIndex capture for the date")
        listing = decode_stock_index_json(store.read_bodies(capture)[0])
        table = index_members_table(listing, capture.capture_id)
        return DateTables(
            {INDEX_MEMBERS.name: table},
            shared={
                "indices": len(listing.index_codes),
                "stocks": len(listing.stocks),
                "update": listing.update.isoformat(),
                "period": f"{listing.year}: months {listing.start_month}–{listing.end_month}",
            },
        )

    return DateStream(
        context,
        (INDEX_MEMBERS,),
        partition_days(context),
        build,
        name="index_members",
        nothing_built_hint="materialize raw_stock_index on a trading day first",
    )
