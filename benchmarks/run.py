#!/usr/bin/env python
"""Benchmark b3_platform over a SYNTHETIC multi-year archive (see benchmarks/README.md).

Real multi-year archives of B3's day portfolios are not public, so this script builds one: the real
IBOV GetPortfolioDay samples in demo_data/ (8 consecutive 2025 trading days, with the real
NTCO3 -> NATU3 swap of 2025-07-02) are re-dated onto N consecutive B3 trading days ending
2025-07-11 by rewriting only `header.date`, cycling through the samples so that consecutive days
differ. For K > 1 the same IBOV contents are filed under other real index codes. Every figure
printed here is measured on that synthetic archive and says so.

Measures (issue text): (a) import throughput, (b) one single-run backfill of every layer plus the
catalog on a persistent and an ephemeral instance, (c) the same dates as per-partition runs
(sampled, extrapolated), (d) a naive pandas script, (e) peak RSS of (b), (f) the example queries
through the DuckDB catalog against pandas scanning the raw JSON. Each backfill runs in a fresh
subprocess of this script (`--child SPEC.json`) so its peak RSS is its own.

    python benchmarks/run.py                                   # the issue's sizes (long)
    python benchmarks/run.py --dates 20 --indices 1,2 --repeat 1   # a quick check
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Measure the checkout this script lives in, whatever is installed in the venv.
sys.path.insert(0, str(REPO))

SOURCE_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: The 8 consecutive 2025 samples (the 2022 segment-2 file in the same folder is not part of the cycle).
SOURCE_GLOB = "2025-*.json"
#: Real index codes the importer recognises in a folder name (b3/indices.py KNOWN_INDEX_CODES).
INDEX_CODES = ("IBOV", "IBXX", "IBXL", "SMLL", "IDIV")
END_DATE = dt.date(2025, 7, 11)
QUERIES_DIR = REPO / "queries"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
REPO_DAGSTER_YAML = REPO / "dagster.yaml"

# Targets of the issue.
TARGET_N, TARGET_K = 1250, 1
TARGET_MS_PER_DATE = 40.0
TARGET_SPEEDUP_VS_PER_PARTITION = 10.0
TARGET_RSS_RATIO = 1.5
TARGET_QUERY_MS = 100.0
TARGET_QUERY_SPEEDUP = 20.0
MIN_QUERY_REPEAT = 5

INSTANCES = ("persistent", "ephemeral")
_HEADER_DATE = re.compile(r'("date"\s*:\s*")(\d{2}/\d{2}/\d{2})(")')


def quiet_warnings() -> None:
    """The warnings cli.main and pytest silence: noise on every run, nothing to act on."""
    warnings.filterwarnings("ignore", message=".*backfill_policy.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="exchange_calendars.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import pandas.errors

        warnings.filterwarnings("ignore", category=pandas.errors.Pandas4Warning)
    except (ImportError, AttributeError):
        pass
    try:
        import dagster as dg

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    except (ImportError, AttributeError):
        pass


# --------------------------------------------------------------------------------------------------
# Progress and small helpers


class Clock:
    """Progress lines stamped with the elapsed time, so a long run shows it is moving."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{int(elapsed // 60):3d}:{elapsed % 60:04.1f}] {message}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def maxrss_mb(ru_maxrss: int) -> float:
    """ru_maxrss is in KiB on Linux and in bytes on macOS."""
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


def fmt(value: float, digits: int = 1) -> str:
    return (
        "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"
    )


# --------------------------------------------------------------------------------------------------
# The synthetic archive


def source_samples() -> list[Path]:
    """The real IBOV JSON samples, in date order (the cycle's order)."""
    files = sorted(SOURCE_DIR.glob(SOURCE_GLOB))
    if len(files) < 2:
        raise SystemExit(f"expected the 2025 IBOV JSON samples in {SOURCE_DIR}, found {len(files)}")
    return files


def target_days(n: int) -> list[dt.date]:
    """The last `n` B3 trading days up to END_DATE (B3 calendar, so no weekend or holiday)."""
    from b3_platform.trading_calendar import START_DATE, trading_days_between

    days = trading_days_between(START_DATE, END_DATE)[-n:]
    if len(days) != n:
        raise SystemExit(f"the calendar holds only {len(days)} trading days up to {END_DATE}")
    return days


def redate(text: str, day: dt.date) -> str:
    """The same JSON text with only header.date rewritten (pt-br DD/MM/YY)."""
    new, count = _HEADER_DATE.subn(lambda m: m.group(1) + day.strftime("%d/%m/%y") + m.group(3), text, 1)
    if count != 1 or json.loads(new)["header"]["date"] != day.strftime("%d/%m/%y"):
        raise ValueError(f"could not re-date a sample to {day}")
    return new


def synthetic_note(n: int, indices: tuple[str, ...], days: list[dt.date], sources: list[Path]) -> str:
    return (
        "SYNTHETIC ARCHIVE, built by benchmarks/run.py. Not real B3 data for these dates.\n\n"
        f"{n} consecutive B3 trading days {days[0]} .. {days[-1]}, {len(indices)} index folder(s): "
        f"{', '.join(indices)}.\n"
        "Each file is one of the real IBOV GetPortfolioDay samples below, byte for byte except "
        "header.date, which is rewritten to the target date. Day i uses sample i mod "
        f"{len(sources)}, so consecutive days differ (the real NTCO3/NATU3 swap and weight changes "
        "recur every cycle).\n"
        + (
            f"Folders other than IBOV ({', '.join(i for i in indices if i != 'IBOV')}) hold the same "
            "IBOV contents under another real index code: synthetic too.\n"
            if len(indices) > 1
            else ""
        )
        + "\nSources:\n"
        + "".join(f"  {p.relative_to(REPO)}\n" for p in sources)
    )


def build_archive(root: Path, n: int, k: int) -> tuple[Path, list[dt.date], tuple[str, ...]]:
    """`<root>/<INDEX>/<YYYY-MM-DD>.json` for n days and the first k index codes, plus SYNTHETIC.txt."""
    if not 1 <= k <= len(INDEX_CODES):
        raise SystemExit(f"--indices values must be 1..{len(INDEX_CODES)}")
    sources = source_samples()
    texts = [p.read_text(encoding="utf-8") for p in sources]
    days = target_days(n)
    indices = INDEX_CODES[:k]
    for index in indices:
        (root / index).mkdir(parents=True, exist_ok=True)
    for i, day in enumerate(days):
        body = redate(texts[i % len(texts)], day).encode("utf-8")
        for index in indices:
            (root / index / f"{day.isoformat()}.json").write_bytes(body)
    (root / "SYNTHETIC.txt").write_text(synthetic_note(n, indices, days, sources), encoding="utf-8")
    return root, days, indices


# --------------------------------------------------------------------------------------------------
# (a) import and (d) the naive pandas script: measured in this process


def import_archive(archive: Path, lake: Path) -> tuple[float, int]:
    """(seconds, files) of import_paths into a fresh lake; every file must be imported."""
    from b3_platform.importer import import_paths
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.storage import open_storage

    store = RawStore(open_storage(str(lake)))
    started = time.perf_counter()
    results = import_paths(store, [archive])
    seconds = time.perf_counter() - started
    bad = [r for r in results if r.status != "imported"]
    if bad:
        raise SystemExit(
            f"{len(bad)} of {len(results)} synthetic file(s) not imported, first: "
            f"{bad[0].path}: {bad[0].status} {bad[0].reason}"
        )
    return seconds, len(results)


def _pt_number(series):
    """pt-br '1.234,567' -> 1234.567 (what a peer script does with B3's strings)."""
    return series.str.replace(".", "", regex=False).str.replace(",", ".", regex=False).astype(float)


def naive_pandas(archive: Path, indices: tuple[str, ...], days: list[dt.date], out: Path) -> float:
    """A peer-style script: per day, read each index's JSON, normalise the results into a DataFrame
    (numbers typed from pt-br), write one Parquet file for the day. Returns seconds."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for day in days:
        frames = []
        for index in indices:
            data = json.loads((archive / index / f"{day.isoformat()}.json").read_text(encoding="utf-8"))
            frame = pd.json_normalize(data["results"])
            frame["part"] = _pt_number(frame["part"])
            frame["theoricalQty"] = frame["theoricalQty"].str.replace(".", "", regex=False).astype("int64")
            frame["index"] = index
            frame["date"] = day
            for key, value in data["header"].items():
                frame[f"header_{key}"] = value
            frames.append(frame)
        pd.concat(frames, ignore_index=True).to_parquet(out / f"{day.isoformat()}.parquet", index=False)
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------
# (b), (c), (e): Dagster runs, each in a fresh subprocess of this script


def child_env(lake: Path, indices: tuple[str, ...], dagster_home: Path | None) -> dict[str, str]:
    """The child's environment: everything points into the workdir, never at ./data or the user's
    DAGSTER_HOME / catalog; the B3 URL is a closed local port (past dates never call B3 anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_PLATFORM_", "DAGSTER_"))}
    env.update(
        {
            "B3_PLATFORM_ENV": "local",
            "B3_PLATFORM_DATA_DIR": str(lake),
            "B3_PLATFORM_DUCKDB": str(lake / "warehouse.duckdb"),
            "B3_PLATFORM_INDICES": ",".join(indices),
            "B3_PLATFORM_B3_URL": "http://127.0.0.1:9/",
            "PYTHONWARNINGS": "ignore",
        }
    )
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


def fresh_dagster_home(path: Path) -> Path:
    """A persistent sqlite instance configured like the repo's (its dagster.yaml)."""
    path.mkdir(parents=True)
    shutil.copy(REPO_DAGSTER_YAML, path / "dagster.yaml")
    return path


@dataclass
class ChildRun:
    result: dict
    peak_rss_mb: float


def layer_progress(lake: Path, n: int) -> str:
    """How many dates each layer holds so far (a heartbeat for long backfills)."""
    counts = []
    for layer, table in (("bronze", "portfolio"), ("silver", "assets"), ("gold", "index_summary")):
        folder = lake / layer / table
        counts.append(f"{layer} {len(list(folder.glob('date=*'))) if folder.is_dir() else 0}/{n}")
    return ", ".join(counts)


def run_child(spec: dict, env: dict[str, str], scratch: Path, heartbeat=None) -> ChildRun:
    """Run `run.py --child` and read its result; its peak RSS comes from wait4 (this child only).
    `heartbeat()` is called about once a minute while the child runs."""
    scratch.mkdir(parents=True, exist_ok=True)
    spec_file, result_file = scratch / "spec.json", scratch / "result.json"
    spec_file.write_text(json.dumps({**spec, "result": str(result_file)}), encoding="utf-8")
    with open(scratch / "stdout.txt", "wb") as out, open(scratch / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)],
            env=env,
            stdout=out,
            stderr=err,
            cwd=scratch,  # a stray relative path would land here, not in the repo
        )
        started = next_beat = time.monotonic()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.5)
            if heartbeat and time.monotonic() - next_beat >= 60:
                next_beat = time.monotonic()
                heartbeat(time.monotonic() - started)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not result_file.exists():
        tail = (scratch / "stderr.txt").read_text(errors="replace")[-3000:]
        raise SystemExit(f"child {spec['mode']} failed (exit {proc.returncode}); stderr tail:\n{tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    if not result["success"]:
        raise SystemExit(f"child {spec['mode']}: a run failed: {result['errors'][:5]}")
    return ChildRun(result, maxrss_mb(usage.ru_maxrss))


def sample_days(days: list[dt.date], size: int) -> list[dt.date]:
    """`size` dates spread evenly over the range, first and last included: per-partition cost grows
    with the history before a date (gold's time in index), so the sample must span it."""
    if size >= len(days):
        return list(days)
    return [days[round(i * (len(days) - 1) / (size - 1))] for i in range(size)] if size > 1 else [days[-1]]


def verify_lake(lake: Path, n: int, k: int) -> None:
    """The backfill built what it should: every date and index in gold, queryable in the catalog."""
    import duckdb

    conn = duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True)
    try:
        dates, rows = conn.execute(
            'SELECT count(DISTINCT "date"), count(*) FROM gold_index_summary'
        ).fetchone()
    finally:
        conn.close()
    if (dates, rows) != (n, n * k):
        raise SystemExit(
            f"{lake}: gold_index_summary holds {rows} rows over {dates} dates, expected {n * k}/{n}"
        )


# --- the child side ---------------------------------------------------------------------------------


def _child_instance(kind: str):
    import dagster as dg

    return dg.DagsterInstance.get() if kind == "persistent" else dg.DagsterInstance.ephemeral()


def _failures(results) -> list[str]:
    return [e.message for r in results if not r.success for e in r.all_events if e.is_failure]


def _self_maxrss_mb() -> float:
    import resource

    return maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _self_cpu_s() -> float:
    """CPU seconds so far: next to the wall time it shows how much was waiting (I/O, a busy machine)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_backfill(days: list[dt.date], kind: str) -> dict:
    """(b): materialize_days over consecutive dates = one block run + one catalog run, as the demo."""
    from b3_platform.definitions import build_defs
    from b3_platform.runs import materialize_days

    defs = build_defs()
    instance = _child_instance(kind)
    marks: list[float] = []
    rss_before = _self_maxrss_mb()
    cpu_before = _self_cpu_s()
    started = time.perf_counter()
    results = materialize_days(
        defs, days, instance=instance, quiet=True, progress=lambda a, b: marks.append(time.perf_counter())
    )
    ended = time.perf_counter()
    marks.append(ended)
    return {
        "wall_s": ended - started,
        "cpu_s": _self_cpu_s() - cpu_before,
        "run_s": [b - a for a, b in zip(marks, marks[1:])],  # block run(s), then the catalog run
        "runs": len(results),
        "rss_before_mb": rss_before,
        "success": all(r.success for r in results),
        "errors": _failures(results),
    }


def child_per_partition(days: list[dt.date], kind: str) -> dict:
    """(c): one execute_in_process per date with partition_key= (Dagster's default backfill shape),
    after one untimed warm-up run, then the catalog once."""
    import dagster as dg

    from b3_platform.definitions import build_defs
    from b3_platform.runs import QUIET

    defs = build_defs()
    instance = _child_instance(kind)
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_coercible("*").resolve(graph)
    partitioned = [k for k in keys if graph.get(k).is_partitioned]
    unpartitioned = [k for k in keys if not graph.get(k).is_partitioned]

    def timed(**kwargs) -> tuple[float, object]:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET, **kwargs)
        return time.perf_counter() - started, result

    warm_s, warm = timed(partition_key=days[0].isoformat(), asset_selection=partitioned)
    results, per_run = [warm], []
    for day in days:
        seconds, result = timed(partition_key=day.isoformat(), asset_selection=partitioned)
        per_run.append(seconds)
        results.append(result)
    catalog_s, catalog = timed(asset_selection=unpartitioned)
    results.append(catalog)
    return {
        "warmup_s": warm_s,
        "run_s": per_run,
        "catalog_s": catalog_s,
        "success": all(r.success for r in results),
        "errors": _failures(results),
    }


def child_main(spec_file: str) -> int:
    quiet_warnings()
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    days = [dt.date.fromisoformat(d) for d in spec["days"]]
    run = {"backfill": child_backfill, "per-partition": child_per_partition}[spec["mode"]]
    result = run(days, spec["instance"])
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------------------
# (f) the example queries: the DuckDB catalog against pandas over the raw JSON


def load_components(files: list[Path]):
    """Every component row of the given JSON files, one DataFrame (date, cod, asset, weight, ...)."""
    import pandas as pd

    records, dates = [], []
    for path in files:
        data = json.loads(path.read_bytes())
        day = dt.datetime.strptime(data["header"]["date"], "%d/%m/%y").date()
        records.extend(data["results"])
        dates.extend([day] * len(data["results"]))
    frame = pd.DataFrame.from_records(
        records, columns=["segment", "cod", "asset", "type", "part", "theoricalQty"]
    )
    frame["date"] = dates
    frame["weight"] = _pt_number(frame["part"])
    frame["quantity"] = frame["theoricalQty"].str.replace(".", "", regex=False).astype("int64")
    return frame


# Each pandas function mirrors one queries/*.sql (same filters, same columns); the equality check
# below catches drift if a query is edited.
ENTRIES_FROM, ENTRIES_TO = dt.date(2025, 6, 30), dt.date(2025, 7, 11)
SECTOR_DATE = dt.date(2022, 12, 8)
HISTORY_TICKER = "PETR4"


def pandas_entries_exits(files: list[Path]):
    """entries_exits.sql: tickers entering/leaving IBOV vs the previous trading day, if present."""
    import pandas as pd

    from b3_platform.trading_calendar import previous_trading_day

    frame = load_components(files)
    by_day = {day: group.set_index("cod") for day, group in frame.groupby("date")}
    rows = []
    for day in sorted(d for d in by_day if ENTRIES_FROM <= d <= ENTRIES_TO):
        before = by_day.get(previous_trading_day(day))
        if before is None:
            continue
        now = by_day[day]
        for ticker in now.index.difference(before.index):
            rows.append((day, "IBOV", "entered", ticker, now.at[ticker, "asset"], now.at[ticker, "weight"]))
        for ticker in before.index.difference(now.index):
            rows.append(
                (day, "IBOV", "exited", ticker, before.at[ticker, "asset"], before.at[ticker, "weight"])
            )
    columns = ["date", "index", "membership", "ticker", "company", "weight"]
    return pd.DataFrame(rows, columns=columns).sort_values(["date", "membership", "ticker"])


def pandas_sector_weights(files: list[Path]):
    """sector_weights.sql: weight and count per sector on one date (null sector without segment 2)."""
    import pandas as pd

    frame = load_components(files)
    day = frame[frame["date"] == SECTOR_DATE]
    if day.empty:
        return pd.DataFrame(columns=["sector", "weight", "components"])
    sector = day["segment"] if day["segment"].notna().any() else None
    grouped = (
        day.assign(sector=sector)
        .groupby("sector", dropna=False)
        .agg(weight=("weight", "sum"), components=("cod", "size"))
        .reset_index()
    )
    return grouped.sort_values(["weight", "sector"], ascending=[False, True])


def pandas_top10_concentration(files: list[Path]):
    """top10_concentration.sql: per date, components, top-5/top-10 weight, HHI, equivalent count."""
    frame = load_components(files).sort_values(["date", "weight"], ascending=[True, False])
    frame["rank"] = frame.groupby("date").cumcount()
    frame["w2"] = frame["weight"] ** 2
    out = frame.groupby("date").agg(components=("cod", "size"), hhi=("w2", "sum"))
    out["top5_weight"] = frame[frame["rank"] < 5].groupby("date")["weight"].sum()
    out["top10_weight"] = frame[frame["rank"] < 10].groupby("date")["weight"].sum()
    out["equivalent_components"] = (10000 / out["hhi"]).round(1)
    return out.reset_index()[
        ["date", "components", "top5_weight", "top10_weight", "hhi", "equivalent_components"]
    ]


def pandas_weight_history(files: list[Path]):
    """weight_history.sql: PETR4's weight per date, change vs the previous trading day if present."""
    from b3_platform.trading_calendar import previous_trading_day

    frame = load_components(files)
    present = set(frame["date"])
    rows = frame[frame["cod"] == HISTORY_TICKER].sort_values("date")
    weight_on = dict(zip(rows["date"], rows["weight"]))
    changes = []
    for day, weight in zip(rows["date"], rows["weight"]):
        before = previous_trading_day(day)
        changes.append(weight - weight_on.get(before, 0.0) if before in present else None)
    out = rows.rename(columns={"cod": "ticker", "quantity": "theoretical_quantity"})
    out = out.assign(weight_change_pp=changes)
    return out[["date", "ticker", "weight", "weight_change_pp", "theoretical_quantity"]]


@dataclass(frozen=True)
class QuerySpec:
    name: str
    pandas_fn: object
    #: dates a pandas user could restrict the file list to by name (None: needs every date)
    needed_dates: object = None
    tolerance: dict = field(default_factory=dict)


def _entries_dates(available: list[dt.date]) -> set[dt.date]:
    from b3_platform.trading_calendar import previous_trading_day

    window = {d for d in available if ENTRIES_FROM <= d <= ENTRIES_TO}
    return window | {previous_trading_day(d) for d in window}


QUERY_SPECS = {
    "entries_exits": QuerySpec("entries_exits", pandas_entries_exits, _entries_dates),
    "sector_weights": QuerySpec("sector_weights", pandas_sector_weights, lambda _: {SECTOR_DATE}),
    "top10_concentration": QuerySpec(
        "top10_concentration", pandas_top10_concentration, tolerance={"equivalent_components": 0.1 + 1e-9}
    ),
    "weight_history": QuerySpec("weight_history", pandas_weight_history),
}


def _plain(value):
    """One value as a comparable Python object (Decimal/numpy -> float, NaN -> None)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, (Decimal, float)):
        value = float(value)
        return None if math.isnan(value) else value
    return value


def same_answer(sql_columns: list[str], sql_rows: list[tuple], frame, tolerance: dict) -> tuple[bool, str]:
    """Compare the catalog's answer with pandas' on the columns pandas computes (rows sorted, numbers
    within tolerance: pandas works in floats, the lake in exact decimals)."""
    columns = list(frame.columns)
    missing = [c for c in columns if c not in sql_columns]
    if missing:
        return False, f"columns {missing} not in the SQL result"
    picks = [sql_columns.index(c) for c in columns]
    ours = [tuple(_plain(row[i]) for i in picks) for row in sql_rows]
    theirs = [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]
    if len(ours) != len(theirs):
        return False, f"{len(ours)} rows from the catalog, {len(theirs)} from pandas"

    def key(row):
        return tuple((v is None, round(v, 3) if isinstance(v, float) else v) for v in row)

    for a, b in zip(sorted(ours, key=key), sorted(theirs, key=key)):
        for column, x, y in zip(columns, a, b):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=0, abs_tol=tolerance.get(column, 1e-6)):
                    return False, f"{column}: {x} vs {y}"
            elif x != y:
                return False, f"{column}: {x!r} vs {y!r}"
    return True, f"{len(ours)} rows equal"


def time_calls(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return median(times)


@dataclass
class QueryResult:
    name: str
    rows: int
    duckdb_ms: float
    pandas_ms: float
    pruned_ms: float | None
    equal: bool
    detail: str


def measure_queries(lake: Path, archive: Path, repeat: int, clock: Clock) -> list[QueryResult]:
    """(f): each queries/*.sql through DuckDBCatalogResource.query vs a pandas scan of the IBOV JSON."""
    from b3_platform.resources import build_resources

    env = {
        "B3_PLATFORM_ENV": "local",
        "B3_PLATFORM_DATA_DIR": str(lake),
        "B3_PLATFORM_DUCKDB": str(lake / "warehouse.duckdb"),
    }
    catalog = build_resources(env)["catalog"]
    files = sorted((archive / "IBOV").glob("*.json"))
    available = [dt.date.fromisoformat(p.stem) for p in files]
    results = []
    for sql_file in sorted(QUERIES_DIR.glob("*.sql")):
        spec = QUERY_SPECS.get(sql_file.stem)
        if spec is None:
            clock.say(f"  (f) {sql_file.name}: no pandas equivalent written; skipped")
            continue
        sql = sql_file.read_text(encoding="utf-8")
        answer = catalog.query(sql)
        equal, detail = same_answer(answer.columns, answer.rows, spec.pandas_fn(files), spec.tolerance)
        duckdb_s = time_calls(lambda: catalog.query(sql), repeat)
        pandas_s = time_calls(lambda: spec.pandas_fn(files), repeat)
        pruned_s = None
        if spec.needed_dates is not None:
            wanted = spec.needed_dates(available)
            subset = [p for p in files if dt.date.fromisoformat(p.stem) in wanted]
            pruned_s = time_calls(lambda: spec.pandas_fn(subset), repeat)
        results.append(
            QueryResult(
                sql_file.stem,
                len(answer.rows),
                duckdb_s * 1000,
                pandas_s * 1000,
                None if pruned_s is None else pruned_s * 1000,
                equal,
                detail,
            )
        )
        clock.say(
            f"  (f) {sql_file.stem}: {len(answer.rows)} rows, DuckDB {duckdb_s * 1000:.1f} ms, "
            f"pandas scan {pandas_s * 1000:.0f} ms, same answer: {'yes' if equal else 'NO — ' + detail}"
        )
    return results


# --------------------------------------------------------------------------------------------------
# The measurement plan


@dataclass
class ComboResult:
    """Every figure of one (N dates, K indices) combination, one entry per repeat."""

    n: int
    k: int
    files: int = 0
    import_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)
    backfill: dict[str, list[ChildRun]] = field(default_factory=lambda: {i: [] for i in INSTANCES})
    per_partition: dict[str, list[ChildRun]] = field(default_factory=lambda: {i: [] for i in INSTANCES})
    sample: int = 0

    def backfill_s(self, kind: str) -> float:
        return median([r.result["wall_s"] for r in self.backfill[kind]])

    def backfill_ms_per_date(self, kind: str) -> float:
        return self.backfill_s(kind) * 1000 / self.n

    def backfill_cpu_s(self, kind: str) -> float:
        return median([r.result["cpu_s"] for r in self.backfill[kind]])

    def backfill_rss_mb(self, kind: str) -> float:
        return median([r.peak_rss_mb for r in self.backfill[kind]])

    def run_split_s(self, kind: str) -> tuple[float, float]:
        """(block run, catalog run) seconds of (b)."""
        runs = [r.result["run_s"] for r in self.backfill[kind]]
        return median([sum(r[:-1]) for r in runs]), median([r[-1] for r in runs])

    def per_partition_ms(self, kind: str) -> float:
        """Mean seconds per per-partition run (a mean: the cost grows with the history before a date)."""
        return median([statistics.fmean(r.result["run_s"]) for r in self.per_partition[kind]]) * 1000

    def per_partition_total_s(self, kind: str) -> float:
        """(c) extrapolated to N dates: mean run x N + the catalog run once."""
        return median(
            [
                statistics.fmean(r.result["run_s"]) * self.n + r.result["catalog_s"]
                for r in self.per_partition[kind]
            ]
        )

    def speedup(self, kind: str) -> float:
        return self.per_partition_total_s(kind) / self.backfill_s(kind)


@dataclass(frozen=True)
class Archive:
    """One synthetic archive and what it holds."""

    path: Path
    days: list[dt.date]
    indices: tuple[str, ...]


def measure_backfill(archive: Archive, lake: Path, kind: str, step: Path, say) -> ChildRun:
    """(b) and (e): one single-run backfill of every date in a fresh child process."""
    home = fresh_dagster_home(step / f"home-backfill-{kind}") if kind == "persistent" else None
    spec = {"mode": "backfill", "instance": kind, "days": [d.isoformat() for d in archive.days]}
    n = len(archive.days)
    run = run_child(
        spec,
        child_env(lake, archive.indices, home),
        step / f"child-backfill-{kind}",
        lambda s: say(f"(b) {kind} backfill running {s:.0f} s: {layer_progress(lake, n)}"),
    )
    verify_lake(lake, n, len(archive.indices))
    say(
        f"(b) single-run backfill, {kind}: {run.result['wall_s']:.1f} s (CPU {run.result['cpu_s']:.1f} s) "
        f"= {run.result['wall_s'] * 1000 / n:.1f} ms/date, peak RSS {run.peak_rss_mb:.0f} MB"
    )
    return run


def measure_per_partition(
    archive: Archive, picked: list[dt.date], lake: Path, kind: str, step: Path, say
) -> ChildRun:
    """(c): the sampled dates as per-partition runs, on the lake (b) built, in a fresh child."""
    home = fresh_dagster_home(step / f"home-per-partition-{kind}") if kind == "persistent" else None
    spec = {"mode": "per-partition", "instance": kind, "days": [d.isoformat() for d in picked]}
    run = run_child(
        spec,
        child_env(lake, archive.indices, home),
        step / f"child-per-partition-{kind}",
        lambda s: say(f"(c) {kind} per-partition runs going, {s:.0f} s"),
    )
    mean_s = statistics.fmean(run.result["run_s"])
    say(
        f"(c) {len(picked)} per-partition runs, {kind}: {mean_s * 1000:.0f} ms/run "
        f"(warm-up {run.result['warmup_s']:.1f} s), ≈ {mean_s * len(archive.days) + run.result['catalog_s']:.0f} s "
        f"for {len(archive.days)} dates"
    )
    return run


def measure_once(combo: ComboResult, archive: Archive, picked: list[dt.date], step: Path, say) -> None:
    """One repeat of (a)-(e), on fresh lakes under `step` (one per instance type)."""
    lakes = {kind: step / f"lake-{kind}" for kind in INSTANCES}
    seconds, files = import_archive(archive.path, lakes["persistent"])
    combo.import_s.append(seconds)
    say(f"(a) imported {files} files, 0 rejected: {files / seconds:.0f} files/s")
    shutil.copytree(lakes["persistent"], lakes["ephemeral"])
    for kind in INSTANCES:
        combo.backfill[kind].append(measure_backfill(archive, lakes[kind], kind, step, say))
    for kind in INSTANCES:
        combo.per_partition[kind].append(measure_per_partition(archive, picked, lakes[kind], kind, step, say))
    naive = naive_pandas(archive.path, archive.indices, archive.days, step / "naive-pandas")
    combo.naive_s.append(naive)
    say(f"(d) naive pandas: {naive:.1f} s = {combo.files / naive:.0f} files/s")


def measure_combo(
    workdir: Path, n: int, k: int, repeat: int, sample: int, keep_last_lake: bool, clock: Clock
) -> tuple[ComboResult, Path, Path | None]:
    """All of (a)-(e) for one size, `repeat` times; returns the result, the archive and (if asked)
    the last persistent lake with its catalog, for (f). Other lakes are removed as soon as measured
    (a 1250 x 5 lake is ~0.5 GB)."""
    combo_dir = workdir / f"n{n}-k{k}"
    archive = Archive(*build_archive(combo_dir / "archive", n, k))
    combo = ComboResult(n, k, files=n * k)
    clock.say(
        f"N={n} K={k}: SYNTHETIC archive of {n * k} files ({archive.days[0]} … {archive.days[-1]}, "
        f"{', '.join(archive.indices)}; re-dated real IBOV samples) at {archive.path}"
    )
    picked = sample_days(archive.days, sample)
    combo.sample = len(picked)
    kept = None
    for r in range(1, repeat + 1):
        step = combo_dir / f"repeat{r}"
        measure_once(
            combo,
            archive,
            picked,
            step,
            lambda text, r=r: clock.say(f"N={n} K={k} repeat {r}/{repeat}: {text}"),
        )
        if keep_last_lake and r == repeat:
            kept = step / "lake-persistent"
            shutil.rmtree(step / "lake-ephemeral", ignore_errors=True)
            shutil.rmtree(step / "naive-pandas", ignore_errors=True)
        else:
            shutil.rmtree(step, ignore_errors=True)
    return combo, archive.path, kept


# --------------------------------------------------------------------------------------------------
# Report


def machine_description() -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores ({cpu}){memory}, {platform.platform()}",
        f"- load average at the end (1/5/15 min): {load}",
        f"- python {platform.python_version()}, dagster {version('dagster')}, duckdb {version('duckdb')}, "
        f"pyarrow {version('pyarrow')}, pandas {version('pandas')}, exchange_calendars {version('exchange-calendars')}",
        f"- b3_platform commit: {commit}",
    ]


def archive_description(sizes: list[tuple[int, int]]) -> list[str]:
    sources = source_samples()
    return [
        f"SYNTHETIC: the {len(sources)} real IBOV GetPortfolioDay samples "
        f"({sources[0].stem} … {sources[-1].stem}, demo_data/) re-dated (header.date only) onto the last N "
        f"B3 trading days up to {END_DATE}, cycling through the samples so consecutive days differ; for "
        f"K > 1 the same contents are filed under {', '.join(INDEX_CODES[1:])} as well. Sizes measured "
        f"(N dates × K indices): {', '.join(f'{n}×{k}' for n, k in sizes)}. Every file imported, none rejected.",
    ]


def tables(combos: list[ComboResult], queries: list[QueryResult], query_repeat: int) -> list[str]:
    lines = [
        "### (a) import and (d) naive pandas",
        "",
        "| N dates | K indices | files | (a) import files/s | (d) pandas files/s | (d) pandas ms/date "
        "| (b) ms/date (persistent) | (b) ÷ (d) time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in combos:
        naive_ms = median(c.naive_s) * 1000 / c.n
        b_ms = c.backfill_ms_per_date("persistent")
        lines.append(
            f"| {c.n} | {c.k} | {c.files} | {fmt(c.files / median(c.import_s), 0)} | "
            f"{fmt(c.files / median(c.naive_s), 0)} | {fmt(naive_ms, 2)} | {fmt(b_ms, 2)} | {fmt(b_ms / naive_ms, 2)}× |"
        )
    lines += [
        "",
        "### (b) single-run backfill, (c) per-partition runs, (e) peak RSS",
        "",
        "| N | K | instance | (b) wall s | (b) CPU s | (b) ms/date | block run s | catalog run s | (c) ms/run "
        "| (c) sampled dates | (c) est. total s | (c) ÷ (b) | (e) peak RSS MB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in combos:
        for kind in INSTANCES:
            block_s, catalog_s = c.run_split_s(kind)
            walls = [r.result["wall_s"] for r in c.backfill[kind]]
            spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
            lines.append(
                f"| {c.n} | {c.k} | {kind} | {fmt(c.backfill_s(kind), 2)}{spread} | {fmt(c.backfill_cpu_s(kind), 1)} | "
                f"{fmt(c.backfill_ms_per_date(kind), 2)} | {fmt(block_s, 2)} | {fmt(catalog_s, 2)} | "
                f"{fmt(c.per_partition_ms(kind), 0)} | {c.sample} | {fmt(c.per_partition_total_s(kind), 0)} | "
                f"{fmt(c.speedup(kind), 1)}× | {fmt(c.backfill_rss_mb(kind), 0)} |"
            )
    if queries:
        lines += [
            "",
            f"### (f) example queries (median of {query_repeat} after 1 warm-up)",
            "",
            "| query | rows | DuckDB catalog ms | pandas scan of raw JSON ms | scan ÷ DuckDB "
            "| pandas, files picked by name ms (info) | same answer |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for q in queries:
            lines.append(
                f"| {q.name} | {q.rows} | {fmt(q.duckdb_ms, 1)} | {fmt(q.pandas_ms, 0)} | "
                f"{fmt(q.pandas_ms / q.duckdb_ms, 1)}× | "
                f"{'— (needs every date)' if q.pruned_ms is None else fmt(q.pruned_ms, 1)} | "
                f"{'yes' if q.equal else 'NO: ' + q.detail} |"
            )
    return lines


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def at_most(label: str, value: float, limit: float, unit: str) -> str:
    margin = limit - value
    return f"{_verdict(value <= limit)} {label}: {value:,.1f} {unit} ≤ {limit:g} {unit} (margin {margin:+,.1f} {unit}, {margin / limit:+.0%})"


def at_least(label: str, value: float, limit: float) -> str:
    margin = value - limit
    return f"{_verdict(value >= limit)} {label}: {value:,.1f}× ≥ {limit:g}× (margin {margin:+,.1f}×, {margin / limit:+.0%})"


def target_lines(combos: list[ComboResult], queries: list[QueryResult]) -> list[str]:
    """PASS/MISS per target, at the issue's sizes when measured, else at the nearest measured size
    (and saying so)."""
    lines = []
    by_size = {(c.n, c.k): c for c in combos}
    ns = sorted({c.n for c in combos})
    k1 = min(c.k for c in combos)
    n_big = TARGET_N if (TARGET_N, TARGET_K) in by_size else max(ns)
    c = by_size.get((n_big, TARGET_K)) or by_size[(n_big, k1)]
    where = f"N={c.n}, K={c.k}"
    if (c.n, c.k) != (TARGET_N, TARGET_K):
        where += f" (target defined at N={TARGET_N}, K={TARGET_K}: not measured)"
    for kind in INSTANCES:
        lines.append(
            at_most(
                f"(b) all layers, {kind}, {where}",
                c.backfill_ms_per_date(kind),
                TARGET_MS_PER_DATE,
                "ms/date",
            )
        )
        lines.append(
            at_least(
                f"(b) vs (c) per-partition runs, {kind}, {where}",
                c.speedup(kind),
                TARGET_SPEEDUP_VS_PER_PARTITION,
            )
        )
    if len(ns) >= 2:
        for k in sorted({c.k for c in combos}):
            small, big = by_size.get((ns[0], k)), by_size.get((ns[-1], k))
            if small is None or big is None:
                continue
            for kind in INSTANCES:
                ratio = big.backfill_rss_mb(kind) / small.backfill_rss_mb(kind)
                lines.append(
                    f"{_verdict(ratio <= TARGET_RSS_RATIO)} (e) peak RSS N={ns[-1]} vs N={ns[0]}, K={k}, {kind}: "
                    f"{big.backfill_rss_mb(kind):.0f} MB / {small.backfill_rss_mb(kind):.0f} MB = {ratio:.2f}× "
                    f"≤ {TARGET_RSS_RATIO:g}× (margin {TARGET_RSS_RATIO - ratio:+.2f}×)"
                )
    else:
        lines.append("MISS (e) peak RSS: needs two --dates sizes (not measured)")
    for q in queries:
        lines.append(at_most(f"(f) {q.name} median", q.duckdb_ms, TARGET_QUERY_MS, "ms"))
        lines.append(
            at_least(
                f"(f) {q.name} vs pandas scanning raw JSON", q.pandas_ms / q.duckdb_ms, TARGET_QUERY_SPEEDUP
            )
        )
        if not q.equal:
            lines.append(f"MISS (f) {q.name}: pandas and the catalog disagree ({q.detail})")
    return lines


def write_results(report: list[str], argv: list[str]) -> None:
    text = "\n".join(
        [
            "# Benchmark results (SYNTHETIC archive)",
            "",
            "Written by `python benchmarks/run.py --write-results`; see README.md in this folder for what "
            "each figure measures. The archive is synthetic: the real IBOV samples re-dated onto "
            "consecutive trading days (and copied under other index codes for K > 1).",
            "",
            f"Command: `python benchmarks/run.py {' '.join(argv)}`".rstrip(),
            "",
            *report,
            "",
        ]
    )
    RESULTS_FILE.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Command line


def int_list(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dates", type=int_list, default=[250, 1250], help="trading days N (default 250,1250)"
    )
    parser.add_argument("--indices", type=int_list, default=[1, 5], help="indices K, 1..5 (default 1,5)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions of each timed measure; the median is reported"
    )
    parser.add_argument(
        "--sample", type=int, default=20, help="dates run as per-partition runs for (c) (default 20)"
    )
    parser.add_argument(
        "--workdir", help="where archives and lakes go (default: a temp dir, removed at the end)"
    )
    parser.add_argument("--write-results", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    quiet_warnings()
    if args.repeat < 1 or args.sample < 1:
        raise SystemExit("--repeat and --sample must be ≥ 1")
    clock = Clock()
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="b3bench-", dir=args.workdir))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="b3bench-"))
    clock.say(f"b3_platform benchmark on a SYNTHETIC archive (re-dated real IBOV samples); workdir {workdir}")
    if args.sample < 20:
        clock.say(f"note: --sample {args.sample} < 20: (c) extrapolates from fewer dates than the issue asks")
    from b3_platform import trading_calendar

    trading_calendar.horizon()  # load exchange_calendars once, outside every timed section
    biggest = (max(args.dates), max(args.indices))
    combos, kept_lake, kept_archive = [], None, None
    try:
        for k in args.indices:
            for n in args.dates:
                combo, archive, lake = measure_combo(
                    workdir, n, k, args.repeat, args.sample, (n, k) == biggest, clock
                )
                combos.append(combo)
                if lake is not None:
                    kept_lake, kept_archive = lake, archive
                else:
                    shutil.rmtree(archive.parent, ignore_errors=True)
        query_repeat = max(MIN_QUERY_REPEAT, args.repeat)
        clock.say(
            f"(f) example queries over the catalog of N={biggest[0]}, K={biggest[1]} ({query_repeat} repetitions)"
        )
        queries = measure_queries(kept_lake, kept_archive, query_repeat, clock)
    except BaseException:
        clock.say(f"stopped; the workdir is kept for inspection: {workdir}")
        raise
    report = ["## Machine", "", *machine_description(), "", "## Archive", ""]
    report += archive_description([(c.n, c.k) for c in combos])
    report += ["", "## Figures", "", *tables(combos, queries, query_repeat)]
    report += ["", "## Targets", "", *(f"- {line}" for line in target_lines(combos, queries))]
    print()
    print("\n".join(report))
    if args.write_results:
        write_results(report, argv)
        clock.say(f"wrote {RESULTS_FILE}")
    if args.workdir:
        clock.say(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    clock.say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
