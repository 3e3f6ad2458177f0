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
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout first

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


def write_results(text: str) -> None:
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + block + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each case (median reported)")
    parser.add_argument("--write-results", action="store_true", help="write the figures into RESULTS.md")
    args = parser.parse_args()
    quiet_warnings()
    from b3_platform.resources import B3ApiResource

    figures = measure(args.repeat)
    text = report(figures, args.repeat, B3ApiResource().pause_seconds)
    print(text)
    if args.write_results:
        write_results(text)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
