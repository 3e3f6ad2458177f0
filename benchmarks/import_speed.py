#!/usr/bin/env python
"""`import` throughput of this checkout against another one, interleaved: files per second.

The (a) measure of run.py, run side by side: one SYNTHETIC archive (N dates × the first K of
B3's index codes, the real IBOV samples re-dated, as moonshot.py builds it) imported into a fresh
lake by each checkout in turn (A, B, B, A, …), each in its own child process with its own code on
sys.path, so both see the same machine load. Prints each round, then the medians of files per
second (wall) and CPU ms per file, and the ratio this ÷ baseline.

    python benchmarks/import_speed.py --baseline /path/to/main --dates 20 --indices 34 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive  # noqa: E402
from common import REPO, Clock  # noqa: E402


def child(checkout: str, folder: str, lake: str) -> None:
    """Import `folder` into `lake` with `checkout`'s code; print {files, wall_s, cpu_s}."""
    sys.path.insert(0, checkout)
    from b3_platform import trading_calendar
    from b3_platform.importer import import_paths
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.storage import open_storage

    trading_calendar.horizon()  # the calendar loads once, outside the timed part
    store = RawStore(open_storage(lake))
    started, cpu = time.perf_counter(), time.process_time()
    results = import_paths(store, [folder])
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    bad = [r for r in results if r.status != "imported"]
    if bad:
        raise SystemExit(f"{len(bad)} file(s) not imported, first: {bad[0].path}: {bad[0].reason}")
    print(json.dumps({"files": len(results), "wall_s": wall_s, "cpu_s": cpu_s}))


def one_import(checkout: Path, folder: Path, lake: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(checkout), str(folder), str(lake)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: import failed:\n{done.stderr[-2000:]}")
    shutil.rmtree(lake)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--dates", type=int, default=20)
    parser.add_argument("--indices", type=int, default=34)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from b3_platform.b3.indices import BUILTIN_INDICES

    archive.INDEX_CODES = BUILTIN_INDICES
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3import-"))
    try:
        folder, days, codes = archive.build_archive(work / "archive", args.dates, args.indices)
        clock.say(
            f"SYNTHETIC archive: {len(days)} dates × {len(codes)} indices = {len(days) * len(codes)} files"
        )
        checkouts = [("this", REPO), ("baseline", args.baseline.resolve())]
        figures: dict[str, list[dict]] = {name: [] for name, _ in checkouts}
        for round_ in range(1, args.rounds + 1):
            for name, checkout in checkouts if round_ % 2 else list(reversed(checkouts)):
                result = one_import(checkout, folder, work / f"lake-{name}-{round_}")
                figures[name].append(result)
                clock.say(
                    f"round {round_} {name:8}: {result['files'] / result['wall_s']:.1f} files/s, "
                    f"{result['cpu_s'] * 1000 / result['files']:.1f} CPU ms/file"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"| checkout | median files/s | median wall ms/file | median CPU ms/file | rounds |  ({args.dates} × {args.indices})"
    )
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for name, runs in figures.items():
        wall = statistics.median(r["wall_s"] * 1000 / r["files"] for r in runs)
        cpu = statistics.median(r["cpu_s"] * 1000 / r["files"] for r in runs)
        medians[name] = (wall, cpu)
        print(f"| {name} | {1000 / wall:.1f} | {wall:.2f} | {cpu:.2f} | {len(runs)} |")
    (tw, tc), (bw, bc) = medians["this"], medians["baseline"]
    print(f"\nthis ÷ baseline: files/s {bw / tw:.2f}× (wall), CPU per file {tc / bc:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
