"""The daily capture: a job that captures the day's listing and portfolios and builds the layers
below, and its schedule.

B3 serves a day's portfolio from before the session opens until it publishes the next session's
(in the evening or the next morning): whatever is not captured in that window is gone. So the
schedule tries three times on each trading day, São Paulo time:

- 09:00 (morning): always. B3 late (still serving the previous day) is refused, not filed;
- 13:00 (midday): only when an index of the day's list is still missing. Mid-session B3 serves the
  day's portfolio for certain, so a failed morning (B3 down, CDN errors) is made good here even if
  B3 switches early in the evening;
- 20:00 (evening): when the day is still incomplete, the whole job again; when it is complete, a
  look-ahead capture of raw only: if B3 already serves the next trading day's portfolio it is filed
  under that date, so a failed morning tomorrow costs nothing.
"""

import dagster as dg

from b3_platform.assets import raw_portfolio, raw_stock_index
from b3_platform.assets.announced import ANNOUNCED_RAW_ASSETS
from b3_platform.assets.dashboard import dashboard
from b3_platform.resources import B3ApiResource, LakeResource
from b3_platform.trading_calendar import SAO_PAULO, TIMEZONE, is_trading_day, next_trading_day

#: The attempts' São Paulo hours: morning, midday retry, evening retry / look-ahead.
CAPTURE_HOURS = {9: "morning", 13: "midday", 20: "evening"}

daily_capture_job = dg.define_asset_job(
    "daily_capture",
    selection=(
        dg.AssetSelection.assets(raw_stock_index, raw_portfolio).downstream()
        # The announced portfolios (theoretical, preview) are captured in the same run, as their own steps.
        | dg.AssetSelection.assets(*ANNOUNCED_RAW_ASSETS).downstream()
    )
    # The dashboard draws every date of the history, so it would make the daily run grow with the
    # lake's age: its automation condition redraws it after the catalog this job refreshed.
    - dg.AssetSelection.assets(dashboard),
    description=(
        "Capture the day's GetStockIndex listing, every listed index's portfolio and its announced "
        "portfolios from B3, and build the layers below for that day, then the catalog (the "
        "dashboard is redrawn after it by automation)."
    ),
)


@dg.schedule(
    job=daily_capture_job,
    cron_schedule=f"0 {','.join(map(str, CAPTURE_HOURS))} * * 1-5",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Each B3 trading day at 09:00, 13:00 (if anything is missing) and 20:00 São Paulo time (the "
        "missing indices, else a look-ahead capture of the next trading day's portfolio)."
    ),
)
def daily_capture_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource, b3: B3ApiResource):
    when = context.scheduled_execution_time.astimezone(SAO_PAULO)
    day = when.date()
    if not is_trading_day(day):
        return dg.SkipReason(f"{day} is not a B3 trading day")
    attempt = CAPTURE_HOURS.get(when.hour) or ("morning" if when.hour < 12 else "evening")
    request = dict(
        run_key=f"{day}-{attempt}", partition_key=day.isoformat(), tags={"b3_platform/attempt": attempt}
    )
    if attempt == "morning":
        return dg.RunRequest(**request)
    missing = sorted(set(b3.capture_plan(day).codes) - lake.raw().indices_on(day))
    if missing:
        context.log.info(f"{day}: {attempt} retry for {', '.join(missing)}")
        return dg.RunRequest(**request)
    if attempt == "midday":
        return dg.SkipReason(f"{day}: every index of the day's list was already captured")
    ahead = next_trading_day(day)
    context.log.info(f"{day}: complete; look-ahead capture in case B3 already serves {ahead}")
    return dg.RunRequest(**request, asset_selection=[raw_stock_index.key, raw_portfolio.key])
