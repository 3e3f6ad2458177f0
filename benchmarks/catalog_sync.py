"""Where the local catalog's sync spends its time, statement by statement, against a baseline.

`DuckDBCatalogResource.sync` of an existing lake (every catalog table: bronze, silver, gold, the
coverage table and raw's sidecar view) into a fresh DuckDB file, then a second sync with nothing
changed (what a daily run's refresh costs beyond its new date), each child process timing every
statement the sync runs through its connection (wall and CPU seconds, grouped by table or kind),
with the closing checkpoint and the sidecar count in Python as their own lines. With `--baseline
CHECKOUT` that checkout's package runs the same children, interleaved; medians over `--rounds`.

The lake: one `memory_profile.py --keep-lake DIR` (or `moonshot.py`) built; it is only read.

    .venv/bin/python benchmarks/catalog_sync.py --lake /tmp/lake120 --baseline ../base --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _key(method: str, sql: str) -> str:
    """A statement's group: the table an INSERT fills, else its first words."""
    words = sql.split()
    if words[:2] == ["INSERT", "INTO"]:
        return f"insert {words[2].strip(chr(34))}"
    return f"{method} {' '.join(words[:3])[:40]}"


def _child(checkout: str, lake: str, database: str) -> None:
    sys.path.insert(0, checkout)
    from dagster_duckdb import DuckDBResource

    from b3_platform.catalog import duckdb_catalog
    from b3_platform.lake.schemas import CATALOG_TABLES
    from b3_platform.lake.storage import LocalStorage

    if not duckdb_catalog.__file__.startswith(str(Path(checkout).resolve())):
        raise SystemExit(f"imported {duckdb_catalog.__file__}, not {checkout}'s")
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    @contextlib.contextmanager
    def timed(key: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent[key][0] += time.perf_counter() - wall
            spent[key][1] += time.process_time() - cpu

    class Timed:
        """The sync's connection, timing each statement."""

        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            with timed(_key("execute", sql)):
                return self._conn.execute(sql, *args)

        def executemany(self, sql, *args):
            with timed(_key("executemany", sql)):
                return self._conn.executemany(sql, *args)

        def close(self):
            with timed("close (checkpoint)"):
                self._conn.close()

        def __getattr__(self, name):
            return getattr(self._conn, name)

    opened = DuckDBResource.get_connection

    @contextlib.contextmanager
    def get_connection(self):
        with opened(self) as conn:
            yield Timed(conn)

    DuckDBResource.get_connection = get_connection
    counts = getattr(duckdb_catalog, "_sidecar_counts", None)
    if counts is not None:

        def timed_counts(*args):
            with timed("sidecar counts (Python)"):
                return counts(*args)

        duckdb_catalog._sidecar_counts = timed_counts
    catalog = duckdb_catalog.DuckDBCatalogResource(duckdb=DuckDBResource(database=database))
    figures = {}
    for label in ("first", "no-op"):
        spent.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        catalog.sync(LocalStorage(Path(lake)), list(CATALOG_TABLES.values()))
        figures[label] = {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "parts": {k: v for k, v in spent.items()},
        }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lake", type=Path)
    parser.add_argument("--baseline", type=Path, help="another checkout, run interleaved")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=14, help="statement groups shown (by this checkout's CPU)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.lake is None:
        parser.error("--lake is required")
    checkouts = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    runs: dict[str, list[dict]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="b3-catalog-sync-") as tmp:
        for n in range(args.rounds):
            for name, checkout in checkouts.items():
                database = f"{tmp}/{name}-{n}.duckdb"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(checkout), str(args.lake.resolve()), database],
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    raise SystemExit(f"the {name} child failed:\n{done.stderr}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                Path(database).unlink()

    def median(values) -> float:
        return statistics.median(values) if values else 0.0

    names = list(checkouts)
    for label in ("first", "no-op"):
        print(f"\n{label} sync of {args.lake} (medians of {args.rounds}; wall / CPU s)")
        cells = {
            name: (
                median([r[label]["wall"] for r in runs[name]]),
                median([r[label]["cpu"] for r in runs[name]]),
            )
            for name in names
        }
        print("  total: " + ", ".join(f"{name} {w:.2f} / {c:.2f}" for name, (w, c) in cells.items()), end="")
        if args.baseline:
            (bw, bc), (tw, tc) = cells["baseline"], cells["this"]
            print(f"; this ÷ baseline: wall {tw / bw:.2f}×, CPU {tc / bc:.2f}×")
        else:
            print()
        groups = {k for name in names for r in runs[name] for k in r[label]["parts"]}

        def cpu(name, group, label=label):
            return median([r[label]["parts"].get(group, [0.0, 0.0])[1] for r in runs[name]])

        print(f"  {'statement group':>42} " + " ".join(f"{n + ' CPU':>14}" for n in names))
        for group in sorted(groups, key=lambda g: -cpu("this", g))[: args.top]:
            print(f"  {group:>42} " + " ".join(f"{cpu(n, group):>14.3f}" for n in names))


if __name__ == "__main__":
    main()
