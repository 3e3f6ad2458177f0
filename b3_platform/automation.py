"""Automation: the daily capture (a job and its schedule), downstream layers that follow new data,
and the landing sensor that imports files dropped into the landing folder / S3 prefix.

B3 serves a day's portfolio from early morning until the next trading day replaces it: whatever is
not captured that day is gone. So the schedule tries twice on each trading day, São Paulo time;
the evening attempt is skipped when the morning one already stored every configured index.
"""

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

import dagster as dg

from b3_platform.assets import raw_portfolio
from b3_platform.trading_calendar import SAO_PAULO, TIMEZONE, is_trading_day
from b3_platform.importer import FileResult, import_body
from b3_platform.lake.raw_store import RawStore
from b3_platform.landing import LandedFile, LandingResource
from b3_platform.resources import B3ApiResource, LakeResource

CAPTURE_HOURS = (9, 20)  # morning attempt, evening retry (São Paulo time)

daily_capture_job = dg.define_asset_job(
    "daily_capture",
    selection=dg.AssetSelection.assets(raw_portfolio).downstream(),
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
GOLD_FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets("silver_assets"))
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follows new silver (same day and the day before)")

#: The catalog covers every date of every table: `any_deps_missing` would count the dates never
#: captured (back to 2015) and block it forever, so it waits only for runs in progress.
CATALOG_FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh after new tables")

CATALOG_ASSETS = {"athena_tables"}


def _condition(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.key == raw_portfolio.key:
        return spec  # raw comes from the schedule and from imports, never by itself
    name = spec.key.to_user_string()
    if name in CATALOG_ASSETS:
        condition = CATALOG_FOLLOWS_UPSTREAM
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


#: Bounded work per tick, well under Dagster's 60 s sensor evaluation timeout (an import costs
#: ~0.05 s locally, a few S3 requests more on AWS): at most this many files are taken, and none is
#: started after the budget; what is left stays in landing for a later tick (SQS: redelivered once
#: the queue's visibility timeout passes).
LANDING_MAX_FILES = 100
LANDING_BUDGET_SECONDS = 30.0


class LandingError(RuntimeError):
    """Files could not be imported for a reason other than their content (storage, permissions)."""


def _import_landed(store: RawStore, landed: LandedFile) -> FileResult:
    if landed.problem is not None:
        return FileResult(PurePosixPath(landed.name), "rejected", landed.problem)
    return import_body(store, landed.name, landed.body, file_name=landed.origin)


def _raw_materialization(result: FileResult, landed: LandedFile) -> dg.AssetMaterialization:
    if result.day is None:
        raise ValueError(f"{landed.origin}: an imported file without a header date cannot be reported")
    return dg.AssetMaterialization(
        asset_key=raw_portfolio.key,
        partition=result.day.isoformat(),
        metadata={
            "source": "landing",
            "index": result.index,
            "file_name": landed.origin,
            "capture_id": result.capture_id,
            "rows": result.rows,
        },
    )


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Imports files dropped into landing (local folder <data dir>/landing/, or the S3 landing prefix "
        "via its SQS event queue) like `import` does; rejected files go to landing_rejected/ with "
        "their reason. Imported dates are reported as raw_portfolio materializations, which the "
        "layers below follow by themselves."
    ),
)
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, landing: LandingResource):
    """No job target: the imported dates are reported as runless raw_portfolio materializations
    (`SensorResult.asset_events`, recorded by the daemon exactly like `import` records them), so
    `follow_upstream` requests bronze → silver → gold → athena_tables for those dates. A file is
    settled (removed from landing, its event acknowledged) only after it was filed in raw; a
    failure leaves it in landing for a later tick. Duplicates report nothing: raw did not change.
    The tick's skip message sums it up ("5 landed file(s): 3 imported, 2 rejected"): the UI's tick
    list does not show asset events (dagster#33029). Evaluating this sensor has effects, so its
    "Preview tick result" in the UI imports and settles files too, and committing a preview drops
    the asset events (dagster#33974): let the daemon run it."""
    disabled = landing.disabled_reason()
    if disabled is not None:
        return dg.SkipReason(disabled)
    landed = landing.receive(LANDING_MAX_FILES, log=context.log)
    if not landed:
        return dg.SkipReason(f"nothing landed in {landing.describe()}")
    store = lake.raw()
    deadline = time.monotonic() + LANDING_BUDGET_SECONDS
    events: list[dg.AssetMaterialization] = []
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for position, file in enumerate(landed):
        if position and time.monotonic() > deadline:  # at least one file per tick, whatever the budget
            counts["left for the next tick"] += 1
            continue
        try:
            result = _import_landed(store, file)
        except Exception as exc:
            failures.append(f"{file.origin}: {exc}")
            context.log.error(f"failed    {file.origin}: {exc} (left in landing, retried later)")
            continue
        counts[result.status] += 1
        where = f"{result.index} {result.day}" if result.day else ""
        context.log.info(
            f"{result.status:<9} {file.origin}  {where}{f' ({result.reason})' if result.reason else ''}"
        )
        if result.status == "imported":
            events.append(_raw_materialization(result, file))
        try:
            landing.settle(file, result, log=context.log)
        except Exception as exc:
            failures.append(f"{file.origin}: could not settle: {exc}")
            context.log.error(f"could not settle {file.origin}: {exc} (seen again later: then a duplicate)")
    order = ("imported", "duplicate", "rejected", "left for the next tick")
    summary = ", ".join(f"{counts[status]} {status}" for status in order if counts[status])
    if failures:
        summary += f", {len(failures)} failed"
        if not events:
            raise LandingError(f"{len(failures)} landed file(s) failed: " + "; ".join(failures[:5]))
    return dg.SensorResult(asset_events=events, skip_reason=f"{len(landed)} landed file(s): {summary}")
