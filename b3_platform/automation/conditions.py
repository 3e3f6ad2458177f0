"""Downstream layers follow new data: the automation conditions attached to every layer below raw,
and the sensor that evaluates them."""

from collections.abc import Sequence

import dagster as dg

from b3_platform.assets import raw_portfolio
from b3_platform.assets.announced import ANNOUNCED_RAW_ASSETS

#: A partition of a layer is rebuilt when one it reads was updated (any date, not only the latest:
#: an import of 2021 files must flow down too), once its inputs exist and nothing is running on
#: them. `since_last_handled` stops a second request for an update already handled, including when
#: the capture job built the layer in the same run.
FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follows new upstream data")

#: Gold of D also reads silver of the previous trading day, which an archive with gaps may lack
#: (gold then says "not compared"): only silver_header, which is built with silver_assets of the
#: same day, must exist. Rebuilding silver of D-1 (a gap filled) rebuilds gold of D.
#: Inputs a table may follow without (gold: silver_assets of the previous trading day).
MAY_BE_MISSING = dg.AssetSelection.assets("silver_assets")

GOLD_FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing().ignore(MAY_BE_MISSING)
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follows new silver (same day and the day before)")

#: A table whose inputs were updated since the last tick while it was not, and has every input it
#: needs: its own condition may request it on this very tick (gold, after silver was rebuilt by
#: hand or by a run of silver alone). A date lacking an input (gold of the day after the newest)
#: will not follow, so it does not hold the catalog back.
WILL_FOLLOW_ITS_INPUTS = (
    dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    & ~dg.AutomationCondition.newly_updated()
    & ~dg.AutomationCondition.any_deps_missing().ignore(MAY_BE_MISSING)
).with_label("inputs just updated, table not yet")

#: The catalog refreshes once every layer that follows an update has been built, not alongside
#: them. `will_be_requested` cannot say so (Dagster counts only parents that can share the child's
#: run, and the unpartitioned catalog never shares a run with a partitioned table), so the catalog
#: waits while any table it covers is in progress (a requested run or backfill is, from the next
#: tick on) or has inputs just updated that it may follow on this tick. Then it refreshes on the
#: tick that sees the last layer's materialization. `any_deps_missing` would count the dates never
#: captured (back to 2015) and block it forever, so it is not used.
CATALOG_FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_match(WILL_FOLLOW_ITS_INPUTS)
).with_label("refresh after every layer that follows new tables")

CATALOG_ASSETS = {"athena_tables"}

#: The dashboard redraws after the catalog is refreshed (which follows every new table), once
#: nothing is running on it; unpartitioned like the catalog, so nothing can be "missing".
DASHBOARD_FOLLOWS_CATALOG = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("redraw after the catalog")

DASHBOARD_ASSETS = {"dashboard"}


def _condition(spec: dg.AssetSpec) -> dg.AssetSpec:
    if (
        spec.key == raw_portfolio.key
        or spec.group_name == "raw"
        or any(spec.key == a.key for a in ANNOUNCED_RAW_ASSETS)
    ):
        # raw (portfolios, the GetStockIndex listing, the announced portfolios) comes from the
        # schedule and from imports, never by itself
        return spec
    name = spec.key.to_user_string()
    if name in CATALOG_ASSETS:
        condition = CATALOG_FOLLOWS_UPSTREAM
    elif name in DASHBOARD_ASSETS:
        condition = DASHBOARD_FOLLOWS_CATALOG
    elif spec.group_name == "gold":
        condition = GOLD_FOLLOWS_UPSTREAM
    else:
        condition = FOLLOWS_UPSTREAM
    return spec.replace_attributes(automation_condition=condition)


def with_automation(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets with the conditions above attached to every layer below raw."""
    return [a.map_asset_specs(_condition) for a in assets]


follow_upstream_sensor = dg.AutomationConditionSensorDefinition(
    "follow_upstream",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Evaluates the layers' automation conditions: after an import or a capture, bronze → silver → "
        "gold → athena_tables materialize for the new dates (several dates: one single-run backfill)."
    ),
)
