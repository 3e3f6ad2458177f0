#!/usr/bin/env python
"""Where a backfill's memory goes: RSS sampled through one `materialize_days` backfill of N dates ×
K indices (SYNTHETIC archive, as moonshot.py), and, with --trace, tracemalloc snapshots compared.

The child samples every 0.1 s: RSS, Python's traced memory (with --trace), Arrow's memory pool, and
how many dates the current layer has stored. It reports the high-water mark of each run (the block
run(s), then the catalog run) and of each layer within the block run, and RSS against dates stored,
so growth with dates shows as a slope. With --trace it also snapshots Python's allocations when a
layer has stored `--snap-at` dates and when it has stored its last date, and prints the allocation
sites (tracebacks) that grew most between the two, and those held at the block run's end.

    python benchmarks/memory_profile.py --dates 120 --indices 5
    python benchmarks/memory_profile.py --dates 250 --indices 34 --trace 12 --snap-at 50

tracemalloc slows the run ~2-3× and its own bookkeeping adds to RSS: compare RSS without --trace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backfill import child_env, fresh_dagster_home, history_selection, run_child  # noqa: E402
from common import REPO, Clock, quiet_warnings  # noqa: E402

if os.environ.get("B3_BENCH_CODE"):
    sys.path.insert(0, os.environ["B3_BENCH_CODE"])

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def _hwm_mb() -> float:
    """The process's peak RSS so far (VmHWM): a peak between two samples still shows."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


#: Functions whose time is labelled in the samples: (module, attribute path, label).
LABELLED = (
    ("b3_platform.catalog.duckdb_catalog", "DuckDBCatalogResource.sync", "catalog sync"),
    ("b3_platform.assets.athena_tables", "write_coverage", "coverage"),
    ("b3_platform.assets.athena_tables", "_schema_problems", "describe"),
    ("b3_platform.assets.dashboard", "build_site", "dashboard page"),
    ("b3_platform.assets.dashboard", "load_window", "dashboard window"),
    ("b3_platform.assets.dashboard", "index_png", "dashboard picture"),
)


def _label_calls(sampler) -> None:
    """Wrap LABELLED so the samples say which of them was running."""
    import functools
    import importlib

    for module_name, path, label in LABELLED:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = getattr(owner, name, None)
        if original is None:
            continue

        def wrapped(*args, _original=original, _label=label, **kwargs):
            before, sampler.layer = sampler.layer, _label
            try:
                return _original(*args, **kwargs)
            finally:
                sampler.layer = before

        setattr(owner, name, functools.wraps(original)(wrapped))


# --- the child side ---------------------------------------------------------------------------------


class Sampler:
    """RSS (and traced / Arrow memory) every `every` seconds, labelled with the current run, layer
    and dates stored."""

    def __init__(self, every: float, trace: bool) -> None:
        self.every, self.trace = every, trace
        self.samples: list[list] = []
        self.run = "start"
        self.layer = ""
        self.stored = 0
        self.stop = threading.Event()

    def run_loop(self) -> None:
        import tracemalloc

        import pyarrow as pa

        started = time.monotonic()
        while not self.stop.wait(self.every):
            traced = tracemalloc.get_traced_memory()[0] / 2**20 if self.trace else 0.0
            self.samples.append(
                [
                    round(time.monotonic() - started, 2),
                    round(_rss_mb(), 1),
                    round(traced, 1),
                    round(pa.total_allocated_bytes() / 2**20, 1),
                    self.run,
                    self.layer,
                    self.stored,
                    round(_hwm_mb(), 1),
                ]
            )

    def start_sampling(self) -> None:
        threading.Thread(target=self.run_loop, daemon=True).start()


def child_profile(spec: dict) -> dict:
    import datetime as dt
    import tracemalloc

    import dagster as dg

    from b3_platform.definitions import build_defs
    from b3_platform.lake import io_manager
    from b3_platform.runs import materialize_days

    trace = int(spec.get("trace") or 0)
    snap_at = int(spec.get("snap_at") or 50)
    out = Path(spec["out"])
    days = [dt.date.fromisoformat(d) for d in spec["days"]]
    if trace:
        tracemalloc.start(trace)
    sampler = Sampler(0.05, bool(trace))
    sampler.start_sampling()

    written = io_manager.DateStream.written
    snapped: set[str] = set()

    def counting_written(self, day, result, uris):
        written(self, day, result, uris)
        if sampler.layer != self.name:
            sampler.layer, sampler.stored = self.name, 0
        sampler.stored += 1
        for when in (snap_at, len(self.days)):
            tag = f"{self.name}-{when}"
            if trace and sampler.stored == when and tag not in snapped:
                snapped.add(tag)
                tracemalloc.take_snapshot().dump(str(out / f"snap-{tag}.pickle"))

    io_manager.DateStream.written = counting_written
    _label_calls(sampler)
    defs = build_defs()
    instance = dg.DagsterInstance.get()
    runs = 0

    def progress(first, last):
        nonlocal runs
        runs += 1
        if spec.get("gc"):  # what the earlier runs left as unreachable cycles, freed now
            import gc

            gc.collect()
        if trace and first is None:  # the block run(s) are over: what they left held
            tracemalloc.take_snapshot().dump(str(out / "snap-after-blocks.pickle"))
        elif trace:  # what earlier runs left held when this one starts
            tracemalloc.take_snapshot().dump(str(out / f"snap-run{runs:03d}-start.pickle"))
        sampler.run, sampler.layer, sampler.stored = ("catalog" if first is None else f"block{runs}"), "", 0

    started = time.perf_counter()
    extra = {"max_run_dates": spec["max_run_dates"]} if spec.get("max_run_dates") else {}
    results = materialize_days(
        defs, days, instance=instance, selection=spec["selection"], quiet=True, progress=progress, **extra
    )
    sampler.stop.set()
    instance.dispose()
    return {
        "wall_s": time.perf_counter() - started,
        "success": all(r.success for r in results),
        "errors": [],
        "samples": sampler.samples,
        "snapshots": sorted(p.name for p in out.glob("snap-*.pickle")),
    }


def child_main(spec_file: str) -> int:
    quiet_warnings()
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    result = child_profile(spec)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# --- the parent side --------------------------------------------------------------------------------


def slope_kb_per_date(points: list[tuple[int, float]]) -> float:
    """Least-squares MB per stored date, in KB."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return float("nan") if not var else sum((x - mx) * (y - my) for x, y in points) / var * 1024


def summarize(result: dict, peak_rss_mb: float) -> list[str]:
    samples = result["samples"]
    lines = [f"peak RSS (wait4) {peak_rss_mb:.0f} MB; wall {result['wall_s']:.1f} s"]
    order: list[tuple[str, str]] = []
    for s in samples:
        if (s[4], s[5]) not in order:
            order.append((s[4], s[5]))
    for run, layer in order:
        part = [s for s in samples if (s[4], s[5]) == (run, layer)]
        top = max(part, key=lambda s: s[1])
        # The process peak reached while this part ran (VmHWM rose during it), else nothing.
        earlier = [s[7] for s in samples if s[0] < part[0][0]]
        hwm_before = max(earlier, default=0.0)
        hwm_after = max(s[7] for s in part)
        # RSS against dates stored: the last sample at each count, after the first tenth (warm-up)
        by_count: dict[int, float] = {}
        for s in part:
            by_count[s[6]] = max(by_count.get(s[6], 0.0), s[1])
        pts = [(c, r) for c, r in sorted(by_count.items()) if c > max(by_count, default=0) / 10]
        lines.append(
            f"  {run:8} {layer or '(no layer yet)':22} max RSS {top[1]:7.1f} MB (traced {top[2]:6.1f}, "
            f"arrow {top[3]:6.1f}) at {top[0]:6.1f} s; {max(by_count, default=0):4d} dates stored; "
            f"RSS slope {slope_kb_per_date(pts):7.1f} KB/date"
            + (f"; process peak raised to {hwm_after:.0f} MB" if hwm_after > hwm_before + 0.5 else "")
        )
    return lines


def compare_snapshots(folder: Path, first: str, second: str, limit: int) -> list[str]:
    import tracemalloc

    a = tracemalloc.Snapshot.load(str(folder / first))
    b = tracemalloc.Snapshot.load(str(folder / second))
    filt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = b.filter_traces(filt).compare_to(a.filter_traces(filt), "traceback")
    lines = [f"{second} against {first}: top {limit} growths by traceback"]
    for stat in stats[:limit]:
        lines.append(
            f"  +{stat.size_diff / 2**20:7.2f} MB ({stat.count_diff:+d} blocks), now {stat.size / 2**20:.2f} MB"
        )
        for frame in stat.traceback.format(limit=8, most_recent_first=True):
            lines.append("      " + frame.strip())
    return lines


def top_held(folder: Path, name: str, limit: int) -> list[str]:
    import tracemalloc

    snap = tracemalloc.Snapshot.load(str(folder / name))
    stats = snap.statistics("traceback")
    total = sum(s.size for s in stats)
    lines = [f"{name}: {total / 2**20:.1f} MB traced; top {limit} by traceback"]
    for stat in stats[:limit]:
        lines.append(f"  {stat.size / 2**20:7.2f} MB ({stat.count} blocks)")
        for frame in stat.traceback.format(limit=8, most_recent_first=True):
            lines.append("      " + frame.strip())
    return lines


def _raw_lake(work: Path, args, clock: Clock):
    """moonshot.build_raw_lake's raw lake, built once per size under --cache when given."""
    import archive
    from moonshot import build_raw_lake

    from b3_platform.b3.indices import BUILTIN_INDICES

    if not args.cache:
        return build_raw_lake(work, args.dates, args.indices, clock)
    raw = args.cache / f"raw-n{args.dates}-k{args.indices}"
    if not raw.is_dir():
        built, _, _ = build_raw_lake(work, args.dates, args.indices, clock)
        args.cache.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), str(raw))
    return raw, archive.target_days(args.dates), BUILTIN_INDICES[: args.indices]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dates", type=int, default=120)
    parser.add_argument("--indices", type=int, default=5)
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames per traceback (0: off)")
    parser.add_argument("--snap-at", type=int, default=50, help="snapshot each layer at this many dates")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--baseline", type=Path, help="profile that checkout's package instead")
    parser.add_argument("--keep", type=Path, help="keep the samples and snapshots here")
    parser.add_argument("--cache", type=Path, help="keep each size's raw lake here and reuse it")
    parser.add_argument("--gc", action="store_true", help="gc.collect() before each run starts")
    parser.add_argument("--max-run-dates", type=int, help="runs.materialize_days' max_run_dates")
    parser.add_argument(
        "--keep-lake", type=Path, help="move the built lake here (e.g. for catalog_load_memory.py)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    quiet_warnings()
    from b3_platform import trading_calendar

    trading_calendar.horizon()
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3memprof-"))
    checkout = (args.baseline or REPO).resolve()
    try:
        raw, days, indices = _raw_lake(work, args, clock)
        lake = work / "lake"
        shutil.copytree(raw, lake)
        home = fresh_dagster_home(work / "home", checkout / "dagster.yaml")
        out = args.keep or (work / "out")
        out.mkdir(parents=True, exist_ok=True)
        spec = {
            "days": [d.isoformat() for d in days],
            "selection": history_selection(),
            "trace": args.trace,
            "snap_at": args.snap_at,
            "out": str(out),
            "mode": "profile",
            "max_run_dates": args.max_run_dates,
            "gc": args.gc,
        }
        run = run_child(
            spec,
            child_env(lake, indices, home),
            work / "child",
            code=checkout,
            entry_point=Path(__file__).resolve(),
        )
        (out / "samples.json").write_text(json.dumps(run.result["samples"]), encoding="utf-8")
        clock.say(
            f"{checkout.name}: N={args.dates} K={args.indices} max_run_dates={args.max_run_dates or 'default'}"
        )
        print("\n".join(summarize(run.result, run.peak_rss_mb)))
        snaps = run.result["snapshots"]
        if "snap-after-blocks.pickle" in snaps:
            print("\n".join(top_held(out, "snap-after-blocks.pickle", args.top)))
        for layer in sorted({s.split("-")[1] for s in snaps if s.count("-") == 2}):
            pair = sorted(
                (s for s in snaps if s.startswith(f"snap-{layer}-")),
                key=lambda s: int(s.split("-")[2].split(".")[0]),
            )
            if len(pair) == 2:
                print("\n".join(compare_snapshots(out, pair[0], pair[1], args.top)))
        if args.keep_lake:
            shutil.move(str(lake), str(args.keep_lake))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
