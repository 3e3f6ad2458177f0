#!/usr/bin/env python
"""The moonshot slice: N trading days × K indices backfilled in ONE single run on a persistent
sqlite instance, and the extrapolation to 5,000 days × 34 indices (all of B3's indices over about
twenty years).

The archive is SYNTHETIC, as in run.py: the real IBOV samples re-dated onto N consecutive trading
days, filed under the first K of B3's 34 index codes (b3/indices.py BUILTIN_INDICES), ~85
components each (B3's 34 real indices hold ~3,000 together, about what 34 × 85 gives).

Each size is measured at two date counts and two index counts (default 60/250 dates × 5/34
indices), so the report can say how cost grows with dates (the slope between the two date counts)
and with indices (the slope between the two index counts). With `--baseline CHECKOUT` the same
child backfill runs from that checkout too, interleaved (this, baseline, baseline, this, …) on
copies of one raw lake, so the ratio is measured side by side on the same machine load.

    python benchmarks/moonshot.py --dates 20 --indices 34 --rounds 1          # a quick check
    python benchmarks/moonshot.py --baseline /path/to/main --rounds 1          # 60/250 × 5/34

Per run it prints wall and CPU seconds, ms per date, ms per index-date, the child's peak RSS and
the instance database's growth in KB per date; then medians per size and checkout, the growth
with dates and with indices, and the extrapolation to --target-dates × --target-indices.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive  # noqa: E402
from backfill import child_env, fresh_dagster_home, history_selection, import_archive, run_child, verify_lake  # noqa: E402
from common import REPO, Clock, quiet_warnings  # noqa: E402


@dataclass
class Measure:
    checkout: str
    n: int
    k: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    instance_kb: float
    #: The peak before the catalog run started: the block run's own (the catalog run's DuckDB load
    #: and dashboard come after it and set `peak_rss_mb`).
    block_peak_mb: float = float("nan")
    #: Each run's seconds: the block runs (of at most runs.MAX_RUN_DATES dates) in date order, then
    #: the catalog run. A block run slower than the one before shows a cost growing with history.
    run_s: tuple[float, ...] = ()

    @property
    def ms_per_date(self) -> float:
        return self.wall_s * 1000 / self.n

    @property
    def cpu_ms_per_date(self) -> float:
        return self.cpu_s * 1000 / self.n

    @property
    def ms_per_index_date(self) -> float:
        return self.ms_per_date / self.k


def folder_kb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024


def build_raw_lake(work: Path, n: int, k: int, clock: Clock):
    """A synthetic archive of n dates × the first k of B3's 34 index codes, imported into raw."""
    from b3_platform.b3.indices import BUILTIN_INDICES

    if not 1 <= k <= len(BUILTIN_INDICES):
        raise SystemExit(f"--indices values must be 1..{len(BUILTIN_INDICES)}")
    archive.INDEX_CODES = BUILTIN_INDICES  # every real code, not run.py's five
    root, days, indices = archive.build_archive(work / f"archive-n{n}-k{k}", n, k)
    raw = work / f"raw-n{n}-k{k}"
    seconds, files = import_archive(root, raw)
    clock.say(f"N={n} K={k}: SYNTHETIC archive imported, {files} files in {seconds:.1f} s")
    shutil.rmtree(root)
    return raw, days, indices


def one_run(checkout: Path, name: str, raw: Path, days, indices, scratch: Path) -> Measure:
    """One single-run backfill of every date from `checkout` on a fresh copy of the raw lake and a
    fresh persistent sqlite instance made from that checkout's dagster.yaml (an older checkout runs
    on the event log class it had)."""
    lake = scratch / "lake"
    shutil.copytree(raw, lake)
    home = fresh_dagster_home(scratch / "home", checkout / "dagster.yaml")
    before = folder_kb(home)
    spec = {
        "mode": "backfill",
        "instance": "persistent",
        "days": [d.isoformat() for d in days],
        "selection": history_selection(),
    }
    run = run_child(spec, child_env(lake, indices, home), scratch / "child", code=checkout)
    verify_lake(lake, len(days), len(indices))
    measure = Measure(
        name,
        len(days),
        len(indices),
        run.result["wall_s"],
        run.result["cpu_s"],
        run.peak_rss_mb,
        (folder_kb(home) - before) / len(days),
        _block_peak(run.result),
        tuple(run.result.get("run_s") or ()),
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return measure


def _block_peak(result: dict) -> float:
    """The high-water mark when the catalog run started (the last run), from the child's marks."""
    peaks = result.get("rss_at_run_start_mb") or []
    return peaks[-1] if len(peaks) >= 2 else float("nan")


def median_of(measures: list[Measure], checkout: str, n: int, k: int, attr: str) -> float:
    return statistics.median(getattr(m, attr) for m in measures if (m.checkout, m.n, m.k) == (checkout, n, k))


def growth_lines(measures, checkout: str, dates: list[int], indices: list[int], target: tuple[int, int]):
    """How wall and CPU time grow with dates and with indices, and the extrapolation to `target`:
    fixed + (per-date slope at the largest K + per-index slope × the extra indices) × dates."""
    n1, n2, k2 = dates[0], dates[-1], indices[-1]
    if n2 == n1:
        return [f"{checkout}: one date count only: no growth with dates measured"]
    tn, tk = target
    lines = []
    for label, attr in (("wall", "wall_s"), ("CPU", "cpu_s")):

        def value(n, k, attr=attr):
            return median_of(measures, checkout, n, k, attr)

        def slope(k, value=value):
            return (value(n2, k) - value(n1, k)) / (n2 - n1)

        per_date, fixed = slope(k2), value(n2, k2) - slope(k2) * n2
        text = f"{checkout} {label}: {per_date * 1000:.1f} ms per extra date at K={k2}, {fixed:.1f} s fixed per run"
        per_index = 0.0
        if len(indices) > 1:
            k1 = indices[0]
            per_index = (per_date - slope(k1)) / (k2 - k1)
            text += f"; {per_index * 1000:.2f} ms per extra index per date ({slope(k1) * 1000:.1f} ms/date at K={k1})"
        elif tk != k2:
            lines.append(text + f"; one index count only: no extrapolation to K={tk}")
            continue
        total = fixed + (per_date + per_index * (tk - k2)) * tn
        lines.append(
            text + f"; extrapolated to {tn} dates × {tk} indices ≈ {total:.0f} s = {total / 60:.1f} min"
        )
    for label, attr in (("peak RSS", "peak_rss_mb"), ("block-run peak RSS", "block_peak_mb")):
        rss1, rss2 = (median_of(measures, checkout, n, k2, attr) for n in (n1, n2))
        lines.append(
            f"{checkout}: {label} {rss1:.0f} MB at {n1} dates, {rss2:.0f} MB at {n2} dates (K={k2}): "
            f"{(rss2 - rss1) / (n2 - n1) * 1024:.0f} KB per extra date"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dates", default="60,250", help="date counts, comma-separated (default 60,250)")
    parser.add_argument(
        "--indices", default="5,34", help="index counts, 1..34, comma-separated (default 5,34)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per size and checkout (median reported)")
    parser.add_argument("--baseline", type=Path, help="another checkout to run interleaved, for the ratio")
    parser.add_argument("--target-dates", type=int, default=5000)
    parser.add_argument("--target-indices", type=int, default=34)
    args = parser.parse_args(argv)
    dates = sorted({int(x) for x in args.dates.split(",") if x.strip()})
    indices = sorted({int(x) for x in args.indices.split(",") if x.strip()})
    checkouts = [("this", REPO)]
    if args.baseline:
        baseline = args.baseline.resolve()
        if not (baseline / "benchmarks" / "run.py").is_file():
            raise SystemExit(f"{baseline}: no benchmarks/run.py")
        checkouts.append(("baseline", baseline))
    quiet_warnings()
    from b3_platform import trading_calendar

    trading_calendar.horizon()
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="b3moonshot-"))
    clock.say(
        f"moonshot slice on a SYNTHETIC archive; sizes {dates} dates × {indices} indices; workdir {work}"
    )
    measures: list[Measure] = []
    try:
        for k in indices:
            for n in dates:
                raw, days, codes = build_raw_lake(work, n, k, clock)
                for round_ in range(1, args.rounds + 1):
                    order = checkouts if round_ % 2 else list(reversed(checkouts))
                    for name, checkout in order:
                        m = one_run(checkout, name, raw, days, codes, work / f"{name}-n{n}-k{k}-r{round_}")
                        measures.append(m)
                        clock.say(
                            f"N={n} K={k} round {round_} {name:8}: {m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU, "
                            f"{m.ms_per_date:.1f} ms/date, {m.ms_per_index_date:.2f} ms/index-date, "
                            f"peak RSS {m.peak_rss_mb:.0f} MB (block run {m.block_peak_mb:.0f}), instance +{m.instance_kb:.0f} KB/date; "
                            f"runs {', '.join(f'{s:.1f}' for s in m.run_s)} s (the last: the catalog's)"
                        )
                shutil.rmtree(raw, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(report(measures, checkouts, dates, indices, args))
    return 0


def report(measures: list[Measure], checkouts, dates, indices, args) -> str:
    lines = [
        f"Single-run backfill, persistent sqlite instance, SYNTHETIC archive; medians of {args.rounds} "
        f"round(s); {os.cpu_count()} cores.",
        "",
        "| checkout | dates | indices | wall s | CPU s | ms/date | CPU ms/date | ms/index-date | peak RSS MB | block-run peak MB | instance KB/date |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in indices:
        for n in dates:
            for name, _ in checkouts:

                def med(attr, name=name, n=n, k=k):
                    return median_of(measures, name, n, k, attr)

                lines.append(
                    f"| {name} | {n} | {k} | {med('wall_s'):.1f} | {med('cpu_s'):.1f} | {med('ms_per_date'):.1f} | "
                    f"{med('cpu_ms_per_date'):.1f} | {med('ms_per_index_date'):.2f} | {med('peak_rss_mb'):.0f} | "
                    f"{med('block_peak_mb'):.0f} | "
                    f"{med('instance_kb'):.0f} |"
                )
    if len(checkouts) > 1:
        lines.append("")
        for k in indices:
            for n in dates:
                this = median_of(measures, "this", n, k, "wall_s")
                base = median_of(measures, "baseline", n, k, "wall_s")
                this_cpu = median_of(measures, "this", n, k, "cpu_s")
                base_cpu = median_of(measures, "baseline", n, k, "cpu_s")
                lines.append(
                    f"- {n} dates × {k} indices: this ÷ baseline wall {this / base:.2f}×, CPU {this_cpu / base_cpu:.2f}×"
                )
    lines.append("")
    for name, _ in checkouts:
        lines += [
            f"- {line}"
            for line in growth_lines(measures, name, dates, indices, (args.target_dates, args.target_indices))
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
