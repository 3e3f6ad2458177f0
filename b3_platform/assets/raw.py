"""raw_portfolio: every capture of B3's GetPortfolioDay, byte for byte, append-only.

B3 serves only the current portfolio, so only today's partition can be fetched; a past partition
holds what was captured on its day or imported from saved files (`python -m b3_platform import`).

Today's capture takes every index of the day's capture list (b3_platform.discovery) one after the
other, pausing between calls, within a time budget, logging "12/34 IBXX stored". B3 publishes the
next session's portfolio before it opens, so a response dated the next trading day is filed under
that date (and reported as that partition's materialization); any other date is refused.
"""

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from b3_platform import trading_calendar
from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec
from b3_platform.assets.stock_index import raw_stock_index
from b3_platform.b3.client import B3RequestError, Capture
from b3_platform.b3.contract import ContractError
from b3_platform.lake.raw_store import RawStore
from b3_platform.live_capture import LiveCaptures, not_judged
from b3_platform.partition_metadata import add_partition_metadata
from b3_platform.partitions import partition_days
from b3_platform.quality import configured_indices_present
from b3_platform.resources import B3ApiResource, LakeResource

IMPORT_HINT = (
    "B3 only serves the current portfolio; import saved files with "
    "`python -m b3_platform import PATH... [--index CODE]`"
)

INDICES_CHECK = check_spec(
    "all_configured_indices_captured",
    "raw_portfolio",
    blocking=False,
    description=(
        "Every index of the day's capture list (configured, or discovered from GetStockIndex) has a "
        "capture for the date (warns); says which list it expected. Judged from the lake's first "
        "capture from B3's API on: a date before it (imported history only) reads 'not judged'."
    ),
)


def store_capture(store: RawStore, day: dt.date, capture: Capture) -> tuple[str, bool]:
    """File one API capture under its date; returns (capture_id, stored_now)."""
    first = capture.pages[0]
    stored, new = store.store(
        day,
        capture.index,
        [p.body for p in capture.pages],
        fetched_at=capture.fetched_at,
        source_format="json",
        meta={
            "source": "api",
            "url": first.url,
            "params": first.params,
            "http_status": first.status,
            "language": capture.portfolio.language,
            "header_date": capture.portfolio.header.date,
        },
        pages_meta=[
            {
                "url": p.url,
                "params": p.params,
                "http_status": p.status,
                "fetched_at": p.fetched_at.isoformat(),
            }
            for p in capture.pages
        ],
    )
    return stored.capture_id, new


@dataclass
class DayCapture:
    """What one capture of today's list did: captures filed per date (today, or the next trading day
    when B3 already serves it) and the error of each index that could not be captured."""

    filed: dict[dt.date, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def capture_day(
    context: dg.AssetExecutionContext, store: RawStore, b3: B3ApiResource, day: dt.date, codes: Sequence[str]
) -> DayCapture:
    """Fetch every index of `codes` one at a time, pausing `b3.pause_seconds` between calls (B3's
    WAF and CDN are shared and flaky: one caller at a time is the polite load), each stored as soon
    as it arrives. After `b3.capture_budget_seconds` no new index is attempted (B3 down would
    otherwise cost every index its full retries), so the schedule's next attempt comes in time."""
    result = DayCapture()
    client = b3.client()
    next_day = trading_calendar.next_trading_day(day)
    started = time.monotonic()
    total = len(codes)
    for number, index in enumerate(codes, start=1):
        spent = time.monotonic() - started
        if spent > b3.capture_budget_seconds:
            reason = f"not attempted: the capture budget of {b3.capture_budget_seconds:g} s was used up"
            for rest in codes[number - 1 :]:
                result.errors[rest] = reason
            context.log.error(f"{number - 1}/{total}: {reason}; {total - number + 1} indices left")
            break
        if number > 1 and b3.pause_seconds > 0:
            time.sleep(b3.pause_seconds)
        try:
            capture = client.fetch_portfolio_day(
                index,
                requested_date=day,
                segment=b3.segment,
                language=b3.language,
                also_accepted=(next_day,),
            )
        except (ContractError, B3RequestError) as exc:
            result.errors[index] = str(exc)
            context.log.error(f"{number}/{total} {index} failed: {exc}")
            continue
        filed = capture.portfolio.reference_date
        capture_id, new = store_capture(store, filed, capture)
        result.filed.setdefault(filed, {})[index] = capture_id
        where = "" if filed == day else f" under {filed} (B3 already serves the next trading day's portfolio)"
        context.log.info(
            f"{number}/{total} {index} {'stored' if new else 'identical to a stored capture'}{where}: {capture_id}"
        )
    return result


def _report_ahead(
    context: dg.AssetExecutionContext, day: dt.date, filed: dict[dt.date, dict[str, str]]
) -> None:
    """A capture filed under the next trading day is that partition's materialization: the UI shows
    it captured, and its own day's run (which builds the layers below) finds it in raw."""
    for ahead, captured in sorted(filed.items()):
        if ahead == day:
            continue
        context.log_event(
            dg.AssetMaterialization(
                asset_key=context.asset_key,
                partition=ahead.isoformat(),
                metadata={
                    "indices": ", ".join(sorted(captured)),
                    "captured_this_run": ", ".join(sorted(captured)),
                    "captured_ahead_on": day.isoformat(),
                    "latest_captures": dg.MetadataValue.json(
                        {ix: {"capture_id": cid, "source": "api"} for ix, cid in sorted(captured.items())}
                    ),
                },
            )
        )


def _named(failures: list[str]) -> str:
    """`IBXX 2025-07-10, SMLL 2025-07-10`: what the problems beyond the first ten are about, so a day
    of 34 indices with B3 down still names every index it lacks."""
    return ", ".join(f.split(": ", 1)[0] for f in failures)


@dg.asset(
    group_name="raw",
    kinds={"json"},
    # The listing first: it decides which indices are captured (and its failure never stops this).
    deps=[raw_stock_index],
    check_specs=[INDICES_CHECK],
    description=__doc__,
    **PARTITIONED,
)
def raw_portfolio(context: dg.AssetExecutionContext, lake: LakeResource, b3: B3ApiResource):
    store = lake.raw()
    today = trading_calendar.today_sao_paulo()
    book = CheckBook([INDICES_CHECK], context)
    live = LiveCaptures(store)
    failures: list[str] = []
    held_every_date = True
    for day in partition_days(context):
        key = day.isoformat()
        captured_now: dict[str, str] = {}
        if day > today:
            failures.append(f"{day} is in the future (today in São Paulo is {today})")
            held_every_date = False
            continue
        plan = b3.capture_plan(day)
        if day == today:
            (context.log.warning if plan.fallback else context.log.info)(
                f"{day}: capturing {plan.describe(day)}"
            )
            done = capture_day(context, store, b3, day, plan.codes)
            captured_now = done.filed.get(day, {})
            _report_ahead(context, day, done.filed)
            held = store.indices_on(day)
            for index, error in done.errors.items():
                if index in held:
                    context.log.warning(f"{index} {day}: kept the capture stored earlier ({error})")
                else:
                    failures.append(f"{index} {day}: {error}")
            for ahead, captured in done.filed.items():
                for index in sorted(set(captured) - held) if ahead != day else ():
                    failures.append(
                        f"{index} {day}: B3 already serves the portfolio of {ahead}, and {day} was not "
                        f"captured before. {IMPORT_HINT}"
                    )
        latest = store.latest_by_index(day)
        if not latest:
            held_every_date = False
            if day < today:
                failures.append(f"{day}: nothing captured. {IMPORT_HINT}")
            continue
        if day == today or live.began_by(day):
            book.record(
                INDICES_CHECK.name, day, configured_indices_present(latest, plan.codes, plan.describe(day))
            )
        else:
            book.record(INDICES_CHECK.name, day, [], not_judged=not_judged(day, "the day's capture list"))
        add_partition_metadata(
            context,
            {
                "capture_list": plan.describe(day),
                "capture_list_source": plan.source,
                "indices": ", ".join(sorted(latest)),
                "index_count": len(latest),
                "captured_this_run": ", ".join(sorted(captured_now)) or "none (already stored)",
                "latest_captures": dg.MetadataValue.json(
                    {
                        # What the capture's sidecar holds (an import has no url, a live capture
                        # no file_name): no nulls stored for every index on every date.
                        ix: {
                            key: value
                            for key, value in (
                                ("capture_id", c.capture_id),
                                ("source", c.meta.get("source")),
                                ("file_name", c.meta.get("file_name")),
                                ("url", c.meta.get("url")),
                            )
                            if value is not None
                        }
                        for ix, c in sorted(latest.items())
                    }
                ),
            },
            asset_key=context.asset_key,
            partition_key=key,
        )
    if failures:
        # Whatever was captured above is already stored. When every date of the run holds captures
        # (today's with an index missing), raw is reported materialized first, so the layers below
        # follow for the indices that were captured (automation); otherwise only the completeness
        # check is reported (it is what the UI shows for the day). Then the step fails naming
        # what is missing.
        if held_every_date:
            yield dg.MaterializeResult()  # first, so each date's check evaluation names it
            yield from book.results()
        else:
            yield from book.results()
        more = f" | … {len(failures) - 10} more: {_named(failures[10:])}" if len(failures) > 10 else ""
        raise dg.Failure(
            description=f"raw_portfolio: {len(failures)} problem(s): " + " | ".join(failures[:10]) + more,
            metadata={"problems": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures))},
        )
    # The materializations first: in a range run each date's check evaluation names its date's.
    yield dg.MaterializeResult()
    yield from book.results()
