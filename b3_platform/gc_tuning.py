"""Python's garbage collector, tuned for the processes that run the asset graph.

CPython starts a young-generation collection every 700 net container allocations. A run of this
graph allocates a great many short-lived containers per date (pydantic models of a capture's rows,
Arrow conversions, Dagster's event objects and their metadata), so a 34-index date paid dozens of
young collections and, through them, frequent older ones that walk everything Dagster and the
definitions keep alive: ~1.2 s of a 30-date × 34-index backfill's ~7.5 s of CPU went to the
collector (benchmarks/RESULTS.md, "The garbage collector"). Collecting every 20,000 allocations
instead cut that to ~0.65 s. Nothing here builds reference cycles that need prompt freeing, and
the collector still runs: memory held by cyclic garbage waits a little longer, no more.

`gc.freeze()` after the definitions load (to keep their objects out of every full collection) was
measured too and not kept: with fewer objects left in the old generation, full collections came
more often (8 → 12) and saved less than the threshold alone.
"""

from __future__ import annotations

import gc

#: Net container allocations between young-generation collections (CPython's default: 700). The
#: two older generations keep CPython's ratios' spirit: every 20 young collections, and a full one
#: every 100 of those (still also bounded by CPython's own 25 % rule for full collections).
YOUNG_THRESHOLD = 20_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_runs() -> None:
    """Set the thresholds above for this process (idempotent; the definitions module calls it, so
    every process that loads the graph — the CLI, `dagster dev`'s code server, each run — has them)."""
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
