#!/usr/bin/env python
"""The same backfill from this checkout and another one: are the lakes byte for byte the same?

A speed change must not change a byte of what the lake holds. This script imports one SYNTHETIC
archive (N dates × the first K of B3's index codes, as moonshot.py builds it) once, runs the
single-run backfill (`run.py --child`) from each checkout on its own copy of that raw lake, and
compares every file of both lakes by content. Left out: the dashboard's page (it states its build
time) and the DuckDB catalog file (a database, not lake data). Raw is compared too: both runs
start from the same copy, so it shows neither changed it.

    python benchmarks/compare_lakes.py --baseline /path/to/main --dates 10 --indices 34

Exit status 0 when every file is identical (and both lakes hold the same files), 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backfill import child_env, run_child  # noqa: E402
from common import REPO, Clock, quiet_warnings  # noqa: E402
from moonshot import build_raw_lake  # noqa: E402

#: Files whose bytes are allowed to differ: not lake data, or stamped with the time they were built.
NOT_COMPARED = ("warehouse.duckdb", "warehouse.duckdb.wal")
NOT_COMPARED_DIRS = ("dashboard",)


def lake_files(lake: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(lake.rglob("*")):
        relative = path.relative_to(lake)
        if path.is_file() and relative.parts[0] not in NOT_COMPARED_DIRS and path.name not in NOT_COMPARED:
            files[relative.as_posix()] = path
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--dates", type=int, default=10)
    parser.add_argument("--indices", type=int, default=34)
    args = parser.parse_args(argv)
    quiet_warnings()
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3lakes-"))
    try:
        raw, days, codes = build_raw_lake(work, args.dates, args.indices, clock)
        lakes = {}
        for name, checkout in (("this", REPO), ("baseline", args.baseline.resolve())):
            lake = work / f"lake-{name}"
            shutil.copytree(raw, lake)
            spec = {"mode": "backfill", "instance": "ephemeral", "days": [d.isoformat() for d in days]}
            run_child(
                spec,
                child_env(lake, codes, None),
                work / f"child-{name}",
                code=checkout,
            )
            lakes[name] = lake_files(lake)
            clock.say(f"{name}: {len(lakes[name])} files")
        this, baseline = lakes["this"], lakes["baseline"]
        only = sorted(set(this) ^ set(baseline))
        differ = [
            k for k in sorted(set(this) & set(baseline)) if this[k].read_bytes() != baseline[k].read_bytes()
        ]
        for key in only:
            print(f"only in {'this' if key in this else 'baseline'}: {key}")
        for key in differ:
            print(f"differs: {key}")
        same = len(set(this) & set(baseline)) - len(differ)
        print(f"{same} file(s) identical, {len(differ)} differ, {len(only)} in one lake only")
        return 0 if not only and not differ else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
