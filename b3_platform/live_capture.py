"""Whether the platform was capturing live on a day: the rule behind the completeness checks.

A lake begins either with the platform's own captures (B3's API, day by day) or with history
imported from saved files (`python -m b3_platform import`, the demo's samples), which is whatever
an archive happened to keep: some indices, some days. Holding imported history to the day's
capture list (34 indices) or to "the previous trading day is there" would warn on nearly every date
of a first look, for gaps no one could have filled. So `all_configured_indices_captured` and
`previous_trading_day_in_lake` judge a day only when a live capture was expected on it: on or after
the lake's first capture taken from B3's API (raw sidecars say `source: api`; an import says
`import`). From that day on every missed index or day counts, also when it was later filled by an
import; before it, the checks say "not judged" and why. Dagster-free.
"""

from __future__ import annotations

import datetime as dt

from b3_platform.lake.raw_store import RawStore

#: The `source` a capture's sidecar records when it was taken from B3's API by the platform.
LIVE_SOURCE = "api"


class LiveCaptures:
    """Answers "had the platform begun capturing live by this day?" over one raw store, reading each
    date's sidecars at most once (an ascending range run reads every date once in all)."""

    def __init__(self, store: RawStore) -> None:
        self._store = store
        self._dates: list[dt.date] | None = None
        #: The earliest date known to hold a live capture.
        self._first_live: dt.date | None = None
        #: Every date up to this one is known to hold no live capture.
        self._none_through: dt.date | None = None

    def began_by(self, day: dt.date) -> bool:
        """Whether some date on or before `day` holds a capture taken from B3's API."""
        if self._first_live is not None and self._first_live <= day:
            return True
        if self._none_through is not None and day <= self._none_through:
            return False
        if self._dates is None:
            self._dates = self._store.dates()
        for date in reversed(self._dates):
            if date > day:
                continue
            if self._none_through is not None and date <= self._none_through:
                break
            if any(c.meta.get("source") == LIVE_SOURCE for c in self._store.captures(date)):
                self._first_live = date if self._first_live is None else min(self._first_live, date)
                return True
        self._none_through = day if self._none_through is None else max(self._none_through, day)
        return False


def not_judged(day: dt.date, what: str) -> str:
    """What a completeness check says for a day before the platform captured live."""
    return (
        f"not judged: no capture from B3's API on or before {day} (the lake holds imported history up "
        f"to there, which is not held to {what}); it is judged from the first live capture on"
    )
