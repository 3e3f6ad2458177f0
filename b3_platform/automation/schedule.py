"""The daily capture: a job that captures the day's portfolios and builds the layers below, and its
schedule.

B3 serves a day's portfolio from early morning until the next trading day replaces it: whatever is
not captured that day is gone. So the schedule tries twice on each trading day, São Paulo time;
the evening attempt is skipped when the morning one already stored every configured index.
"""

import dagster as dg

from b3_platform.assets import raw_portfolio
from b3_platform.assets.announced import ANNOUNCED_RAW_ASSETS
from b3_platform.resources import B3ApiResource, LakeResource
from b3_platform.trading_calendar import SAO_PAULO, TIMEZONE, is_trading_day

CAPTURE_HOURS = (9, 20)  # morning attempt, evening retry (São Paulo time)

daily_capture_job = dg.define_asset_job(
    "daily_capture",
    selection=dg.AssetSelection.assets(raw_portfolio).downstream()
    # The announced portfolios (theoretical, preview) are captured in the same run, as their own steps.
    | dg.AssetSelection.assets(*ANNOUNCED_RAW_ASSETS).downstream(),
    description="Capture the day's portfolios from B3 and build bronze and silver for that day.",
)


@dg.schedule(
    job=daily_capture_job,
    cron_schedule=f"0 {','.join(map(str, CAPTURE_HOURS))} * * 1-5",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Each B3 trading day at 09:00 and 20:00 São Paulo time (the second only if needed).",
)
def daily_capture_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource, b3: B3ApiResource):
    when = context.scheduled_execution_time.astimezone(SAO_PAULO)
    day = when.date()
    if not is_trading_day(day):
        return dg.SkipReason(f"{day} is not a B3 trading day")
    attempt = "morning" if when.hour < 12 else "evening"
    if attempt == "evening":
        missing = sorted(set(b3.capture_list()) - lake.raw().indices_on(day))
        if not missing:
            return dg.SkipReason(f"{day}: every configured index was already captured")
        context.log.info(f"{day}: evening retry for {', '.join(missing)}")
    return dg.RunRequest(
        run_key=f"{day}-{attempt}", partition_key=day.isoformat(), tags={"b3_platform/attempt": attempt}
    )
