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

from b3_platform import trading_calendar
from b3_platform.lake.paths import META_SUFFIX, date_in_key, fetched_at_from_stem, raw_prefix
from b3_platform.lake.raw_store import RawStore, read_sidecar

#: The `source` a capture's sidecar records when it was taken from B3's API by the platform.
LIVE_SOURCE = "api"
#: A capture from B3's API is fetched while B3 serves that date's portfolio: on the day, or ahead
#: of it (the evening look-ahead of the trading day before, a long weekend earlier); the raw assets
#: capture nothing else. A capture stamped more than LIVE_MARGIN from its date was imported (an
#: import is stamped when it runs), so its sidecar need not be read: judging a day after years of
#: imported history reads no old sidecar. The margin is generous on purpose: a capture within it
#: is only read, never judged by its name.
LIVE_MARGIN = dt.timedelta(days=10)


def may_be_live(day: dt.date, sidecar_key: str) -> bool:
    """Whether a capture filed under `day` could have come from B3's API, by its name alone."""
    try:  # a capture's name starts with its fetch time in UTC (lake.paths.raw_stem)
        fetched = fetched_at_from_stem(sidecar_key.rsplit("/", 1)[-1]).date()
    except ValueError:
        return True  # a name not made by raw_stem: read its sidecar
    return abs(fetched - day) <= LIVE_MARGIN


#: What earlier runs in this process learnt of each raw store, by (store URI, method): (the earliest
#: date known to hold a live capture, the last date known to hold none on or before it). Both are
#: facts that later captures cannot undo: raw is append-only, so a live capture stays; and a live
#: capture is filed within LIVE_MARGIN of when it was fetched, so no capture fetched from now on can
#: land on a date more than LIVE_MARGIN before B3's today (`_lasting` keeps only such a "none through"). A
#: backfill split into consecutive runs (runs.MAX_RUN_DATES) thus lists the whole store once, not
#: once per run: at 5,000 dates × 34 indices that listing is ~340,000 keys, ~4 s of CPU each time.
_KNOWN: dict[tuple[str, str], tuple[dt.date | None, dt.date | None]] = {}
#: The longest stretch of days after a known "none through" looked at day by day (one small
#: listing per day) rather than by listing the whole store again.
DAY_BY_DAY_LIMIT = dt.timedelta(days=400)


def _lasting(none_through: dt.date | None) -> dt.date | None:
    """The part of "no live capture on or before this date" no future capture can contradict."""
    if none_through is None:
        return None
    horizon = trading_calendar.today_sao_paulo() - LIVE_MARGIN - dt.timedelta(days=1)
    return min(none_through, horizon)


class LiveCaptures:
    """Answers "had the platform begun capturing live by this day?" over one raw store.

    The day itself is looked at first (on a platform capturing every day the answer is there,
    without listing the store); otherwise one listing of the store's sidecars, walked newest
    first, reading only those whose name says they may be live (`may_be_live`) and each date at
    most once (an ascending range run reads every date once in all). What an earlier run in the
    process learnt is kept (`_KNOWN`): after it only the days since are looked at, one by one."""

    def __init__(self, store: RawStore) -> None:
        self._store = store
        self._key = (store.storage.uri(), store.method)
        self._sidecars: dict[dt.date, list[str]] | None = None  # date -> its sidecars' keys
        #: The earliest date known to hold a live capture; every date up to `_none_through` is
        #: known to hold none.
        self._first_live, self._none_through = _KNOWN.get(self._key, (None, None))

    def _remember(self) -> None:
        _KNOWN[self._key] = (self._first_live, _lasting(self._none_through))

    def _live_on(self, day: dt.date, keys: list[str]) -> bool:
        storage = self._store.storage
        return any(read_sidecar(storage, k).get("source") == LIVE_SOURCE for k in keys if may_be_live(day, k))

    def began_by(self, day: dt.date) -> bool:
        """Whether some date on or before `day` holds a capture taken from B3's API."""
        answer = self._began_by(day)
        self._remember()
        return answer

    def _began_by(self, day: dt.date) -> bool:
        if self._first_live is not None and self._first_live <= day:
            return True
        if self._none_through is not None and day <= self._none_through:
            return False
        if (
            self._sidecars is None
            and self._none_through is not None
            and day - self._none_through <= DAY_BY_DAY_LIMIT
        ):
            return self._days_since_none(day)
        if self._sidecars is None:
            own = self._store.storage.list_keys(raw_prefix(day, method=self._store.method))
            if self._live_on(day, [k for k in own if k.endswith(META_SUFFIX)]):
                self._first_live = day
                return True
            self._sidecars = {}
            for key in self._store.storage.list_keys(raw_prefix(method=self._store.method)):
                if key.endswith(META_SUFFIX) and (date := date_in_key(key)):
                    self._sidecars.setdefault(date, []).append(key)
        for date in sorted(self._sidecars, reverse=True):
            if date > day:
                continue
            if self._none_through is not None and date <= self._none_through:
                break
            if self._live_on(date, self._sidecars[date]):
                self._first_live = date if self._first_live is None else min(self._first_live, date)
                return True
        self._none_through = day if self._none_through is None else max(self._none_through, day)
        return False

    def _days_since_none(self, day: dt.date) -> bool:
        """The days after `_none_through` up to `day`, oldest first, each listed on its own."""
        assert self._none_through is not None
        storage, date = self._store.storage, self._none_through
        while date < day:
            date += dt.timedelta(days=1)
            keys = storage.list_keys(raw_prefix(date, method=self._store.method))
            if self._live_on(date, [k for k in keys if k.endswith(META_SUFFIX)]):
                self._first_live = date if self._first_live is None else min(self._first_live, date)
                return True
            self._none_through = date
        return False


def not_judged(day: dt.date, what: str) -> str:
    """What a completeness check says for a day before the platform captured live."""
    return (
        f"not judged: no capture from B3's API on or before {day} (the lake holds imported history up "
        f"to there, which is not held to {what}); it is judged from the first live capture on"
    )
