"""The raw inventory (lake.raw_inventory): coverage and the catalog's raw counts from a state plus the
dates written since must always equal a full walk of raw, on a folder and on S3 (moto), whatever
arrived in between: a new capture for an old date, a new index on an old date, a capture half
written, a state lost or damaged."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from b3_platform.coverage import captured_days
from b3_platform.lake import raw_inventory
from b3_platform.lake.paths import (
    META_SUFFIX,
    RAW_PENDING_DIR,
    raw_inventory_prefix,
    raw_pending_key,
    raw_prefix,
    raw_stem,
)
from b3_platform.lake.raw_inventory import inventory
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.s3_storage import S3Storage
from b3_platform.lake.storage import LocalStorage, MissingKey, Storage
from b3_platform_tests.moto_aws import REGION

JULY_1, JULY_2, JULY_3 = dt.date(2025, 7, 1), dt.date(2025, 7, 2), dt.date(2025, 7, 3)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "lake")
    target = request.getfixturevalue("aws_target")
    return S3Storage(target.bucket, target.prefix, region=REGION, endpoint_url=target.endpoint)


def capture(storage: Storage, day: dt.date, index: str, body: str = "{}") -> None:
    _, new = RawStore(storage).store(
        day,
        index,
        [body.encode()],
        fetched_at=dt.datetime.now(dt.timezone.utc),
        source_format="json",
        meta={"source": "test"},
    )
    assert new


def walked(storage: Storage) -> dict:
    """What a full walk of raw finds, the state bypassed: the answer the inventory must give."""
    return raw_inventory._walk_all(storage, raw_inventory.PORTFOLIO_DAY, set())[0]


def pending(storage: Storage) -> list[str]:
    return storage.list_keys(f"{raw_inventory_prefix()}{RAW_PENDING_DIR}")


def states(storage: Storage) -> list[str]:
    return [k for k in storage.list_keys(raw_inventory_prefix()) if "/state-" in k]


def test_the_state_follows_every_kind_of_new_capture(storage):
    capture(storage, JULY_1, "IBOV")
    capture(storage, JULY_1, "SMLL")
    capture(storage, JULY_2, "IBOV")
    first = inventory(storage, update=True)
    assert first.counts == walked(storage) == {JULY_1: {"IBOV": 1, "SMLL": 1}, JULY_2: {"IBOV": 1}}
    assert pending(storage) == [] and len(states(storage)) == 1

    capture(storage, JULY_1, "IBOV", '{"again": 1}')  # a second capture of an old (date, index)
    capture(storage, JULY_1, "IBXX")  # a new index on an old date
    capture(storage, JULY_3, "IBOV")  # a new date
    assert len(pending(storage)) == 3
    after = inventory(storage, update=True)
    assert after.counts == walked(storage)
    assert after.counts[JULY_1] == {"IBOV": 2, "SMLL": 1, "IBXX": 1}
    assert after.totals() == (6, 3, JULY_1, JULY_3)
    assert captured_days(storage) == {"IBOV": {JULY_1, JULY_2, JULY_3}, "SMLL": {JULY_1}, "IBXX": {JULY_1}}
    assert pending(storage) == [] and len(states(storage)) == 1  # the older state is gone


def test_a_reader_that_does_not_update_sees_the_new_captures_and_leaves_the_markers(storage):
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    before = states(storage)
    capture(storage, JULY_2, "IBOV")
    assert inventory(storage).counts == walked(storage)
    assert len(pending(storage)) == 1 and states(storage) == before


def test_a_capture_with_bodies_but_no_sidecar_yet_is_not_counted_until_its_sidecar_lands(storage):
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    # What RawStore._write has done when it is interrupted before the sidecar: marker, then body.
    stem = raw_stem(dt.datetime.now(dt.timezone.utc), "ab" * 32)
    marker = raw_pending_key(JULY_1, "IBOV", stem, time.time_ns() // 1_000_000)
    storage.write_bytes(marker, b"")
    storage.write_bytes(f"{raw_prefix(JULY_1, 'IBOV')}{stem}.json", b"{}")
    assert inventory(storage, update=True).counts == {JULY_1: {"IBOV": 1}}
    assert pending(storage) == [marker]  # kept: its capture may still commit
    storage.write_bytes(f"{raw_prefix(JULY_1, 'IBOV')}{stem}{META_SUFFIX}", b"{}")
    assert inventory(storage, update=True).counts == {JULY_1: {"IBOV": 2}} == walked(storage)
    assert pending(storage) == []


def test_an_abandoned_captures_marker_is_dropped_once_stale(storage):
    stem = raw_stem(dt.datetime.now(dt.timezone.utc), "cd" * 32)
    old_ms = int((time.time() - raw_inventory.MARKER_STALE_SECONDS - 60) * 1000)
    storage.write_bytes(raw_pending_key(JULY_2, "IBOV", stem, old_ms), b"")
    storage.write_bytes(f"{raw_prefix(JULY_2, 'IBOV')}{stem}.json", b"{}")  # a body, never committed
    capture(storage, JULY_1, "IBOV")
    assert inventory(storage, update=True).counts == {JULY_1: {"IBOV": 1}}
    assert pending(storage) == []


@pytest.mark.parametrize("damage", ["lost", "not json", "other format", "wrong shape"])
def test_a_lost_or_damaged_state_is_rebuilt_from_a_full_walk(storage, damage):
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    [state] = states(storage)
    # Captures written while the state is unusable and by a writer that left no marker (a copy by
    # hand): the rebuild must count them too.
    capture(storage, JULY_2, "IBOV")
    for key in pending(storage):
        storage.delete(key)
    if damage == "lost":
        storage.delete(state)
    else:
        bad = {"not json": b"{trunc", "other format": b'{"format": 99, "dates": {}}'}
        storage.write_bytes(state, bad.get(damage, b'{"format": 2, "years": [1, 2]}'))
    assert (
        inventory(storage, update=True).counts
        == walked(storage)
        == {JULY_1: {"IBOV": 1}, JULY_2: {"IBOV": 1}}
    )
    [rebuilt] = states(storage)
    assert rebuilt != state or damage == "lost"
    assert inventory(storage).counts == walked(storage)  # and the rebuilt state reads back


def test_a_refresh_that_loses_the_race_for_the_next_state_deletes_no_marker(storage, monkeypatch):
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    before = states(storage)
    capture(storage, JULY_2, "IBOV")
    # Another refresh created the next state first: this one's exclusive create is refused.
    monkeypatch.setattr(storage, "create_bytes", lambda key, data: False)
    assert inventory(storage, update=True).counts == walked(storage)
    assert len(pending(storage)) == 1 and states(storage) == before


def test_a_state_replaced_between_the_listing_and_the_read_is_read_again(storage, monkeypatch):
    """A refresh replaces the state (writes the next, deletes the old) just after a reader listed
    the old one: the reader lists again and reads the new state, it does not fail."""
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    [old] = states(storage)
    capture(storage, JULY_2, "IBOV")
    read = storage.read_bytes
    raced: list[str] = []

    def read_after_a_refresh(key: str) -> bytes:
        if key == old and not raced:
            raced.append(key)
            inventory(storage, update=True)  # the concurrent refresh: `old` is gone now
        return read(key)

    monkeypatch.setattr(storage, "read_bytes", read_after_a_refresh)
    assert inventory(storage).counts == walked(storage) == {JULY_1: {"IBOV": 1}, JULY_2: {"IBOV": 1}}
    assert raced == [old] and old not in states(storage)


def test_a_reader_whose_state_is_replaced_on_every_attempt_walks_raw(storage, monkeypatch):
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    capture(storage, JULY_1, "SMLL")
    read = storage.read_bytes

    def always_replaced(key: str) -> bytes:
        if "/state-" in key:
            raise MissingKey(f"{key} was replaced")
        return read(key)

    monkeypatch.setattr(storage, "read_bytes", always_replaced)
    assert inventory(storage).counts == walked(storage) == {JULY_1: {"IBOV": 1, "SMLL": 1}}


def test_an_update_lists_only_the_dates_written_since(tmp_path):
    listed: list[str] = []

    class Counting(LocalStorage):
        def list_keys(self, prefix: str) -> list[str]:
            listed.append(prefix)
            return super().list_keys(prefix)

    storage = Counting(tmp_path / "lake")
    for day in (JULY_1, JULY_2):
        capture(storage, day, "IBOV")
    inventory(storage, update=True)
    capture(storage, JULY_3, "IBOV")
    listed.clear()
    assert inventory(storage, update=True).counts == walked(storage)
    assert sorted(listed) == [raw_inventory_prefix(), raw_prefix(JULY_3)]
    listed.clear()
    inventory(storage)  # nothing written since: the state alone
    assert listed == [raw_inventory_prefix()]
    # and what that listing walks stays the same size: no folder per date left behind by markers,
    # one summary, and a year's file kept only until the refresh after the one that replaced it
    folder = tmp_path / "lake" / raw_inventory_prefix()

    def held() -> list[str]:
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    first, second = [n for n in held() if n.startswith("years/")]  # 2025 before and after JULY_3
    assert held() == ["state-000000000002.json", first, second] and (folder / RAW_PENDING_DIR).is_dir()
    capture(storage, JULY_3, "SMLL")
    inventory(storage, update=True)
    newest = [n for n in held() if n.startswith("years/") and n not in (first, second)]
    assert len(newest) == 1 and len(held()) == 3 and "state-000000000003.json" in held()


def test_other_methods_captures_leave_no_marker(tmp_path):
    storage = LocalStorage(tmp_path / "lake")
    RawStore(storage, "GetStockIndex").store(
        JULY_1,
        "IBOV",
        [b"{}"],
        fetched_at=dt.datetime.now(dt.timezone.utc),
        source_format="json",
        meta={},
    )
    assert storage.list_keys("catalog/") == []


def test_many_dates_written_since_are_settled_by_one_walk_of_all_raw(storage, monkeypatch):
    capture(storage, JULY_1, "IBOV")
    inventory(storage, update=True)
    for day in (JULY_1, JULY_2, JULY_3):
        capture(storage, day, "SMLL")
    # Three dates since: more than a floor of 2, so one walk of all raw, no date listed on its own.
    monkeypatch.setattr(raw_inventory, "FULL_WALK_MIN_DATES", 2)
    monkeypatch.setattr(raw_inventory, "_walk_date", lambda *a: pytest.fail("walked a date on its own"))
    assert inventory(storage, update=True).counts == walked(storage)
    assert walked(storage)[JULY_1] == {"IBOV": 1, "SMLL": 1}
    assert pending(storage) == []


def test_delete_keys_deletes_each_key_and_ignores_missing_ones(storage):
    keys = [f"catalog/x/{n:04d}" for n in range(3)]
    for key in keys:
        storage.write_bytes(key, b"")
    storage.delete_keys([*keys[:2], "catalog/x/never-written"])
    assert storage.list_keys("catalog/x/") == keys[2:]
