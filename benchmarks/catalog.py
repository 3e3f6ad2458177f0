"""The local catalog at 250 and 1,250 dates × 1 index: every queries/*.sql through the `query`
command's reader, over this branch's DuckDB tables kept in step and over the views of one Parquet
file per date the catalog used to be (their SQL reproduced below), in the same run; the sync after
one new date (O(changed): about equal at both sizes) next to the old sync; and the bytes each query
would scan on Athena (the sizes of the Parquet files of the dates it touches).

The lake is synthetic but made of real files: `python -m b3_platform demo` builds the bundled
samples once, and each table's newest file is copied to every trading day of the window (with the
silver and gold manifests), so the catalog reads what a built lake holds, quickly.

    .venv/bin/python benchmarks/catalog.py [--dates 250 1250] [--repeat 15]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, median

sys.path.insert(0, str(REPO))

from b3_platform import trading_calendar  # noqa: E402
from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader  # noqa: E402
from b3_platform.catalog.types import duckdb_type  # noqa: E402
from b3_platform.lake.paths import date_in_key  # noqa: E402
from b3_platform.lake.schemas import CATALOG_TABLES, TABLES  # noqa: E402
from b3_platform.lake.storage import LocalStorage  # noqa: E402
from b3_platform.lake.tables import manifest_bytes, manifest_key, unit_tables  # noqa: E402

QUERIES = sorted((REPO / "queries").glob("*.sql"))
LAST_DAY = dt.date(2025, 7, 11)  # the entries_exits window ends here


def seed_lake(folder: Path) -> Path:
    """The demo's lake (real samples through every layer)."""
    subprocess.run(
        [sys.executable, "-m", "b3_platform", "--data-dir", str(folder), "demo"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    return folder


def newest_files(seed: Path) -> dict[str, Path]:
    """{table: its newest Parquet file} of every table with a file."""
    found = {}
    for table_def in TABLES.values():
        files = sorted((seed / table_def.location).glob("date=*/data.parquet"))
        if files:
            found[table_def.name] = files[-1]
    return found


def add_date(lake: Path, seed_files: dict[str, Path], day: dt.date) -> None:
    """One date of every seeded table, published as the layers publish it."""
    storage = LocalStorage(lake)
    for name, source in seed_files.items():
        target = lake / TABLES[name].location / f"date={day}" / "data.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for unit in ("silver", "gold"):
        defs = {t.name: t for t in unit_tables(unit)}
        storage.write_bytes(manifest_key(unit, day), manifest_bytes(unit, day, defs))


def old_view_sql(root: Path, table_def, has_files: bool = True) -> str:
    """main's view of a table: its files read at query time, published dates only (reproduced);
    typed and empty without files."""
    if not has_files:
        typed = [f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in table_def.schema]
        return f'CREATE OR REPLACE VIEW "{table_def.name}" AS SELECT {", ".join(typed)}, CAST(NULL AS DATE) AS "date" WHERE false'
    columns = ", ".join(f'"{f.name}"' for f in table_def.schema)
    pattern = f"{root}/{table_def.location}date=*/data.parquet"
    sql = (
        f'CREATE OR REPLACE VIEW "{table_def.name}" AS SELECT {columns}, "date" FROM '
        f"read_parquet('{pattern}', hive_partitioning = true, hive_types = {{'date': DATE}})"
    )
    if table_def.published_with:
        manifests = root / table_def.published_with / "_published" / "date=*" / "manifest.json"
        sql += (
            " WHERE \"date\" IN (SELECT CAST(regexp_extract(file, 'date=([0-9]{4}-[0-9]{2}-[0-9]{2})/', 1) "
            f"AS DATE) FROM glob('{manifests}'))"
        )
    return sql


def old_sync(root: Path, database: Path, seeded: set[str]) -> None:
    """main's sync: every view replaced, then every table counted through its view."""
    import duckdb

    with duckdb.connect(str(database)) as conn:
        conn.execute("BEGIN TRANSACTION")
        for table_def in TABLES.values():
            conn.execute(old_view_sql(root, table_def, table_def.name in seeded))
        conn.execute("COMMIT")
        for name in seeded:
            conn.execute(
                f'SELECT count(*), count(DISTINCT "date"), min("date"), max("date") FROM "{name}"'
            ).fetchone()


def new_catalog(database: Path):
    from dagster_duckdb import DuckDBResource

    from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource

    return DuckDBCatalogResource(duckdb=DuckDBResource(database=str(database)))


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of `repeat` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return median(walls), median(cpus)


_BETWEEN = re.compile(r"\"date\"\s+BETWEEN\s+DATE\s+'([\d-]+)'\s+AND\s+DATE\s+'([\d-]+)'", re.I)
_EQUALS = re.compile(r"\"date\"\s*=\s*DATE\s+'([\d-]+)'", re.I)


def athena_bytes(lake: Path, sql: str) -> int:
    """What Athena would scan at most: for each table the SQL names, the files of the dates its
    `date` predicate keeps (a BETWEEN or = on a DATE literal; otherwise every date: a subquery such
    as max("date") is not pruned)."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    window = None
    if match := _BETWEEN.search(body):
        window = (dt.date.fromisoformat(match.group(1)), dt.date.fromisoformat(match.group(2)))
    elif match := _EQUALS.search(body):
        window = (dt.date.fromisoformat(match.group(1)),) * 2
    total = 0
    for name, table_def in CATALOG_TABLES.items():
        if table_def.file_format != "parquet" or not re.search(rf"\b{name}\b", body):
            continue
        for path in (lake / table_def.location).glob("date=*/data.parquet"):
            day = date_in_key(str(path.relative_to(lake)))
            if window is None or window[0] <= day <= window[1]:
                total += path.stat().st_size
    return total


def measure(seed_files: dict[str, Path], dates: int, repeat: int, work: Path) -> None:
    lake = work / f"lake-{dates}"
    days = trading_calendar.trading_days_between(LAST_DAY - dt.timedelta(days=dates * 2), LAST_DAY)[-dates:]
    for day in days:
        add_date(lake, seed_files, day)
    storage = LocalStorage(lake)
    tables = list(TABLES.values())
    new_db, old_db = lake / "warehouse.duckdb", lake / "views.duckdb"
    catalog = new_catalog(new_db)
    first_wall, first_cpu = timed(lambda: catalog.sync(storage, tables), 1)
    old_sync(lake, old_db, set(seed_files))
    print(f"\n{dates} dates × 1 index: first load of the tables {first_wall:.0f} ms (CPU {first_cpu:.0f} ms)")
    print(
        f"  {'query':22} {'tables ms':>10} {'(CPU)':>7} {'views ms':>9} {'(CPU)':>7} {'ratio':>6} {'Athena bytes':>13}"
    )
    new_reader, old_reader = DuckDBCatalogReader(str(new_db)), DuckDBCatalogReader(str(old_db))
    for path in QUERIES:
        sql = path.read_text()
        assert sorted(new_reader.query(sql).rows) == sorted(old_reader.query(sql).rows), path.stem
        new_ms, new_cpu = timed(lambda: new_reader.query(sql), repeat)
        old_ms, old_cpu = timed(lambda: old_reader.query(sql), repeat)
        print(
            f"  {path.stem:22} {new_ms:10.1f} {new_cpu:7.1f} {old_ms:9.1f} {old_cpu:7.1f} "
            f"{old_ms / new_ms:5.1f}× {athena_bytes(lake, sql):13,}"
        )
    # The sync after one new date (what the daily run's catalog step does), 3 rounds.
    syncs, olds = [], []
    next_day = LAST_DAY
    for _ in range(3):
        next_day = trading_calendar.next_trading_day(next_day)
        add_date(lake, seed_files, next_day)
        syncs.append(timed(lambda: catalog.sync(storage, tables), 1))
        olds.append(timed(lambda: old_sync(lake, old_db, set(seed_files)), 1))
    print(
        f"  sync after one new date: tables {median([w for w, _ in syncs]):.0f} ms "
        f"(CPU {median([c for _, c in syncs]):.0f} ms), views {median([w for w, _ in olds]):.0f} ms "
        f"(CPU {median([c for _, c in olds]):.0f} ms); medians of 3"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, nargs="+", default=[250, 1250])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        work = Path(tmp)
        seed_files = newest_files(seed_lake(work / "seed"))
        print(f"seeded tables: {', '.join(sorted(seed_files))}")
        for dates in args.dates:
            measure(seed_files, dates, args.repeat, work)


if __name__ == "__main__":
    main()
