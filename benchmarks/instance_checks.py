"""What each partitioned asset check costs per date in a single-run range, on the repo's instance.

Dagster plans, stores and shows a partitioned asset's checks once per date: in a range run each
check adds a planned row per date and, through CheckBook, an evaluation per date (the event, its
copy in the index, the check's row). This measures it apart from any transform: a synthetic
partitioned asset with K checks (each a CheckBook rule passing on every date, as nearly every
date of a backfill does) over N dates, one run, on a fresh persistent instance configured by the
checkout's dagster.yaml; its CPU and wall time per date for K = 1 and K = 4, and what each check
beyond the first costs per date: (K=4 − K=1) ÷ 3. That last figure is what folding gold's four
checks into one would save per date (3 checks fewer), measured without changing gold.

    python benchmarks/instance_checks.py --dates 250 --rounds 3
    python benchmarks/instance_checks.py --dates 250 --rounds 3 --baseline ../base  # side by side

Each figure is one child process (this checkout's, or the baseline's package first on its path
through B3_BENCH_CODE); rounds interleave the checkouts and K, and the tables give medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECK_COUNTS = (1, 4)
FIRST_DAY = "2024-01-02"


def child(spec: dict) -> None:
    """One run of the synthetic asset over the spec's dates, timed; writes the result file."""
    code = os.environ.get("B3_BENCH_CODE")
    if code:
        sys.path.insert(0, code)
    import dagster as dg

    from b3_platform.assets.common import PARTITIONED, CheckBook, check_spec
    from b3_platform.partitions import trading_days

    names = [f"rule_{i}" for i in range(spec["checks"])]
    specs = [check_spec(name, "synthetic", blocking=True, description="passes") for name in names]

    @dg.asset(name="synthetic", check_specs=specs, **PARTITIONED)
    def synthetic(context):
        book = CheckBook(specs, context)
        for key in context.partition_keys:
            for name in names:
                book.record(name, dt.date.fromisoformat(key), [])
        yield dg.MaterializeResult(metadata={"rows": 1})
        yield from book.results()

    keys = trading_days.get_partition_keys()
    start = keys.index(FIRST_DAY)
    days = keys[start : start + spec["dates"]]
    job = dg.Definitions(assets=[synthetic]).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.from_config(spec["home"]) as instance:
        wall, cpu = time.perf_counter(), time.process_time()
        result = job.execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.success
    Path(spec["result"]).write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "dates": len(days)}))


def run_one(checkout: Path, checks: int, dates: int, scratch: Path) -> dict:
    """A child measuring `checkout`'s package on a fresh instance made from its dagster.yaml."""
    home = scratch / "home"
    home.mkdir(parents=True)
    shutil.copy(checkout / "dagster.yaml", home / "dagster.yaml")
    spec = {"checks": checks, "dates": dates, "home": str(home), "result": str(scratch / "result.json")}
    (scratch / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    env.update({"DAGSTER_HOME": str(home), "B3_BENCH_CODE": str(checkout), "PYTHONWARNINGS": "ignore"})
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(scratch / "spec.json")],
        env=env,
        cwd=scratch,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({checkout}, {checks} checks):\n{done.stderr[-3000:]}")
    return json.loads((scratch / "result.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dates", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured in the same rounds")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child.read_text()))
        return 0
    checkouts = {"this": REPO}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    work = Path(tempfile.mkdtemp(prefix="b3checks-"))
    figures: dict[tuple[str, int], list[dict]] = {}
    try:
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()[0]:.2f}")
        for round_ in range(1, args.rounds + 1):
            order = [(name, k) for name in checkouts for k in CHECK_COUNTS]
            for name, checks in order if round_ % 2 else reversed(order):
                result = run_one(checkouts[name], checks, args.dates, work / f"{name}-{checks}-{round_}")
                figures.setdefault((name, checks), []).append(result)
                print(
                    f"round {round_} {name:8} {checks} check(s): "
                    f"{result['wall_s'] * 1000 / result['dates']:6.1f} ms/date wall, "
                    f"{result['cpu_s'] * 1000 / result['dates']:6.1f} CPU"
                )
        print(
            f"\n| checkout | checks | median wall ms/date | median CPU ms/date |  ({args.dates} dates, {args.rounds} rounds)"
        )
        print("|---|---:|---:|---:|")
        medians = {}
        for (name, checks), runs in figures.items():
            wall = statistics.median(r["wall_s"] for r in runs) * 1000 / args.dates
            cpu = statistics.median(r["cpu_s"] for r in runs) * 1000 / args.dates
            medians[name, checks] = (wall, cpu)
            print(f"| {name} | {checks} | {wall:.2f} | {cpu:.2f} |")
        low, high = CHECK_COUNTS
        print()
        for name in checkouts:
            per_wall = (medians[name, high][0] - medians[name, low][0]) / (high - low)
            per_cpu = (medians[name, high][1] - medians[name, low][1]) / (high - low)
            print(f"{name}: each check beyond the first costs {per_wall:.2f} ms/date wall, {per_cpu:.2f} CPU")
        print(
            f"peak RSS of this process tree's children: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
