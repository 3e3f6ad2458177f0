"""The landing sensor: files dropped into the landing folder (locally) or the S3 landing prefix (on
AWS) are imported into raw like `python -m b3_platform import` does, and reported as raw
materializations, which the layers below follow by themselves (conditions.py)."""

import time
from collections import Counter
from pathlib import PurePosixPath

import dagster as dg

from b3_platform.assets import raw_portfolio
from b3_platform.importer import FileResult, import_body
from b3_platform.lake.raw_store import RawStore
from b3_platform.landing import LandedFile, LandingResource
from b3_platform.resources import LakeResource

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
    The tick's skip message sums it up and names the files ("5 landed file(s): 3 imported,
    2 rejected. Imported: IBOV/2025-07-10.json → IBOV 2025-07-10, …"; `tick_details`): the UI's tick
    list does not show asset events (dagster#33029), and each file also has its line in the tick's logs. Evaluating this sensor has effects, so its
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
    settled: list[tuple[LandedFile, FileResult]] = []
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
        settled.append((file, result))
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
    return dg.SensorResult(
        asset_events=events,
        skip_reason=f"{len(landed)} landed file(s): {summary}{tick_details(settled, events)}",
    )


#: How many files of each kind the tick's message names (the rest: "… N more"; every file has its
#: line in the tick's logs).
TICK_NAMES = 10
#: A rejection's reason is cut to this many characters in the tick's message (in full in its logs
#: and in landing_rejected/<name>.reason.txt).
TICK_REASON_CHARS = 160


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:TICK_NAMES])
    return shown + (f", … {len(items) - TICK_NAMES} more" if len(items) > TICK_NAMES else "")


def tick_details(settled: list[tuple[LandedFile, FileResult]], events: list[dg.AssetMaterialization]) -> str:
    """What the tick did, by name, after its counts: the UI shows a runless sensor's tick as
    "0 runs requested" whatever it did (Dagster 1.13 counts only run requests there), so this message,
    the tick's skip reason, is where the tick itself says which files went where: shown on hovering
    that tag and in the tick's details, beside the tick's logs (one line per file)."""
    imported = [f"{f.name} → {r.index} {r.day}" for f, r in settled if r.status == "imported"]
    rejected = [
        f"{f.name} ({r.reason[:TICK_REASON_CHARS]}{'…' if len(r.reason) > TICK_REASON_CHARS else ''})"
        for f, r in settled
        if r.status == "rejected"
    ]
    parts = []
    if imported:
        parts.append(f"imported: {_named(imported)}")
    if rejected:
        parts.append(f"rejected, moved to landing_rejected/: {_named(rejected)}")
    if events:
        days = sorted({e.partition for e in events if e.partition})
        parts.append(f"reported raw_portfolio {', '.join(days)}: the layers below follow")
    return "".join(f". {part[0].upper()}{part[1:]}" for part in parts)
