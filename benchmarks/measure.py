"""The measurement plan: for one size (N dates, K indices), (a)-(e) `--repeat` times on fresh lakes,
and the figures gathered per repeat (ComboResult)."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from archive import Archive, build_archive
from backfill import (
    INSTANCES,
    ChildRun,
    import_archive,
    measure_backfill,
    measure_per_partition,
    naive_pandas,
    sample_days,
)
from common import Clock, median


@dataclass
class ComboResult:
    """Every figure of one (N dates, K indices) combination, one entry per repeat."""

    n: int
    k: int
    files: int = 0
    import_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)
    backfill: dict[str, list[ChildRun]] = field(default_factory=lambda: {i: [] for i in INSTANCES})
    per_partition: dict[str, list[ChildRun]] = field(default_factory=lambda: {i: [] for i in INSTANCES})
    sample: int = 0

    def backfill_s(self, kind: str) -> float:
        return median([r.result["wall_s"] for r in self.backfill[kind]])

    def backfill_ms_per_date(self, kind: str) -> float:
        return self.backfill_s(kind) * 1000 / self.n

    def backfill_cpu_s(self, kind: str) -> float:
        return median([r.result["cpu_s"] for r in self.backfill[kind]])

    def backfill_rss_mb(self, kind: str) -> float:
        return median([r.peak_rss_mb for r in self.backfill[kind]])

    def run_split_s(self, kind: str) -> tuple[float, float]:
        """(block run, catalog run) seconds of (b)."""
        runs = [r.result["run_s"] for r in self.backfill[kind]]
        return median([sum(r[:-1]) for r in runs]), median([r[-1] for r in runs])

    def per_partition_ms(self, kind: str) -> float:
        """Mean seconds per per-partition run (a mean: the cost grows with the history before a date)."""
        return median([statistics.fmean(r.result["run_s"]) for r in self.per_partition[kind]]) * 1000

    def per_partition_total_s(self, kind: str) -> float:
        """(c) extrapolated to N dates: mean run x N + the catalog run once."""
        return median(
            [
                statistics.fmean(r.result["run_s"]) * self.n + r.result["catalog_s"]
                for r in self.per_partition[kind]
            ]
        )

    def speedup(self, kind: str) -> float:
        return self.per_partition_total_s(kind) / self.backfill_s(kind)


def measure_once(combo: ComboResult, archive: Archive, picked: list[dt.date], step: Path, say) -> None:
    """One repeat of (a)-(e), on fresh lakes under `step` (one per instance type)."""
    lakes = {kind: step / f"lake-{kind}" for kind in INSTANCES}
    seconds, files = import_archive(archive.path, lakes["persistent"])
    combo.import_s.append(seconds)
    say(f"(a) imported {files} files, 0 rejected: {files / seconds:.0f} files/s")
    shutil.copytree(lakes["persistent"], lakes["ephemeral"])
    for kind in INSTANCES:
        combo.backfill[kind].append(measure_backfill(archive, lakes[kind], kind, step, say))
    for kind in INSTANCES:
        combo.per_partition[kind].append(measure_per_partition(archive, picked, lakes[kind], kind, step, say))
    naive = naive_pandas(archive.path, archive.indices, archive.days, step / "naive-pandas")
    combo.naive_s.append(naive)
    say(f"(d) naive pandas: {naive:.1f} s = {combo.files / naive:.0f} files/s")


def measure_combo(
    workdir: Path, n: int, k: int, repeat: int, sample: int, keep_last_lake: bool, clock: Clock
) -> tuple[ComboResult, Path, Path | None]:
    """All of (a)-(e) for one size, `repeat` times; returns the result, the archive and (if asked)
    the last persistent lake with its catalog, for (f). Other lakes are removed as soon as measured
    (a 1250 x 5 lake is ~0.5 GB)."""
    combo_dir = workdir / f"n{n}-k{k}"
    archive = Archive(*build_archive(combo_dir / "archive", n, k))
    combo = ComboResult(n, k, files=n * k)
    clock.say(
        f"N={n} K={k}: SYNTHETIC archive of {n * k} files ({archive.days[0]} … {archive.days[-1]}, "
        f"{', '.join(archive.indices)}; re-dated real IBOV samples) at {archive.path}"
    )
    picked = sample_days(archive.days, sample)
    combo.sample = len(picked)
    kept = None
    for r in range(1, repeat + 1):
        step = combo_dir / f"repeat{r}"
        measure_once(
            combo,
            archive,
            picked,
            step,
            lambda text, r=r: clock.say(f"N={n} K={k} repeat {r}/{repeat}: {text}"),
        )
        if keep_last_lake and r == repeat:
            kept = step / "lake-persistent"
            shutil.rmtree(step / "lake-ephemeral", ignore_errors=True)
            shutil.rmtree(step / "naive-pandas", ignore_errors=True)
        else:
            shutil.rmtree(step, ignore_errors=True)
    return combo, archive.path, kept
