"""In-process runs of the asset graph over sets of trading days (used by the CLI's demo/import).

A set of dates is split into blocks of consecutive trading days and each block is one single-run
backfill (the `dagster/asset_partition_range_*` tags), the same run the UI launches for a range; a
block longer than MAX_RUN_DATES runs as consecutive single runs of at most that many dates.
Unpartitioned assets in the selection (the catalog) run once, after the last block.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dagster as dg

from b3_platform.trading_calendar import trading_days_between

#: The tag of a run for one partition (a daily run, a per-date backfill's run).
PARTITION_TAG = "dagster/partition"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: Console logging at WARNING: the CLI prints its own progress; everything is in the run logs.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: The most trading days one run covers (about a year). An in-process run holds every event it
#: logged (with each date's metadata) until it ends, so one run over twenty years of history held
#: ~0.2 MB more per date at 34 indices; consecutive runs of at most this many dates keep a long
#: backfill's peak memory that of one such run. Each run costs ~3 s of its own (planning, the
#: run's start and end events), ~1 % of a 250-date run.
MAX_RUN_DATES = 250


@dataclass(frozen=True)
class RunOutcome:
    """What is kept of a finished run: its id, whether it succeeded and why not, not its events
    (those are in the instance's run log; held here they grew with the history).

    `not_run`: the dates of the same block left out because this run failed: gold carries each
    date from the one before, so a block's later runs never start after an earlier one failed."""

    run_id: str
    success: bool
    first: dt.date | None = None
    last: dt.date | None = None
    failures: tuple[str, ...] = ()
    not_run: tuple[dt.date, dt.date] | None = None

    @classmethod
    def of(cls, result: dg.ExecuteInProcessResult, first: dt.date | None, last: dt.date | None) -> RunOutcome:
        failures = tuple(_failure_message(e) for e in result.all_events if e.is_failure)
        return cls(result.run_id, result.success, first, last, failures)


def _failure_message(event: dg.DagsterEvent) -> str:
    """A failure event's message, with a failed step's cause (its error's first line: a Failure's
    description names the asset and the date), which the event's own message leaves out."""
    message = event.message or ""
    error = getattr(event.event_specific_data, "error", None) if event.is_step_failure else None
    while error is not None and error.cause is not None and error.cls_name != "Failure":
        error = error.cause  # Dagster's "Error occurred while executing op …" wraps the cause
    if error is None or not error.message.strip():
        return message
    cause = error.message.strip().splitlines()[0]
    if error.cls_name == "Failure" and ": " in cause:  # "dagster…Failure: <description>"
        cause = cause.split(": ", 1)[1]
    return f"{message.rstrip('.')}: {cause}"


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


def run_ranges(
    first: dt.date, last: dt.date, max_dates: int = MAX_RUN_DATES
) -> list[tuple[dt.date, dt.date]]:
    """A block of consecutive trading days as consecutive ranges of at most `max_dates` of them."""
    if max_dates < 1:
        raise ValueError(f"a run covers at least one date, not {max_dates}")
    sessions = trading_days_between(first, last)
    return [
        (sessions[start], sessions[min(start + max_dates, len(sessions)) - 1])
        for start in range(0, len(sessions), max_dates)
    ]


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
    progress: Callable[[dt.date | None, dt.date | None], object] | None = None,
    quiet: bool = False,
    max_run_dates: int = MAX_RUN_DATES,
) -> list[RunOutcome]:
    """Materialize `selection` for `days`: each block of consecutive trading days as single runs of
    at most `max_run_dates` dates, in date order, then the selection's unpartitioned assets once (if
    every run succeeded). A failed run stops the rest of its block (`RunOutcome.not_run`); other
    blocks still run. `progress(first, last)` is called before each run and `progress(None, None)`
    before the unpartitioned run."""
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_coercible(selection).resolve(graph)
    partitioned = [k for k in keys if graph.get(k).is_partitioned]
    unpartitioned = [k for k in keys if not graph.get(k).is_partitioned]
    run_config = QUIET if quiet else None
    outcomes: list[RunOutcome] = []
    for block_first, block_last in consecutive_blocks(days) if partitioned else []:
        ranges = run_ranges(block_first, block_last, max_run_dates)
        for n, (first, last) in enumerate(ranges):
            if progress:
                progress(first, last)
            result = job.execute_in_process(
                instance=instance,
                tags=range_tags(first, last),
                asset_selection=partitioned,
                raise_on_error=False,
                run_config=run_config,
            )
            outcome = RunOutcome.of(result, first, last)
            del result  # its events: the next run must not start while they are held
            gc.collect()  # nor while its step contexts' reference cycles wait for a full collection
            if not outcome.success and n + 1 < len(ranges):
                outcome = _stopped(outcome, ranges[n + 1][0], block_last)
            outcomes.append(outcome)
            if not outcome.success:
                break
    if unpartitioned and all(o.success for o in outcomes):
        if progress:
            progress(None, None)
        result = job.execute_in_process(
            instance=instance, asset_selection=unpartitioned, raise_on_error=False, run_config=run_config
        )
        outcomes.append(RunOutcome.of(result, None, None))
    return outcomes


def _stopped(outcome: RunOutcome, first: dt.date, last: dt.date) -> RunOutcome:
    left = f"{first} was" if first == last else f"{first}…{last} were"
    note = (
        f"the run of {outcome.first}…{outcome.last} failed, so {left} not run (each date of gold is "
        "carried from the one before): fix the cause and run them again"
    )
    return RunOutcome(
        outcome.run_id, False, outcome.first, outcome.last, (*outcome.failures, note), (first, last)
    )
