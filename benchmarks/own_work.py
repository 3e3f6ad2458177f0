#!/usr/bin/env python
"""Our own CPU per date, piece by piece, outside Dagster: what a backfill's assets compute for one
date of K indices (default 34), timed in-process with `time.process_time`.

The archive is SYNTHETIC (archive.py: the real IBOV samples re-dated, filed under the first K of
B3's index codes). Each piece is the call the asset makes, on the tables the previous piece made:

- list: `RawStore.by_index` (the date's captures, newest first)
- decode: the contract decode of each index's newest capture (`decode_capture`, bodies read)
- bronze: bronze_portfolio's build: the audit choosing captures (decode again included), the
  bronze table, its rules
- encode: the Parquet bytes of every table a date writes (`lake.tables._encode`: bronze, silver's
  two, gold's four)
- silver: silver's build from bronze read back (`read_partition`, from a scratch lake the
  encoded files are written to, untimed): typing, its rules, its metadata
- gold: gold's build from silver read back, as a range run builds a date: the date's
  portfolios, composition, changes against the previous date's, summary, time in index advanced
  from the previous date's stays, its rules (but the one needing the live-capture history), its
  metadata

With `--baseline CHECKOUT` the same pieces run from that checkout's code too, in separate child
processes interleaved with this one's (this, baseline, baseline, this, ...), on one raw lake.
Reported: ms of CPU per date for each piece, the median over rounds, and this ÷ baseline.

    python benchmarks/own_work.py --dates 6 --indices 34 --rounds 5 --baseline /path/to/main
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if os.environ.get("B3_BENCH_CODE"):
    sys.path.insert(0, os.environ["B3_BENCH_CODE"])
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

PIECES = ("list", "decode", "bronze", "encode", "silver", "gold")


def child(lake: Path, repeat: int) -> dict[str, float]:
    """ms of CPU per date for each piece, the mean over the lake's dates, the best of `repeat`."""
    import datetime as dt
    import time

    import pyarrow as pa

    from b3_platform.assets.gold import _metadata as gold_metadata
    from b3_platform.assets.silver import per_index_metadata, reductor_notes
    from b3_platform.audit import choose_captures
    from b3_platform.lake.paths import table_partition_key
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.schemas import (
        BRONZE_PORTFOLIO,
        GOLD_CHANGES,
        GOLD_COMPOSITION,
        GOLD_INDEX_SUMMARY,
        GOLD_TIME_IN_INDEX,
        SILVER_ASSETS,
        SILVER_HEADER,
    )
    from b3_platform.lake.storage import LocalStorage, open_storage
    from b3_platform.lake.tables import _encode, read_partition
    from b3_platform.quality import BRONZE_RULES, GOLD_RULES, PREVIOUS_DAY_RULE, SILVER_ASSET_RULES
    from b3_platform.transforms import gold
    from b3_platform.transforms.bronze import decode_capture
    from b3_platform.transforms.silver import silver_tables

    store = RawStore(open_storage(str(lake)))
    days = store.dates()
    defs = {
        t.name: t
        for t in (
            BRONZE_PORTFOLIO,
            SILVER_HEADER,
            SILVER_ASSETS,
            GOLD_COMPOSITION,
            GOLD_CHANGES,
            GOLD_INDEX_SUMMARY,
            GOLD_TIME_IN_INDEX,
        )
    }

    # Written (untimed) to a scratch lake and read back as the assets read: `read_partition`.
    scratch = LocalStorage(lake.parent / f"tables-{os.getpid()}")  # removed with the work folder

    def stored(table_def, day, data: bytes) -> dt.date:
        scratch.write_bytes(table_partition_key(table_def.location, day), data)
        return day

    def read_back(table_def, day, columns=None) -> pa.Table:
        return read_partition(scratch, table_def, day, columns=columns)

    def one_pass() -> dict[str, float]:
        spent = dict.fromkeys(PIECES, 0.0)
        clock = time.process_time

        def timed(piece, fn, *args):
            started = clock()
            result = fn(*args)
            spent[piece] += clock() - started
            return result

        previous: dict = {}
        stays = gold.StayTracker(lambda: days, lambda day: {})
        for day in days:
            captures = timed("list", store.by_index, day)
            timed(
                "decode",
                lambda: [
                    decode_capture(
                        store.read_bodies(c[0]), source_format=c[0].source_format, index=c[0].index, day=day
                    )
                    for c in captures.values()
                ],
            )

            def bronze_build():
                choice = choose_captures(store, day, captures)
                table = choice.bronze()
                for rule in BRONZE_RULES:
                    # As the asset records them (a baseline checkout may predate `rule_problems`).
                    if hasattr(choice, "rule_problems"):
                        choice.rule_problems(rule, table, day)
                    else:
                        rule.fn(table, day)
                return table

            def write(table_def, table) -> None:
                stored(table_def, day, timed("encode", _encode, table_def, day, table))

            write(BRONZE_PORTFOLIO, timed("bronze", bronze_build))

            def silver_build():
                header, assets = silver_tables(read_back(BRONZE_PORTFOLIO, day), day)
                tables = {SILVER_HEADER.name: header, SILVER_ASSETS.name: assets}
                for rule in SILVER_ASSET_RULES:
                    rule.evaluate(tables, day)
                reductor_notes(header)
                per_index_metadata(assets)
                return tables

            for name, table in timed("silver", silver_build).items():
                write(defs[name], table)

            def gold_build():
                # As a range run builds a date: the previous date's portfolios and the stays
                # carried in memory from the date before.
                nonlocal previous
                today = gold.index_days(read_back(SILVER_ASSETS, day), read_back(SILVER_HEADER, day))
                previous_date = days[days.index(day) - 1] if day != days[0] else day - dt.timedelta(days=1)
                summary = gold.index_summary(today, previous, previous_date)
                tables = {
                    GOLD_COMPOSITION.name: gold.composition(today),
                    GOLD_CHANGES.name: gold.changes(today, previous, previous_date),
                    GOLD_INDEX_SUMMARY.name: summary,
                    GOLD_TIME_IN_INDEX.name: stays.advance(
                        day, {i: list(d.components) for i, d in today.items()}
                    ),
                }
                for rule in GOLD_RULES:
                    if rule.name != PREVIOUS_DAY_RULE:
                        rule.fn(tables[rule.source], day)
                gold_metadata(summary)
                previous = today
                return tables

            for name, table in timed("gold", gold_build).items():
                write(defs[name], table)
        return {piece: seconds * 1000 / len(days) for piece, seconds in spent.items()}

    passes = [one_pass() for _ in range(repeat)]
    return {piece: min(p[piece] for p in passes) for piece in PIECES}


def build_lake(work: Path, n: int, k: int) -> Path:
    import archive
    from backfill import import_archive

    from b3_platform.b3.indices import BUILTIN_INDICES

    archive.INDEX_CODES = BUILTIN_INDICES
    root, _, _ = archive.build_archive(work / "archive", n, k)
    lake = work / "lake"
    import_archive(root, lake)
    return lake


def run_child(checkout: Path, lake: Path, repeat: int) -> dict[str, float]:
    env = {**os.environ, "B3_BENCH_CODE": str(checkout.resolve()), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(lake), "--repeat", str(repeat)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child for {checkout} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dates", type=int, default=6)
    parser.add_argument("--indices", type=int, default=34)
    parser.add_argument(
        "--rounds", type=int, default=5, help="child processes per checkout (median reported)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes over the dates per child (best kept)")
    parser.add_argument("--baseline", type=Path, help="another checkout to run interleaved, for the ratio")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from backfill import assert_measured_code

        result = child(args.child, args.repeat)
        assert_measured_code(os.environ.get("B3_BENCH_CODE"))
        print(json.dumps(result))
        return 0
    this = Path(__file__).resolve().parent.parent
    checkouts = {"this": this, **({"baseline": args.baseline} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="b3ownwork-") as work:
        lake = build_lake(Path(work), args.dates, args.indices)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
        for r in range(args.rounds):
            order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
            for name in order:
                results[name].append(run_child(checkouts[name], lake, args.repeat))
                print(
                    f"round {r + 1} {name:8}: " + ", ".join(f"{p} {results[name][-1][p]:.2f}" for p in PIECES)
                )
    print(
        f"\nCPU ms per date, {args.dates} dates x {args.indices} indices (SYNTHETIC), median of "
        f"{args.rounds} child(ren) per checkout, each the best of {args.repeat} passes\n"
    )
    names = list(checkouts)
    header = "| piece | " + " | ".join(names) + (" | this ÷ baseline |" if args.baseline else " |")
    print(header)
    print("|---|" + "---:|" * (len(names) + (1 if args.baseline else 0)))
    medians = {
        n: {p: statistics.median(r[p] for r in results[n]) for p in PIECES + ("total",) if p != "total"}
        for n in names
    }
    for n in names:
        medians[n]["total"] = sum(medians[n][p] for p in PIECES if p != "decode")  # decode is inside bronze
    for piece in PIECES + ("total",):
        cells = [f"{medians[n][piece]:.2f}" for n in names]
        if args.baseline:
            cells.append(f"{medians['this'][piece] / medians['baseline'][piece]:.2f}×")
        label = "total (decode is inside bronze)" if piece == "total" else piece
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
