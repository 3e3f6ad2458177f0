"""Peak memory of the local catalog's first load of a long history, by load batch size.

The first refresh after importing years of history loads every published date into DuckDB tables
(`catalog/duckdb_catalog.py`). Loaded in one INSERT, every row of the history was in memory at
once (sorted by date on the way in); `LOAD_BATCH_DATES` loads date-ordered batches in the sync's
one transaction instead. This script measures the peak RSS and the time of that first load for
several batch sizes on the same lake, each in a fresh child process.

The lake: an existing lake (e.g. one `moonshot.py` or `daily_run.py --workdir` built, 34 indices)
whose published silver and gold dates are repeated `--copies` times under earlier dates (hard
links for the Parquet files, a new manifest naming its date), so a 20-date × 34-index lake stands in
for a history `--copies` times longer without building it.

The copies are filed back to back (each shifted by the source's span of dates), so the history
is as dense as the real one (~250 dates a year): the catalog stores some tables year by year.

With `--queries N`, the first size's catalog is then queried by a fresh child: every queries/*.sql
N times, three ways: `first` (the query's first run in that fresh process), `open` (a fresh
read-only open of the DuckDB file per query, as the `query` command does: target 4's figure) and
`warm` (N runs in one open connection); medians.

With `--baseline CHECKOUT`, the same lake is also loaded by that checkout's own copy of this script
(same `--child` protocol) and its catalog queried the same way, interleaved with this checkout's.

    .venv/bin/python benchmarks/catalog_load_memory.py --lake /tmp/h-daily-lakes/lake-20-k34 --copies 12
    .venv/bin/python benchmarks/catalog_load_memory.py --lake LAKE --copies 249 --batches 100 --queries 15
    .venv/bin/python benchmarks/catalog_load_memory.py --lake LAKE --copies 62 --batches 100 \
        --queries 15 --baseline /tmp/baseline
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from b3_platform.lake.paths import DATE_DIR_PREFIX  # noqa: E402


def _span_days(source: Path) -> int:
    """Days from the source's first published date to its last, plus one: copies shifted by this
    never collide and leave no gap."""
    days = [
        dt.date.fromisoformat(d.name.removeprefix(DATE_DIR_PREFIX))
        for layer in ("silver", "gold")
        for table_dir in (source / layer).iterdir()
        if table_dir.is_dir()
        for d in table_dir.glob(f"{DATE_DIR_PREFIX}*")
    ]
    return (max(days) - min(days)).days + 1


def _grow(source: Path, target: Path, copies: int) -> int:
    """`target`: `source`'s silver and gold (every table and manifest) with each date also filed
    `copies` times under earlier dates, back to back. Returns the number of dates published."""
    dates: set[str] = set()
    shift = _span_days(source)
    for layer in ("silver", "gold"):
        for table_dir in sorted(p for p in (source / layer).iterdir() if p.is_dir()):
            for date_dir in sorted(table_dir.glob(f"{DATE_DIR_PREFIX}*")):
                day = dt.date.fromisoformat(date_dir.name.removeprefix(DATE_DIR_PREFIX))
                for copy in range(copies + 1):
                    shifted = (day - dt.timedelta(days=shift * copy)).isoformat()
                    dates.add(shifted)
                    out = target / layer / table_dir.name / f"{DATE_DIR_PREFIX}{shifted}"
                    out.mkdir(parents=True, exist_ok=True)
                    for file in date_dir.iterdir():
                        if file.name == "manifest.json":
                            manifest = json.loads(file.read_text())
                            manifest["date"] = shifted
                            (out / file.name).write_text(json.dumps(manifest))
                        else:
                            os.link(file, out / file.name)
    return len(dates)


QUERIES = Path(__file__).resolve().parent.parent / "queries"


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _time_queries(database: str, repeat: int) -> dict[str, dict]:
    """Each example query's wall ms ({first, open, warm}: see the module docstring) and a digest
    of its rows, in a process that has not opened the catalog before."""
    import hashlib

    import duckdb

    from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader

    reader = DuckDBCatalogReader(database=database)
    figures = {}
    for path in sorted(QUERIES.glob("*.sql")):
        sql = path.read_text(encoding="utf-8")
        opened = []
        for _ in range(repeat):
            start = time.perf_counter()
            rows = reader.query(sql).rows
            opened.append(_ms_since(start))
        figures[path.stem] = {
            "first": opened[0],
            "open": sorted(opened)[len(opened) // 2],
            "digest": hashlib.sha256(repr(rows).encode()).hexdigest()[:12],
        }
    conn = duckdb.connect(database, read_only=True)
    try:
        for path in sorted(QUERIES.glob("*.sql")):
            sql = path.read_text(encoding="utf-8")
            warm = []
            for _ in range(repeat):
                start = time.perf_counter()
                conn.execute(sql).fetchall()
                warm.append(_ms_since(start))
            figures[path.stem]["warm"] = sorted(warm)[len(warm) // 2]
    finally:
        conn.close()
    return figures


def _child(lake: str, batch: int, repeat: int) -> None:
    from dagster_duckdb import DuckDBResource

    from b3_platform.catalog import duckdb_catalog
    from b3_platform.lake.schemas import CATALOG_TABLES
    from b3_platform.lake.storage import LocalStorage

    duckdb_catalog.LOAD_BATCH_DATES = batch
    catalog = duckdb_catalog.DuckDBCatalogResource(duckdb=DuckDBResource(database=f"{lake}/warehouse.duckdb"))
    start, cpu = time.perf_counter(), time.process_time()
    tables = catalog.sync(LocalStorage(Path(lake)), list(CATALOG_TABLES.values()))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = sum(t.rows or 0 for t in tables)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"batch": batch, "wall": wall, "cpu": cpu, "peak_mb": peak, "rows": rows}))


def _run_child(script: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 1_000_000])
    parser.add_argument(
        "--queries", type=int, default=0, help="then time the example queries N times (first size)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout: load and query the same lake with it too"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--query-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if args.query_child:
        print(json.dumps(_time_queries(args.query_child[0], int(args.query_child[1]))))
        return
    checkouts = {"this": Path(__file__).resolve()}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve() / "benchmarks" / Path(__file__).name, **checkouts}
    with tempfile.TemporaryDirectory(prefix="b3-catalog-load-") as tmp:
        grown = Path(tmp) / "grown"
        dates = _grow(args.lake, grown, args.copies)
        print(f"lake: {dates} dates ({args.copies + 1} copies of {args.lake}, back to back)")
        for n, batch in enumerate(args.batches):
            databases = {}
            for name, script in checkouts.items():
                lake = Path(tmp) / f"lake-{batch}-{name}"
                shutil.copytree(grown, lake, copy_function=os.link)
                figures = _run_child(script, "--lake", str(args.lake), "--child", str(lake), str(batch), "0")
                label = "all dates in one INSERT" if batch >= dates else f"{batch} dates per INSERT"
                print(
                    f"{name:>8} {label:>26}: peak RSS {figures['peak_mb']:.0f} MB, {figures['wall']:.1f} s "
                    f"wall, {figures['cpu']:.1f} s CPU, {figures['rows']:,} rows, file {os.path.getsize(lake / 'warehouse.duckdb') / 2**20:.0f} MB"
                )
                databases[name] = lake
            if n == 0 and args.queries:
                _compare_queries(databases, args.queries)
            for lake in databases.values():
                shutil.rmtree(lake)


def _compare_queries(databases: dict[str, Path], repeat: int, rounds: int = 3) -> None:
    """Each catalog queried by `rounds` fresh children, alternating; medians over the rounds."""
    runs: dict[str, list[dict]] = {name: [] for name in databases}
    for _ in range(rounds):
        for name, lake in databases.items():
            runs[name].append(
                _run_child(
                    Path(__file__), "--lake", "-", "--query-child", f"{lake}/warehouse.duckdb", str(repeat)
                )
            )
    print(
        f"{'query':>22} "
        + " ".join(f"{n + ' ' + k:>15}" for n in databases for k in ("first", "open", "warm"))
    )
    for query in runs["this"][0]:
        cells = []
        for name in databases:
            for kind in ("first", "open", "warm"):
                values = sorted(r[query][kind] for r in runs[name])
                cells.append(f"{values[len(values) // 2]:>12.1f} ms")
        digests = {r[query]["digest"] for name in databases for r in runs[name]}
        same = "same rows" if len(digests) == 1 else f"ROWS DIFFER: {sorted(digests)}"
        print(f"{query:>22} " + " ".join(cells) + f"  {same}")


if __name__ == "__main__":
    main()
