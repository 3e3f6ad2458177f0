"""`python -m b3_platform query "select 1"` as a whole process, against the floor it cannot beat.

Issue 24's target 5 is about the command a user types: the process's wall and CPU time, start-up
included. This runs it N times on a one-table local catalog and, interleaved in the same run, the
floor: a bare interpreter that imports `duckdb` and answers the same query (the local query path
needs at least that). Medians of N, wall and CPU (the child's user + system time), and the ratio
of each to the floor. A unit test asserts what the command answers and that it imports no Dagster
(b3_platform_tests/test_query_without_dagster.py); the time lives here.

    python benchmarks/query_startup.py --rounds 7
    python benchmarks/query_startup.py --rounds 7 --baseline ../base   # another checkout beside it
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
FLOOR = "import duckdb; print(duckdb.connect().execute('select 1 AS one').fetchall())"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    ran = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if ran.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({ran.returncode}):\n{ran.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="another checkout, run with this interpreter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="b3-query-startup-") as tmp:
        lake = Path(tmp)
        with duckdb.connect(str(lake / "warehouse.duckdb")) as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS one")
        env = {k: v for k, v in os.environ.items() if not k.startswith("B3_PLATFORM_")}
        env["B3_PLATFORM_DATA_DIR"] = str(lake)
        command = [sys.executable, "-m", "b3_platform", "query", "select 1 AS one", "--format", "json"]
        subjects = {"floor (python + duckdb)": ([sys.executable, "-c", FLOOR], REPO), "this": (command, REPO)}
        if args.baseline:
            subjects["baseline"] = (command, args.baseline.resolve())
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in subjects}
        for _ in range(args.rounds):
            for name, (argv, cwd) in subjects.items():
                figures[name].append(timed(argv, cwd, env))
    floor_wall = statistics.median(w for w, _ in figures["floor (python + duckdb)"])
    floor_cpu = statistics.median(c for _, c in figures["floor (python + duckdb)"])
    print(f'`query "select 1"` as a whole process, median of {args.rounds}; load {os.getloadavg()[0]:.2f}')
    print()
    print("| process | wall s | CPU s | wall ÷ floor | CPU ÷ floor |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in figures.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {wall / floor_wall:.2f}× | {cpu / floor_cpu:.2f}× |")


if __name__ == "__main__":
    main()
