#!/usr/bin/env python
"""Benchmark b3_platform over a SYNTHETIC multi-year archive (see benchmarks/README.md).

Real multi-year archives of B3's day portfolios are not public, so this script builds one: the real
IBOV GetPortfolioDay samples in demo_data/ (8 consecutive 2025 trading days, with the real
NTCO3 -> NATU3 swap of 2025-07-02) are re-dated onto N consecutive B3 trading days ending
2025-07-11 by rewriting only `header.date`, cycling through the samples so that consecutive days
differ. For K > 1 the same IBOV contents are filed under other real index codes. Every figure
printed here is measured on that synthetic archive and says so.

Measures: (a) import throughput, (b) one single-run backfill of every layer plus the
catalog on a persistent and an ephemeral instance, (c) the same dates as per-partition runs
(sampled, extrapolated), (d) a naive pandas script, (e) peak RSS of (b), (f) the example queries
through the DuckDB catalog against pandas scanning the raw JSON. Each backfill runs in a fresh
subprocess of this script (`--child SPEC.json`) so its peak RSS is its own.

    python benchmarks/run.py                                   # the target sizes (long)
    python benchmarks/run.py --dates 20 --indices 1,2 --repeat 1   # a quick check
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from backfill import child_main
from common import REPO, Clock, quiet_warnings
from example_queries import measure_queries
from measure import measure_combo
from report import RESULTS_FILE, archive_description, machine_description, tables, target_lines, write_results

# The parts, in the order a run goes through them: archive.py builds the synthetic archive;
# backfill.py measures (a)-(e), every Dagster run in a child process of this script (`--child`);
# example_queries.py measures (f); measure.py repeats (a)-(e) per size; report.py prints the
# tables and one PASS/MISS line per target; common.py holds what they share.

# Measure the checkout this script lives in, whatever is installed in the venv. The modules above
# import b3_platform only inside their functions, so every such import comes after this line.
sys.path.insert(0, str(REPO))
# A comparison measures another checkout's b3_platform with this checkout's benchmark code
# (backfill.run_child's `code`): that checkout comes first.
if os.environ.get("B3_BENCH_CODE"):
    sys.path.insert(0, os.environ["B3_BENCH_CODE"])

MIN_QUERY_REPEAT = 5


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
        clock.say(f"note: --sample {args.sample} < 20: (c) extrapolates from fewer dates than the default")
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
