"""Gold: composition by group, day-over-day changes, concentration and time in index.

The four tables are one multi-asset because they come from one pass over the same silver files: a
range run streams its dates in order and keeps only the previous date's portfolios and each ticker's
current stay in memory. "Previous" is always the previous *trading day* of the B3 calendar: when the
lake does not hold it, the index is not compared (never with an older day) and a check says so.

Gold of D reads silver of D and of the trading day before, and says so to Dagster (a
`TimeWindowPartitionMapping(start_offset=-1)` on silver_assets): when D-1 arrives late, an import
of a gap in the archive, gold of D is rebuilt by automation and compared at last. Time in index
also reads gold_time_in_index of D-1 to carry each stay on (`_time_in_index`): one earlier file
whatever the history, with a walk back over silver when that gold is missing or no longer matches
its silver. That read is not declared to Dagster (a dependency of gold on itself would make every
later date stale whenever one is rebuilt); README says when to rebuild a range instead.

A silver file that cannot be read (truncated, damaged) fails only the gold dates that read it
directly, D and the next trading day, with a message naming the file and how to rebuild it. The
stays' walk back over older history skips such a date as it skips a date the lake lacks (one
observed day fewer, which `observed_days` shows) and says so in a warning and in the metadata of
each date built after it, so one damaged old file does not stop gold of every later day.
"""

import datetime as dt
import functools
from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg
import pyarrow as pa

from b3_platform.assets.common import PARTITIONED, CheckBook, check_specs, rules_of, table_metadata
from b3_platform.assets.subset import selected_checks, selected_tables
from b3_platform.lake.io_manager import LAKE_IO_MANAGER, DateReader, DateStream, DateTables, NoInput
from b3_platform.lake.resource import LakeResource
from b3_platform.lake.schemas import (
    GOLD_CHANGES,
    GOLD_INDEX_SUMMARY,
    GOLD_TABLES,
    GOLD_TIME_IN_INDEX,
    SILVER_ASSETS,
    SILVER_HEADER,
)
from b3_platform.lake.tables import PublishedReader, UnreadableFile
from b3_platform.live_capture import LiveCaptures, not_judged
from b3_platform.partitions import partition_days
from b3_platform.quality import GOLD_RULES, PREVIOUS_DAY_RULE
from b3_platform.trading_calendar import SAO_PAULO, previous_trading_day
from b3_platform.transforms import gold

PREVIOUS_AND_SAME_DAY = dg.TimeWindowPartitionMapping(start_offset=-1)
SPECS = [spec for table_def in GOLD_TABLES for spec in check_specs(GOLD_RULES, table_def.name)]
#: A trading day's portfolio is captured at 09:00 and 20:00 São Paulo time: gold should hold it by
#: 21:00. The cron does not know B3 holidays, so a holiday shows as a (harmless) overdue day.
FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 21 * * 1-5", lower_bound_delta=dt.timedelta(hours=13), timezone=str(SAO_PAULO)
)


#: Silver files the stays' walk back reads ahead of the one it is on. The walk reads one file per
#: earlier date, newest first, until every stay has begun (often the whole history): on S3 each is
#: a GET of ~10-30 ms, a wait worth overlapping; locally the extra threads cost nothing visible.
READ_AHEAD = 16


@functools.cache
def _reader_pool() -> ThreadPoolExecutor:
    """One pool per process for the read ahead: idle threads cost nothing between runs."""
    return ThreadPoolExecutor(max_workers=READ_AHEAD // 2, thread_name_prefix="gold-read-ahead")


def _time_in_index(
    stays: gold.StayTracker,
    previous_gold: PublishedReader,
    day: dt.date,
    today: dict[str, gold.IndexDay],
    previous_date: dt.date,
    previous: dict[str, gold.IndexDay],
    log,
) -> tuple[pa.Table, str]:
    """Gold of `day`'s time in index, and where each index's stays came from (partition metadata):
    carried from the previous trading day's gold when it can be trusted (`gold.carried_stays`),
    which reads one file whatever the history; walked back over silver otherwise (a gap, the
    first date, a missing or stale previous gold); or advanced in memory from the run's previous
    date (a range)."""

    def carried() -> dict[str, dict[str, gold.Stay]]:
        if not previous:
            return {}  # no silver of the previous trading day: nothing to check its gold against
        try:
            table = previous_gold.read(previous_date, columns=_CARRIED_COLUMNS)
        except UnreadableFile as exc:
            log.warning(f"time in index: walking back instead of carrying on: {exc}")
            return {}
        return gold.carried_stays(table, {i: d.components for i, d in previous.items()})

    before = (len(stays.carried), len(stays.walked), stays.dates_read)
    table = stays.advance(day, {i: list(d.components) for i, d in today.items()}, carried)
    carried_now, walked_now = stays.carried[before[0] :], stays.walked[before[1] :]
    parts = [f"carried from gold of {previous_date}: {', '.join(carried_now)}"] if carried_now else []
    if walked_now:
        parts.append(
            f"walked back over {stays.dates_read - before[2]} earlier silver date(s): {', '.join(walked_now)}"
        )
    return table, "; ".join(parts) or "advanced from the run's previous date"


#: What carrying on needs of the previous day's gold_time_in_index.
_CARRIED_COLUMNS = ["index", "ticker", "first_seen", "observed_days", "first_seen_is_history_start"]


class _ReadAhead:
    """`load(day)` for the walk back, with the next READ_AHEAD older dates already being read.

    It returns exactly what `load` returns for each date, so the stays are the same; at most
    READ_AHEAD files are read and not used when the walk stops early. `dates` may be a callable,
    called on the first load (a run that carries its stays on never lists them)."""

    def __init__(self, load, dates) -> None:
        self._load, self._pool = load, _reader_pool()
        self._dates = dates
        self._newest_first: list[dt.date] | None = None
        self._position: dict[dt.date, int] = {}
        self._pending: dict[dt.date, Future] = {}

    def __call__(self, day: dt.date):
        if self._newest_first is None:
            dates = self._dates() if callable(self._dates) else self._dates
            self._newest_first = sorted(dates, reverse=True)
            self._position = {d: i for i, d in enumerate(self._newest_first)}
        start = self._position.get(day)
        if start is None:
            return self._load(day)
        for ahead in self._newest_first[start : start + READ_AHEAD]:
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._load, ahead)
        return self._pending.pop(day).result()


def _read_day(header: DateReader, assets: DateReader, day: dt.date) -> dict[str, gold.IndexDay] | None:
    """One date's portfolios from its silver header and assets (None when either is missing)."""
    assets_table, header_table = assets.read(day), header.read(day)
    if assets_table is None or header_table is None:
        return None
    return gold.index_days(assets_table, header_table)


def _metadata(summary: pa.Table) -> dict[str, dict[str, float | int]]:
    """Per-index numbers on each partition, so the UI plots them over dates: concentration on
    gold_index_summary, entries and exits on gold_changes (each on the table that holds them, not
    repeated on all four: at 34 indices they are ~140 entries per date)."""
    concentration: dict[str, float | int] = {}
    changes: dict[str, float | int] = {}
    for r in summary.to_pylist():
        i = r["index"]
        concentration[f"top10_weight_{i}"] = float(r["top10_weight"])
        concentration[f"hhi_{i}"] = float(r["hhi"])
        if r["previous_in_lake"]:
            changes[f"entries_{i}"] = r["entries"]
            changes[f"exits_{i}"] = r["exits"]
    return {GOLD_INDEX_SUMMARY.name: concentration, GOLD_CHANGES.name: changes}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            table_def.name,
            # Dagster takes the partition mapping from the dependency; the inputs below only name
            # the parameters silver is loaded into.
            deps=[
                dg.AssetDep(SILVER_HEADER.name),
                dg.AssetDep(SILVER_ASSETS.name, partition_mapping=PREVIOUS_AND_SAME_DAY),
            ],
            group_name="gold",
            kinds={"parquet"},
            description=table_def.description,
            metadata=table_metadata(table_def),
            freshness_policy=FRESHNESS,
        ).with_io_manager_key(LAKE_IO_MANAGER)
        for table_def in GOLD_TABLES
    ],
    ins={
        "silver_header": dg.AssetIn(SILVER_HEADER.name, input_manager_key=LAKE_IO_MANAGER),
        "silver_assets": dg.AssetIn(SILVER_ASSETS.name, input_manager_key=LAKE_IO_MANAGER),
    },
    check_specs=SPECS,
    # Any of the four tables (or checks) can be selected alone: each date is still built from
    # silver whole (time in index, the previous day), and only the selected tables are stored.
    can_subset=True,
    **PARTITIONED,
)
def gold_tables(
    context: dg.AssetExecutionContext,
    silver_header: DateReader,
    silver_assets: DateReader,
    lake: LakeResource,
):
    checks = selected_checks(context, SPECS)
    book = CheckBook(checks, context)
    checked = {rule for spec in checks for rule in rules_of(spec)}  # the rules they report
    live = LiveCaptures(lake.raw())  # previous_trading_day_in_lake judges live-capture days only
    lake_dates = functools.cache(silver_assets.stored_dates)  # listed only when a date needs it

    unreadable: dict[dt.date, str] = {}  # history the walk back skipped, with why

    def tickers(day: dt.date) -> dict[str, list[str]]:
        """One date's tickers per index, reading only those two columns (the stays' walk back).
        An unreadable file reads as a date the lake lacks (module docstring)."""
        try:
            return gold.tickers_by_index(silver_assets.read(day, columns=["index", "ticker"]))
        except UnreadableFile as exc:
            unreadable[day] = str(exc)
            return {}

    stays = gold.StayTracker(lake_dates, _ReadAhead(tickers, lake_dates))
    previous_gold = PublishedReader(lake.storage(), GOLD_TIME_IN_INDEX)
    cached: tuple[dt.date, dict[str, gold.IndexDay]] | None = None
    tally = {"compared": 0, "not_compared": 0}

    warned: set[dt.date] = set()

    def build(day: dt.date) -> DateTables | NoInput:
        nonlocal cached
        today = _read_day(silver_header, silver_assets, day)
        if today is None:
            return NoInput("no silver partition")
        previous_date = previous_trading_day(day)
        if cached and cached[0] == previous_date:
            previous = cached[1]
        else:
            previous = _read_day(silver_header, silver_assets, previous_date) or {}
        summary = gold.index_summary(today, previous, previous_date)
        tables = {
            "gold_composition": gold.composition(today),
            "gold_changes": gold.changes(today, previous, previous_date),
            "gold_index_summary": summary,
        }
        tables["gold_time_in_index"], how = _time_in_index(
            stays, previous_gold, day, today, previous_date, previous, context.log
        )
        for rule in GOLD_RULES:
            if rule.name not in checked:
                continue
            if rule.name == PREVIOUS_DAY_RULE and not live.began_by(previous_date):
                book.record(rule.name, day, [], not_judged=not_judged(previous_date, "every trading day"))
            else:
                book.record(rule.name, day, rule.fn(tables[rule.source], day))
        missing = [i for i in today if i not in previous]
        tally["compared"] += len(today) - len(missing)
        tally["not_compared"] += len(missing)
        if missing:
            # Expected over archives with gaps; the previous_trading_day_in_lake check warns.
            context.log.info(
                f"{day}: previous trading day {previous_date} not in the lake for {', '.join(missing)}; "
                "not compared"
            )
        for skipped in sorted(unreadable.keys() - warned):
            warned.add(skipped)
            context.log.warning(
                f"time in index: skipped silver of {skipped}, which cannot be read, as a date the lake "
                f"lacks: {unreadable[skipped]}"
            )
        cached = (day, today)
        # The newest date's picture is not drawn here: the dashboard's run, after the catalog, reports
        # it on gold_index_summary's newest partition (assets/dashboard.py says why).
        metadata = _metadata(summary)
        # Each fact about the date's build on the table it concerns, not on all four (each entry is
        # stored twice per date in the instance).
        metadata[GOLD_CHANGES.name].update(
            {"previous_date": previous_date.isoformat(), "not_compared": ", ".join(missing) or "none"}
        )
        metadata[GOLD_TIME_IN_INDEX.name] = {
            "time_in_index_from": how,
            **({"unreadable_history": ", ".join(map(str, sorted(unreadable)))} if unreadable else {}),
        }
        return DateTables(tables, metadata=metadata)

    stream = DateStream(
        context,
        selected_tables(context, GOLD_TABLES),
        partition_days(context),
        build,
        name="gold",
        nothing_built_hint="materialize silver first",
    )
    # One stream for the selected outputs: the first writes the selected gold tables of each date.
    yield from stream.outputs()
    context.log.info(
        f"gold: {len(stream.built)} date(s); {tally['compared']} index-days compared with the previous "
        f"trading day, {tally['not_compared']} not (previous day not in the lake); {stays.dates_read} "
        "earlier date(s) read for time in index"
    )
    yield from book.results()
