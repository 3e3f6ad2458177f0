"""The same single-run backfill on each instance storage, interleaved: sqlite (the repo's
dagster.yaml) against PostgreSQL (deploy/dagster.yaml), with and without Dagster's event batching
(`DAGSTER_EVENT_BATCH_SIZE`).

A backfill's per-date cost is mostly Dagster's event plumbing (~34 events per date). The sqlite
event log writes each asset event on its own (a connection, a commit and a WAL checkpoint, twice: run
shard and index) and has no batch write; dagster-postgres writes a range output's per-date
materializations in one INSERT when `DAGSTER_EVENT_BATCH_SIZE` > 0. What PostgreSQL costs is not all
in the run's process: its server does part of the work, so the server's CPU is measured too (the
postmaster's process tree from /proc, see `PostgresServer.cpu_seconds`), and the instance's size is
`pg_database_size` after the backfill (sqlite: the files under DAGSTER_HOME).

Each round runs every configuration once (in a rotating order, so none always runs on the warmer
machine) as the (b) child of run.py: one run over the dates for raw → gold, then the catalog run,
on a fresh copy of one raw lake and a fresh instance (a new PostgreSQL database). The server is a
real local cluster (b3_platform_tests/postgres.py) with PostgreSQL's default durability (fsync and
synchronous commit on), as production runs it, on the same disk as the sqlite files.

    python benchmarks/instance_storage.py                     # 60 dates x 3 rounds, then 250 dates x 1
    python benchmarks/instance_storage.py --dates 20 --rounds 1 --long-dates 0   # a quick check
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive import build_archive  # noqa: E402
from backfill import (  # noqa: E402
    child_env,
    fresh_dagster_home,
    history_selection,
    import_archive,
    run_child,
    verify_lake,
)
from common import REPO, Clock  # noqa: E402
from compare_checkouts import instance_kb  # noqa: E402

POSTGRES_INSTANCE = REPO / "deploy" / "dagster.yaml"


@dataclass(frozen=True)
class Config:
    """One instance storage, and the event batch size its run process sees (0: unset)."""

    storage: str  # "sqlite" or "postgres"
    batch: int = 0

    @property
    def name(self) -> str:
        return self.storage + (f" batch {self.batch}" if self.batch else "")


def parse_config(text: str) -> Config:
    """`sqlite`, `postgres`, `postgres:100` (storage[:DAGSTER_EVENT_BATCH_SIZE])."""
    storage, _, batch = text.partition(":")
    if storage not in ("sqlite", "postgres"):
        raise argparse.ArgumentTypeError(f"{text}: the storage is sqlite or postgres")
    try:
        size = int(batch or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: the batch size after ':' is a whole number") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"{text}: the batch size is 0 (off) or more")
    return Config(storage, size)


def event_counts(server, database: str) -> dict[str, int]:
    """Rows of the event log by event type (PostgreSQL only)."""
    rows = server.query(
        database, "SELECT coalesce(dagster_event_type, 'log message'), count(*) FROM event_logs GROUP BY 1"
    )
    return {kind: int(n) for kind, n in rows}


def one_backfill(config: Config, server, raw_lake: Path, days, indices, scratch: Path) -> dict:
    """One child backfill on `config`'s fresh instance over a fresh copy of the raw-only lake: the
    child's wall and CPU, the server's CPU over the same span, and the instance's size after."""
    lake = scratch / "lake"
    shutil.copytree(raw_lake, lake)
    home = fresh_dagster_home(scratch / "home")
    env = child_env(lake, indices, home)
    database = None
    if config.storage == "postgres":
        shutil.copy(POSTGRES_INSTANCE, home / "dagster.yaml")
        database = server.create_database()
        env.update(server.env(database))
        empty_bytes = server.database_bytes(database)
        sessions_before = server.sessions(database)
    # Always set, 0 for off: the repo's sqlite event log turns batching on when it is unset.
    env["DAGSTER_EVENT_BATCH_SIZE"] = str(config.batch)
    spec = {
        "mode": "backfill",
        "instance": "persistent",
        "days": [d.isoformat() for d in days],
        "selection": history_selection(),
    }
    server.wait_for_no_client()
    server_cpu_before = server.cpu_seconds()
    run = run_child(spec, env, scratch / "child")
    server.wait_for_no_client()
    server_cpu = server.cpu_seconds() - server_cpu_before
    verify_lake(lake, len(days), len(indices))
    shutil.rmtree(lake)
    result = {
        **run.result,
        "server_cpu_s": 0.0,
        "instance_kb": instance_kb(home),
        "events": None,
        "sessions": 0,
    }
    if database is not None:
        result["server_cpu_s"] = server_cpu
        result["sessions"] = server.sessions(database) - sessions_before - 1  # less this reading's own
        result["instance_kb"] += (server.database_bytes(database) - empty_bytes) / 1024
        result["events"] = event_counts(server, database)
    return result


def per_date(results: list[dict], key: str, n: int, scale: float = 1000) -> float:
    return statistics.median(r[key] for r in results) * scale / n


def table(configs: list[Config], figures: dict[Config, list[dict]], n: int, say) -> None:
    """Medians per configuration, and each against the first (the baseline, sqlite by default)."""
    print()
    print(
        "| instance | wall ms/date | run CPU ms/date | server CPU ms/date | run + server CPU ms/date "
        "| instance KB/date | connections/date | wall per round (ms/date) | rounds |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    medians = {}
    for config in configs:
        results = figures[config]
        for r in results:
            r["total_cpu_s"] = r["cpu_s"] + r["server_cpu_s"]
        wall = per_date(results, "wall_s", n)
        cpu = per_date(results, "cpu_s", n)
        server = per_date(results, "server_cpu_s", n)
        total = per_date(results, "total_cpu_s", n)
        size = per_date(results, "instance_kb", n, scale=1)
        connections = (
            f"{per_date(results, 'sessions', n, scale=1):.1f}" if config.storage == "postgres" else "—"
        )
        rounds = ", ".join(f"{r['wall_s'] * 1000 / n:.0f}" for r in results)
        medians[config] = (wall, total)
        server_text = f"{server:.1f}" if config.storage == "postgres" else "—"
        print(
            f"| {config.name} | {wall:.1f} | {cpu:.1f} | {server_text} | {total:.1f} | {size:.1f} | {connections} "
            f"| {rounds} | {len(results)} |"
        )
    base = configs[0]
    bw, bt = medians[base]
    print()
    for config in configs[1:]:
        w, t = medians[config]
        say(f"{config.name} ÷ {base.name}: wall {w / bw:.2f}×, run + server CPU {t / bt:.2f}×")


def check_same_events(configs: list[Config], figures: dict[Config, list[dict]], n: int, say) -> None:
    """Batching must not change what is stored: every PostgreSQL configuration holds the same
    number of events of each kind after the same backfill."""
    seen = {
        (config.name, tuple(sorted(r["events"].items())))
        for config in configs
        for r in figures[config]
        if r["events"] is not None
    }
    kinds = {events for _name, events in seen}
    if len(kinds) > 1:
        raise SystemExit(f"the PostgreSQL instances hold different events after the same backfill: {seen}")
    if kinds:
        (events,) = kinds
        counts = dict(events)
        say(
            f"events per date stored in PostgreSQL (every configuration alike): {sum(counts.values()) / n:.1f}; "
            + ", ".join(f"{kind} {count / n:.1f}" for kind, count in sorted(counts.items()))
        )


def session(configs, server, work: Path, n: int, indices: int, rounds: int, clock: Clock) -> None:
    archive, days, codes = build_archive(work / f"archive-{n}", n, indices)
    raw_lake = work / f"raw-lake-{n}"
    import_archive(archive, raw_lake)
    clock.say(f"SYNTHETIC archive: {len(days)} dates × {len(codes)} index(es); {rounds} round(s)")
    figures: dict[Config, list[dict]] = {c: [] for c in configs}
    for round_ in range(1, rounds + 1):
        shift = (round_ - 1) % len(configs)
        for config in configs[shift:] + configs[:shift]:
            result = one_backfill(config, server, raw_lake, days, codes, work / f"{n}-{config.name}-{round_}")
            figures[config].append(result)
            server_text = (
                f", server CPU {result['server_cpu_s'] * 1000 / n:6.1f}, {result['sessions'] / n:5.1f} connections/date"
                if config.storage == "postgres"
                else ""
            )
            clock.say(
                f"{n} dates, round {round_}/{rounds} {config.name:20}: {result['wall_s'] * 1000 / n:7.1f} ms/date wall, "
                f"run CPU {result['cpu_s'] * 1000 / n:6.1f}{server_text}, instance {result['instance_kb'] / n:6.1f} KB/date"
            )
    print(f"\n{n} dates × {len(codes)} index(es), {rounds} round(s), medians:")
    table(configs, figures, n, clock.say)
    check_same_events(configs, figures, n, clock.say)
    shutil.rmtree(raw_lake, ignore_errors=True)
    shutil.rmtree(archive, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dates", type=int, default=60)
    parser.add_argument("--indices", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--long-dates", type=int, default=250, help="then one round at this many dates (0: none)"
    )
    parser.add_argument(
        "--configs",
        type=parse_config,
        nargs="+",
        default=[
            parse_config(c) for c in ("sqlite", "sqlite:100", "postgres", "postgres:100", "postgres:1000")
        ],
        help="storage[:DAGSTER_EVENT_BATCH_SIZE]; the first is the one the others are compared with",
    )
    parser.add_argument(
        "--long-configs",
        type=parse_config,
        nargs="+",
        default=[parse_config(c) for c in ("sqlite", "postgres", "postgres:100", "postgres:1000")],
        help="the configurations of the --long-dates round (default: --configs less sqlite with a batch size)",
    )
    args = parser.parse_args()
    from b3_platform_tests.postgres import PostgresServer

    # Stopped with SIGTERM, still stop the server and remove the workdir (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3instance-"))
    server = PostgresServer(durable=True).start()
    try:
        clock.say(f"PostgreSQL {server.bin.parent.name} on 127.0.0.1:{server.port}, durable; workdir {work}")
        history_selection()  # resolved once, outside every timed section
        session(args.configs, server, work, args.dates, args.indices, args.rounds, clock)
        if args.long_dates:
            session(args.long_configs, server, work, args.long_dates, args.indices, 1, clock)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
