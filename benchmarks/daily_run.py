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
builds it, imported and backfilled in one single run, untimed; its last day filed as a live capture,
as the day before a daily run leaves it), then the timed daily run of 1 index for the next day, each
repeat on a fresh copy of that lake (hard links, in the folder its catalog was built for: its catalog in
step with it, as the day after a run),
in a child process on a fresh persistent instance configured by the measured checkout's dagster.yaml
(its event log storage is part of the daily run). With `--baseline PATH` the
same runs of another checkout (its code, this script) are interleaved with this one's:

    .venv/bin/python benchmarks/daily_run.py --history 250 1250 --baseline ../base --repeat 3

When the job does not draw the dashboard (automation redraws it after the catalog), the child then
materializes the dashboard alone on the same instance, as automation would, and times that run apart.
Each run also reports the bytes of metadata its materializations stored, and how many of them are
gold's pictures. `--indices K` (with --history) files the same synthetic archive under IBOV and K − 1
other index codes, and the daily run captures those K: what the pictures of K indices store.

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
#: Where a checkout keeps the lake's own catalog state: raw's inventory, the coverage table and its
#: basis, the change journal (b3_platform.lake.paths: RAW_INVENTORY_ROOT, COVERAGE.location,
#: COVERAGE_BASIS_KEY, CHANGES_ROOT; written out so the script also measures checkouts from before
#: them, whose layouts differ).
LAKE_CATALOG = "catalog"
DASHBOARD_STEPS = ("dashboard",)
#: Gold's step, the one whose time in index walked back over history.
GOLD_STEPS = ("gold_tables",)


def history_codes(k: int) -> list[str]:
    """IBOV and the first k − 1 other codes of B3's 34 (every one answers IBOV's portfolio here)."""
    from b3_platform.b3.indices import BUILTIN_INDICES

    others = [c for c in BUILTIN_INDICES if c != "IBOV"]
    if not 1 <= k <= len(others) + 1:
        raise SystemExit(f"--indices must be 1..{len(others) + 1}")
    return ["IBOV", *others[: k - 1]]


def history_days(n: int) -> list[dt.date]:
    """The `n` B3 trading days before DAY."""
    from b3_platform.trading_calendar import START_DATE, trading_days_between

    days = trading_days_between(START_DATE, DAY)[-n - 1 : -1]
    if len(days) != n or days[-1] >= DAY:
        raise SystemExit(f"the calendar holds only {len(days)} trading days before {DAY}")
    return days


def build_history_lake(n: int, work: Path, codes: list[str]) -> Path:
    """A lake holding the n trading days before DAY for `codes`, every layer and the catalog: the
    synthetic archive (archive.py's re-dated samples, the same file under every code), imported,
    then one single-run backfill in a child process of run.py (untimed).

    The last of those days is filed as the platform's own capture from B3's API (`store_live`), not
    imported: the timed run is then the day after a daily run, as on a platform capturing every day.
    On a lake of imported history only, the run would be the first live day after an import, which
    looks through every capture once for the first live one (`live_capture.LiveCaptures`): a one-off
    cost of that day, growing with history, that the steady state never pays."""
    from archive import redate, source_samples
    from backfill import child_env, import_archive, run_child

    from b3_platform.lake import changes

    name = f"{n}-live" if codes == ["IBOV"] else f"{n}-k{len(codes)}-live"
    archive, lake = work / f"archive-{name}", work / f"lake-{name}"
    if (work / f"backfill-{name}" / "result.json").exists():
        print(f"  history {n}: reusing the lake built before in {lake}", flush=True)
        return lake
    shutil.rmtree(archive, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    days = history_days(n)
    texts = [p.read_text(encoding="utf-8") for p in source_samples()]
    for code in codes:
        (archive / code).mkdir(parents=True)
    for i, day in enumerate(days):
        body = redate(texts[i % len(texts)], day)
        if day == days[-1]:
            store_live(lake, day, codes, body.encode("utf-8"))
            continue
        for code in codes:
            (archive / code / f"{day.isoformat()}.json").write_text(body)
    import_archive(archive, lake)
    spec = {"mode": "backfill", "instance": "ephemeral", "days": [d.isoformat() for d in days]}
    started = time.perf_counter()
    run_child(spec, child_env(lake, tuple(codes), None), work / f"backfill-{name}")
    print(f"  history {n}: lake built in {time.perf_counter() - started:.0f} s (untimed)", flush=True)
    # A catalog's journal sync reads the change journal from CLOCK_MARGIN_SECONDS before its last
    # sync (a clock stepped back misses nothing). A catalog prepared within that margin of the
    # backfill's last writes would see the backfill's last dates again in its first timed run (seen:
    # 1,262 table dates instead of 12), which a real daily run, a day after the last sync, never does.
    time.sleep(changes.CLOCK_MARGIN_SECONDS + 1)
    return lake


def store_live(lake: Path, day: dt.date, codes: list[str], body: bytes) -> None:
    """File `body` under `day` for every code as the raw asset files a capture from B3's API: the
    sidecar's `source` is the live one and the capture is stamped at noon UTC of its day."""
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.storage import LocalStorage
    from b3_platform.live_capture import LIVE_SOURCE

    store = RawStore(LocalStorage(lake))
    fetched = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
    header_date = json.loads(body).get("header", {}).get("date")
    for code in codes:
        store.store(
            day,
            code,
            [body],
            fetched_at=fetched,
            source_format="json",
            meta={"source": LIVE_SOURCE, "http_status": 200, "header_date": header_date},
        )


def link_lake(source: Path, target: Path) -> None:
    """A copy of a history lake made of hard links (same inodes, sizes and mtimes): its catalog is in
    step with its files as the original's is, as on a platform that ran the day before. A real copy
    would give every file a new inode, and the catalog step would reload the whole history. Safe:
    the lake writes a file by renaming a new one over it, never into it; the DuckDB file, which
    DuckDB writes in place, is copied."""

    def link(src: str, dst: str) -> str:
        if ".duckdb" in Path(src).name:
            return shutil.copy2(src, dst)
        os.link(src, dst)
        return dst

    shutil.copytree(source, target, copy_function=link)


def child_catalog(spec: dict) -> dict:
    """The catalog step alone (athena_tables), untimed, on the lake the spec names: brings the lake's
    DuckDB file to the measured checkout's own layout (a checkout may relay an older catalog once,
    e.g. clustering tables), so each timed run starts from a catalog in step as that checkout keeps
    it, as on the day after a run, and pays no one-time migration."""
    import dagster as dg

    import b3_platform
    from b3_platform import trading_calendar
    from b3_platform.definitions import build_defs
    from b3_platform.resources import B3ApiResource

    trading_calendar.today_sao_paulo = lambda: DAY
    lake = spec["lake"]
    base = build_defs({"B3_PLATFORM_DATA_DIR": lake, "B3_PLATFORM_DUCKDB": f"{lake}/warehouse.duckdb"})
    # The timed runs' capture list: the coverage table lists it, so a catalog prepared with another
    # would have the first timed run rewrite every coverage year, which no real day after pays.
    b3 = B3ApiResource(indices=spec.get("indices", ["IBOV"]), lake=base.resources["lake"], pause_seconds=0.0)
    defs = dg.Definitions(assets=base.assets, jobs=base.jobs, resources={**base.resources, "b3": b3})
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(k) for k in CATALOG_STEPS], raise_on_error=False
        )
    return {
        "success": result.success,
        "errors": [e.message for e in result.all_events if e.is_failure],
        "code": str(Path(b3_platform.__file__).resolve().parent.parent),
    }


def _timed_pictures() -> dict[str, list[float]]:
    """Times gold's picture of the newest date wherever the measured checkout draws it: inside gold's
    step (`gold_pictures`, in the daily job: "job") or in the dashboard's run after the catalog
    (`gold_picture`: "after"); the seconds of each call land in the lists returned."""
    import importlib

    # By module name: the package exports the dashboard *asset* under the module's name.
    dashboard_asset = importlib.import_module("b3_platform.assets.dashboard")
    gold_asset = importlib.import_module("b3_platform.assets.gold")

    seconds: dict[str, list[float]] = {"job": [], "after": []}
    if hasattr(gold_asset, "gold_pictures"):
        _time_calls(gold_asset, "gold_pictures", seconds["job"])
    if hasattr(dashboard_asset, "gold_picture"):
        _time_calls(dashboard_asset, "gold_picture", seconds["after"])
    return seconds


def stored_metadata(result) -> tuple[int, int, int]:
    """(bytes of metadata, of which gold's pictures, pictures) the run's materializations carry,
    each value as Dagster serializes it into the event log."""
    import dagster as dg

    total = pictures = count = 0
    for event in result.get_asset_materialization_events():
        for key, value in event.event_specific_data.materialization.metadata.items():
            size = len(dg.serialize_value(value))
            total += size
            if key.startswith("picture_"):
                pictures, count = pictures + size, count + 1
    return total, pictures, count


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_daily_child(spec: dict, env: dict[str, str], scratch: Path) -> dict:
    """This script's `--child` in a fresh process (the checkout measured is env's CHECKOUT_VAR),
    through the benchmarks' one child runner."""
    from backfill import run_child

    return run_child(spec, env, scratch, entry_point=Path(__file__).resolve()).result


def child_daily(spec: dict) -> dict:
    """One timed daily run of the spec's indices for DAY on the lake the spec names (a copy, used
    once); then, when the job did not draw the dashboard, the dashboard's own run, timed apart."""
    import dagster as dg

    import b3_platform
    from b3_platform import trading_calendar
    from b3_platform.definitions import build_defs
    from b3_platform.resources import B3ApiResource

    trading_calendar.today_sao_paulo = lambda: DAY
    pictures = _timed_pictures()
    parts = _timed_catalog_parts()
    lake = spec["lake"]
    base = build_defs({"B3_PLATFORM_DATA_DIR": lake, "B3_PLATFORM_DUCKDB": f"{lake}/warehouse.duckdb"})
    b3 = B3ApiResource(
        base_url=spec["base_url"],
        indices=spec.get("indices", ["IBOV"]),
        lake=base.resources["lake"],
        pause_seconds=0.0,
    )
    defs = dg.Definitions(assets=base.assets, jobs=base.jobs, resources={**base.resources, "b3": b3})
    job = defs.resolve_job_def("daily_capture")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def step_seconds(instance, run_id: str) -> dict[str, float]:
        return {
            s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run_id)
        }

    after: dict = {}
    # The checkout's own instance settings (its dagster.yaml, copied into DAGSTER_HOME by the parent):
    # a daily run is on a persistent instance, and its event log storage is part of what is measured.
    with dg.DagsterInstance.get() as instance:
        home_before = folder_bytes(Path(spec["home"]))
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = job.execute_in_process(
            partition_key=DAY.isoformat(), instance=instance, raise_on_error=False, run_config=quiet
        )
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        home_growth = folder_bytes(Path(spec["home"])) - home_before
        steps = step_seconds(instance, result.run_id)
        if result.success and not any(k in DASHBOARD_STEPS for k in steps):
            # The run automation requests after the catalog this job refreshed: the dashboard alone.
            drawn_wall, drawn_cpu = time.perf_counter(), cpu_seconds()
            drawn = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance,
                asset_selection=[dg.AssetKey(k) for k in DASHBOARD_STEPS],
                raise_on_error=False,
                run_config=quiet,
            )
            after = {
                "dashboard_after_wall": time.perf_counter() - drawn_wall,
                "dashboard_after_cpu": cpu_seconds() - drawn_cpu,
                "dashboard_after_step": sum(
                    t for k, t in step_seconds(instance, drawn.run_id).items() if k in DASHBOARD_STEPS
                ),
                "picture_after": sum(pictures["after"]),
            }
            result_ok = drawn.success
        else:
            result_ok = True
        looks = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if e.user_message.startswith(("catalog: looked", "catalog: listed"))
        ]
    errors = [e.message for e in result.all_events if e.is_failure]
    metadata, picture_bytes, picture_count = stored_metadata(result)
    return {
        "success": result.success and result_ok,
        "errors": errors,
        "wall": wall,
        "cpu": cpu,
        "catalog": sum(t for k, t in steps.items() if k in CATALOG_STEPS),
        "dashboard": sum(t for k, t in steps.items() if k in DASHBOARD_STEPS),
        "gold": sum(t for k, t in steps.items() if k in GOLD_STEPS),
        "pictures": sum(pictures["job"]),
        "metadata_bytes": metadata,
        "picture_bytes": picture_bytes,
        "picture_count": picture_count,
        "instance_growth": home_growth,
        **after,
        "steps": steps,
        "catalog_parts": {k: sum(v) for k, v in parts.items()},
        "catalog_look": looks,
        "code": str(Path(b3_platform.__file__).resolve().parent.parent),
    }


#: The catalog step's parts timed inside the run, where the measured checkout has them (module,
#: name): raw's inventory, the coverage write, the sync, the two schema checks.
CATALOG_PARTS = (
    ("b3_platform.assets.athena_tables", "inventory"),
    ("b3_platform.assets.athena_tables", "write_coverage"),
    ("b3_platform.catalog.duckdb_catalog", "DuckDBCatalogResource.sync"),
    ("b3_platform.assets.athena_tables", "_file_problems"),
    ("b3_platform.assets.athena_tables", "_schema_problems"),
)


def _timed_catalog_parts() -> dict[str, list[float]]:
    """Wall seconds of each of CATALOG_PARTS during the run (what of the catalog step grows with
    history, when it does), patched where the step looks them up."""
    import importlib

    spent: dict[str, list[float]] = {}
    for module_name, name in CATALOG_PARTS:
        owner = importlib.import_module(module_name)
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, attr):
            continue
        _time_calls(owner, attr, spent.setdefault(attr.lstrip("_"), []))
    return spent


def _time_calls(owner, name: str, into: list[float]) -> None:
    """Replace `owner.name` (a module's function, a class's method) with one that appends the wall
    seconds of each call to `into`."""
    fn = getattr(owner, name)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    setattr(owner, name, timed)


#: The figures a --history child reports, each kept per repeat.
HISTORY_FIGURES = (
    "wall",
    "cpu",
    "catalog",
    "dashboard",
    "gold",
    "pictures",
    "metadata_bytes",
    "picture_bytes",
    "picture_count",
    "instance_growth",
    "dashboard_after_wall",
    "dashboard_after_cpu",
    "dashboard_after_step",
    "picture_after",
)


def measure_history(
    sizes: list[int], checkouts: dict[str, Path], repeat: int, workdir: Path | None, codes: list[str]
) -> dict:
    """{(checkout, n): {wall, cpu, catalog, dashboard, ...: [...]}}: every (checkout, n) once per
    repeat, interleaved, each on a fresh copy of its history's lake."""
    from backfill import fresh_dagster_home

    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=60)
    figures: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="b3_daily_history_") as tmp:
            work = Path(tmp)
            lakes = {n: build_history_lake(n, workdir or work, codes) for n in sizes}
            # Each checkout's catalog of each history, in that checkout's own layout (untimed),
            # built where each of its timed runs then finds the lake: a lake stays where it is from
            # one day to the next, and the catalog's raw_captures view names its folder (a view
            # whose folder moved is created again, which a real daily run never pays).
            catalogs: dict[tuple[str, int], Path] = {}
            for n in sizes:
                for name, checkout in checkouts.items():
                    prep = work / f"catalog-{name}-{n}"
                    lake = work / f"timed-lake-{name}-{n}"
                    link_lake(lakes[n], lake)
                    home = fresh_dagster_home(prep / "home", checkout / "dagster.yaml")
                    env = {**os.environ, CHECKOUT_VAR: str(checkout), "DAGSTER_HOME": str(home)}
                    got = run_daily_child(
                        {"mode": "catalog", "lake": str(lake), "indices": codes}, env, prep / "child"
                    )
                    if not got["success"] or Path(got["code"]) != checkout.resolve():
                        raise SystemExit(f"{name}: the catalog of {n} dates failed: {got['errors']}")
                    catalogs[name, n] = Path(
                        shutil.copy2(lake / "warehouse.duckdb", prep / "warehouse.duckdb")
                    )
                    # The lake's catalog state as that catalog step left it in the checkout's own
                    # layout (raw's inventory, coverage, the change journal), part of the lake's
                    # state the day after as the catalog is: without it the timed run would pay a
                    # one-time migration (a walk of all raw, every coverage year rebuilt) or, without
                    # the journal, list the lake whole. Hard links: the same inodes, so the coverage
                    # files keep the identity the catalog loaded them with (the lake writes a file by
                    # renaming a new one over it, never into it).
                    shutil.copytree(lake / LAKE_CATALOG, prep / "lake-catalog", copy_function=os.link)
            for r in range(repeat):
                for n in sizes:
                    for name, checkout in checkouts.items():
                        run_dir = work / f"run-{name}-{n}-{r}"
                        lake = work / f"timed-lake-{name}-{n}"
                        shutil.rmtree(lake)
                        link_lake(lakes[n], lake)
                        shutil.copy2(catalogs[name, n], lake / "warehouse.duckdb")
                        shutil.rmtree(lake / LAKE_CATALOG, ignore_errors=True)
                        shutil.copytree(
                            catalogs[name, n].parent / "lake-catalog",
                            lake / LAKE_CATALOG,
                            copy_function=os.link,
                        )
                        # The copy's metadata written out before the clock starts: else the run's
                        # fsyncs wait for the journal to commit ~100,000 new links of a 1,250 x 34
                        # lake, a cost that grows with history but is the benchmark's, not the run's.
                        os.sync()
                        home = fresh_dagster_home(run_dir / "home", checkout / "dagster.yaml")
                        spec = {
                            "mode": "daily",
                            "lake": str(lake),
                            "home": str(home),
                            "base_url": base_url,
                            "indices": codes,
                        }
                        env = {
                            **os.environ,
                            CHECKOUT_VAR: str(checkout),
                            "DAGSTER_HOME": str(home),
                            "PYTHONWARNINGS": "ignore",
                        }
                        got = run_daily_child(spec, env, run_dir / "child")
                        if Path(got["code"]) != checkout.resolve():
                            raise SystemExit(f"the child ran {got['code']}, not {checkout}")
                        f = figures.setdefault((name, n), {key: [] for key in HISTORY_FIGURES})
                        for key in HISTORY_FIGURES:
                            if key in got:
                                f[key].append(got[key])
                        for step, seconds in got["steps"].items():
                            f.setdefault("steps", {}).setdefault(step, []).append(seconds)
                        for part, seconds in got.get("catalog_parts", {}).items():
                            f.setdefault("catalog_parts", {}).setdefault(part, []).append(seconds)
                        f.setdefault("catalog_look", []).append(got.get("catalog_look", []))
                        shutil.rmtree(run_dir)
                        print(
                            f"  repeat {r + 1}/{repeat} {name} history {n}: {got['wall']:.2f} s wall, "
                            f"{got['cpu']:.2f} s CPU (catalog {got['catalog']:.2f} s, gold {got['gold']:.2f} s of "
                            f"which pictures {got['pictures']:.2f} s; dashboard "
                            + (
                                f"{got['dashboard']:.2f} s in the run"
                                if "dashboard_after_wall" not in got
                                else f"after, alone: {got['dashboard_after_wall']:.2f} s wall, "
                                f"{got['dashboard_after_cpu']:.2f} s CPU, of which gold's picture "
                                f"{got.get('picture_after', 0):.2f} s"
                            )
                            + f"; metadata {got['metadata_bytes'] / 1024:.0f} KB, of which "
                            f"{got['picture_count']} picture(s) {got['picture_bytes'] / 1024:.0f} KB; instance "
                            f"+{got['instance_growth'] / 1024:.0f} KB)",
                            flush=True,
                        )
    finally:
        stop.set()
        server.join(timeout=10)
    return figures


def history_report(
    figures: dict, sizes: list[int], checkouts: dict[str, Path], repeat: int, codes: list[str]
) -> str:
    def commit(path: Path) -> str:
        return subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()

    def med(name: str, n: int, key: str) -> float | None:
        values = figures[name, n][key]
        return median(values) if values else None

    what = "IBOV" if codes == ["IBOV"] else f"{len(codes)} indices ({', '.join(codes[:3])}, …)"
    lines = [
        "## Daily run against history: one date after N earlier dates",
        "",
        f"`python benchmarks/daily_run.py --history {' '.join(map(str, sizes))}"
        + "".join(f" --baseline {p}" for n, p in checkouts.items() if n != "this branch")
        + (f" --indices {len(codes)}" if len(codes) > 1 else "")
        + f" --repeat {repeat}` — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, python {platform.python_version()}; "
        + ", ".join(f"{name} = {commit(p)}" for name, p in checkouts.items())
        + f". The `daily_capture` job for {DAY} ({what} from the replay server → raw → bronze → silver → "
        "gold → checks → catalog, and the dashboard where the job still draws it) on a copy of a lake "
        "already holding the N trading days before it (synthetic archive, backfilled untimed), a fresh "
        "persistent sqlite instance on the checkout's own dagster.yaml, each run in its own process; "
        f"medians of {repeat} repeats, every checkout and size interleaved. `catalog` is the "
        "athena_tables step (the DuckDB sync), `gold` its step, `pictures` the part of gold's step "
        "that draws the newest date's pictures (through the catalog; 0 where the checkout draws gold's "
        "picture in the dashboard's run instead); `dashboard` is the dashboard's step, inside the job "
        "(in) or in its own run after it, as automation requests it (after: wall and CPU of that whole "
        "run, and the seconds of gold's picture when that run draws it); `rest` = wall − catalog "
        "− pictures − the dashboard in the job; `metadata` the bytes the run's materializations stored "
        "(serialized), of which gold's pictures. Load average at the end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        "| checkout | history | wall s | CPU s | catalog s | gold s | of which pictures s | rest s "
        "| dashboard s | metadata KB (pictures KB) | wall s (all) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for name in checkouts:
        for n in sizes:
            f = figures[name, n]
            wall, cat, pics = med(name, n, "wall"), med(name, n, "catalog"), med(name, n, "pictures")
            after = med(name, n, "dashboard_after_wall")
            if after is None:
                dash = f"{fmt(med(name, n, 'dashboard'), 2)} (in)"
                inside = med(name, n, "dashboard")
            else:
                drawn_after = med(name, n, "picture_after")
                dash = (
                    f"{fmt(med(name, n, 'dashboard_after_step'), 2)} (after: {fmt(after, 2)} wall, "
                    f"{fmt(med(name, n, 'dashboard_after_cpu'), 2)} CPU"
                    + (f"; gold's picture {fmt(drawn_after, 2)}" if drawn_after else "")
                    + ")"
                )
                inside = 0.0
            lines.append(
                f"| {name} | {n} | {fmt(wall, 2)} | {fmt(med(name, n, 'cpu'), 2)} | {fmt(cat, 2)} | "
                f"{fmt(med(name, n, 'gold'), 2)} | {fmt(pics, 2)} | {fmt(wall - cat - pics - inside, 2)} | "
                f"{dash} | {med(name, n, 'metadata_bytes') / 1024:.0f} ({med(name, n, 'picture_bytes') / 1024:.0f}) | "
                f"{', '.join(fmt(w, 2) for w in f['wall'])} |"
            )
    lines += ["", f"Growth with history ({sizes[-1]} ÷ {sizes[0]} dates, medians):", ""]
    for name in checkouts:
        small, large = sizes[0], sizes[-1]

        def ratio(key: str) -> str:
            a, b = med(name, small, key), med(name, large, key)
            return f"{b / a:.2f}×" if a and b is not None else "n/a"

        lines.append(
            f"- {name}: the daily run {ratio('wall')} wall, {ratio('cpu')} CPU; catalog {ratio('catalog')}, "
            f"gold {ratio('gold')}, pictures {ratio('pictures')}"
            + (
                f"; the dashboard's own run {ratio('dashboard_after_wall')} wall, "
                f"{ratio('dashboard_after_cpu')} CPU"
                if figures[name, small]["dashboard_after_wall"]
                else f"; the dashboard step {ratio('dashboard')}"
            )
            + "."
        )
    lines += ["", "The catalog step's parts inside the run (median wall s) and the look its sync took:", ""]
    for name in checkouts:
        for n in sizes:
            parts = figures[name, n].get("catalog_parts", {})
            looks = sorted({look for runs in figures[name, n].get("catalog_look", []) for look in runs})
            lines.append(
                f"- {name}, {n}: "
                + ", ".join(f"{k} {median(v) * 1000:.0f} ms" for k, v in parts.items())
                + (f"; {' / '.join(looks)}" if looks else "")
                + "."
            )
    lines += ["", "Each step of the job (median wall s, slowest first):", ""]
    for name in checkouts:
        for n in sizes:
            steps = figures[name, n].get("steps", {})
            ranked = sorted(((median(v), k) for k, v in steps.items()), reverse=True)
            lines.append(f"- {name}, {n}: " + ", ".join(f"{k} {fmt(t, 2)}" for t, k in ranked) + ".")
    return "\n".join(lines)


def child_main(spec_file: str) -> int:
    quiet_warnings()
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    result = child_catalog(spec) if spec["mode"] == "catalog" else child_daily(spec)
    from backfill import assert_measured_code

    assert_measured_code(os.environ.get(CHECKOUT_VAR))
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
        "--indices", type=int, default=1, help="--history: indices in the lake and the daily run (IBOV first)"
    )
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
        sizes, codes = sorted(args.history), history_codes(args.indices)
        text = history_report(
            measure_history(sizes, checkouts, args.repeat, args.workdir, codes),
            sizes,
            checkouts,
            args.repeat,
            codes,
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
