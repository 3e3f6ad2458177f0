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

With `--queries N`, the first size's child then runs every queries/*.sql N times through the
`query` command's reader (a fresh read-only open of the DuckDB file per query, as the command
does) and prints each query's median: the example queries at that history's size.

    .venv/bin/python benchmarks/catalog_load_memory.py --lake /tmp/h-daily-lakes/lake-20-k34 --copies 12
    .venv/bin/python benchmarks/catalog_load_memory.py --lake LAKE --copies 249 --batches 100 --queries 15
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

#: Days between copies: more than the span of the lakes this is meant for, so dates never collide.
SHIFT_DAYS = 400


def _grow(source: Path, target: Path, copies: int) -> int:
    """`target`: `source`'s silver and gold (every table and manifest) with each date also filed
    `copies` times under earlier dates. Returns the number of dates published."""
    dates: set[str] = set()
    for layer in ("silver", "gold"):
        for table_dir in sorted(p for p in (source / layer).iterdir() if p.is_dir()):
            for date_dir in sorted(table_dir.glob(f"{DATE_DIR_PREFIX}*")):
                day = dt.date.fromisoformat(date_dir.name.removeprefix(DATE_DIR_PREFIX))
                for copy in range(copies + 1):
                    shifted = (day - dt.timedelta(days=SHIFT_DAYS * copy)).isoformat()
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


def _time_queries(database: str, repeat: int) -> dict[str, float]:
    """Median wall ms of each example query through the `query` command's reader."""
    from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader

    reader = DuckDBCatalogReader(database=database)
    medians = {}
    for path in sorted(QUERIES.glob("*.sql")):
        sql = path.read_text(encoding="utf-8")
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            reader.query(sql)
            times.append((time.perf_counter() - start) * 1000)
        medians[path.stem] = sorted(times)[len(times) // 2]
    return medians


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
    queries = _time_queries(f"{lake}/warehouse.duckdb", repeat) if repeat else {}
    print(
        json.dumps(
            {"batch": batch, "wall": wall, "cpu": cpu, "peak_mb": peak, "rows": rows, "queries": queries}
        )
    )


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
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    with tempfile.TemporaryDirectory(prefix="b3-catalog-load-") as tmp:
        grown = Path(tmp) / "grown"
        dates = _grow(args.lake, grown, args.copies)
        print(f"lake: {dates} dates ({args.copies + 1} copies of {args.lake})")
        for n, batch in enumerate(args.batches):
            lake = Path(tmp) / f"lake-{batch}"
            shutil.copytree(grown, lake, copy_function=os.link)
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--lake",
                    str(args.lake),
                    "--child",
                    str(lake),
                    str(batch),
                    str(args.queries if n == 0 else 0),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise SystemExit(f"the child failed:\n{done.stderr}")
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            label = "all dates in one INSERT" if batch >= dates else f"{batch} dates per INSERT"
            print(
                f"{label:>26}: peak RSS {figures['peak_mb']:.0f} MB, {figures['wall']:.1f} s wall, "
                f"{figures['cpu']:.1f} s CPU, {figures['rows']:,} rows"
            )
            for name, ms in figures["queries"].items():
                print(f"{'':>28}{name}: {ms:.0f} ms median of {args.queries}")
            shutil.rmtree(lake)


if __name__ == "__main__":
    main()
