#!/usr/bin/env python
"""How long the index dashboard takes to build over a SYNTHETIC multi-year archive.

The archive is benchmarks/archive.py's (the real IBOV samples re-dated onto N consecutive B3
trading days, copied under other index codes for K > 1; every figure is on synthetic data). For
each K the lake is built once — import, then every layer and the catalog as one single-run
backfill on a temporary instance, not timed here (run.py measures that) — and then measured,
`--repeat` times each, median reported, wall and CPU seconds:

- build: `dashboard.site.build_site` — the ten catalog queries (DuckDB), shaping, the page's HTML
  with Vega and the data inlined, written under the lake: what the `dashboard` asset does;
- queries: the catalog part of it alone;
- pictures: the PNG of every index's main charts (vl-convert), what gold's newest date carries;
- load: the page opened from disk in headless Chromium until every chart of the first view is drawn
  (wall only: the browser is another process), when Debian's `chromium` is installed.

    python benchmarks/dashboard.py                         # N=1250, K=1 and 5, 3 repeats
    python benchmarks/dashboard.py --dates 60 --indices 1 --repeat 1   # a quick check
    python benchmarks/dashboard.py --write-results         # also writes benchmarks/DASHBOARD.md

`--page-of LAKE` measures the page alone on a lake whose catalog is synced (e.g. one
`memory_profile.py --keep-lake` kept): `build_site` in a fresh child process per round, its peak
RSS (ru_maxrss), wall and CPU seconds, the page's bytes and the rows of its tables; with
`--baseline CHECKOUT` that checkout's package builds the same page, rounds interleaved, and the
pages' bytes (built with one fixed `now`) must be equal. Several lakes (`--page-of A --page-of B`)
also give the peak's growth per date between them (the lakes' dates as the catalog counts them):

    python benchmarks/dashboard.py --page-of /tmp/lake-300 --page-of /tmp/lake-700 --baseline /tmp/base --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
if os.environ.get("B3_BENCH_CODE"):
    sys.path.insert(0, os.environ["B3_BENCH_CODE"])

from archive import build_archive, target_days  # noqa: E402
from common import Clock, fmt, median, quiet_warnings  # noqa: E402
from report import machine_description  # noqa: E402

RESULTS_FILE = Path(__file__).resolve().parent / "DASHBOARD.md"


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def build_lake(root: Path, n: int, k: int, say, reuse: bool = False) -> tuple[dict, list]:
    """Import the archive and build every layer and the catalog (not the dashboard). With `reuse`,
    a lake whose catalog exists (the backfill's last step) under `root` is measured as it is."""
    import dagster as dg

    from b3_platform.definitions import build_defs
    from b3_platform.importer import import_paths
    from b3_platform.runs import materialize_days

    env = {"B3_PLATFORM_DATA_DIR": str(root / "lake")}
    defs = build_defs(env)
    if reuse and (root / "lake" / "warehouse.duckdb").is_file():
        say(f"N={n} K={k}: reusing the lake in {root}")
        return defs.resources, target_days(n)
    archive, days, indices = build_archive(root / "archive", n, k)
    store = defs.resources["lake"].raw()
    results = import_paths(store, [archive / i for i in indices])
    assert all(r.status == "imported" for r in results), "an archive file was not imported"
    say(f"N={n} K={k}: {len(results)} files imported; building every layer and the catalog")
    selection = dg.AssetSelection.all() - dg.AssetSelection.assets("dashboard")
    runs = materialize_days(
        defs, days, instance=dg.DagsterInstance.ephemeral(), selection=selection, quiet=True
    )
    assert all(r.success for r in runs), "a backfill run failed"
    return defs.resources, days


def page_load_seconds(page_path: Path, profile: Path) -> float | None:
    """Seconds from navigation to the first view drawn, in headless Chromium (None without it)."""
    chromium = shutil.which("chromium")
    if not chromium:
        return None
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=flags,
            viewport={"width": 1100, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        started = time.perf_counter()
        page.goto(page_path.as_uri())
        page.wait_for_function("window.dashboard && window.dashboard.rendered > 0", timeout=600_000)
        seconds = time.perf_counter() - started
        context.close()
    return seconds


def measure(root: Path, n: int, k: int, repeat: int, say, reuse: bool = False) -> dict:
    from b3_platform.dashboard.data import load
    from b3_platform.dashboard.picture import index_png
    from b3_platform.dashboard.site import build_site

    resources, days = build_lake(root, n, k, say, reuse)
    catalog, storage = resources["catalog"], resources["lake"].storage()
    figures: dict[str, list[float]] = {m: [] for m in ("build", "build_cpu", "queries", "queries_cpu", "pictures", "pictures_cpu", "load")}  # fmt: skip
    built = None
    for attempt in range(1, repeat + 1):
        wall, cpu, built = timed(lambda: build_site(catalog, storage))
        figures["build"].append(wall), figures["build_cpu"].append(cpu)
        wall, cpu, data = timed(lambda: load(catalog))
        figures["queries"].append(wall), figures["queries_cpu"].append(cpu)
        wall, cpu, _ = timed(lambda: [index_png(data, i) for i in data.indices])
        figures["pictures"].append(wall), figures["pictures_cpu"].append(cpu)
        seconds = page_load_seconds(Path(built.uri), root / f"profile-{k}-{attempt}")
        if seconds is not None:
            figures["load"].append(seconds)
        say(
            f"N={n} K={k} #{attempt}: build {figures['build'][-1]:.2f} s, pictures {figures['pictures'][-1]:.2f} s"
        )
    return {
        "n": len(days),
        "k": k,
        "bytes": built.size,
        **{m: median(v) if v else None for m, v in figures.items()},
    }


def report(rows: list[dict], repeat: int, argv: list[str]) -> list[str]:
    lines = [
        "# Dashboard build time (SYNTHETIC archive)",
        "",
        "Written by `python benchmarks/dashboard.py --write-results`; see the script's docstring for "
        "what each figure measures. The archive is synthetic (benchmarks/archive.py: the real IBOV samples "
        "re-dated onto consecutive trading days, copied under other index codes for K > 1).",
        "",
        "The page holds a bounded history (`dashboard/queries.py` `DAILY_DATES`, 250): each index's newest "
        "dates day by day from the first of that month, older ones one point per month (the month's last "
        "date in the lake), thinned in the SQL; so beyond a year the page's size and the rows its queries "
        "return grow by one point per month, not per date (the queries still scan the whole history).",
        "",
        f"Command: `python benchmarks/dashboard.py {' '.join(argv)}`",
        "",
        "## Machine",
        "",
        *machine_description(),
        "",
        f"## Figures (median of {repeat})",
        "",
        "| N dates | K indices | page bytes | build wall s | build CPU s | queries wall s | queries CPU s "
        "| pictures wall s | pictures CPU s | Chromium load wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['k']} | {r['bytes']:,} | {fmt(r['build'], 2)} | {fmt(r['build_cpu'], 2)} "
            f"| {fmt(r['queries'], 2)} | {fmt(r['queries_cpu'], 2)} | {fmt(r['pictures'], 2)} "
            f"| {fmt(r['pictures_cpu'], 2)} | {fmt(r['load'], 2) if r['load'] is not None else '—'} |"
        )
    return lines


def page_child(lake: Path) -> dict:
    """`build_site` once on `lake`'s catalog, in this fresh process: what the dashboard asset does."""
    from b3_platform.dashboard.site import build_site
    from b3_platform.definitions import build_defs

    env = {
        "B3_PLATFORM_ENV": "local",
        "B3_PLATFORM_DATA_DIR": str(lake),
        "B3_PLATFORM_DUCKDB": str(lake / "warehouse.duckdb"),
    }
    resources = build_defs(env).resources
    catalog, storage = resources["catalog"], resources["lake"].storage()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu, built = timed(lambda: build_site(catalog, storage, now=PAGE_NOW))
    return {
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": before,
        "wall_s": wall,
        "cpu_s": cpu,
        "bytes": built.size,
        "dates": built.dates,
        "sha256": hashlib.sha256(storage.read_bytes(built.key)).hexdigest(),
        **{
            f"{name}_rows": len(getattr(built.data, name).rows)
            for name in ("summary", "weights", "sectors", "events")
        },
    }


#: The build time every page child writes into its page, so two checkouts' pages compare byte for byte.
PAGE_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def page_rounds(lake: Path, checkouts: dict[str, Path], rounds: int, say) -> tuple[list[str], dict]:
    """Each checkout's page of `lake`, in a fresh child per round, interleaved; medians (and the
    table's lines). Every page built must be the same bytes, whichever checkout built it."""
    figures: dict[str, list[dict]] = {name: [] for name in checkouts}
    for attempt in range(1, rounds + 1):
        for name, checkout in checkouts.items():
            env = {**os.environ, "B3_BENCH_CODE": str(checkout.resolve()), "PYTHONWARNINGS": "ignore"}
            done = subprocess.run(
                [sys.executable, __file__, "--page-child", str(lake)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"the page child of {checkout} failed:\n{done.stderr[-3000:]}")
            figures[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            say(f"{name} #{attempt}: {figures[name][-1]}")
    pages = {r["sha256"] for runs in figures.values() for r in runs}
    if len(pages) != 1:
        raise SystemExit(f"the pages of {lake} differ between rounds or checkouts: {sorted(pages)}")
    lines = [
        f"Page alone on {lake} (median of {rounds} fresh processes each; every page the same bytes):",
        "",
        "| checkout | dates | peak RSS MB | RSS before build MB | wall s | CPU s | page bytes | summary rows "
        "| weights rows | sectors rows | events rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    medians = {}
    for name, runs in figures.items():
        m = medians[name] = {key: median([r[key] for r in runs]) for key in runs[0] if key != "sha256"}
        lines.append(
            f"| {name} | {m['dates']:,.0f} | {m['rss_mb']:.0f} | {m['rss_before_mb']:.0f} | {m['wall_s']:.2f} "
            f"| {m['cpu_s']:.2f} | {m['bytes']:,.0f} | {m['summary_rows']:,.0f} | {m['weights_rows']:,.0f} "
            f"| {m['sectors_rows']:,.0f} | {m['events_rows']:,.0f} |"
        )
    return lines, medians


def growth_lines(per_lake: list[dict[str, dict]]) -> list[str]:
    """Each checkout's peak RSS growth per date between consecutive lakes (KB per date)."""
    lines = ["", "Peak RSS growth per date between the lakes:", "", "| checkout | from → to dates | KB per date |", "|---|---|---:|"]  # fmt: skip
    for before, after in zip(per_lake, per_lake[1:]):
        for name in after:
            extra = after[name]["dates"] - before[name]["dates"]
            kb = (after[name]["rss_mb"] - before[name]["rss_mb"]) * 1024 / extra if extra else float("nan")
            lines.append(
                f"| {name} | {before[name]['dates']:,.0f} → {after[name]['dates']:,.0f} | {kb:+.1f} |"
            )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dates", type=int, default=1250)
    parser.add_argument("--indices", default="1,5", help="K values, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="kept when given; a temporary folder otherwise")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="measure lakes already built in --workdir")
    parser.add_argument(
        "--page-of",
        type=Path,
        action="append",
        help="measure the page alone on this lake's synced catalog (repeatable)",
    )
    parser.add_argument("--baseline", type=Path, help="with --page-of: that checkout's page too, interleaved")
    parser.add_argument("--rounds", type=int, default=3, help="with --page-of: fresh processes per checkout")
    parser.add_argument("--page-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_warnings()
    if args.page_child:
        from backfill import assert_measured_code

        result = page_child(args.page_child)
        assert_measured_code(os.environ.get("B3_BENCH_CODE"))
        print(json.dumps(result))
        return 0
    clock = Clock()
    if args.page_of:
        this = Path(__file__).resolve().parent.parent
        checkouts = {"this": this, **({"baseline": args.baseline} if args.baseline else {})}
        per_lake = []
        for lake in args.page_of:
            lines, medians = page_rounds(lake, checkouts, args.rounds, clock.say)
            print("\n".join(lines) + "\n", flush=True)
            per_lake.append(medians)
        if len(per_lake) > 1:
            print("\n".join(growth_lines(per_lake)))
        return 0
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="b3-dashboard-bench-"))
    try:
        rows = [
            measure(work / f"k{k}", args.dates, k, args.repeat, clock.say, args.reuse)
            for k in map(int, args.indices.split(","))
        ]
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    lines = report(rows, args.repeat, argv)
    print("\n".join(lines))
    if args.write_results:
        RESULTS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
