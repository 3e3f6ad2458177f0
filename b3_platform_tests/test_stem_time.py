"""A capture's time read back from its stem: the fixed-width reading gives exactly what `strptime`
gives, and anything else is still `strptime`'s to read or refuse."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from b3_platform.lake import paths
from b3_platform.lake.paths import fetched_at_from_stem, raw_stem

SHA = "b" * 64


def by_strptime(stem: str):
    """The reference: what `fetched_at_from_stem` returned before the fixed-width reading."""
    try:
        stamp = stem.split("-", 1)[0]
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.timezone.utc)
    except ValueError as exc:
        return ("error", str(exc))


def read(stem: str):
    try:
        return fetched_at_from_stem(stem)
    except ValueError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("seed", range(3))
def test_every_stem_raw_stem_writes_reads_back_to_its_time(seed):
    rng = random.Random(seed)
    start = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc)
    for _ in range(500):
        at = start + dt.timedelta(microseconds=rng.randrange(60 * 365 * 86_400 * 10**6))
        stem = raw_stem(at, SHA)
        assert paths._STAMP.fullmatch(stem.split("-", 1)[0])  # the fixed-width way is the one taken
        assert fetched_at_from_stem(stem) == at
        assert fetched_at_from_stem(stem) == by_strptime(stem)


@pytest.mark.parametrize(
    "stamp",
    [
        "20250710T210000000000Z",  # the fixed-width form, edge values
        "20241231T235959999999Z",
        "20240229T000000000001Z",
        "20251301T000000000000Z",  # a 13th month
        "20250230T000000000000Z",  # 30 February
        "20250710T240000000000Z",  # hour 24
        "20250710T235960000000Z",  # second 60
        "00000101T000000000000Z",  # year 0
        "20250710t210000000000Z",  # lower-case t: strptime ignores case
        "2025710T210000000000Z",  # not fixed width: strptime's patterns decide
        "20250710T2100000Z",  # microseconds of one digit
        "２０２５0710T210000000000Z",  # fullwidth digits, which strptime's \d takes
        "20250710T210000000000",  # no Z
        "20250710T210000000000Z ",  # trailing blank
        "",
        "capture",
    ],
)
def test_any_other_stamp_reads_or_fails_as_strptime_does(stamp):
    stem = f"{stamp}-{SHA}"
    assert read(stem) == by_strptime(stem)
