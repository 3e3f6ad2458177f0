"""(a) import, (b) the single-run backfill, (c) per-partition runs, (d) the naive pandas script and
(e) peak RSS. (a) and (d) are measured in this process; every Dagster run of (b) and (c) in a fresh
subprocess (`run.py --child SPEC.json`, the child side below) so that its peak RSS is its own."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from archive import Archive
from common import BENCH_DIR, REPO, maxrss_mb, pt_number, quiet_warnings

#: The script a child runs: the entry point, in its `--child` mode.
ENTRY_POINT = BENCH_DIR / "run.py"
REPO_DAGSTER_YAML = REPO / "dagster.yaml"
INSTANCES = ("persistent", "ephemeral")


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
            frame["part"] = pt_number(frame["part"])
            frame["theoricalQty"] = frame["theoricalQty"].str.replace(".", "", regex=False).astype("int64")
            frame["index"] = index
            frame["date"] = day
            for key, value in data["header"].items():
                frame[f"header_{key}"] = value
            frames.append(frame)
        pd.concat(frames, ignore_index=True).to_parquet(out / f"{day.isoformat()}.parquet", index=False)
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------
# (b), (c), (e): Dagster runs, each in a fresh subprocess of run.py


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


def fresh_dagster_home(path: Path, dagster_yaml: Path = REPO_DAGSTER_YAML) -> Path:
    """A persistent sqlite instance configured like a checkout's (its dagster.yaml; this repo's
    by default), so a compared checkout runs on its own instance settings."""
    path.mkdir(parents=True)
    shutil.copy(dagster_yaml, path / "dagster.yaml")
    return path


@functools.cache
def history_selection() -> list[str]:
    """What a backfill of saved day portfolios builds (runs.archive_selection: every layer and the
    catalog, as the demo and an import's backfill do, not the listing's or the announced portfolios'
    assets, which have nothing on past days), as asset names a child of any checkout can select."""
    from b3_platform.definitions import build_defs
    from b3_platform.runs import archive_selection

    return archive_selection(build_defs().resolve_asset_graph())


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


def run_child(
    spec: dict,
    env: dict[str, str],
    scratch: Path,
    heartbeat=None,
    code: Path | None = None,
    entry_point: Path = ENTRY_POINT,
) -> ChildRun:
    """Run this checkout's `run.py --child` (or another script's, `entry_point`, that reads the same
    spec file and writes the same result file) and read its result; its peak RSS comes from wait4
    (this child only). `heartbeat()` is called about once a minute while it runs.

    `code`: another checkout whose b3_platform the child measures (B3_BENCH_CODE, put first on the
    child's sys.path by run.py), so both sides of a comparison run the same benchmark code and
    selection, whatever the other checkout's own benchmarks did."""
    scratch.mkdir(parents=True, exist_ok=True)
    if code is not None and code.resolve() != REPO.resolve():
        env = {**env, "B3_BENCH_CODE": str(code.resolve())}
    spec_file, result_file = scratch / "spec.json", scratch / "result.json"
    spec_file.write_text(json.dumps({**spec, "result": str(result_file)}), encoding="utf-8")
    with open(scratch / "stdout.txt", "wb") as out, open(scratch / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(entry_point), "--child", str(spec_file)],
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
    """The failed runs' messages: a RunOutcome's `failures`, or the failure events of an older
    checkout's ExecuteInProcessResult (a baseline's materialize_days returned those)."""
    found = []
    for r in (r for r in results if not r.success):
        if hasattr(r, "failures"):
            found += r.failures
        else:
            found += [e.message for e in r.all_events if e.is_failure]
    return found


def _self_maxrss_mb() -> float:
    import resource

    return maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _self_cpu_s() -> float:
    """CPU seconds so far: next to the wall time it shows how much was waiting (I/O, a busy machine)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_backfill(
    days: list[dt.date], kind: str, selection: str | list[str] = "*", single_run: bool = False
) -> dict:
    """(b): materialize_days over consecutive dates = one block run per MAX_RUN_DATES dates (one up to
    250) + one catalog run, as the demo. `single_run`: the whole block as one run, whatever its
    length (a checkout whose materialize_days has no run limit runs it so anyway)."""
    import inspect

    from b3_platform.definitions import build_defs
    from b3_platform.runs import materialize_days

    limit = (
        {"max_run_dates": max(len(days), 1)}
        if single_run and "max_run_dates" in inspect.signature(materialize_days).parameters
        else {}
    )

    defs = build_defs()
    instance = _child_instance(kind)
    marks: list[float] = []
    peaks: list[float] = []  # the high-water mark when each run starts: [block(s)..., catalog]
    rss_before = _self_maxrss_mb()
    cpu_before = _self_cpu_s()
    started = time.perf_counter()
    results = materialize_days(
        defs,
        days,
        instance=instance,
        selection=selection,
        quiet=True,
        progress=lambda a, b: (marks.append(time.perf_counter()), peaks.append(_self_maxrss_mb())),
        **limit,
    )
    ended = time.perf_counter()
    marks.append(ended)
    cpu_s = _self_cpu_s() - cpu_before
    # Closed as a process closing its instance would (untimed): an instance that keeps its sqlite
    # connections open (b3_platform/sqlite_storage.py) then folds its write-ahead logs into the
    # databases, so the instance size measured after is the databases', as with Dagster's class.
    instance.dispose()
    return {
        "wall_s": ended - started,
        "cpu_s": cpu_s,
        "run_s": [b - a for a, b in zip(marks, marks[1:])],  # block run(s), then the catalog run
        "runs": len(results),
        "rss_before_mb": rss_before,
        # The peak before the catalog run started = the peak of the block run(s) alone.
        "rss_at_run_start_mb": peaks,
        "success": all(r.success for r in results),
        "errors": _failures(results),
    }


def child_per_partition(days: list[dt.date], kind: str, selection: str | list[str] = "*") -> dict:
    """(c): one execute_in_process per date with partition_key= (Dagster's default backfill shape),
    after one untimed warm-up run, then the catalog once."""
    import dagster as dg

    from b3_platform.definitions import build_defs
    from b3_platform.runs import QUIET

    defs = build_defs()
    instance = _child_instance(kind)
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_coercible(selection).resolve(graph)
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


def assert_measured_code(checkout: str | None) -> None:
    """Fail a child that measured another checkout (`checkout`) if any b3_platform module it ran
    came from elsewhere. The editable install's import hook resolves a module the other checkout
    lacks (one added since, e.g. b3_platform.sqlite_storage named by this checkout's dagster.yaml)
    from THIS checkout, silently mixing the two."""
    if not checkout:
        return
    root = Path(checkout).resolve()
    strays = sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == "b3_platform" or name.startswith("b3_platform."))
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(root)
    )
    if strays:
        raise SystemExit(f"measured {root} but imported {', '.join(strays)} from elsewhere")


def child_main(spec_file: str) -> int:
    quiet_warnings()
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    days = [dt.date.fromisoformat(d) for d in spec["days"]]
    run = {"backfill": child_backfill, "per-partition": child_per_partition}[spec["mode"]]
    extra = {"single_run": True} if spec.get("single_run") else {}
    result = run(days, spec["instance"], spec.get("selection", "*"), **extra)
    assert_measured_code(os.environ.get("B3_BENCH_CODE"))
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# --- the parent side: one measure, one child -------------------------------------------------------


def measure_backfill(archive: Archive, lake: Path, kind: str, step: Path, say) -> ChildRun:
    """(b) and (e): one single-run backfill of every date in a fresh child process."""
    home = fresh_dagster_home(step / f"home-backfill-{kind}") if kind == "persistent" else None
    spec = {
        "mode": "backfill",
        "instance": kind,
        "days": [d.isoformat() for d in archive.days],
        "selection": history_selection(),
    }
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
    spec = {
        "mode": "per-partition",
        "instance": kind,
        "days": [d.isoformat() for d in picked],
        "selection": history_selection(),
    }
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
