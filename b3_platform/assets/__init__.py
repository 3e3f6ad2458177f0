"""Dagster assets, one module per layer; their checks are computed beside them."""

from b3_platform.assets.announced import ANNOUNCED_ASSETS
from b3_platform.assets.athena_tables import athena_tables
from b3_platform.assets.bronze import bronze_portfolio
from b3_platform.assets.dashboard import dashboard
from b3_platform.assets.gold import gold_tables
from b3_platform.assets.raw import raw_portfolio
from b3_platform.assets.silver import silver
from b3_platform.assets.stock_index import index_members, raw_stock_index

ALL_ASSETS = [
    raw_portfolio,
    bronze_portfolio,
    silver,
    gold_tables,
    athena_tables,
    raw_stock_index,
    index_members,
    *ANNOUNCED_ASSETS,
    dashboard,
]
