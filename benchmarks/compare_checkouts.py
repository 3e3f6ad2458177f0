"""The single-run backfill of this checkout against a baseline checkout, interleaved: A, B, A, B, …

On a shared machine two back-to-back `run.py` sessions drift apart by more than most changes cost
(the naive pandas baseline alone moved ~20 % between two sessions here). This script runs the same
child backfill (`run.py --child`, the (b) measure) from each checkout in turn, on copies of one raw
lake, so both see the same load; it prints each round and the medians of wall and CPU milliseconds
per date, and the ratio this ÷ baseline.

    git worktree add /tmp/baseline <commit>
    python benchmarks/compare_checkouts.py --baseline /tmp/baseline --dates 250 --rounds 5

The baseline must have the same `run.py --child` protocol (spec: mode, instance, days, result).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive import build_archive  # noqa: E402
from backfill import child_env, fresh_dagster_home, history_selection, import_archive, run_child  # noqa: E402
from common import REPO, Clock  # noqa: E402


def instance_kb(home: Path | None) -> float | None:
    """The persistent instance's run and event databases after the backfill (history/ and
    storage/ under DAGSTER_HOME, every file), in KB; None for an ephemeral instance."""
    if home is None:
        return None
    files = [f for folder in ("history", "storage") for f in (home / folder).rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 1024


def one_backfill(
    checkout: Path, raw_lake: Path, days, indices, kind: str, scratch: Path, single_run: bool = False
) -> dict:
    """One child backfill from `checkout` over a fresh copy of the raw-only lake, with the size
    its instance grew to (persistent only)."""
    lake = scratch / "lake"
    shutil.copytree(raw_lake, lake)
    home = fresh_dagster_home(scratch / "home", checkout / "dagster.yaml") if kind == "persistent" else None
    spec = {
        "mode": "backfill",
        "instance": kind,
        "days": [d.isoformat() for d in days],
        "selection": history_selection(),
        "single_run": single_run,
    }
    run = run_child(spec, child_env(lake, indices, home), scratch / "child", code=checkout)
    shutil.rmtree(lake)
    return {**run.result, "instance_kb": instance_kb(home)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", required=True, type=Path, help="the other checkout (e.g. a git worktree)"
    )
    parser.add_argument("--dates", type=int, default=250)
    parser.add_argument("--indices", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instance", choices=("ephemeral", "persistent"), default="ephemeral")
    parser.add_argument(
        "--single-run",
        action="store_true",
        help="the whole range as one run (the issue's single-run backfill), not runs of runs.MAX_RUN_DATES",
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkout measured in the same rounds (e.g. one lever alone); repeatable",
    )
    args = parser.parse_args()
    baseline = args.baseline.resolve()
    if not (baseline / "benchmarks" / "run.py").is_file():
        raise SystemExit(f"{baseline}: no benchmarks/run.py")
    extra = [(name, Path(path).resolve()) for name, _, path in (a.partition("=") for a in args.also)]
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3compare-"))
    try:
        archive, days, indices = build_archive(work / "archive", args.dates, args.indices)
        raw_lake = work / "raw-lake"
        import_archive(archive, raw_lake)
        clock.say(
            f"SYNTHETIC archive: {len(days)} dates × {len(indices)} index(es); {args.instance} instance"
        )
        figures: dict[str, list[dict]] = {"baseline": [], "this": [], **{name: [] for name, _ in extra}}
        for round_ in range(1, args.rounds + 1):
            # Alternate which goes first, so neither always runs on the warmer machine.
            order = [("baseline", baseline), *extra, ("this", REPO)]
            for name, checkout in order if round_ % 2 else reversed(order):
                result = one_backfill(
                    checkout,
                    raw_lake,
                    days,
                    indices,
                    args.instance,
                    work / f"{name}-{round_}",
                    args.single_run,
                )
                figures[name].append(result)
                size = result["instance_kb"]
                clock.say(
                    f"round {round_}/{args.rounds} {name:8}: {result['wall_s'] * 1000 / len(days):7.1f} ms/date "
                    f"wall, {result['cpu_s'] * 1000 / len(days):7.1f} ms/date CPU"
                    + (f", instance {size / len(days):6.1f} KB/date" if size is not None else "")
                )
        print()
        print(
            "| checkout | median wall ms/date | median CPU ms/date | instance KB/date | rounds |"
            f"  ({len(days)} dates, {args.instance})"
        )
        print("|---|---:|---:|---:|---:|")
        medians = {}
        for name in ("baseline", *(n for n, _ in extra), "this"):
            wall = statistics.median(r["wall_s"] for r in figures[name]) * 1000 / len(days)
            cpu = statistics.median(r["cpu_s"] for r in figures[name]) * 1000 / len(days)
            sizes = [r["instance_kb"] for r in figures[name] if r["instance_kb"] is not None]
            size = f"{statistics.median(sizes) / len(days):.1f}" if sizes else "—"
            medians[name] = (wall, cpu)
            print(f"| {name} | {wall:.1f} | {cpu:.1f} | {size} | {args.rounds} |")
        (bw, bc), (tw, tc) = medians["baseline"], medians["this"]
        print(
            f"\nthis ÷ baseline: wall {tw / bw:.3f}× ({tw - bw:+.1f} ms/date), CPU {tc / bc:.3f}× ({tc - bc:+.1f} ms/date)"
        )
        for name, _ in extra:
            ew, ec = medians[name]
            print(
                f"{name} ÷ baseline: wall {ew / bw:.3f}× ({ew - bw:+.1f} ms/date), CPU {ec / bc:.3f}× ({ec - bc:+.1f} ms/date)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
