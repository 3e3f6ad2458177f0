"""B3's announced portfolios: the quadrimester's theoretical portfolio and the next one's preview.

raw_theoretical_portfolio / raw_preview_portfolio → silver_theoretical / silver_preview →
announced_changes (preview vs theoretical, per capture date) and announced_accuracy (on a
rebalance date, how the day portfolio matched the previews).

Each method is its own raw asset: a capture failing for one (B3's preview is the less known of the
two) fails only that asset and what is below it, never the other method's captures nor the day
portfolio. Like the day portfolio, both are served only for the present: only today's partition is
fetched. Unlike it they cannot be imported from saved files, so a past date without captures is
reported (a warning check, metadata), not failed: a backfill of the day portfolio's history is not
stopped by them.
"""

import datetime as dt
import json

import dagster as dg

from b3_platform import trading_calendar
from b3_platform.announced_quality import announced_rules
from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec, check_specs, table_metadata
from b3_platform.b3.announced import (
    PREVIEW_METHOD,
    STOCK_INDEX,
    THEORETICAL_METHOD,
    AnnouncedCapture,
    AnnouncedMethod,
    Quadrimester,
    StatedPeriod,
    decode_announced_json,
    fetch_announced,
    quadrimester_from_stock_index,
)
from b3_platform.b3.client import B3RequestError
from b3_platform.b3.contract import ContractError
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, DateReader, DateStream, DateTables, NoInput
from b3_platform.lake.paths import META_SUFFIX, raw_prefix
from b3_platform.lake.raw_store import RawCapture, RawStore
from b3_platform.lake.schemas import (
    ANNOUNCED_ACCURACY,
    ANNOUNCED_CHANGES,
    SILVER_ASSETS,
    SILVER_PREVIEW,
    SILVER_THEORETICAL,
    TableDef,
)
from b3_platform.lake.storage import Storage
from b3_platform.live_capture import LiveCaptures, not_judged
from b3_platform.partitions import partition_days
from b3_platform.quality import configured_indices_present
from b3_platform.resources import B3ApiResource, LakeResource
from b3_platform.transforms import announced as transform

NOT_IMPORTABLE = (
    "B3 serves only the current announced portfolios and they cannot be imported from saved files"
)


# --- the quadrimester of a date -------------------------------------------------------------------


def stated_period(storage: Storage, day: dt.date) -> StatedPeriod:
    """The quadrimester in force on `day`: as GetStockIndex's newest capture of the date states it,
    else derived from the date (and `source` says which)."""
    metas = sorted(
        (k for k in storage.list_keys(raw_prefix(day, method=STOCK_INDEX)) if k.endswith(META_SUFFIX)),
        key=lambda k: k.rsplit("/", 1)[1],
        reverse=True,
    )
    for key in metas:
        try:
            meta = json.loads(storage.read_bytes(key))
            stated = quadrimester_from_stock_index(storage.read_bytes(meta["pages"][0]["key"]))
        except (KeyError, IndexError, TypeError, ValueError):
            stated = None
        if stated is not None:
            capture_id = key.rsplit("/", 1)[1][: -len(META_SUFFIX)]
            return StatedPeriod(stated, f"stated by {STOCK_INDEX} capture {capture_id}")
    return StatedPeriod(
        Quadrimester.containing(day),
        f"derived from the trading date {day} (no {STOCK_INDEX} capture of the date states one)",
    )


def period_of(method: AnnouncedMethod, current: StatedPeriod) -> StatedPeriod:
    """The theoretical portfolio is the current quadrimester's; the preview, the next one's."""
    if method is THEORETICAL_METHOD:
        return current
    return StatedPeriod(
        current.quadrimester.following(), f"the quadrimester after the current one, {current.source}"
    )


# --- raw ------------------------------------------------------------------------------------------


def store_announced(store: RawStore, day: dt.date, capture: AnnouncedCapture) -> tuple[str, bool]:
    """File one capture under the São Paulo trading day it was fetched on; (capture_id, stored_now)."""
    page, portfolio = capture.page, capture.portfolio
    stored, new = store.store(
        day,
        capture.index,
        [page.body],
        fetched_at=page.fetched_at,
        source_format="json",
        meta={
            "source": "api",
            "method": capture.method.method,
            "url": page.url,
            "params": page.params,
            "http_status": page.status,
            "language": portfolio.language,
            "published": portfolio.published,
            "notes": list(portfolio.notes),
        },
    )
    return stored.capture_id, new


def _raw_asset(method: AnnouncedMethod) -> dg.AssetsDefinition:
    name = f"raw_{method.kind}_portfolio"
    indices_check = check_spec(
        "all_configured_indices_captured",
        name,
        blocking=False,
        description=(
            f"Every index of the capture list has a {method.method} capture for the date (warns). "
            "Judged from the lake's first live capture of the day portfolio on (before it the "
            "platform was not capturing, and these cannot be imported): earlier dates read 'not judged'."
        ),
    )

    @dg.asset(
        name=name,
        group_name="raw",
        kinds={"json"},
        check_specs=[indices_check],
        description=(
            f"Every capture of B3's {method.method}, byte for byte, append-only, filed under the São "
            "Paulo trading day it was fetched on (the response has no date). Only today's partition "
            f"is fetched; {NOT_IMPORTABLE}."
        ),
        **PARTITIONED,
    )
    def _raw(context: dg.AssetExecutionContext, lake: LakeResource, b3: B3ApiResource):
        store = lake.raw(method.method)
        storage = lake.storage()
        configured = b3.capture_list()
        today = trading_calendar.today_sao_paulo()
        book = CheckBook([indices_check], context)
        live = LiveCaptures(lake.raw())  # the day portfolio's API captures say when capturing began
        failures: list[str] = []
        client = None
        for day in partition_days(context):
            if day > today:
                failures.append(f"{day} is in the future (today in São Paulo is {today})")
                continue
            captured_now: dict[str, str] = {}
            unpublished: list[str] = []
            if day == today:
                client = client or b3.client()
                for done, index in enumerate(configured, start=1):
                    try:
                        capture = fetch_announced(client, method, index, day=day, language=b3.language)
                    except (ContractError, B3RequestError) as exc:
                        context.log.error(str(exc))
                        failures.append(f"{index} {day}: {exc}")
                        continue
                    capture_id, new = store_announced(store, day, capture)
                    captured_now[index] = capture_id
                    if not capture.portfolio.published:
                        unpublished.append(index)
                    for note in capture.portfolio.notes:
                        context.log.warning(f"{method.method} {index} {day}: {note}")
                    context.log.info(
                        f"{done}/{len(configured)} {method.method} {index} {day}: "
                        f"{'stored' if new else 'identical to'} capture {capture_id}"
                    )
            latest = store.latest_by_index(day)
            if day == today or live.began_by(day):
                book.record(indices_check.name, day, configured_indices_present(latest, configured))
            else:
                book.record(indices_check.name, day, [], not_judged=not_judged(day, "the capture list"))
            period = period_of(method, stated_period(storage, day))
            context.add_asset_metadata(
                {
                    "indices": ", ".join(sorted(latest)) or f"none: {NOT_IMPORTABLE}",
                    "index_count": len(latest),
                    "captured_this_run": ", ".join(sorted(captured_now)) or "none",
                    "unpublished_this_run": ", ".join(unpublished) or "none",
                    "quadrimester": str(period.quadrimester),
                    "quadrimester_source": period.source,
                },
                partition_key=day.isoformat(),
            )
        if failures:
            # What was captured above is stored; the other method and the day portfolio are other steps.
            yield from book.results()
            raise dg.Failure(
                description=f"{name}: {len(failures)} problem(s): " + " | ".join(failures[:10]),
                metadata={"problems": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures))},
            )
        # The materializations first: in a range run each date's check evaluation names its date's.
        yield dg.MaterializeResult()
        yield from book.results()

    return _raw


raw_theoretical_portfolio = _raw_asset(THEORETICAL_METHOD)
raw_preview_portfolio = _raw_asset(PREVIEW_METHOD)


# --- silver ---------------------------------------------------------------------------------------


def choose_announced(
    store: RawStore, method: AnnouncedMethod, day: dt.date, captures: dict[str, list[RawCapture]]
) -> tuple[list[transform.AnnouncedItem], list[str]]:
    """For each index the newest capture that satisfies the contract; (items, notes on skipped ones)."""
    items, skipped = [], []
    for index, candidates in captures.items():
        problems = []
        for capture in candidates:
            try:
                portfolio = decode_announced_json(
                    store.read_bodies(capture)[0],
                    method,
                    index=index,
                    language=(capture.meta.get("params") or {}).get("language"),
                    day=day,
                )
            except ContractError as exc:
                problems.append(f"{index} capture {capture.capture_id}: {exc}")
                continue
            items.append(transform.AnnouncedItem(index, capture.capture_id, portfolio))
            break
        else:
            raise ContractError(
                f"no valid capture among {len(candidates)}: " + " | ".join(problems),
                index=index,
                requested_date=day,
            )
        skipped.extend(problems)
    return items, skipped


PREVIEW_PUBLISHED = check_spec(
    "preview_published",
    SILVER_PREVIEW.name,
    blocking=False,
    description="Every captured index had a preview published (warns: B3 may serve none at times).",
)


def _silver_asset(method: AnnouncedMethod, raw_asset: dg.AssetsDefinition, table_def: TableDef):
    rules = announced_rules(table_def.name)
    specs = check_specs(rules, table_def.name, [PREVIEW_PUBLISHED] if method is PREVIEW_METHOD else [])

    @dg.asset(
        name=table_def.name,
        deps=[raw_asset],
        group_name="silver",
        kinds={"parquet"},
        check_specs=specs,
        description=table_def.description,
        metadata=table_metadata(table_def),
        io_manager_key=LAKE_IO_MANAGER,
        **PARTITIONED,
    )
    def _silver(context: dg.AssetExecutionContext, lake: LakeResource):
        store, storage = lake.raw(method.method), lake.storage()
        book = CheckBook(specs, context)

        def build(day: dt.date) -> DateTables | NoInput:
            captures = store.by_index(day)
            if not captures:
                return NoInput(f"no {method.method} capture ({NOT_IMPORTABLE})")
            items, skipped = choose_announced(store, method, day, captures)
            for note in skipped:
                context.log.warning(f"{day}: skipped {note}")
            period = period_of(method, stated_period(storage, day))
            table = transform.announced_table(items, period, day)
            for rule in rules:
                book.record(rule.name, day, rule.fn(table, day))
            unpublished = sorted(i.index for i in items if not i.portfolio.published)
            if method is PREVIEW_METHOD:
                book.record(
                    PREVIEW_PUBLISHED.name,
                    day,
                    [f"no preview published: {', '.join(unpublished)}"] if unpublished else [],
                )
            notes = [f"{i.index}: {n}" for i in items for n in i.portfolio.notes]
            return DateTables(
                {table_def.name: table},
                shared={
                    **{f"rows_{i.index}": len(i.portfolio.results) for i in items},
                    "quadrimester": str(period.quadrimester),
                    "quadrimester_source": period.source,
                    "unpublished": ", ".join(unpublished) or "none",
                    "contract_notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes) or "none"),
                },
            )

        stream = DateStream(
            context,
            [table_def],
            partition_days(context),
            build,
            name=table_def.name,
            nothing_built_hint=NOT_IMPORTABLE,
        )
        # No `finish`: a range without captures (the day portfolio's history) is not an error here.
        yield dg.Output(stream)
        yield from book.results()

    return _silver


silver_theoretical = _silver_asset(THEORETICAL_METHOD, raw_theoretical_portfolio, SILVER_THEORETICAL)
silver_preview = _silver_asset(PREVIEW_METHOD, raw_preview_portfolio, SILVER_PREVIEW)


# --- gold -----------------------------------------------------------------------------------------

BOTH_PORTFOLIOS = check_spec(
    "theoretical_and_preview_captured",
    ANNOUNCED_CHANGES.name,
    blocking=False,
    description="Every index with an announced portfolio on the date has both, so it was compared (warns).",
)


@dg.asset(
    ins={
        "theoretical": dg.AssetIn(SILVER_THEORETICAL.name, input_manager_key=LAKE_IO_MANAGER),
        "preview": dg.AssetIn(SILVER_PREVIEW.name, input_manager_key=LAKE_IO_MANAGER),
    },
    group_name="gold",
    kinds={"parquet"},
    check_specs=[BOTH_PORTFOLIOS],
    description=ANNOUNCED_CHANGES.description,
    metadata=table_metadata(ANNOUNCED_CHANGES),
    io_manager_key=LAKE_IO_MANAGER,
    **PARTITIONED,
)
def announced_changes(context: dg.AssetExecutionContext, theoretical: DateReader, preview: DateReader):
    book = CheckBook([BOTH_PORTFOLIOS], context)

    def build(day: dt.date) -> DateTables | NoInput:
        current, upcoming = theoretical.read(day), preview.read(day)
        if current is None or upcoming is None:
            return NoInput("no silver_theoretical or silver_preview partition")
        table, not_compared = transform.changes(current, upcoming)
        book.record(BOTH_PORTFOLIOS.name, day, not_compared)
        counts: dict[str, int] = {}
        for index, change in zip(table.column("index").to_pylist(), table.column("change").to_pylist()):
            if change != transform.STAYING:
                counts[f"{change}_{index}"] = counts.get(f"{change}_{index}", 0) + 1
        return DateTables(
            {ANNOUNCED_CHANGES.name: table},
            shared={**counts, "not_compared": "; ".join(not_compared) or "none"},
        )

    stream = DateStream(
        context,
        [ANNOUNCED_CHANGES],
        partition_days(context),
        build,
        name=ANNOUNCED_CHANGES.name,
        nothing_built_hint="materialize silver_theoretical and silver_preview first",
    )
    yield dg.Output(stream)
    yield from book.results()


@dg.asset(
    ins={
        "day_portfolio": dg.AssetIn(SILVER_ASSETS.name, input_manager_key=LAKE_IO_MANAGER),
        "previews": dg.AssetIn(SILVER_PREVIEW.name, input_manager_key=LAKE_IO_MANAGER),
    },
    group_name="gold",
    kinds={"parquet"},
    description=ANNOUNCED_ACCURACY.description,
    metadata=table_metadata(ANNOUNCED_ACCURACY),
    io_manager_key=LAKE_IO_MANAGER,
    **PARTITIONED,
)
def announced_accuracy(context: dg.AssetExecutionContext, day_portfolio: DateReader, previews: DateReader):
    """Partitioned by the rebalance date; reads the previews of the quadrimester before it from the
    lake (every stored date since the previous rebalance), so a preview captured later than its
    date's run is counted once this date is rebuilt."""
    columns = [
        "index",
        "ticker",
        "weight",
        "theoretical_quantity",
        "period_year",
        "period_start_month",
        "capture_id",
    ]

    def build(day: dt.date) -> DateTables | NoInput:
        if not transform.is_rebalance_date(day):
            return NoInput("not a rebalance date (first trading day of January, May or September)")
        actual = day_portfolio.read(day)
        if actual is None:
            return NoInput("rebalance date without a silver_assets partition")
        since = transform.rebalance_date(Quadrimester.containing(day - dt.timedelta(days=1)))
        dated = [
            (d, table)
            for d in previews.stored_dates()
            if since <= d < day and (table := previews.read(d, columns=columns)) is not None
        ]
        table = transform.accuracy(day, actual, dated)
        exact = {f"exact_{r['index']}": int(r["exact"]) for r in table.to_pylist()}
        context.log.info(f"{day}: rebalance date; {len(dated)} preview date(s) since {since} compared")
        return DateTables(
            {ANNOUNCED_ACCURACY.name: table},
            shared={"rebalance_date": "yes", "preview_dates": len(dated), **exact},
        )

    stream = DateStream(
        context,
        [ANNOUNCED_ACCURACY],
        partition_days(context),
        build,
        name=ANNOUNCED_ACCURACY.name,
        nothing_built_hint="materialize silver_assets of the rebalance date first",
    )
    yield dg.Output(stream)


ANNOUNCED_ASSETS = [
    raw_theoretical_portfolio,
    raw_preview_portfolio,
    silver_theoretical,
    silver_preview,
    announced_changes,
    announced_accuracy,
]
ANNOUNCED_RAW_ASSETS = [raw_theoretical_portfolio, raw_preview_portfolio]
