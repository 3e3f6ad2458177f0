"""raw_portfolio: every capture of B3's GetPortfolioDay, byte for byte, append-only.

B3 serves only the current portfolio, so only today's partition can be fetched; a past partition
holds what was captured on its day or imported from saved files (`python -m b3_platform import`).
"""

import datetime as dt

import dagster as dg

from b3_platform import trading_calendar
from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec
from b3_platform.b3.client import B3RequestError, Capture
from b3_platform.b3.contract import ContractError
from b3_platform.lake.raw_store import RawStore
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
    description="Every index of the configured list has a capture for the date (warns).",
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


@dg.asset(
    group_name="raw",
    kinds={"json"},
    check_specs=[INDICES_CHECK],
    description=__doc__,
    **PARTITIONED,
)
def raw_portfolio(context: dg.AssetExecutionContext, lake: LakeResource, b3: B3ApiResource):
    store = lake.raw()
    configured = b3.capture_list()
    today = trading_calendar.today_sao_paulo()
    book = CheckBook([INDICES_CHECK], context)
    failures: list[str] = []
    client = None
    for day in partition_days(context):
        key = day.isoformat()
        captured_now: dict[str, str] = {}
        if day > today:
            failures.append(f"{day} is in the future (today in São Paulo is {today})")
            continue
        if day == today:
            client = client or b3.client()
            for index in configured:
                try:
                    capture = client.fetch_portfolio_day(
                        index, requested_date=day, segment=b3.segment, language=b3.language
                    )
                except (ContractError, B3RequestError) as exc:
                    context.log.error(str(exc))
                    failures.append(f"{index} {day}: {exc}")
                    continue
                capture_id, new = store_capture(store, day, capture)
                captured_now[index] = capture_id
                context.log.info(f"{index} {day}: {'stored' if new else 'identical to'} capture {capture_id}")
        latest = store.latest_by_index(day)
        if not latest:
            if day < today:
                failures.append(f"{day}: nothing captured. {IMPORT_HINT}")
            continue
        book.record(INDICES_CHECK.name, day, configured_indices_present(latest, configured))
        context.add_asset_metadata(
            {
                "indices": ", ".join(sorted(latest)),
                "index_count": len(latest),
                "captured_this_run": ", ".join(sorted(captured_now)) or "none (already stored)",
                "latest_captures": dg.MetadataValue.json(
                    {
                        ix: {
                            "capture_id": c.capture_id,
                            "source": c.meta.get("source"),
                            "file_name": c.meta.get("file_name"),
                            "url": c.meta.get("url"),
                        }
                        for ix, c in sorted(latest.items())
                    }
                ),
            },
            partition_key=key,
        )
    if failures:
        # Whatever was captured above is already stored; the completeness check is still reported
        # (it is what the UI shows for the day), then the run fails naming what is missing.
        yield from book.results()
        raise dg.Failure(
            description=f"raw_portfolio: {len(failures)} problem(s): " + " | ".join(failures[:10]),
            metadata={"problems": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures))},
        )
    # The materializations first: in a range run each date's check evaluation names its date's.
    yield dg.MaterializeResult()
    yield from book.results()
