"""The report: machine and archive, the figures' tables, one PASS/MISS line per target, and
RESULTS.md."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from archive import END_DATE, INDEX_CODES, source_samples
from backfill import INSTANCES
from common import BENCH_DIR, REPO, fmt, median
from example_queries import QueryResult
from measure import ComboResult

RESULTS_FILE = BENCH_DIR / "RESULTS.md"

# The targets each figure is checked against (README.md, "Targets"), defined at N=1250, K=1.
TARGET_N, TARGET_K = 1250, 1
TARGET_MS_PER_DATE = 40.0
TARGET_SPEEDUP_VS_PER_PARTITION = 10.0
TARGET_RSS_RATIO = 1.5
TARGET_QUERY_MS = 100.0
TARGET_QUERY_SPEEDUP = 20.0


def machine_description() -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores ({cpu}){memory}, {platform.platform()}",
        f"- load average at the end (1/5/15 min): {load}",
        f"- python {platform.python_version()}, dagster {version('dagster')}, duckdb {version('duckdb')}, "
        f"pyarrow {version('pyarrow')}, pandas {version('pandas')}, exchange_calendars {version('exchange-calendars')}",
        f"- b3_platform commit: {commit}",
    ]


def archive_description(sizes: list[tuple[int, int]]) -> list[str]:
    sources = source_samples()
    return [
        f"SYNTHETIC: the {len(sources)} real IBOV GetPortfolioDay samples "
        f"({sources[0].stem} … {sources[-1].stem}, demo_data/) re-dated (header.date only) onto the last N "
        f"B3 trading days up to {END_DATE}, cycling through the samples so consecutive days differ; for "
        f"K > 1 the same contents are filed under {', '.join(INDEX_CODES[1:])} as well. Sizes measured "
        f"(N dates × K indices): {', '.join(f'{n}×{k}' for n, k in sizes)}. Every file imported, none rejected.",
    ]


def tables(combos: list[ComboResult], queries: list[QueryResult], query_repeat: int) -> list[str]:
    lines = [
        "### (a) import and (d) naive pandas",
        "",
        "| N dates | K indices | files | (a) import files/s | (d) pandas files/s | (d) pandas ms/date "
        "| (b) ms/date (persistent) | (b) ÷ (d) time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in combos:
        naive_ms = median(c.naive_s) * 1000 / c.n
        b_ms = c.backfill_ms_per_date("persistent")
        lines.append(
            f"| {c.n} | {c.k} | {c.files} | {fmt(c.files / median(c.import_s), 0)} | "
            f"{fmt(c.files / median(c.naive_s), 0)} | {fmt(naive_ms, 2)} | {fmt(b_ms, 2)} | {fmt(b_ms / naive_ms, 2)}× |"
        )
    lines += [
        "",
        "### (b) single-run backfill, (c) per-partition runs, (e) peak RSS",
        "",
        "| N | K | instance | (b) wall s | (b) CPU s | (b) ms/date | block run s | catalog run s | (c) ms/run "
        "| (c) sampled dates | (c) est. total s | (c) ÷ (b) | (e) peak RSS MB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in combos:
        for kind in INSTANCES:
            block_s, catalog_s = c.run_split_s(kind)
            walls = [r.result["wall_s"] for r in c.backfill[kind]]
            spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
            lines.append(
                f"| {c.n} | {c.k} | {kind} | {fmt(c.backfill_s(kind), 2)}{spread} | {fmt(c.backfill_cpu_s(kind), 1)} | "
                f"{fmt(c.backfill_ms_per_date(kind), 2)} | {fmt(block_s, 2)} | {fmt(catalog_s, 2)} | "
                f"{fmt(c.per_partition_ms(kind), 0)} | {c.sample} | {fmt(c.per_partition_total_s(kind), 0)} | "
                f"{fmt(c.speedup(kind), 1)}× | {fmt(c.backfill_rss_mb(kind), 0)} |"
            )
    if queries:
        lines += [
            "",
            f"### (f) example queries (median of {query_repeat} after 1 warm-up)",
            "",
            "| query | rows | DuckDB catalog ms | pandas scan of raw JSON ms | scan ÷ DuckDB "
            "| pandas, files picked by name ms (info) | same answer |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for q in queries:
            lines.append(
                f"| {q.name} | {q.rows} | {fmt(q.duckdb_ms, 1)} | {fmt(q.pandas_ms, 0)} | "
                f"{fmt(q.pandas_ms / q.duckdb_ms, 1)}× | "
                f"{'— (needs every date)' if q.pruned_ms is None else fmt(q.pruned_ms, 1)} | "
                f"{'yes' if q.equal else 'NO: ' + q.detail} |"
            )
    return lines


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def at_most(label: str, value: float, limit: float, unit: str) -> str:
    margin = limit - value
    return f"{_verdict(value <= limit)} {label}: {value:,.1f} {unit} ≤ {limit:g} {unit} (margin {margin:+,.1f} {unit}, {margin / limit:+.0%})"


def at_least(label: str, value: float, limit: float) -> str:
    margin = value - limit
    return f"{_verdict(value >= limit)} {label}: {value:,.1f}× ≥ {limit:g}× (margin {margin:+,.1f}×, {margin / limit:+.0%})"


def target_lines(combos: list[ComboResult], queries: list[QueryResult]) -> list[str]:
    """PASS/MISS per target, at the size the target is defined at (TARGET_N, TARGET_K) when measured,
    else at the nearest measured size (and saying so)."""
    lines = []
    by_size = {(c.n, c.k): c for c in combos}
    ns = sorted({c.n for c in combos})
    k1 = min(c.k for c in combos)
    n_big = TARGET_N if (TARGET_N, TARGET_K) in by_size else max(ns)
    c = by_size.get((n_big, TARGET_K)) or by_size[(n_big, k1)]
    where = f"N={c.n}, K={c.k}"
    if (c.n, c.k) != (TARGET_N, TARGET_K):
        where += f" (target defined at N={TARGET_N}, K={TARGET_K}: not measured)"
    for kind in INSTANCES:
        lines.append(
            at_most(
                f"(b) all layers, {kind}, {where}",
                c.backfill_ms_per_date(kind),
                TARGET_MS_PER_DATE,
                "ms/date",
            )
        )
        lines.append(
            at_least(
                f"(b) vs (c) per-partition runs, {kind}, {where}",
                c.speedup(kind),
                TARGET_SPEEDUP_VS_PER_PARTITION,
            )
        )
    if len(ns) >= 2:
        for k in sorted({c.k for c in combos}):
            small, big = by_size.get((ns[0], k)), by_size.get((ns[-1], k))
            if small is None or big is None:
                continue
            for kind in INSTANCES:
                ratio = big.backfill_rss_mb(kind) / small.backfill_rss_mb(kind)
                lines.append(
                    f"{_verdict(ratio <= TARGET_RSS_RATIO)} (e) peak RSS N={ns[-1]} vs N={ns[0]}, K={k}, {kind}: "
                    f"{big.backfill_rss_mb(kind):.0f} MB / {small.backfill_rss_mb(kind):.0f} MB = {ratio:.2f}× "
                    f"≤ {TARGET_RSS_RATIO:g}× (margin {TARGET_RSS_RATIO - ratio:+.2f}×)"
                )
    else:
        lines.append("MISS (e) peak RSS: needs two --dates sizes (not measured)")
    for q in queries:
        lines.append(at_most(f"(f) {q.name} median", q.duckdb_ms, TARGET_QUERY_MS, "ms"))
        lines.append(
            at_least(
                f"(f) {q.name} vs pandas scanning raw JSON", q.pandas_ms / q.duckdb_ms, TARGET_QUERY_SPEEDUP
            )
        )
        if not q.equal:
            lines.append(f"MISS (f) {q.name}: pandas and the catalog disagree ({q.detail})")
    return lines


def write_results(report: list[str], argv: list[str]) -> None:
    text = "\n".join(
        [
            "# Benchmark results (SYNTHETIC archive)",
            "",
            "Written by `python benchmarks/run.py --write-results`; see README.md in this folder for what "
            "each figure measures. The archive is synthetic: the real IBOV samples re-dated onto "
            "consecutive trading days (and copied under other index codes for K > 1).",
            "",
            f"Command: `python benchmarks/run.py {' '.join(argv)}`".rstrip(),
            "",
            *report,
            "",
        ]
    )
    RESULTS_FILE.write_text(text, encoding="utf-8")
