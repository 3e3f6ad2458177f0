"""Gold: composition by group, day-over-day changes, concentration and time in index.

The four tables are one multi-asset because they come from one pass over the same silver files: a
range run streams its dates in order and keeps only the previous date's portfolios and each ticker's
current stay in memory. "Previous" is always the previous *trading day* of the B3 calendar: when the
lake does not hold it, the index is not compared (never with an older day) and a check says so.

Gold of D reads silver of D and of the trading day before, and says so to Dagster (a
`TimeWindowPartitionMapping(start_offset=-1)` on silver_assets): when D-1 arrives late, an import
of a gap in the archive, gold of D is rebuilt by automation and compared at last.
"""

import datetime as dt
import functools
from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg
import pyarrow as pa

from b3_platform.transforms import gold
from b3_platform.assets.common import (
    PARTITIONED,
    CheckBook,
    check_specs,
    log_progress,
    table_metadata,
)
from b3_platform.trading_calendar import SAO_PAULO, previous_trading_day
from b3_platform.lake.schemas import GOLD_TABLES, SILVER_ASSETS, SILVER_HEADER
from b3_platform.lake.storage import Storage
from b3_platform.lake.tables import delete_partition, partition_dates, read_partition, write_partition
from b3_platform.partitions import partition_days
from b3_platform.quality import GOLD_RULES
from b3_platform.resources import LakeResource

PREVIOUS_AND_SAME_DAY = dg.TimeWindowPartitionMapping(start_offset=-1)
SPECS = [spec for table_def in GOLD_TABLES for spec in check_specs(GOLD_RULES, table_def.name)]
#: A trading day's portfolio is captured at 09:00 and 20:00 São Paulo time: gold should hold it by
#: 21:00. The cron does not know B3 holidays, so a holiday shows as a (harmless) overdue day.
FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 21 * * 1-5", lower_bound_delta=dt.timedelta(hours=13), timezone=str(SAO_PAULO)
)


def _tickers(storage: Storage, day: dt.date) -> dict[str, list[str]]:
    """One date's tickers per index, reading only those two columns (the stays' walk back)."""
    return gold.tickers_by_index(read_partition(storage, SILVER_ASSETS, day, columns=["index", "ticker"]))


#: Silver files the stays' walk back reads ahead of the one it is on. The walk reads one file per
#: earlier date, newest first, until every stay has begun (often the whole history): on S3 each is
#: a GET of ~10-30 ms, a wait worth overlapping; locally the extra threads cost nothing visible.
READ_AHEAD = 16


@functools.cache
def _reader_pool() -> ThreadPoolExecutor:
    """One pool per process for the read ahead: idle threads cost nothing between runs."""
    return ThreadPoolExecutor(max_workers=READ_AHEAD // 2, thread_name_prefix="gold-read-ahead")


class _ReadAhead:
    """`load(day)` for the walk back, with the next READ_AHEAD older dates already being read.

    It returns exactly what `load` returns for each date, so the stays are the same; at most
    READ_AHEAD files are read and not used when the walk stops early."""

    def __init__(self, load, dates: list[dt.date]) -> None:
        self._load, self._pool = load, _reader_pool()
        self._newest_first = sorted(dates, reverse=True)
        self._position = {d: i for i, d in enumerate(self._newest_first)}
        self._pending: dict[dt.date, Future] = {}

    def __call__(self, day: dt.date):
        start = self._position.get(day)
        if start is None:
            return self._load(day)
        for ahead in self._newest_first[start : start + READ_AHEAD]:
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._load, ahead)
        return self._pending.pop(day).result()


def _read_day(storage: Storage, day: dt.date) -> dict[str, gold.IndexDay] | None:
    assets = read_partition(storage, SILVER_ASSETS, day)
    header = read_partition(storage, SILVER_HEADER, day)
    if assets is None or header is None:
        return None
    return gold.index_days(assets, header)


def _metadata(summary: pa.Table) -> dict[str, float | int]:
    """Per-index numbers on each partition, so the UI plots them over dates."""
    metadata: dict[str, float | int] = {}
    for r in summary.to_pylist():
        i = r["index"]
        metadata[f"top10_weight_{i}"] = float(r["top10_weight"])
        metadata[f"hhi_{i}"] = float(r["hhi"])
        if r["previous_in_lake"]:
            metadata[f"entries_{i}"] = r["entries"]
            metadata[f"exits_{i}"] = r["exits"]
    return metadata


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            table_def.name,
            deps=[
                dg.AssetDep("silver_header"),
                dg.AssetDep("silver_assets", partition_mapping=PREVIOUS_AND_SAME_DAY),
            ],
            group_name="gold",
            kinds={"parquet"},
            description=table_def.description,
            metadata=table_metadata(table_def),
            freshness_policy=FRESHNESS,
        )
        for table_def in GOLD_TABLES
    ],
    check_specs=SPECS,
    **PARTITIONED,
)
def gold_tables(context: dg.AssetExecutionContext, lake: LakeResource):
    storage = lake.storage()
    book = CheckBook(SPECS, context)
    days = partition_days(context)
    lake_dates = partition_dates(storage, SILVER_ASSETS)
    stays = gold.StayTracker(lake_dates, _ReadAhead(lambda d: _tickers(storage, d), lake_dates))
    cached: tuple[dt.date, dict[str, gold.IndexDay]] | None = None
    built, compared, not_compared = 0, 0, 0
    for done, day in enumerate(days, start=1):
        log_progress(context, done, len(days), "gold")
        key = day.isoformat()
        today = _read_day(storage, day)
        if today is None:
            for table_def in GOLD_TABLES:
                delete_partition(storage, table_def, day)
                context.add_asset_metadata(
                    {"dagster/row_count": 0, "status": "no silver partition"},
                    asset_key=table_def.name,
                    partition_key=key,
                )
            context.log.warning(f"{day}: no silver partition; no gold")
            continue
        previous_date = previous_trading_day(day)
        previous = cached[1] if cached and cached[0] == previous_date else _read_day(storage, previous_date)
        previous = previous or {}
        summary = gold.index_summary(today, previous, previous_date)
        tables = {
            "gold_composition": gold.composition(today),
            "gold_changes": gold.changes(today, previous, previous_date),
            "gold_index_summary": summary,
            "gold_time_in_index": stays.advance(day, {i: list(d.components) for i, d in today.items()}),
        }
        for rule in GOLD_RULES:
            book.record(rule.name, day, rule.fn(tables[rule.source], day))
        missing = [i for i in today if i not in previous]
        compared += len(today) - len(missing)
        not_compared += len(missing)
        if missing:
            # Expected over archives with gaps; the previous_trading_day_in_lake check warns.
            context.log.info(
                f"{day}: previous trading day {previous_date} not in the lake for {', '.join(missing)}; "
                "not compared"
            )
        numbers = _metadata(summary)
        for table_def in GOLD_TABLES:
            table = tables[table_def.name]
            written = write_partition(storage, table_def, day, table)
            context.add_asset_metadata(
                {
                    "dagster/row_count": table.num_rows,
                    "dagster/uri": storage.uri(written),
                    "previous_date": previous_date.isoformat(),
                    "not_compared": ", ".join(missing) or "none",
                    **numbers,
                },
                asset_key=table_def.name,
                partition_key=key,
            )
        built += 1
        cached = (day, today)
    if not built:
        raise dg.Failure(
            f"gold: no silver partition for {', '.join(map(str, days[:10]))}; materialize silver first"
        )
    context.log.info(
        f"gold: {built} date(s); {compared} index-days compared with the previous trading day, "
        f"{not_compared} not (previous day not in the lake); {stays.dates_read} earlier date(s) read "
        "for time in index"
    )
    results = book.results()
    for table_def in GOLD_TABLES:
        yield dg.MaterializeResult(
            asset_key=table_def.name,
            check_results=[r for r in results if r.asset_key == dg.AssetKey(table_def.name)],
        )
