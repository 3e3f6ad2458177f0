"""In-process runs of the asset graph over sets of trading days (used by the CLI's demo/import).

A set of dates is split into blocks of consecutive trading days and each block is one single-run
backfill (the `dagster/asset_partition_range_*` tags), the same run the UI launches for a range.
Unpartitioned assets in the selection (the catalog) run once, after the last block.
"""

import datetime as dt
from collections.abc import Iterable, Sequence

import dagster as dg

from b3_platform.trading_calendar import trading_days_between

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: Console logging at WARNING: the CLI prints its own progress; everything is in the run logs.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def consecutive_blocks(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """[(first, last)] runs of days with no trading day missing in between."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    sessions = trading_days_between(wanted[0], wanted[-1])
    position = {d: i for i, d in enumerate(sessions)}
    blocks, start, prev = [], wanted[0], wanted[0]
    for day in wanted[1:]:
        if position[day] != position[prev] + 1:
            blocks.append((start, prev))
            start = day
        prev = day
    blocks.append((start, prev))
    return blocks


def archive_selection(graph) -> list[str]:
    """The assets a history of saved day portfolios builds: every layer of the day portfolio and the
    catalog, not B3's GetStockIndex listing nor the announced portfolios' assets, which have nothing
    on past days (B3 serves only the current ones, and saved files of them cannot be imported): a
    backfill including them would only plan, for every date, runs and checks that never happen."""
    from b3_platform.assets.announced import ANNOUNCED_ASSETS
    from b3_platform.assets.stock_index import index_members, raw_stock_index

    left_out = {
        k.to_user_string() for a in (*ANNOUNCED_ASSETS, raw_stock_index, index_members) for k in a.keys
    }
    return [k.to_user_string() for k in graph.get_all_asset_keys() if k.to_user_string() not in left_out]


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    return {RANGE_START: first.isoformat(), RANGE_END: last.isoformat()}


def materialize_days(
    defs: dg.Definitions,
    days: Iterable[dt.date],
    *,
    instance: dg.DagsterInstance,
    selection: str | Sequence[str] = "*",
    progress=None,
    quiet: bool = False,
) -> list[dg.ExecuteInProcessResult]:
    """Materialize `selection` for `days`, one single run per block of consecutive trading days, then
    the selection's unpartitioned assets once (if every block succeeded). `progress(first, last)` is
    called before each block and `progress(None, None)` before the unpartitioned run."""
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_coercible(selection).resolve(graph)
    partitioned = [k for k in keys if graph.get(k).is_partitioned]
    unpartitioned = [k for k in keys if not graph.get(k).is_partitioned]
    run_config = QUIET if quiet else None
    results = []
    for first, last in consecutive_blocks(days) if partitioned else []:
        if progress:
            progress(first, last)
        results.append(
            job.execute_in_process(
                instance=instance,
                tags=range_tags(first, last),
                asset_selection=partitioned,
                raise_on_error=False,
                run_config=run_config,
            )
        )
    if unpartitioned and all(r.success for r in results):
        if progress:
            progress(None, None)
        results.append(
            job.execute_in_process(
                instance=instance, asset_selection=unpartitioned, raise_on_error=False, run_config=run_config
            )
        )
    return results
