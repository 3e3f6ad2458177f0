"""Where a persistent Dagster instance's bytes go after a backfill: per sqlite file, per table, per
event type, and the largest single rows.

The instance growth per date is one of the issue's targets; a total alone does not say which lever
to pull. Run it on its own (it builds a synthetic archive, backfills it once on a fresh persistent
instance and prints the breakdown), or point it at a DAGSTER_HOME kept from another run:

    python benchmarks/instance_bytes.py --dates 60                 # this checkout
    python benchmarks/instance_bytes.py --dates 60 --code ../base  # another checkout's package
    python benchmarks/instance_bytes.py --home /path/to/DAGSTER_HOME --dates 60

Table sizes come from sqlite's `dbstat` (pages in use, indexes included, free pages apart). Events
the event log stored compressed (b3_platform.sqlite_storage) count their stored bytes, with their
size as text beside them.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive as archive_module  # noqa: E402
from archive import build_archive  # noqa: E402
from backfill import child_env, fresh_dagster_home, history_selection, import_archive, run_child  # noqa: E402
from common import REPO, Clock  # noqa: E402

#: Tables whose rows hold one serialized Dagster object each, with the column holding it.
SERIALIZED = {
    "event_logs": "event",
    "asset_check_executions": "evaluation_event",
    "asset_keys": "last_materialization",
    "runs": "run_body",
}


def sqlite_files(home: Path) -> list[Path]:
    """Every sqlite database under the instance folder (run shards, index, runs, schedules...)."""
    return sorted(p for p in home.rglob("*.db") if p.is_file())


def table_bytes(db: Path) -> dict[str, int]:
    """Bytes of pages each table uses, its indexes counted with it (dbstat), plus 'free pages'."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        owner = dict(conn.execute("select name, tbl_name from sqlite_master where type in ('table','index')"))
        sizes: dict[str, int] = defaultdict(int)
        for name, size in conn.execute("select name, sum(pgsize) from dbstat group by name"):
            sizes[owner.get(name, name)] += size
        page_size = conn.execute("pragma page_size").fetchone()[0]
        free = conn.execute("pragma freelist_count").fetchone()[0]
    if free:
        sizes["(free pages)"] = free * page_size
    return dict(sizes)


def event_types(db: Path) -> dict[str, tuple[int, int, int]]:
    """(count, bytes stored, bytes of the serialized event as text) per dagster_event_type in one
    event_logs table: the two differ where the event log stored the event compressed."""
    from b3_platform.sqlite_storage import plain_body

    found: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        if "event_logs" not in tables:
            return {}
        for kind, event in conn.execute(
            "select coalesce(dagster_event_type, '(log message)'), event from event_logs"
        ):
            text = plain_body(event) if isinstance(event, bytes) else event
            found[kind][0] += 1
            found[kind][1] += len(event)
            found[kind][2] += len(text.encode())
    return {kind: (count, stored, plain) for kind, (count, stored, plain) in found.items()}


def largest_rows(db: Path, limit: int) -> list[tuple[int, str, str]]:
    """(bytes, table, a label) of the largest serialized objects in one database."""
    found: list[tuple[int, str, str]] = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        for table, column in SERIALIZED.items():
            if table not in tables:
                continue
            label = {
                "event_logs": "coalesce(dagster_event_type, '(log)') || ' ' || coalesce(asset_key, '')",
                "asset_check_executions": "check_name || ' ' || execution_status",
            }.get(table, "''")
            for size, text in conn.execute(
                f"select length({column}), {label} from {table} order by length({column}) desc limit ?",
                (limit,),
            ):
                found.append((size or 0, table, text))
    return found


def breakdown(home: Path, dates: int, top: int = 5) -> str:
    """The breakdown as markdown tables, per date where it says so."""
    files = sqlite_files(home)
    lines = [
        f"Instance at {home}: {len(files)} sqlite file(s), figures in KB per date over {dates} dates.",
        "",
    ]
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        rel = f.relative_to(home)
        kind = (
            "run shard (history/runs/<run_id>.db)"
            if rel.parent.name == "runs" and rel.stem not in ("index", "runs")
            else str(rel)
        )
        groups[kind].append(f)
    lines += ["| file | files | KB/date |", "|---|---:|---:|"]
    for kind, members in sorted(groups.items(), key=lambda kv: -sum(p.stat().st_size for p in kv[1])):
        size = sum(p.stat().st_size for p in members) + sum(
            p.with_name(p.name + "-wal").stat().st_size
            for p in members
            if p.with_name(p.name + "-wal").exists()
        )
        lines.append(f"| {kind} | {len(members)} | {size / 1024 / dates:.1f} |")
    tables: dict[str, int] = defaultdict(int)
    events: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for f in files:
        where = "shard" if f.parent.name == "runs" and f.stem not in ("index", "runs") else f.stem
        for table, size in table_bytes(f).items():
            tables[f"{where}: {table}"] += size
        for kind, counts in event_types(f).items():
            for i, n in enumerate(counts):
                events[f"{where}: {kind}"][i] += n
    lines += ["", "| database: table (with its indexes) | KB/date |", "|---|---:|"]
    for name, size in sorted(tables.items(), key=lambda kv: -kv[1]):
        if size / 1024 / dates >= 0.05:
            lines.append(f"| {name} | {size / 1024 / dates:.1f} |")
    lines += [
        "",
        "| database: event type | events/date | bytes/event stored (as text) | KB/date stored (event column) |",
        "|---|---:|---:|---:|",
    ]
    for name, (count, size, plain) in sorted(events.items(), key=lambda kv: -kv[1][1]):
        lines.append(
            f"| {name} | {count / dates:.2f} | {size / max(count, 1):,.0f} ({plain / max(count, 1):,.0f}) "
            f"| {size / 1024 / dates:.1f} |"
        )
    rows = sorted((r for f in files for r in largest_rows(f, top)), reverse=True)[:top]
    lines += ["", "| largest rows: bytes | table | what |", "|---:|---|---|"]
    lines += [f"| {size:,} | {table} | {text} |" for size, table, text in rows]
    return "\n".join(lines)


def backfill_once(code: Path, dates: int, indices: int, work: Path, say) -> Path:
    """A fresh persistent instance after one single-run backfill (the (b) child) of `code`."""
    if indices > len(archive_module.INDEX_CODES):
        from b3_platform.b3.indices import BUILTIN_INDICES

        archive_module.INDEX_CODES = BUILTIN_INDICES  # every real code (up to 34), as moonshot.py
    archive, days, index_names = build_archive(work / "archive", dates, indices)
    raw_lake = work / "lake"
    import_archive(archive, raw_lake)
    say(f"SYNTHETIC archive: {len(days)} dates × {len(index_names)} index(es); backfilling {code}")
    home = fresh_dagster_home(work / "home")
    spec = {
        "mode": "backfill",
        "instance": "persistent",
        "days": [d.isoformat() for d in days],
        "selection": history_selection(),
    }
    result = run_child(spec, child_env(raw_lake, index_names, home), work / "child", code=code).result
    say(
        f"backfill: {result['wall_s'] * 1000 / dates:.1f} ms/date wall, {result['cpu_s'] * 1000 / dates:.1f} ms/date CPU"
    )
    return home


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dates", type=int, default=60)
    parser.add_argument("--indices", type=int, default=1)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose package is measured")
    parser.add_argument("--home", type=Path, help="break down this DAGSTER_HOME instead of backfilling")
    parser.add_argument("--keep", type=Path, help="copy the backfilled DAGSTER_HOME here")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    if args.home:
        print(breakdown(args.home, args.dates, args.top))
        return 0
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3bytes-"))
    try:
        home = backfill_once(args.code.resolve(), args.dates, args.indices, work, clock.say)
        if args.keep:
            shutil.copytree(home, args.keep)
        print(breakdown(home, args.dates, args.top))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
