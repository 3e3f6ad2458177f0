"""The daily run, measured: the `daily_capture` job for one trading day — B3's GetStockIndex listing,
then every listed index's portfolio from a replay server on 127.0.0.1, raw → bronze → silver → gold
→ catalog — with all 34 indices of the real listing, against a baseline measured in the same run
(1 index, IBOV). Wall and CPU seconds, medians of `--repeat` runs, and the cost per extra index.

The replay server runs in a child process, so the CPU figures are the platform's alone. Every index
answers the real IBOV sample of 2025-07-10 (only the load matters here; the parse rules are tested
elsewhere). The pause between calls (`b3.pause_seconds`, 1 s by default) is set to 0 to measure the
platform's own cost; what the pause adds to a real day is (indices − 1) × pause, printed beside.

    .venv/bin/python benchmarks/daily_run.py                      # 3 repeats of 1 and 34 indices
    .venv/bin/python benchmarks/daily_run.py --repeat 5 --write-results

With `--history N [N ...]` it measures instead how the daily run grows with history: for each N a lake
already holding the N trading days before the run's day (a synthetic IBOV archive as benchmarks/run.py
builds it, imported and backfilled in one single run, untimed), then the timed daily run of 1 index for
the next day, each repeat on a fresh copy of that lake, in a child process. With `--baseline PATH` the
same runs of another checkout (its code, this script) are interleaved with this one's:

    .venv/bin/python benchmarks/daily_run.py --history 250 1250 --baseline ../base --repeat 3

`--workdir DIR` keeps the lakes it builds there and reuses them on the next run (building 1,250 dates
takes minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: A `--history` child measures the checkout this names (its code, this script), else this one.
CHECKOUT_VAR = "B3_BENCH_CHECKOUT"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' own modules
sys.path.insert(0, os.environ.get(CHECKOUT_VAR) or str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, fmt, median, quiet_warnings  # noqa: E402

DAY = dt.date(2025, 7, 10)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- daily_run: begin -->", "<!-- daily_run: end -->"


def _serve(port_queue, stop_event) -> None:
    """The replay server in its own process: the real listing, and every index code answering the
    real IBOV portfolio of 2025-07-10."""
    from b3_platform.b3.indices import BUILTIN_INDICES
    from b3_platform_tests.replay import STOCK_INDEX, STOCK_INDEX_SAMPLE, ReplayServer, sample_bytes

    server = ReplayServer().start()
    server.serve(STOCK_INDEX, sample_bytes(STOCK_INDEX_SAMPLE))
    body = sample_bytes("GetPortfolioDay/IBOV/2025-07-10.json")
    for code in BUILTIN_INDICES:
        server.serve(code, body)
    port_queue.put(server.base_url)
    stop_event.wait()
    server.stop()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(base_url: str, indices: list[str] | None, work: Path) -> tuple[float, float, int]:
    """One daily_capture run on a fresh lake and instance; (wall s, CPU s, indices stored)."""
    import dagster as dg

    from b3_platform.definitions import build_defs
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.storage import LocalStorage
    from b3_platform.resources import B3ApiResource

    lake = work / "lake"
    base = build_defs({"B3_PLATFORM_DATA_DIR": str(lake)})
    b3 = B3ApiResource(base_url=base_url, indices=indices, lake=base.resources["lake"], pause_seconds=0.0)
    defs = dg.Definitions(assets=base.assets, jobs=base.jobs, resources={**base.resources, "b3": b3})
    job = defs.resolve_job_def("daily_capture")
    (work / "home").mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(work / "home")) as instance:
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = job.execute_in_process(
            partition_key=DAY.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if not result.success:
        raise SystemExit(f"the daily run failed for {indices or 'the discovered list'}")
    return wall, cpu, len(RawStore(LocalStorage(lake)).indices_on(DAY))


def measure(repeat: int) -> dict[str, dict]:
    from b3_platform import trading_calendar

    trading_calendar.today_sao_paulo = lambda: DAY  # the replayed day is "today" for the capture
    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=60)
    cases = {"1 index (IBOV)": ["IBOV"], "34 indices (discovered)": None}
    figures: dict[str, dict] = {name: {"wall": [], "cpu": []} for name in cases}
    try:
        with tempfile.TemporaryDirectory(prefix="b3_daily_run_") as tmp:
            for r in range(repeat):
                for name, indices in cases.items():  # interleaved, so drift hits both alike
                    wall, cpu, stored = one_run(
                        base_url, indices, Path(tmp) / f"{r}-{len(figures[name]['wall'])}-{name[:2].strip()}"
                    )
                    figures[name]["wall"].append(wall)
                    figures[name]["cpu"].append(cpu)
                    figures[name]["stored"] = stored
                    print(
                        f"  repeat {r + 1}/{repeat} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, {stored} stored",
                        flush=True,
                    )
    finally:
        stop.set()
        server.join(timeout=10)
    return figures


def report(figures: dict[str, dict], repeat: int, pause: float) -> str:
    (base_name, base), (full_name, full) = figures.items()
    extra = full["stored"] - base["stored"]
    per_wall = (median(full["wall"]) - median(base["wall"])) / extra
    per_cpu = (median(full["cpu"]) - median(base["cpu"])) / extra
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "## Daily run: 34 indices from the replay server → gold → catalog",
        "",
        f"`python benchmarks/daily_run.py --repeat {repeat}` — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, python {platform.python_version()}, commit {commit}. The `daily_capture` job "
        "for one day (GetStockIndex, every listed index's GetPortfolioDay from a replay server in another "
        "process, raw → bronze → silver → gold, then the DuckDB catalog) on a fresh lake and sqlite instance; "
        f"medians of {repeat} interleaved repeats; pause between calls 0 (the platform's own cost). "
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (a wall time far "
        "above its CPU time was waiting on other processes).",
        "",
        "| run | indices stored | wall s (median) | CPU s (median) | wall s (all) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['stored']} | {fmt(median(f['wall']), 2)} | {fmt(median(f['cpu']), 2)} | "
            f"{', '.join(fmt(w, 2) for w in f['wall'])} |"
        )
    lines += [
        "",
        f"Per extra index: {fmt(per_wall, 3)} s wall, {fmt(per_cpu, 3)} s CPU "
        f"(({full_name}) − ({base_name})) ÷ {extra}. With B3's real latency and the default pause of "
        f"{pause:g} s between calls, a day of 34 indices adds about {33 * pause:.0f} s of pauses plus 35 "
        "round trips to these figures: about a minute, far inside the hours between the schedule's attempts.",
    ]
    return "\n".join(lines)


def write_results(text: str, begin: str = BEGIN, end: str = END) -> None:
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current, encoding="utf-8")


def write_history_results(text: str) -> None:
    """The --history figures, in their own block of RESULTS.md."""
    write_results(text, "<!-- daily_run history: begin -->", "<!-- daily_run history: end -->")


# --------------------------------------------------------------------------------------------------
# --history: the daily run on a lake that already holds N earlier dates

#: The steps of the run that are the catalog (the DuckDB registration of every table) and the
#: dashboard, shown apart from the rest (capture, bronze, silver, gold, checks).
CATALOG_STEPS = ("athena_tables",)
DASHBOARD_STEPS = ("dashboard",)
#: Gold's step, the one whose time in index walked back over history.
GOLD_STEPS = ("gold_tables",)


def history_days(n: int) -> list[dt.date]:
    """The `n` B3 trading days before DAY."""
    from b3_platform.trading_calendar import START_DATE, trading_days_between

    days = trading_days_between(START_DATE, DAY)[-n - 1 : -1]
    if len(days) != n or days[-1] >= DAY:
        raise SystemExit(f"the calendar holds only {len(days)} trading days before {DAY}")
    return days


def build_history_lake(n: int, work: Path) -> Path:
    """A lake holding the n trading days before DAY for IBOV, every layer and the catalog: the
    synthetic archive (archive.py's re-dated samples), imported, then one single-run backfill in a
    child process of run.py (untimed)."""
    from archive import redate, source_samples
    from backfill import child_env, import_archive, run_child

    archive, lake = work / f"archive-{n}", work / f"lake-{n}"
    if (work / f"backfill-{n}" / "result.json").exists():
        print(f"  history {n}: reusing the lake built before in {lake}", flush=True)
        return lake
    shutil.rmtree(archive, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    days = history_days(n)
    texts = [p.read_text(encoding="utf-8") for p in source_samples()]
    (archive / "IBOV").mkdir(parents=True)
    for i, day in enumerate(days):
        (archive / "IBOV" / f"{day.isoformat()}.json").write_text(redate(texts[i % len(texts)], day))
    import_archive(archive, lake)
    spec = {"mode": "backfill", "instance": "ephemeral", "days": [d.isoformat() for d in days]}
    started = time.perf_counter()
    run_child(spec, child_env(lake, ("IBOV",), None), work / f"backfill-{n}")
    print(f"  history {n}: lake built in {time.perf_counter() - started:.0f} s (untimed)", flush=True)
    return lake


def _timed_gold_pictures() -> list[float]:
    """Times gold's dashboard pictures of the newest date (inside gold's step): the seconds of
    each call land in the list returned."""
    import b3_platform.assets.gold as gold_asset

    seconds: list[float] = []
    draw = gold_asset.gold_pictures

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return draw(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    gold_asset.gold_pictures = timed
    return seconds


def child_daily(spec: dict) -> dict:
    """One timed daily run of IBOV for DAY on the lake the spec names (a copy, used once)."""
    import dagster as dg

    import b3_platform
    from b3_platform import trading_calendar
    from b3_platform.definitions import build_defs
    from b3_platform.resources import B3ApiResource

    trading_calendar.today_sao_paulo = lambda: DAY
    pictures = _timed_gold_pictures()
    lake = spec["lake"]
    base = build_defs({"B3_PLATFORM_DATA_DIR": lake, "B3_PLATFORM_DUCKDB": f"{lake}/warehouse.duckdb"})
    b3 = B3ApiResource(
        base_url=spec["base_url"], indices=["IBOV"], lake=base.resources["lake"], pause_seconds=0.0
    )
    defs = dg.Definitions(assets=base.assets, jobs=base.jobs, resources={**base.resources, "b3": b3})
    job = defs.resolve_job_def("daily_capture")
    with dg.instance_for_test(temp_dir=spec["home"]) as instance:
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = job.execute_in_process(
            partition_key=DAY.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        steps = {
            s.step_key: (s.end_time or 0) - (s.start_time or 0)
            for s in instance.get_run_step_stats(result.run_id)
        }
    errors = [e.message for e in result.all_events if e.is_failure]
    return {
        "success": result.success,
        "errors": errors,
        "wall": wall,
        "cpu": cpu,
        "catalog": sum(t for k, t in steps.items() if k in CATALOG_STEPS),
        "dashboard": sum(t for k, t in steps.items() if k in DASHBOARD_STEPS),
        "gold": sum(t for k, t in steps.items() if k in GOLD_STEPS),
        "pictures": sum(pictures),
        "steps": steps,
        "code": str(Path(b3_platform.__file__).resolve().parent.parent),
    }


def measure_history(sizes: list[int], checkouts: dict[str, Path], repeat: int, workdir: Path | None) -> dict:
    """{(checkout, n): {wall, cpu, catalog, dashboard: [...]}}: every (checkout, n) once per repeat,
    interleaved, each on a fresh copy of its history's lake."""
    from backfill import run_child

    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=60)
    figures: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="b3_daily_history_") as tmp:
            work = Path(tmp)
            lakes = {n: build_history_lake(n, workdir or work) for n in sizes}
            for r in range(repeat):
                for n in sizes:
                    for name, checkout in checkouts.items():
                        run_dir = work / f"run-{name}-{n}-{r}"
                        lake = run_dir / "lake"
                        shutil.copytree(lakes[n], lake)
                        (run_dir / "home").mkdir()
                        spec = {"mode": "daily", "lake": str(lake), "home": str(run_dir / "home")}
                        env = {**os.environ, CHECKOUT_VAR: str(checkout), "PYTHONWARNINGS": "ignore"}
                        got = run_child(
                            {**spec, "base_url": base_url}, env, run_dir / "child", entry_point=Path(__file__)
                        ).result
                        if Path(got["code"]) != checkout.resolve():
                            raise SystemExit(f"the child ran {got['code']}, not {checkout}")
                        f = figures.setdefault(
                            (name, n),
                            {
                                "wall": [],
                                "cpu": [],
                                "catalog": [],
                                "dashboard": [],
                                "gold": [],
                                "pictures": [],
                            },
                        )
                        for key in f:
                            f[key].append(got.get(key, 0.0))
                        shutil.rmtree(run_dir)
                        print(
                            f"  repeat {r + 1}/{repeat} {name} history {n}: {got['wall']:.2f} s wall, "
                            f"{got['cpu']:.2f} s CPU (catalog {got['catalog']:.2f} s)",
                            flush=True,
                        )
    finally:
        stop.set()
        server.join(timeout=10)
    return figures


def history_report(figures: dict, sizes: list[int], checkouts: dict[str, Path], repeat: int) -> str:
    def commit(path: Path) -> str:
        return subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()

    lines = [
        "## Daily run against history: one date after N earlier dates",
        "",
        f"`python benchmarks/daily_run.py --history {' '.join(map(str, sizes))}"
        + "".join(f" --baseline {p}" for n, p in checkouts.items() if n != "this branch")
        + f" --repeat {repeat}` — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, python {platform.python_version()}; "
        + ", ".join(f"{name} = {commit(p)}" for name, p in checkouts.items())
        + ". The `daily_capture` job for "
        f"{DAY} (IBOV from the replay server → raw → bronze → silver → gold → checks → catalog → "
        "dashboard) on a copy of a lake already holding the N trading days before it (synthetic IBOV "
        "archive, backfilled untimed), a fresh sqlite instance, each run in its own process; medians of "
        f"{repeat} repeats, every checkout and size interleaved. `catalog` is the athena_tables step "
        "(the DuckDB sync), `dashboard` and `gold` their steps, `pictures` the part of gold's step that "
        "draws the newest date's dashboard pictures (PNGs of the whole history, through the catalog); "
        "`rest` = wall − catalog − dashboard. Load average at "
        f"the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        "| checkout | history | wall s | CPU s | catalog s | dashboard s | gold s | of which pictures s "
        "| rest s | wall s (all) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in checkouts:
        for n in sizes:
            f = figures[name, n]
            wall, cat, dash = median(f["wall"]), median(f["catalog"]), median(f["dashboard"])
            lines.append(
                f"| {name} | {n} | {fmt(wall, 2)} | {fmt(median(f['cpu']), 2)} | {fmt(cat, 2)} | "
                f"{fmt(dash, 2)} | {fmt(median(f['gold']), 2)} | {fmt(median(f['pictures']), 2)} | "
                f"{fmt(wall - cat - dash, 2)} | "
                f"{', '.join(fmt(w, 2) for w in f['wall'])} |"
            )
    lines.append("")

    def core(name: str, n: int, measure: str) -> float:
        """wall or CPU less the catalog, the dashboard and gold's pictures (steps' wall seconds)."""
        f = figures[name, n]
        return median(f[measure]) - sum(median(f[k]) for k in ("catalog", "dashboard", "pictures"))

    lines.append(
        "Without the catalog, the dashboard and gold's pictures (capture → raw → bronze → silver → gold "
        "→ checks, Dagster's own work included; the three subtracted are wall seconds of their steps, "
        "measured in the same runs):"
    )
    lines.append("")
    for name in checkouts:
        small, large = (median(figures[name, n]["wall"]) for n in (sizes[0], sizes[-1]))
        each = ", ".join(f"history {n}: {fmt(core(name, n, 'wall'), 2)} s wall" for n in sizes)
        lines.append(
            f"- {name}: {each} "
            f"({core(name, sizes[-1], 'wall') / core(name, sizes[0], 'wall'):.2f}×); the whole run "
            f"{large / small:.2f}× wall."
        )
    return "\n".join(lines)


def child_main(spec_file: str) -> int:
    quiet_warnings()
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    result = child_daily(spec)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each case (median reported)")
    parser.add_argument("--write-results", action="store_true", help="write the figures into RESULTS.md")
    parser.add_argument(
        "--history", type=int, nargs="+", help="earlier dates in the lake before the timed daily run"
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to measure alongside (--history)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where --history builds its lakes and finds them again on a later run (default: a temp dir)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.child)
    quiet_warnings()
    from b3_platform.resources import B3ApiResource

    if args.history:
        checkouts = {"this branch": Path(__file__).resolve().parent.parent}
        if args.baseline:
            checkouts["baseline"] = args.baseline.resolve()
        sizes = sorted(args.history)
        text = history_report(
            measure_history(sizes, checkouts, args.repeat, args.workdir), sizes, checkouts, args.repeat
        )
        print(text)
        if args.write_results:
            write_history_results(text)
            print(f"written to {RESULTS}")
        return 0

    figures = measure(args.repeat)
    text = report(figures, args.repeat, B3ApiResource().pause_seconds)
    print(text)
    if args.write_results:
        write_results(text)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
